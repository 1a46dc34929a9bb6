"""The least-memory checkpointing under a recompute budget (archcost/checkpoint_search.py): its
model against the exact plan, its pick against an exhaustive search, and its plans executed."""

import functools
import random

import numpy as np
import pytest

from archcost import ops, zoo
from archcost.analysis import analyze
from archcost.checkpoint_search import BUCKETS, _Cuts, _Programme
from archcost.graph import Graph
from archcost.training import _Planner, analyze_training, simulate
from archcost.training_execute import TrainingExecutor
from tests.test_execute import smallest_input


def _setup(graph, batch, policy="archcost"):
    order = graph.topological_order()
    first = sum(1 for n in order if isinstance(graph.op(n), ops.Input))
    args = (graph, batch, 4, policy, "sgd", False, set())

    def exact(segments):
        return simulate(_Planner(*args, tuple(segments)).plan())[1]

    plan = _Planner(*args, ()).plan()
    timeline, _, _ = simulate(plan)
    cuts = _Cuts(graph, plan, timeline, first)
    macs = {r.name: r.macs for r in analyze(graph, batch).records}
    return cuts, exact, macs, order


def _segmentations(units):
    """Every way of grouping units 0..units-1 into kept units and checkpointed segments."""
    def rec(i):
        if i == units:
            yield ()
            return
        for rest in rec(i + 1):
            yield rest  # unit i kept
        for j in range(i + 1, units + 1):
            for rest in rec(j):
                yield ((i, j), *rest)
    yield from rec(0)


def _chain():
    g = Graph("chain")
    x = g.input((3, 12, 12))
    for i, (c, act) in enumerate([(8, "relu"), (8, "sigmoid"), (16, "tanh")]):
        x = g.add(ops.Conv2d(c, 3, padding=1), x, name=f"conv{i}")
        x = g.add(ops.BatchNorm(), x, name=f"bn{i}")
        x = g.add(ops.Activation(act), x, name=f"act{i}")
        if i % 2:
            x = g.add(ops.MaxPool2d(2), x, name=f"pool{i}")
    x = g.add(ops.Flatten(), x, name="flatten")
    g.add(ops.Linear(10), x, name="fc")
    return g


def _residual():
    g = Graph("residual")
    x = g.input((3, 10, 10))
    x = g.seq(x, ops.Conv2d(8, 3, padding=1), ops.BatchNorm(), ops.Activation("relu"))
    for i in range(3):
        body = [ops.Conv2d(8, 3, padding=1), ops.BatchNorm(), ops.Activation("relu"),
                ops.Conv2d(8, 3, padding=1), ops.BatchNorm()]
        x = g.residual(x, body, post=[ops.Activation("relu")], name=f"add{i}")
    x = g.add(ops.GlobalAvgPool(), x, name="gap")
    g.add(ops.Linear(10), g.add(ops.Flatten(), x, name="flatten"), name="fc")
    return g


@pytest.mark.parametrize("name", ["vgg16", "resnet50", "densenet121", "inception_v4", "mobilenet_v1", "googlenet"])
def test_model_equals_the_exact_peak_without_checkpointing(name):
    g = zoo.build(name, input_shape=smallest_input(name))
    for policy in ("archcost", "pytorch"):
        cuts, exact, macs, _ = _setup(g, 2, policy)
        programme = _Programme(cuts, cuts.unit_macs(macs, g.topological_order()), 0)
        assert programme.model_peak(()) == exact(())
        assert cuts.units > 3  # cuts were found


@pytest.mark.parametrize("name", ["vgg16", "alexnet", "mobilenet_v1"])
def test_model_is_exact_on_chains(name):
    """On a chain, the model's peak is the exact plan's for any segments (here 30 random ones)."""
    g = zoo.build(name, input_shape=(3, 64, 64) if name != "alexnet" else (3, 99, 99))
    cuts, exact, macs, _ = _setup(g, 4)
    programme = _Programme(cuts, cuts.unit_macs(macs, g.topological_order()), 0)
    rng = random.Random(0)
    for _ in range(30):
        units, i = [], 0
        while i < cuts.units:
            if rng.random() < 0.4:
                j = min(cuts.units, i + rng.randint(1, 4))
                units.append((i, j))
                i = j
            else:
                i += 1
        segments = [(cuts.cuts[a], cuts.cuts[b]) for a, b in units]
        assert programme.model_peak(units) == exact(segments), units


@functools.cache
def _all_plans(build):
    """Forward MACs, units, and (recompute MACs, exact peak) of every segmentation at the cuts."""
    g = build()
    cuts, exact, macs, order = _setup(g, 2)
    plans = []
    for units in _segmentations(cuts.units):
        segments = [(cuts.cuts[a], cuts.cuts[b]) for a, b in units]
        cost = sum(macs.get(order[p], 0) for a, b in segments for p in range(a, b))
        plans.append((cost, exact(segments)))
    return sum(macs.values()), cuts.units, plans


@pytest.mark.parametrize("build", [_chain, _residual])
@pytest.mark.parametrize("fraction", [0.0, 0.15, 0.4, 1.0])
def test_pick_is_the_exhaustive_optimum(build, fraction):
    """Against every segmentation at the cuts, planned exactly: the pick's peak is no more than
    the least peak of any plan whose recompute fits the budget less the programme's rounding
    (one bucket per segment), and its recompute fits the budget."""
    g = build()
    forward, units, plans = _all_plans(build)
    budget = int(fraction * forward)
    slack = units * budget / BUCKETS  # the programme rounds up at most one bucket per segment
    best_strict = min(peak for cost, peak in plans if cost <= budget - slack)
    t = analyze_training(g, batch=2, checkpoint=f"optimal:{fraction}").totals
    assert t["recompute_macs"] <= budget
    assert t["train_peak_bytes"] <= best_strict
    if fraction > 0:
        assert t["train_peak_bytes"] < analyze_training(g, batch=2).totals["train_peak_bytes"]


@pytest.mark.parametrize("name,size", [("resnet50", 64), ("densenet121", 64), ("vgg16", 64), ("inception_v4", 75)])
def test_optimal_beats_the_regular_plans_within_its_budget(name, size):
    g = zoo.build(name, input_shape=(3, size, size))
    regular = {spec: analyze_training(g, batch=8, checkpoint=spec).totals
               for spec in ("none", "sqrt", "every:2", "every:5", "every:10", "every:20")}
    for fraction in (0.0, 0.3, 1.0):
        t = analyze_training(g, batch=8, checkpoint=f"optimal:{fraction}").totals
        assert t["recompute_macs"] <= fraction * t["forward_macs"]
        for spec, r in regular.items():
            if r["recompute_macs"] <= fraction * r["forward_macs"]:
                assert t["train_peak_bytes"] <= r["train_peak_bytes"], (fraction, spec)
    # A zero budget still checkpoints what costs no MACs (BatchNorm, activations, pools).
    assert analyze_training(g, batch=8, checkpoint="optimal:0").totals["recompute_macs"] == 0


def test_budget_spellings():
    g = _chain()
    a = analyze_training(g, batch=2, checkpoint="optimal:0.25").plan.segments
    assert analyze_training(g, batch=2, checkpoint="optimal:25%").plan.segments == a
    # Past 1 the budget is the whole forward: no plan recomputes more.
    assert (analyze_training(g, batch=2, checkpoint="optimal:7").plan.segments
            == analyze_training(g, batch=2, checkpoint="optimal:1").plan.segments)


@pytest.mark.parametrize("name,size", [("resnet18", 16), ("densenet121", 32), ("mobilenet_v1", 32)])
def test_optimal_plans_execute_exactly(name, size):
    g = zoo.build(name, input_shape=(3, size, size))
    for fraction in ("0.3", "1"):
        spec = f"optimal:{fraction}"
        plain = TrainingExecutor(g, batch=2, seed=5)
        inputs, labels = plain.random_batch()
        want = plain.step(inputs, labels, update=False).grads
        got = TrainingExecutor(g, batch=2, seed=5, checkpoint=spec).step(inputs, labels, update=False)
        assert got.peak_bytes == analyze_training(g, batch=2, checkpoint=spec).totals["train_peak_bytes"]
        for node in want:
            for pname in want[node]:
                np.testing.assert_allclose(got.grads[node][pname], want[node][pname], rtol=1e-5, atol=1e-6)


def test_explicit_segments_are_checked():
    from archcost.errors import ArchcostError

    g = _chain()
    n = len(g.topological_order())
    for bad in [((0, 2),), ((2, 1),), ((1, 3), (2, 4)), ((1, n + 1),), (("a", 2),), ((1, 2, 3),), ((True, 2),)]:
        with pytest.raises(ArchcostError, match="checkpoint"):
            analyze_training(g, checkpoint=bad)
