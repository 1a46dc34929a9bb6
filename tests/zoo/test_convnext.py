"""ConvNeXt-T: stage shapes, channels-last blocks, per-position Linear cost."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError


def test_named_shapes():
    g = zoo.build("convnext_t")
    assert g.shape("stem.conv") == (1, 96, 56, 56)
    assert g.shape("stage1.block0.to_nhwc") == (1, 56, 56, 96)
    assert g.shape("stage1.block0.pwconv1") == (1, 56, 56, 384)
    assert g.shape("stage2.downsample.conv") == (1, 192, 28, 28)
    assert g.shape("stage3.block8.add") == (1, 384, 14, 14)
    assert g.shape("stage4.block2.add") == (1, 768, 7, 7)
    assert g.shape("head.fc") == (1, 1000)
    assert sum(1 for n in g.topological_order() if n.endswith(".dwconv")) == 3 + 3 + 9 + 3


def test_per_position_linear_and_layer_scale():
    records = {r.name: r for r in analyze(zoo.build("convnext_t")).records}
    fc1 = records["stage1.block0.pwconv1"]
    assert fc1.macs == 56 * 56 * 96 * 384  # tokens x in x out
    assert fc1.params == 96 * 384 + 384
    assert records["stage1.block0.layer_scale"].params == 96  # one gamma per channel
    assert records["stage1.block0.norm"].params == 2 * 96


def test_bad_input_names_the_layer():
    with pytest.raises(ArchcostError, match="stem.conv"):
        zoo.build("convnext_t", input_shape=(3, 2, 2))
