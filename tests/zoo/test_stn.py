"""Spatial transformer classifier: named shapes, params from the tutorial's layer list, errors."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError


def test_named_shapes():
    g = zoo.build("stn_mnist")
    assert g.shape("localisation.relu2") == (1, 10, 3, 3)
    assert g.shape("localisation.theta") == (1, 6)
    assert g.shape("transformer.grid") == (1, 28, 28, 2)
    assert g.shape("transformer.sampler") == (1, 1, 28, 28)
    assert g.inputs("transformer.sampler") == ("input", "transformer.grid")
    assert g.shape("classifier.relu2") == (1, 20, 4, 4)
    assert g.shape("classifier.fc2") == (1, 10)
    assert zoo.build("stn_mnist", out_size=32).shape("transformer.sampler") == (1, 1, 32, 32)


def test_params_and_sampler_cost():
    # the tutorial's layers: Conv2d(1, 8, 7), Conv2d(8, 10, 5), Linear(90, 32), Linear(32, 6),
    # Conv2d(1, 10, 5), Conv2d(10, 20, 5), Linear(320, 50), Linear(50, 10)
    expected = (8 * 49 + 8) + (10 * 8 * 25 + 10) + (90 * 32 + 32) + (32 * 6 + 6)
    expected += (10 * 25 + 10) + (20 * 10 * 25 + 20) + (320 * 50 + 50) + (50 * 10 + 10)
    report = analyze(zoo.build("stn_mnist"))
    assert report.totals["params"] == expected == 27360
    records = {r.name: r for r in report.records}
    assert records["transformer.grid"].other == 4 * 28 * 28 * 2
    assert records["transformer.sampler"].other == 7 * 28 * 28 + 14 * 28 * 28
    # the sampler can read any input pixel: its field covers the whole 28x28 input
    assert min(records["transformer.sampler"].rf_h, records["transformer.sampler"].rf_w) >= 28


def test_too_small_input_names_the_layer():
    with pytest.raises(ArchcostError, match=r"layer .localisation.pool2. \(maxpool 2x2/2\)"):
        zoo.build("stn_mnist", input_shape=(1, 16, 16))
