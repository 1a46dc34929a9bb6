"""FitNet 4 and the 19-layer highway network for CIFAR-10: named shapes, layer counts, gates."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.zoo.fitnet import fitnet
from archcost.zoo.highway import highway


def test_fitnet_named_shapes_and_depth():
    g = zoo.build("fitnet19")
    assert g.shape("stage1.h0") == (1, 64, 32, 32)  # 32 units x 2 pieces
    assert g.shape("stage1.h0_maxout") == (1, 32, 32, 32)
    assert g.shape("stage1.pool") == (1, 48, 16, 16)
    assert g.shape("stage2.h10_maxout") == (1, 80, 16, 16)
    assert g.shape("stage3.pool") == (1, 128, 1, 1)
    assert g.shape("classifier.fc1_maxout") == (1, 500)
    assert g.shape("classifier.softmax") == (1, 10)
    weighted = [n for n in g.topological_order() if g.op(n).kind in ("conv", "fc")]
    assert len(weighted) == 19


def test_fitnet_weights_match_the_authors_counting_script():
    # scripts/computeNumberParams.py in adri-romsor/FitNets counts pieces x kernel x in x out
    # per layer, biases excluded; for the 19-layer yaml that is:
    convs = [(3, 32), (32, 32), (32, 32), (32, 48), (48, 48), (48, 80)] + [(80, 80)] * 5
    convs += [(80, 128)] + [(128, 128)] * 5
    expected = sum(2 * 9 * cin * cout for cin, cout in convs) + 5 * 128 * 500 + 500 * 10
    assert expected == 2736712
    assert analyze(zoo.build("fitnet19")).totals["weights"] == expected


def test_highway_layer_is_a_gated_mix():
    g = zoo.build("highway19")
    assert g.shape("stage1.conv2.out") == (1, 32, 32, 32)
    assert g.shape("stage2.conv11.out") == (1, 80, 16, 16)
    assert g.shape("stage3.conv17.out") == (1, 128, 8, 8)
    assert g.shape("head.pool3") == (1, 100, 1, 1)
    assert g.shape("head.ip2") == (1, 10)
    records = {r.name: r for r in analyze(g).records}
    # H and T: two 3x3 convs of the same width, each with bias
    assert records["stage2.conv7.h"].params == records["stage2.conv7.t"].params == 80 * 80 * 9 + 80
    assert g.op("stage2.conv7.t_sigmoid").fn == "sigmoid"
    # 18 conv layers (highway layers counted once) + ip2 = 19
    layers = {n.split(".")[1] for n in g.topological_order() if n.startswith("stage") and ".conv" in n}
    assert len(layers) + 2 == 19


def test_bad_arguments():
    # the final 8x8 pool needs a 32x32 input
    with pytest.raises(ArchcostError, match=r"layer 'stage3.pool' \(maxpool 8x8/1\): kernel 8"):
        fitnet(input_shape=(3, 16, 16))
    with pytest.raises(ArchcostError, match="head.pool3"):
        highway(input_shape=(3, 16, 16))
