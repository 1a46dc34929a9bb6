"""archcost.validation: what `validate` proves, and that each check can fail (mutations)."""

import dataclasses

import pytest

from archcost import ops, zoo
from archcost.graph import Graph
from archcost.ops import BatchNorm, Conv2d, Flatten, Linear, ReLU
from archcost.validation import allocated_params, validate


def _small_net():
    g = Graph("small")
    x = g.input((3, 8, 8))
    x = g.seq(x, Conv2d(4, 3, padding=1), BatchNorm(), ReLU(), Flatten(), Linear(5))
    return g


@pytest.mark.parametrize("name", ["lenet5", "lenet5_paper", "resnet18", "convnext_t", "squeezenet1_0"])
def test_allocated_params_match_the_analysis_on_zoo_models(name):
    # lenet5_paper: fixed RBF centres (buffers); resnet18: BN running stats; convnext_t: LayerNorm
    # and the learned layer scale.
    graph = zoo.build(name) if name.startswith("lenet") else zoo.build(name, input_shape=(3, 32, 32))
    result = validate(graph)
    assert result.ok, [c.problem for c in result.failures][:3]


def test_bn_running_stats_counted_as_params_fails_validate(monkeypatch):
    # Issue 19: a BN cost rule that counts its running statistics as parameters passed validate.
    original = BatchNorm.cost

    def wrong(self, inputs, output):
        cost = original(self, inputs, output)
        return dataclasses.replace(cost, weights=cost.weights + cost.buffers, buffers=0)

    monkeypatch.setattr(BatchNorm, "cost", wrong)
    result = validate(_small_net())
    [failure] = result.failures
    assert failure.name == "bn1" and "allocated 8 parameters and 8 buffer elements" in failure.problem


def test_a_dropped_bias_fails_validate(monkeypatch):
    original = Conv2d.cost

    def no_bias(self, inputs, output):
        return dataclasses.replace(original(self, inputs, output), biases=0)

    monkeypatch.setattr(Conv2d, "cost", no_bias)
    [failure] = validate(_small_net()).failures
    assert failure.name == "conv1" and "allocated 112 parameters" in failure.problem


def test_allocated_params_splits_buffers():
    import numpy as np

    arrays = {"weight": np.zeros((4, 3)), "mean": np.zeros(4), "var": np.zeros(4)}
    assert allocated_params(BatchNorm(), arrays) == (12, 8)
    centres = {"centres": np.zeros((10, 84))}
    assert allocated_params(ops.RBF(10), centres) == (0, 840)
    assert allocated_params(ops.RBF(10, trainable=True), centres) == (840, 0)
