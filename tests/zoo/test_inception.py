"""Inception-v3 (torchvision), Inception-v4 and Inception-ResNet-v2 (TF-slim / timm).

Totals are pinned in tests/zoo/cited/inception.json; here: named-layer shapes (torchvision's
shape comments in inception.py, the Inception-v4 paper's figures), the auxiliary head, and a
cross-check against Keras Applications' counts, which use BN without gamma (scale=False) but
count BN's moving mean and variance: Keras total = params - gammas + 2 x channels
= params + buffers / 2.
"""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError


def module_output(graph, scope):
    """Output shape of a top-level scope: its last node, flattening aside."""
    last = [n for n in graph.topological_order() if n.split(".")[0] == scope and graph.op(n).kind != "flatten"][-1]
    return graph.shape(last)


@pytest.fixture(scope="module")
def v3():
    return zoo.build("inception_v3")


# torchvision inception.py's shape comments (N x C x H x W at 299x299).
V3_SHAPES = {
    "Conv2d_1a_3x3": (32, 149), "Conv2d_2a_3x3": (32, 147), "Conv2d_2b_3x3": (64, 147), "maxpool1": (64, 73),
    "Conv2d_3b_1x1": (80, 73), "Conv2d_4a_3x3": (192, 71), "maxpool2": (192, 35),
    "Mixed_5b": (256, 35), "Mixed_5c": (288, 35), "Mixed_5d": (288, 35), "Mixed_6a": (768, 17),
    "Mixed_6b": (768, 17), "Mixed_6c": (768, 17), "Mixed_6d": (768, 17), "Mixed_6e": (768, 17),
    "Mixed_7a": (1280, 8), "Mixed_7b": (2048, 8), "Mixed_7c": (2048, 8), "avgpool": (2048, 1),
}


@pytest.mark.parametrize("scope", list(V3_SHAPES))
def test_inception_v3_shapes(v3, scope):
    c, hw = V3_SHAPES[scope]
    assert module_output(v3, scope) == (1, c, hw, hw)


def test_inception_v3_layers(v3):
    assert v3.shape("Mixed_7c.concat") == (1, 2048, 8, 8)
    assert v3.op("Mixed_5b.branch5x5_2").kernel == (5, 5)  # TF-slim keeps a 5x5 in Fig. 5's module
    assert v3.op("Mixed_6b.branch7x7_2").kernel == (1, 7)
    assert v3.shape("Mixed_7b.branch3x3_concat") == (1, 768, 8, 8)  # the 1x3 | 3x1 pair
    assert v3.op("Mixed_6a.branch3x3").stride == (2, 2)
    assert v3.op("dropout.dropout").p == 0.5
    assert v3.output_nodes() == ["fc.linear"]


def test_inception_v3_aux_head():
    graph = zoo.build("inception_v3", aux=True)
    assert graph.inputs("AuxLogits.pool") == ("Mixed_6e.concat",)
    assert graph.shape("AuxLogits.pool") == (1, 768, 5, 5)
    assert graph.shape("AuxLogits.conv1") == (1, 768, 1, 1)
    assert graph.shape("AuxLogits.fc") == (1, 1000)
    # 27,161,264 (torchvision meta, with the head) - 23,834,568 (without) = the head alone.
    aux = analyze(graph).totals["params"] - analyze(zoo.build("inception_v3")).totals["params"]
    assert aux == 768 * 128 + 2 * 128 + 128 * 25 * 768 + 2 * 768 + 768 * 1000 + 1000 == 3_326_696


@pytest.mark.parametrize(
    "model, keras_total",
    [("inception_v3", 23_851_784), ("inception_resnet_v2", 55_873_736)],
)
def test_keras_applications_counts(model, keras_total):
    # Keras Applications table (keras.io/api/applications), "Parameters": InceptionV3
    # 23,851,784; InceptionResNetV2 55,873,736 (include_top, 1000 classes, no aux head).
    totals = analyze(zoo.build(model)).totals
    assert totals["params"] + totals["buffers"] // 2 == keras_total


def test_inception_v3_under_25_million_params(v3):
    # Szegedy et al. 2016, abstract: "using less than 25 million parameters".
    assert analyze(v3).totals["params"] == 23_834_568 < 25_000_000


def test_inception_v4_shapes():
    graph = zoo.build("inception_v4")
    # Figs. 3-9 of Szegedy et al. 2017: stem 35x35x384, Reduction-A 17x17x1024,
    # Reduction-B 8x8x1536, Inception-C 8x8x1536.
    expected = {
        "Conv2d_2b_3x3": (64, 147), "Mixed_3a": (160, 73), "Mixed_4a": (192, 71), "Mixed_5a": (384, 35),
        "Mixed_5e": (384, 35), "Mixed_6a": (1024, 17), "Mixed_6h": (1024, 17), "Mixed_7a": (1536, 8),
        "Mixed_7d": (1536, 8),
    }
    for scope, (c, hw) in expected.items():
        assert module_output(graph, scope) == (1, c, hw, hw), scope
    assert graph.op("dropout.dropout").p == pytest.approx(0.2)  # keep probability 0.8


def test_inception_resnet_v2_shapes_and_residuals():
    graph = zoo.build("inception_resnet_v2")
    expected = {
        "Mixed_5b": (320, 35), "block35_10": (320, 35), "Mixed_6a": (1088, 17), "block17_20": (1088, 17),
        "Mixed_7a": (2080, 8), "block8_10": (2080, 8), "Conv2d_7b_1x1": (1536, 8),
    }
    for scope, (c, hw) in expected.items():
        assert module_output(graph, scope) == (1, c, hw, hw), scope
    assert graph.op("block35_1.scale").factor == pytest.approx(0.17)
    assert graph.op("block17_1.scale").factor == pytest.approx(0.10)
    assert graph.op("block8_1.scale").factor == pytest.approx(0.20)
    assert graph.inputs("block35_1.add") == ("block35_1.scale", "Mixed_5b.concat")
    assert graph.op("block35_1.conv2d").bias  # the linear 1x1 that closes the branch keeps a bias
    assert "block8_9.relu" in graph and "block8_10.relu" not in graph  # TF-slim: last Block8 has no ReLU
    # The paper's Fig. 15 counts (5/10/5 residual blocks) still build at TF-slim's widths.
    small = zoo.build("inception_resnet_v2", blocks=(5, 10, 5))
    assert "block17_10.add" in small and "block17_11.add" not in small


def test_smallest_input_and_bad_arguments():
    # torchvision's Inception_V3_Weights meta: "min_size": (75, 75).
    assert zoo.build("inception_v3", input_shape=(3, 75, 75)).shape("Mixed_7c.concat") == (1, 2048, 1, 1)
    with pytest.raises(ArchcostError, match=r"layer 'Mixed_7a\.branch3x3_2' \(conv 3x3/2, 320\): kernel 3"):
        zoo.build("inception_v3", input_shape=(3, 74, 74))
    with pytest.raises(ArchcostError, match="unknown option 'aux'"):
        zoo.build("inception_v4", aux=True)
