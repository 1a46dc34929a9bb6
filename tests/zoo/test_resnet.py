"""The ResNet family beyond its cited totals (tests/zoo/cited/resnet.json, wide_resnet.json,
resnext.json): shapes of named layers, depth counting, shortcut options and stride placement,
the public block builders, and the errors for bad arguments."""

import time

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.cli import main
from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import ChannelPad, Conv2d, Linear
from archcost.zoo.resnet import basic_block, bottleneck_block, imagenet_stem, shortcut


def _counts(graph, kind):
    return sum(isinstance(graph.op(n), kind) for n in graph.topological_order())


# --- shapes of named layers (He et al. 2015, Table 1 "output size" column) -----------------
@pytest.mark.parametrize("model", ["resnet50", "resnet50_tv", "resnet101", "resnet152", "resnext50_32x4d", "wrn50_2"])
def test_imagenet_bottleneck_stage_outputs(model):
    g = zoo.build(model)
    counts = {"resnet50": (3, 4, 6, 3), "resnet50_tv": (3, 4, 6, 3), "resnext50_32x4d": (3, 4, 6, 3),
              "wrn50_2": (3, 4, 6, 3), "resnet101": (3, 4, 23, 3), "resnet152": (3, 8, 36, 3)}[model]
    assert g.shape("conv1.relu") == (1, 64, 112, 112)
    assert g.shape("conv2_x.pool") == (1, 64, 56, 56)
    expected = ((256, 56), (512, 28), (1024, 14), (2048, 7))
    for stage, count, (channels, size) in zip(("conv2_x", "conv3_x", "conv4_x", "conv5_x"), counts, expected):
        assert g.shape(f"{stage}.{count - 1}.relu") == (1, channels, size, size)
    assert f"conv5_x.{counts[3]}.relu" not in g
    assert g.shape("fc.fc") == (1, 1000)


def test_basic_block_stage_outputs():
    g = zoo.build("resnet34")
    for stage, count, (channels, size) in zip(
        ("conv2_x", "conv3_x", "conv4_x", "conv5_x"), (3, 4, 6, 3), ((64, 56), (128, 28), (256, 14), (512, 7))
    ):
        assert g.shape(f"{stage}.{count - 1}.relu") == (1, channels, size, size)


def test_stride_placement_paper_versus_torchvision():
    paper, tv = zoo.build("resnet50"), zoo.build("resnet50_tv")
    # paper / Caffe: the first 1x1 of conv3_x.0 halves 56 -> 28; torchvision v1.5: the 3x3 does
    assert paper.shape("conv3_x.0.conv1") == (1, 128, 28, 28)
    assert tv.shape("conv3_x.0.conv1") == (1, 128, 56, 56)
    assert tv.shape("conv3_x.0.conv2") == (1, 128, 28, 28)
    # same weights, different MACs: the v1.5 1x1 runs at 56x56 (256 -> 128 channels, 3 stages)
    a, b = analyze(paper).totals, analyze(tv).totals
    assert a["params"] == b["params"]
    extra = 256 * 128 * (56 * 56 - 28 * 28) + 512 * 256 * (28 * 28 - 14 * 14) + 1024 * 512 * (14 * 14 - 7 * 7)
    assert b["macs"] - a["macs"] == extra


def test_cifar_shapes():
    g = zoo.build("resnet110")
    assert g.shape("conv1.relu") == (1, 16, 32, 32)
    assert g.shape("conv2_x.17.relu") == (1, 16, 32, 32)
    assert g.shape("conv3_x.0.shortcut.pad") == (1, 32, 16, 16)
    assert g.shape("conv4_x.17.relu") == (1, 64, 8, 8)
    assert g.shape("fc.fc") == (1, 10)
    wrn = zoo.build("wrn-28-10")
    assert wrn.shape("conv2_x.3.add") == (1, 160, 32, 32)
    assert wrn.shape("conv4_x.3.add") == (1, 640, 8, 8)
    pre = zoo.build("preresnet164")
    assert pre.shape("conv4_x.17.add") == (1, 256, 8, 8)


# --- depth = weighted layers on the longest path (convs outside shortcuts + the fc) -------------
@pytest.mark.parametrize("model, depth", [
    ("resnet18", 18), ("resnet34", 34), ("resnet50", 50), ("resnet101", 101), ("resnet152", 152),
    ("plain18", 18), ("plain34", 34), ("resnet20", 20), ("resnet56", 56), ("resnet1202", 1202),
    ("preresnet164", 164), ("preresnet200", 200), ("resnext101_32x8d", 101), ("wrn50_2", 50),
    ("resnet_cifar-8", 8),
])
def test_depth_counts_weighted_layers(model, depth):
    g = zoo.build(model)
    convs = [n for n in g.topological_order() if isinstance(g.op(n), Conv2d) and ".shortcut." not in n]
    assert len(convs) + _counts(g, Linear) == depth


def test_wrn_depth_rule():
    # WRN-d-k: N = (d - 4) / 6 blocks per stage, two 3x3 convs each
    for depth in (10, 16, 28, 40):
        g = zoo.build(f"wrn-{depth}-2")
        blocks = [n for n in g.topological_order() if n.endswith(".conv2") and ".shortcut." not in n]
        assert len(blocks) == 3 * (depth - 4) // 6


# --- shortcut options --------------------------------------------------------------------------
def test_shortcut_options_a_b_c():
    a, b, c = (analyze(zoo.build("resnet34", shortcut=s)).totals for s in "ABC")
    assert a["params"] == analyze(zoo.build("plain34")).totals["params"]  # option A adds no parameter
    assert a["macs"] == analyze(zoo.build("plain34")).totals["macs"]
    # option B: three 1x1/2 projections (+ BN): 64->128, 128->256, 256->512
    projections = 64 * 128 + 128 * 256 + 256 * 512
    assert b["params"] - a["params"] == projections + 2 * (128 + 256 + 512)
    assert b["macs"] - a["macs"] == 28 * 28 * 64 * 128 + 14 * 14 * 128 * 256 + 7 * 7 * 256 * 512
    # option C: every one of the 16 blocks projects; 13 identity shortcuts become 1x1 convs
    identity = 64 * 64 * 3 + 128 * 128 * 3 + 256 * 256 * 5 + 512 * 512 * 2
    assert c["params"] - b["params"] == identity + 2 * (64 * 3 + 128 * 3 + 256 * 5 + 512 * 2)


def test_cifar_option_a_pads_with_zero_params():
    g = zoo.build("resnet20")
    pads = [n for n in g.topological_order() if isinstance(g.op(n), ChannelPad)]
    assert pads == ["conv3_x.0.shortcut.pad", "conv4_x.0.shortcut.pad"]
    assert analyze(zoo.build("resnet20", shortcut="B")).totals["params"] - analyze(g).totals["params"] == (
        16 * 32 + 32 * 64 + 2 * (32 + 64)
    )


# --- the public block builders (used by the variants' modules) ---------------------------------
def test_public_blocks_compose():
    g = Graph("blocks")
    x = imagenet_stem(g, g.input((3, 64, 64)))
    assert g.shape(x) == (1, 64, 16, 16)
    with g.scope("a"):
        y = basic_block(g, x, 128, 2, "A")
    assert g.shape(y) == (1, 128, 8, 8) and "a.shortcut.pad" in g
    with g.scope("b"):
        z = bottleneck_block(g, y, 32, 256, 1, "B", "3x3", groups=8)
    assert g.shape(z) == (1, 256, 8, 8)
    assert g.op("b.conv2").groups == 8 and g.op("b.shortcut.conv").kernel == (1, 1)
    with g.scope("c"):
        same = shortcut(g, z, 256, 1, "C")
    assert same == "c.shortcut.bn"
    with g.scope("d"):
        assert shortcut(g, z, 256, 1, "B") == z  # identity: no new layer


# --- bad arguments: one line naming the field ---------------------------------------------------
@pytest.mark.parametrize("name, options, needle", [
    ("wrn-27-10", {}, "depth 27"),
    ("wrn", {"depth": 30}, "depth 30"),
    ("wrn", {"width": 0}, "width"),
    ("resnet_cifar-21", {}, "depth 21"),
    ("preresnet_cifar-100", {}, "depth 100"),
    ("resnet50", {"shortcut": "D"}, "shortcut"),
    ("resnet50", {"stride_on": "2x2"}, "stride_on"),
    ("resnext50_0x4d", {}, "cardinality"),
    ("resnext51_32x4d", {}, "depth 51"),
    ("resnet50", {"depth": 51}, "depth 51"),
])
def test_bad_arguments(name, options, needle):
    with pytest.raises(ArchcostError, match=needle) as info:
        zoo.build(name, **options)
    assert "\n" not in str(info.value)


def test_cli_wrn_options_and_error(capsys):
    assert main(["table", "wrn", "-o", "depth=28", "-o", "width=10"]) == 0
    assert "36,479,194" in capsys.readouterr().out
    assert main(["table", "wrn-27-10"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "depth 27" in err


def test_largest_graphs_analyze_quickly():
    # resnet1202 (4,209 layers) and preresnet1001 (3,340) are the largest graphs of the zoo; on an
    # idle machine each builds + analyses in < 0.1 s. The bound catches a quadratic pass, not noise.
    for name in ("resnet1202", "preresnet1001"):
        start = time.perf_counter()
        analyze(zoo.build(name))
        assert time.perf_counter() - start < 1.5
