"""The training analysis (archcost/training.py): backward MACs, kept bytes and the exact peak of
one step, checked against schedules worked out by hand (the arithmetic is in the comments), and
the rules that decide who gets a gradient, what is kept and when it is freed."""

import math

import pytest

from archcost import ops, zoo
from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.training import analyze_training, parse_checkpoint, simulate


def tiny():
    """input 3x8x8 -> conv 4 3x3/1 pad 1 -> relu -> maxpool 2 -> flatten -> fc 10."""
    g = Graph("tiny")
    x = g.input((3, 8, 8))
    g.seq(x, ops.Conv2d(4, 3, padding=1), ops.ReLU(), ops.MaxPool2d(2), ops.Flatten(), ops.Linear(10))
    return g


def test_tiny_chain_by_hand():
    # Batch 2, float32. conv out 2x4x8x8 = 512 elements, 27 MACs each = 13,824; fc 2x10 outputs x 64.
    r = analyze_training(tiny(), batch=2)
    t = r.totals
    assert t["forward_macs"] == 13_824 + 1_280
    # conv: no data gradient (its input is the data), weight gradient 13,824; fc: 1,280 + 1,280.
    assert t["backward_data_macs"] == 1_280
    assert t["backward_weight_macs"] == 13_824 + 1_280
    assert t["train_step_macs"] == 15_104 + 16_384
    # Kept: the input batch (conv's input, 384 x 4 B) + the relu output, in place on conv's (2,048)
    # + max-pool int32 indices (128 x 4) + the pool output, fc's input through the flatten view (512)
    # + the loss's float32 probabilities (80) and int64 labels (16).
    assert t["train_saved_bytes"] == 1_536 + 2_048 + 512 + 512 + 80 + 16
    # Persistent: params (112 + 650) x 4 = 3,048, input 1,536, labels 16 = 4,600. Forward adds relu/conv
    # storage 2,048, pool output 512 + indices 512, fc output 80; loss probs 80 (fc output freed),
    # its gradient 80. Backward: fc +512 (flatten's gradient) +2,600 (fc grads) = 10,864, frees 80 + 512;
    # flatten +512 -512; pool +2,048 = 12,320, frees 512 + 512; relu +2,048 = 13,344: the peak.
    assert t["train_peak_bytes"] == 13_344
    assert t["peak_step"] == "backward act1"
    held = [h for _, _, h in r.timeline]
    assert held == [6_648, 6_648, 7_672, 7_672, 7_752, 7_832, 7_832, 10_864, 10_784, 12_320, 13_344, 9_696, 7_648]
    assert t["grad_bytes"] == 3_048 and t["optimizer_bytes"] == 0 and t["param_bytes"] == 3_048


def test_tiny_chain_pytorch_policy():
    # PyTorch keeps the conv input even for the first conv, and max_pool2d_with_indices keeps its
    # input (the relu output, already kept by relu: shared) and int64 indices (128 x 8 = 1,024);
    # nll_loss keeps a float32 total_weight scalar besides the log-probabilities and targets (all
    # three measured with saved_tensors_hooks, torch 2.14.1: benchmarks/torch_training_memory.py).
    t = analyze_training(tiny(), batch=2, policy="pytorch").totals
    assert t["train_saved_bytes"] == 1_536 + 2_048 + 1_024 + 512 + 80 + 16 + 4


def test_optimizer_state_and_mixed_precision():
    params = 112 + 650
    for name, states in (("sgd", 0), ("momentum", 1), ("adam", 2), ("adamw", 2)):
        t = analyze_training(tiny(), optimizer=name).totals
        assert t["optimizer_bytes"] == states * params * 4
    # float16 params and gradients, float32 master weights and Adam moments: 2 + 2 + 4 + 8 bytes a
    # param (ZeRO, Rajbhandari et al. 2020, section 3.1: "16 bytes" for mixed-precision Adam).
    t = analyze_training(tiny(), dtype="float16", optimizer="adam", mixed_precision=True).totals
    assert (t["param_bytes"], t["grad_bytes"], t["master_bytes"], t["optimizer_bytes"]) == (
        2 * params, 2 * params, 4 * params, 8 * params)
    with pytest.raises(ArchcostError, match="mixed precision"):
        analyze_training(tiny(), mixed_precision=True)


def test_frozen_layers_get_no_gradient():
    g = tiny()
    r = analyze_training(g, freeze="conv1")
    t = r.totals
    # conv1 frozen: no weight gradient, and nothing before fc needs a gradient at all, so fc has
    # no data gradient either and the pool/relu/conv run no backward.
    assert t["backward_macs"] == 640 + 0  # fc weight gradient only (batch 1: 10 x 64)
    assert t["trained_params"] == 650
    assert [rec.name for rec in r.records if rec.grad] == ["fc1"]
    # and nothing is kept but fc's input, the probabilities and the labels
    assert t["train_saved_bytes"] == 256 + 40 + 8
    assert analyze_training(g, freeze_until="maxpool1").totals["backward_macs"] == 640
    with pytest.raises(ArchcostError, match="matches no layer"):
        analyze_training(g, freeze="nope*")
    with pytest.raises(ArchcostError, match="no layer"):
        analyze_training(g, freeze_until="nope")


def test_residual_add_sums_gradients_and_frees_by_liveness():
    g = Graph("res")
    x = g.input((4, 6, 6))
    y = g.add(ops.Conv2d(4, 3, padding=1), x)
    a = g.add(ops.Activation("relu"), y)
    b = g.add(ops.Conv2d(4, 3, padding=1), a)
    s = g.add(ops.Add(), a, b)
    g.seq(s, ops.GlobalAvgPool(), ops.Flatten(), ops.Linear(3))
    r = analyze_training(g, batch=1)
    # a's gradient gets two contributions (the add and conv b): one add per element = 144 ops.
    other = {rec.name: rec.backward_other for rec in r.records}
    assert r.totals["backward_other"] - sum(other.values()) == 144 + 2 * 3  # + the loss's 2 per logit
    # relu cannot run in place on y? It can: conv keeps its input, not its output; nothing else reads y.
    assert r.plan.storage_of[a] == r.plan.storage_of[y]
    # b keeps a (its input), relu keeps a (its output): one storage, counted once.
    assert r.records[[rec.name for rec in r.records].index(y)].saved_bytes == 144 * 4


def test_in_place_refused_where_it_would_overwrite_a_kept_tensor():
    g = Graph("sig")
    x = g.input((2, 4, 4))
    c = g.add(ops.Conv2d(2, 1), x)
    s = g.add(ops.Activation("sigmoid"), c)  # keeps its output: relu may not overwrite it
    r = g.add(ops.Activation("relu"), s)
    gl = g.add(ops.Activation("gelu"), r)  # keeps its input: not in place either
    g.seq(gl, ops.Flatten(), ops.Linear(2))
    plan = analyze_training(g).plan
    assert plan.storage_of[s] == plan.storage_of[c]  # conv keeps its input only
    assert plan.storage_of[r] != plan.storage_of[s]
    assert plan.storage_of[gl] != plan.storage_of[r]


def test_dropout_in_place_only_under_archcost():
    g = Graph("drop")
    x = g.input((8,))
    f = g.add(ops.Linear(8), x)
    a = g.add(ops.Activation("relu"), f)
    d = g.add(ops.Dropout(0.5), a)
    g.seq(d, ops.Linear(2))
    # relu keeps its output: dropout may not overwrite it under either policy
    assert analyze_training(g).plan.storage_of[d] != analyze_training(g).plan.storage_of[a]
    g2 = Graph("drop2")
    x = g2.input((8,))
    f = g2.add(ops.Linear(8), x)
    d = g2.add(ops.Dropout(0.5), f)
    g2.seq(d, ops.Linear(2))
    assert analyze_training(g2).plan.storage_of[d] == analyze_training(g2).plan.storage_of[f]
    assert analyze_training(g2, policy="pytorch").plan.storage_of[d] != analyze_training(g2, policy="pytorch").plan.storage_of[f]


def test_checkpointing_trades_memory_for_recompute():
    g = zoo.build("vgg11", input_shape=(3, 32, 32)) if "vgg11" in zoo.names() else zoo.build("vgg16", input_shape=(3, 32, 32))
    base = analyze_training(g, batch=4).totals
    for spec in ("sqrt", "every:4"):
        t = analyze_training(g, batch=4, checkpoint=spec).totals
        assert t["recompute_macs"] > 0
        assert t["train_step_macs"] == base["train_step_macs"] + t["recompute_macs"]
        assert t["train_saved_bytes"] < base["train_saved_bytes"]
    t = analyze_training(g, batch=4, checkpoint="every:1000").totals  # one segment: the last, not checkpointed
    assert t["recompute_macs"] == 0 and t["train_peak_bytes"] == base["train_peak_bytes"]


@pytest.mark.parametrize("spec", ["", "every", "every:0", "every:x", "every:-1", "optimal", "sqrt:2", 3, "optimal:",
                                  "optimal:x", "optimal:-0.1", "optimal:nan", "optimal:inf", "optimal:1e999",
                                  "optimal:%", "optimal:1_0", "optimal:0.5%%", "optimal:\u0661"])
def test_bad_checkpoint_specs(spec):
    with pytest.raises(ArchcostError, match="checkpoint"):
        parse_checkpoint(spec)


def test_every_storage_is_freed_once_and_the_step_ends_with_the_persistent_set():
    for name, size in (("resnet18", 64), ("densenet121", 64), ("googlenet_tv", 64), ("inception_v3", 299)):
        g = zoo.build(name, input_shape=(3, size, size))
        for policy in ("archcost", "pytorch"):
            for ckpt in ("none", "sqrt", "every:1", "every:3"):
                r = analyze_training(g, batch=2, policy=policy, checkpoint=ckpt)
                plan = r.plan
                allocated, freed = set(plan.persistent), set()
                for step in plan.steps:
                    assert not allocated & set(step.alloc)
                    allocated |= set(step.alloc)
                    assert set(step.free) <= allocated - freed, (name, step)
                    freed |= set(step.free)
                left = allocated - freed
                persistent = set(plan.persistent)
                extra = left - persistent
                # Left at the end: persistent storages, parameter gradients, and (pytorch) the outputs.
                kinds = {plan.storages[s].kind for s in extra}
                assert kinds <= {"param_grad", "activation"}, (name, policy, ckpt, kinds)
                _, peak, _ = simulate(plan)
                assert peak == r.totals["train_peak_bytes"]


def test_train_step_ratio_near_three_for_a_cnn():
    # Conv nets: backward = data + weight gradient = about 2x the forward, minus the first conv's data
    # gradient. The lecture's "~*2 for bwd" (VGG16 slide) is about memory; see docs/claims.md.
    t = analyze_training(zoo.build("vgg16")).totals
    first_conv = 224 * 224 * 64 * 27
    assert t["backward_macs"] == 2 * t["forward_macs"] - first_conv
    assert math.isclose(t["train_step_ratio"], 3 - first_conv / t["forward_macs"])


def test_table_train_json_has_the_training_keys(capsys):
    import json

    from archcost.cli import main

    assert main(["table", "resnet18", "--train", "--optimizer", "adam", "--batch", "2", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    t = data["totals"]
    expected = analyze_training(zoo.build("resnet18"), batch=2, optimizer="adam").totals
    for key in ("backward_macs", "train_step_macs", "train_saved_bytes", "grad_bytes", "optimizer_bytes",
                "train_peak_bytes"):
        assert isinstance(t[key], int) and t[key] == expected[key], key
    assert t["optimizer_bytes"] == 2 * t["grad_bytes"]
    rows = data["layers"]
    assert all({"backward_macs", "saved_bytes", "train_live_bytes"} <= set(r) for r in rows)
    assert sum(r["backward_macs"] for r in rows) == t["backward_macs"]
    assert sum(r["saved_bytes"] for r in rows) == t["train_saved_bytes"]
    assert max(r["train_live_bytes"] for r in rows) <= t["train_peak_bytes"]
    assert data["training"]["optimizer"] == "adam"


def test_table_train_text_prints_the_breakdown(capsys):
    from archcost.cli import main

    assert main(["table", "resnet50", "--train", "--optimizer", "adam", "--batch", "32"]) == 0
    out = capsys.readouterr().out
    assert "training step (archcost saving policy, adam)" in out
    assert "training memory: peak" in out and "optimizer" in out and "kept for backward" in out


def test_fit_finds_the_largest_batch_exactly(capsys):
    import re

    from archcost.cli import main

    assert main(["fit", "resnet50", "--memory", "24GB", "--train", "--optimizer", "adam"]) == 0
    out = capsys.readouterr().out
    batch = int(re.search(r"largest batch ([\d,]+)", out).group(1).replace(",", ""))
    g = zoo.build("resnet50")
    assert analyze_training(g, batch=batch, optimizer="adam").totals["train_peak_bytes"] <= 24 * 10**9
    assert analyze_training(g, batch=batch + 1, optimizer="adam").totals["train_peak_bytes"] > 24 * 10**9
    assert main(["fit", "vgg16", "--memory", "1MB"]) == 1  # batch 1 does not fit: said, exit 1
    assert "is not enough" in capsys.readouterr().out
    assert main(["fit", "vgg16", "--memory", "8GiB"]) == 0
    assert "8.59 GB (8,589,934,592 bytes)" in capsys.readouterr().out


def test_memory_curve_adds_up_to_the_timeline():
    from archcost.training import checkpoint_tradeoff

    r = analyze_training(zoo.build("resnet18"), batch=4, optimizer="momentum")
    curve = r.curve
    assert len(curve) == len(r.timeline)
    for point, (phase, node, held) in zip(curve, r.timeline):
        assert (point["phase"], point["node"]) == (phase, node)
        assert sum(v for k, v in point.items() if k not in ("phase", "node")) == held
    points = checkpoint_tradeoff(zoo.build("resnet18"), batch=4, ks=[2, 8], fractions=(0.3,))
    assert [p["checkpoint"] for p in points] == ["none", "sqrt", "every:2", "every:8", "optimal:0.3"]
    assert points[0]["recompute_macs"] == 0 and all(p["recompute_macs"] > 0 for p in points[1:])
    optimal = points[-1]
    assert optimal["recompute_macs"] <= 0.3 * optimal["forward_macs"]
    assert all(optimal["train_peak_bytes"] <= p["train_peak_bytes"] for p in points
               if p["recompute_macs"] <= 0.3 * p["forward_macs"])
