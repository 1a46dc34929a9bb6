"""One training step on archcost's own kernels (archcost/training_execute.py), checked by
archcost validate --train: every zoo model at its smallest input, per-layer gradients against
float64 references, counted backward multiplies against the analytic MACs, the measured peak
against the prediction; and the whole step's gradients against finite differences."""

import math

import numpy as np
import pytest

from archcost import ops, zoo
from archcost.cli import main
from archcost.graph import Graph
from archcost.training import analyze_training
from archcost.training_execute import TrainingExecutor
from archcost.validation import validate_training
from tests.test_checkpoint_search import _segmentations
from tests.test_execute import smallest_input


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_validates_a_training_step(name):
    graph = zoo.build(name, input_shape=smallest_input(name))
    # At batch 2 a BN over a 1x1 map sees two values per channel: its output is +-1 whatever the
    # input and its input gradient is zero up to eps, so a relative error means nothing. Such
    # models run at batch 4, the others at 2.
    tiny_bn = any(isinstance(graph.op(n), ops.BatchNorm) and math.prod(graph.shape(n)[2:]) == 1
                  for n in graph.topological_order())
    result = validate_training(graph, batch=4 if tiny_bn else 2)
    assert result.ok, (f"{name}: {[(c.name, c.problem) for c in result.failures][:3]}, peak "
                       f"{result.peak_bytes} vs {result.predicted_peak_bytes}, loss error {result.loss_error}")


def _small():
    g = Graph("small")
    x = g.input((2, 5, 5))
    a = g.add(ops.Conv2d(3, 3, padding=1), x, name="conv")
    b = g.add(ops.BatchNorm(), a, name="bn")
    c = g.add(ops.Activation("tanh"), b, name="tanh")
    d = g.add(ops.Conv2d(3, 1), c, name="proj")
    s = g.add(ops.Add(), c, d, name="add")
    p = g.add(ops.AvgPool2d(2, 1, padding=1, count_include_pad=False), s, name="pool")  # smooth: no argmax to flip
    f = g.add(ops.Flatten(), g.add(ops.AvgPool2d(2), p, name="avg"), name="flatten")
    g.add(ops.Linear(4), f, name="fc")
    return g


def _loss(ex, inputs, labels):
    return ex.step(inputs, labels, update=False).loss


def test_whole_step_gradients_match_finite_differences():
    """d loss / d w of the executed step (all float32 kernels chained) against central differences
    of the executed loss, for a few entries of every param: proves the chain, not only each layer."""
    g = _small()
    ex = TrainingExecutor(g, batch=3, seed=1)
    inputs, labels = ex.random_batch()
    grads = ex.step(inputs, labels, update=False).grads
    rng = np.random.default_rng(0)
    for node in ("conv", "bn", "proj", "fc"):
        for name, grad in grads[node].items():
            w = ex.params[node][name]
            for flat in rng.choice(w.size, size=min(3, w.size), replace=False):
                idx = np.unravel_index(flat, w.shape)
                old = w[idx]
                eps = 1e-3 * max(1.0, abs(float(old)))
                w[idx] = old + eps
                up = _loss(ex, inputs, labels)
                w[idx] = old - eps
                down = _loss(ex, inputs, labels)
                w[idx] = old
                numeric = (up - down) / (2 * eps)
                assert abs(numeric - grad[idx]) <= 2e-3 * max(1.0, abs(numeric)), (node, name, idx, numeric, grad[idx])


def test_measured_peak_equals_predicted_under_every_option():
    g = _small()
    for options in ({}, {"optimizer": "adam"}, {"optimizer": "momentum"}, {"freeze": "conv"},
                    {"checkpoint": "every:3"}, {"checkpoint": "sqrt"}):
        ex = TrainingExecutor(g, batch=2, **options)
        assert ex.step().peak_bytes == analyze_training(g, batch=2, **options).totals["train_peak_bytes"], options


def test_checkpointing_gives_the_same_gradients():
    g = zoo.build("resnet18", input_shape=(3, 16, 16))
    plain = TrainingExecutor(g, batch=2, seed=3)
    inputs, labels = plain.random_batch()
    a = plain.step(inputs, labels, update=False).grads
    b = TrainingExecutor(g, batch=2, seed=3, checkpoint="sqrt").step(inputs, labels, update=False).grads
    for node in a:
        for name in a[node]:
            np.testing.assert_allclose(a[node][name], b[node][name], rtol=1e-5, atol=1e-6)


def test_optimizer_steps_lower_the_loss():
    g = _small()
    for name in ("sgd", "momentum", "adam", "adamw"):
        ex = TrainingExecutor(g, batch=4, seed=2, optimizer=name, lr=0.01)
        inputs, labels = ex.random_batch()
        first = ex.step(inputs, labels).loss
        for _ in range(5):
            last = ex.step(inputs, labels).loss
        assert last < first, name


def test_a_wrong_saving_rule_breaks_the_step(monkeypatch):
    """Drop BN's kept input: its backward gets None and the step fails, instead of passing."""
    orig = ops.BatchNorm.saves

    def without_input(self, *args):
        s = orig(self, *args)
        return type(s)(inputs=(), output=s.output, extras=s.extras)

    monkeypatch.setattr(ops.BatchNorm, "saves", without_input)
    with pytest.raises(Exception):
        TrainingExecutor(_small(), batch=2).step()


def test_validate_train_cli(capsys):
    assert main(["validate", "resnet18", "--input", "3x32x32", "--batch", "2", "--train", "--optimizer", "adam"]) == 0
    out = capsys.readouterr().out
    assert "peak training memory: measured" in out and "-> ok" in out
    assert main(["validate", "resnet18", "--train", "--policy", "pytorch"]) == 2


def test_optimizer_updates_match_their_formulas():
    from archcost.kernels.cpu import optim

    rng = np.random.default_rng(5)
    p0 = rng.standard_normal((3, 4)).astype(np.float32)
    g = rng.standard_normal((3, 4)).astype(np.float32)
    lr = 0.1
    for name in ("sgd", "momentum", "adam", "adamw"):
        p = p0.copy()
        state = [np.full_like(p, 0.5), np.full_like(p, 0.25)]
        m0, v0 = (s.astype(np.float64) for s in state)
        optim.update(name, p, g, state, lr, 2)
        x, gg = p0.astype(np.float64), g.astype(np.float64)
        if name == "sgd":
            want = x - lr * gg
        elif name == "momentum":
            want = x - lr * (0.9 * m0 + gg)
        else:
            if name == "adamw":
                x = x * (1 - lr * 0.01)
            m = 0.9 * m0 + 0.1 * gg
            v = 0.999 * v0 + 0.001 * gg * gg
            want = x - lr * (m / (1 - 0.9**2)) / (np.sqrt(v / (1 - 0.999**2)) + 1e-8)
        np.testing.assert_allclose(p, want, rtol=1e-5, atol=1e-6, err_msg=name)


def test_dropout_p0_trains_as_the_identity():
    g = Graph("p0")
    x = g.input((6,))
    f = g.add(ops.Linear(6), x, name="fc1")
    d = g.add(ops.Dropout(0.0), f, name="drop")
    g.add(ops.Linear(3), d, name="fc2")
    result = validate_training(g, batch=3)
    assert result.ok, [(c.name, c.problem) for c in result.failures]


def _in_place_chain():
    """Non-idempotent in-place activations, dropout and a view: an in-place overwrite of a
    storage a segment reads again changes the gradients."""
    g = Graph("inplace")
    x = g.input((2, 6, 6))
    x = g.add(ops.Conv2d(3, 3, padding=1), x, name="c1")
    x = g.add(ops.Activation("sigmoid"), x, name="s1")
    x = g.add(ops.Flatten(), x, name="flat")
    x = g.add(ops.Activation("sigmoid"), x, name="s3")
    x = g.add(ops.Dropout(0.3), x, name="drop")
    g.add(ops.Linear(4), x, name="fc")
    return g


def test_every_segmentation_executes_to_the_plain_gradients_and_its_predicted_peak():
    g = _in_place_chain()
    n = len(g.topological_order())
    plain = TrainingExecutor(g, batch=2, seed=3)
    inputs, labels = plain.random_batch()
    want = plain.step(inputs, labels, update=False).grads
    tried = 0
    for units in _segmentations(n - 1):
        segments = tuple((a + 1, b + 1) for a, b in units)
        ex = TrainingExecutor(g, batch=2, seed=3, checkpoint=segments)
        got = ex.step(inputs, labels, update=False)
        assert got.peak_bytes == analyze_training(g, batch=2, checkpoint=segments).totals["train_peak_bytes"]
        for node in want:
            for name in want[node]:
                np.testing.assert_allclose(got.grads[node][name], want[node][name], rtol=1e-6, atol=1e-7,
                                           err_msg=f"{segments} {node}.{name}")
        tried += 1
    assert tried == 233  # every grouping of its 6 layers


def _group_norm_net() -> Graph:
    """Conv -> GroupNorm(2 of 4) -> relu -> conv -> InstanceNorm (GroupNorm(4), no affine) ->
    pool -> fc: a GroupNorm's kept mean/invstd and per-channel gamma/beta in a whole step."""
    g = Graph("gn")
    x = g.input((3, 5, 5))
    x = g.add(ops.Conv2d(4, 3, padding=1), x, name="conv")
    x = g.add(ops.GroupNorm(2), x, name="gn")
    x = g.add(ops.Activation("silu"), x, name="act")
    x = g.add(ops.Conv2d(4, 3, padding=1), x, name="conv2")
    x = g.add(ops.GroupNorm(4, affine=False), x, name="inorm")
    x = g.add(ops.Flatten(), g.add(ops.AvgPool2d(2), x, name="avg"), name="flatten")
    g.add(ops.Linear(3), x, name="fc")
    return g


def test_group_norm_trains_per_layer_and_whole_step():
    g = _group_norm_net()
    result = validate_training(g, batch=2)
    assert result.ok, ([(c.name, c.problem) for c in result.failures][:3], result.peak_bytes,
                       result.predicted_peak_bytes)
    for options in ({}, {"freeze": "gn"}, {"checkpoint": "sqrt"}):
        ex = TrainingExecutor(g, batch=2, **options)
        assert ex.step().peak_bytes == analyze_training(g, batch=2, **options).totals["train_peak_bytes"], options
    ex = TrainingExecutor(g, batch=2, seed=2)
    inputs, labels = ex.random_batch()
    grads = ex.step(inputs, labels, update=False).grads
    assert set(grads["gn"]) == {"gamma", "beta"} and "inorm" not in grads
    for name, grad in grads["gn"].items():
        w = ex.params["gn"][name]
        for c in range(w.size):
            old = w[c]
            w[c] = old + 1e-3
            up = _loss(ex, inputs, labels)
            w[c] = old - 1e-3
            down = _loss(ex, inputs, labels)
            w[c] = old
            numeric = (up - down) / 2e-3
            assert abs(numeric - grad[c]) <= 2e-3 * max(1.0, abs(numeric)), (name, c, numeric, grad[c])


def _broadcast_net() -> Graph:
    """A global-context add (x + a conv of its pooled context, broadcast over H and W) and a sub of
    a per-position map (N, 1, H, W), broadcast over the channels: their gradients sum dy over the
    broadcast axes."""
    g = Graph("broadcast")
    x = g.add(ops.Conv2d(4, 3, padding=1), g.input((3, 5, 5)), name="conv")
    ctx = g.add(ops.Conv2d(4, 1), g.add(ops.GlobalAvgPool(), x, name="gap"), name="ctx")
    x = g.add(ops.Add(), x, ctx, name="add")
    x = g.add(ops.Sub(), x, g.add(ops.Conv2d(1, 1), x, name="map"), name="sub")
    x = g.add(ops.Activation("tanh"), x, name="tanh")
    x = g.add(ops.Flatten(), g.add(ops.AvgPool2d(2), x, name="avg"), name="flatten")
    g.add(ops.Linear(3), x, name="fc")
    return g


def test_broadcast_add_and_sub_train_per_layer_and_whole_step():
    g = _broadcast_net()
    result = validate_training(g, batch=2)
    assert result.ok, ([(c.name, c.problem) for c in result.failures][:3], result.peak_bytes,
                       result.predicted_peak_bytes)
    for options in ({}, {"freeze": "conv"}, {"checkpoint": "sqrt"}):
        ex = TrainingExecutor(g, batch=2, **options)
        assert ex.step().peak_bytes == analyze_training(g, batch=2, **options).totals["train_peak_bytes"], options
    ex = TrainingExecutor(g, batch=2, seed=3)
    inputs, labels = ex.random_batch()
    grads = ex.step(inputs, labels, update=False).grads
    rng = np.random.default_rng(0)
    for node in ("ctx", "map"):  # reached only through the broadcast input's summed gradient
        for name, grad in grads[node].items():
            w = ex.params[node][name]
            for flat in rng.choice(w.size, size=min(3, w.size), replace=False):
                idx = np.unravel_index(flat, w.shape)
                old = w[idx]
                w[idx] = old + 1e-3
                up = _loss(ex, inputs, labels)
                w[idx] = old - 1e-3
                down = _loss(ex, inputs, labels)
                w[idx] = old
                numeric = (up - down) / 2e-3
                assert abs(numeric) > 1e-6, (node, name, idx)
                assert abs(numeric - grad[idx]) <= 2e-3 * max(1.0, abs(numeric)), (node, name, idx, numeric, grad[idx])
