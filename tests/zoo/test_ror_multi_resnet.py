"""RoR-3 and Multi-ResNet on CIFAR: shortcut levels, multi-residual sums, named shapes, errors."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.zoo.multi_resnet import multi_resnet
from archcost.zoo.ror import ror3


def test_ror3_shortcut_levels():
    g = zoo.build("ror3_110")
    assert g.shape("level1.shortcut.conv") == (1, 64, 8, 8)  # 1x1/4 from conv1
    assert g.inputs("level1.shortcut.conv") == ("conv1.relu",)
    assert "conv2_x.level2.conv" not in g  # stage 1 keeps its shape: identity
    assert g.shape("conv3_x.level2.conv") == (1, 32, 16, 16)
    # the last block of a stage sums its branch, its own shortcut and the higher levels
    assert g.inputs("conv3_x.17.add") == ("conv3_x.17.bn2", "conv3_x.16.relu", "conv3_x.level2.bn")
    assert g.inputs("conv4_x.17.add")[-1] == "level1.shortcut.bn"
    assert g.inputs("conv2_x.17.add")[-1] == "conv1.relu"
    assert g.op("conv3_x.0.shortcut.pad").out_channels == 32  # level 3 keeps option A
    extra = analyze(g).totals["params"] - analyze(zoo.build("resnet110")).totals["params"]
    assert extra == (16 * 64 + 2 * 64) + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64) == 3904


def test_multi_resnet_blocks():
    g = zoo.build("multi_resnet200_k5")
    # 22 blocks per stage; a block sums k = 5 functions and its shortcut
    assert len(g.inputs("conv2_x.5.add")) == 6
    assert g.inputs("conv2_x.5.add")[-1] == "conv2_x.4.add"  # identity shortcut
    assert g.inputs("conv3_x.0.add")[-1] == "conv3_x.0.shortcut.conv"
    assert g.shape("conv3_x.0.f5.conv1") == (1, 32, 16, 16)  # stride 2 on the first 1x1
    assert g.shape("conv4_x.21.add") == (1, 256, 8, 8)
    assert g.shape("fc.fc") == (1, 10)
    assert sum(1 for n in g.topological_order() if n.endswith(".add")) == 3 * 22


def test_bad_arguments():
    with pytest.raises(ArchcostError, match="ror3: depth 100 must be 6n\\+2"):
        ror3(depth=100)
    with pytest.raises(ArchcostError, match="multi_resnet: depth 100 must be 9n\\+2"):
        multi_resnet(depth=100)
    with pytest.raises(ArchcostError, match="k must be a positive int"):
        multi_resnet(k=0)
