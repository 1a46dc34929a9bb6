"""SqueezeNet (Iandola et al. 2016): Table 1's dimensions and parameters per layer, v1.1, bypass."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError

# Table 1: output size (C, H, W) and "# parameter before pruning" per layer.
TABLE1 = {
    "conv1": ("conv1.conv", (96, 111, 111), 14_208),
    "maxpool1": ("maxpool1.pool", (96, 55, 55), 0),
    "fire2": ("fire2.concat", (128, 55, 55), 11_920),
    "fire3": ("fire3.concat", (128, 55, 55), 12_432),
    "fire4": ("fire4.concat", (256, 55, 55), 45_344),
    "maxpool4": ("maxpool4.pool", (256, 27, 27), 0),
    "fire5": ("fire5.concat", (256, 27, 27), 49_440),
    "fire6": ("fire6.concat", (384, 27, 27), 104_880),
    "fire7": ("fire7.concat", (384, 27, 27), 111_024),
    "fire8": ("fire8.concat", (512, 27, 27), 188_992),
    "maxpool8": ("maxpool8.pool", (512, 13, 13), 0),
    "fire9": ("fire9.concat", (512, 13, 13), 197_184),
    "conv10": ("conv10.conv", (1000, 13, 13), 513_000),
    "avgpool10": ("avgpool10.pool", (1000, 1, 1), 0),
}


def test_table1_dimensions_and_params_per_layer():
    report = analyze(zoo.build("squeezenet1_0"))
    params = {}
    for rec in report.records:
        stage = rec.name.split(".")[0]
        params[stage] = params.get(stage, 0) + rec.params
    for stage, (node, shape, stated) in TABLE1.items():
        assert report.graph.shape(node)[1:] == shape, stage
        assert params[stage] == stated, stage
    assert sum(p for _, _, p in TABLE1.values()) == report.totals["params"] == 1_248_424


def test_torchvision_input_224_still_ends_at_13x13():
    g = zoo.build("squeezenet1_0", input_shape=(3, 224, 224))
    assert g.shape("conv1.conv")[2:] == (109, 109)
    assert g.shape("conv10.conv")[2:] == (13, 13)


def test_v1_1_pools_early():
    g = zoo.build("squeezenet1_1")
    assert g.shape("conv1.conv")[1:] == (64, 111, 111)  # 224x224 input
    assert g.shape("maxpool3.pool")[1:] == (128, 27, 27)
    assert g.shape("maxpool5.pool")[1:] == (256, 13, 13)
    assert g.shape("fire9.concat")[1:] == (512, 13, 13)


def test_simple_bypass_adds_four_shortcuts_and_no_params():
    g = zoo.build("squeezenet1_0_bypass")
    assert [n for n in g.topological_order() if n.endswith("bypass")] == [
        "fire3.bypass", "fire5.bypass", "fire7.bypass", "fire9.bypass"
    ]
    plain, bypass = analyze(zoo.build("squeezenet1_0")).totals, analyze(g).totals
    assert bypass["params"] == plain["params"] and bypass["macs"] == plain["macs"]
    assert bypass["other"] > plain["other"]


def test_bad_version_is_one_line_error():
    with pytest.raises(ArchcostError, match="version must be one of 1_0, 1_1"):
        zoo.build("squeezenet1_0", version="2_0")
