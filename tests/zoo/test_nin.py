"""Network in Network (Lin et al. 2014), in the authors' released Caffe forms."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError

# The released nin_imagenet definition at its 224x224 crop: output (C, H, W) of named layers.
IMAGENET = {
    "mlpconv1.conv": (96, 54, 54),  # 11x11/4, no padding
    "mlpconv1.cccp2": (96, 54, 54),
    "pool1.pool": (96, 27, 27),  # ceil mode: floor would give 26 and end at 5x5, not 6x6
    "mlpconv2.cccp4": (256, 27, 27),
    "pool2.pool": (256, 13, 13),
    "mlpconv3.cccp6": (384, 13, 13),
    "pool3.pool": (384, 6, 6),
    "mlpconv4.conv": (1024, 6, 6),
    "mlpconv4.cccp8": (1000, 6, 6),
    "gap.pool": (1000, 1, 1),
}
CIFAR = {
    "mlpconv1.conv": (192, 32, 32),
    "mlpconv1.cccp1": (160, 32, 32),
    "mlpconv1.cccp2": (96, 32, 32),
    "pool1.pool": (96, 16, 16),
    "mlpconv2.cccp4": (192, 16, 16),
    "pool2.pool": (192, 8, 8),
    "mlpconv3.cccp6": (10, 8, 8),
    "gap.pool": (10, 1, 1),
}


@pytest.mark.parametrize("name, table", [("nin", IMAGENET), ("nin_cifar", CIFAR)])
def test_named_layer_shapes(name, table):
    g = zoo.build(name)
    for node, shape in table.items():
        assert g.shape(node)[1:] == shape, node


def test_no_fully_connected_layer():
    for name in ("nin", "nin_cifar"):
        report = analyze(zoo.build(name))
        assert not [r for r in report.records if r.op == "fc"]
        assert report.graph.op("pool2.pool").kind == ("maxpool" if name == "nin" else "avgpool")


def test_params_add_up_per_mlpconv():
    # conv + two 1x1 layers, weights and biases: 96*(3*121) + 96 + 2*(96*96 + 96) = 53,568
    report = analyze(zoo.build("nin"))
    first = sum(r.params for r in report.records if r.name.startswith("mlpconv1."))
    assert first == 53_568
    assert report.totals["params"] == 7_595_176


def test_bad_config_is_one_line_error():
    with pytest.raises(ArchcostError, match="config must be 'imagenet' or 'cifar'"):
        zoo.build("nin", config="svhn")
