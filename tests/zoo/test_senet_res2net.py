"""SE-ResNet and Res2Net: named shapes, the SE and split-hierarchy wiring, errors."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.zoo.res2net import res2net
from archcost.zoo.senet import se_resnet


def test_se_block_shapes_and_params():
    g = zoo.build("se_resnet50")
    assert g.shape("conv2_x.0.se.squeeze") == (1, 256, 1, 1)
    assert g.shape("conv2_x.0.se.fc1") == (1, 16, 1, 1)  # C / 16
    assert g.shape("conv5_x.2.se.scale") == (1, 2048, 7, 7)
    assert g.inputs("conv3_x.0.add")[0] == "conv3_x.0.se.scale"  # SE before the addition
    assert g.shape("conv3_x.0.conv1") == (1, 128, 28, 28)  # stride on the first 1x1
    se = sum(r.params for r in analyze(g).records if ".se." in r.name)
    expected = sum(n * (2 * c * c // 16 + c + c // 16) for c, n in ((256, 3), (512, 4), (1024, 6), (2048, 3)))
    assert se == expected == 2530992
    assert analyze(g).totals["params"] - se == analyze(zoo.build("resnet50")).totals["params"]


def test_res2net_hierarchy():
    g = zoo.build("res2net50_26w_4s")
    # first block of a stage: no hierarchical adds, the last split is average-pooled with the stride
    assert "conv3_x.0.split2.add" not in g
    assert g.shape("conv3_x.0.split4.pool") == (1, 52, 28, 28)
    assert g.shape("conv3_x.0.split1.conv2") == (1, 52, 28, 28)
    # later blocks: y_i = K_i(x_i + y_{i-1}); the last split passes through
    assert g.inputs("conv3_x.1.split2.add") == ("conv3_x.1.split1.relu2", "conv3_x.1.split2.relu1")
    assert g.inputs("conv3_x.1.concat")[-1] == "conv3_x.1.split4.relu1"
    assert g.shape("conv3_x.1.concat") == (1, 208, 28, 28)  # 4 x 52
    assert g.shape("conv5_x.2.relu") == (1, 2048, 7, 7)


def test_bad_arguments():
    with pytest.raises(ArchcostError, match="se_resnet: depth: expected one of 50, 101, 152, got 34"):
        se_resnet(depth=34)
    with pytest.raises(ArchcostError, match="reduction must be a positive int dividing 64"):
        se_resnet(reduction=0)
    with pytest.raises(ArchcostError, match="scale must be an int >= 2"):
        res2net(scale=1)
