"""Stochastic depth (Huang et al. 2016): the test-time graphs and the expected training MACs
under the linear-decay rule p_l = 1 - l/L (1 - p_L), checked against a closed form derived by
hand on a tiny net."""

from fractions import Fraction

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.ops import Scale
from archcost.zoo.stochastic_depth import (
    expected_training_macs, residual_branches, stochastic_resnet_cifar, survival_probabilities,
)


def test_linear_decay_rule():
    assert survival_probabilities(4, 0.5) == [0.875, 0.75, 0.625, 0.5]
    # sum of p_l = L - (1 - p_L)(L + 1)/2 = (3L - 1)/4 for p_L = 1/2: ResNet-110 has L = 54
    assert sum(survival_probabilities(54)) == pytest.approx((3 * 54 - 1) / 4)
    with pytest.raises(ArchcostError, match="p_last"):
        survival_probabilities(3, 1.5)


def test_test_time_graph_scales_each_branch_by_its_survival_probability():
    g = zoo.build("resnet110_sd")
    scales = [g.op(n).factor for n in g.topological_order() if isinstance(g.op(n), Scale)]
    assert len(scales) == 54
    assert scales == pytest.approx(survival_probabilities(54, 0.5))
    assert g.inputs("conv4_x.17.add")[0] == "conv4_x.17.scale"
    assert g.op("conv4_x.17.scale").factor == 0.5
    # Scale adds no parameter and no MAC: the test-time net costs what the plain net does
    plain = analyze(zoo.build("resnet152_tv")).totals
    sd = analyze(zoo.build("resnet152_sd")).totals
    assert (sd["params"], sd["macs"]) == (plain["params"], plain["macs"])


def test_expected_macs_closed_form_on_resnet8():
    """ResNet-8 (n = 1, L = 3 blocks), p_L = 1/2, so p = 5/6, 2/3, 1/2. Branch MACs by hand:
    block 1: two 3x3 16->16 convs at 32x32: 2 * 32*32*16*16*9 = 4,718,592;
    blocks 2 and 3: 3x3/2 16->32 at 16x16 (1,179,648) + 3x3 32->32 (2,359,296) = 3,538,944, and
    the same again at 8x8 with 32->64, 64->64. Always run: conv1 3*16*9*32*32 = 442,368 and the
    fc 64*10 = 640. E[MACs] = 442,368 + 640 + 5/6 B1 + 2/3 B2 + 1/2 B3."""
    g = stochastic_resnet_cifar(depth=8)
    b1, b2 = 4_718_592, 3_538_944
    fixed = 442_368 + 640
    expected = fixed + Fraction(5, 6) * b1 + Fraction(2, 3) * b2 + Fraction(1, 2) * b2
    assert analyze(g).totals["macs"] == fixed + b1 + 2 * b2
    assert expected_training_macs(g) == pytest.approx(float(expected), rel=1e-12)
    # p_L = 1 keeps every block: the full count
    assert expected_training_macs(g, p_last=1.0) == fixed + b1 + 2 * b2


def test_branches_are_the_residual_layers_only():
    g = stochastic_resnet_cifar(depth=8)
    branches = residual_branches(g)
    assert [sorted(b) for b in branches][1] == sorted(
        ["conv3_x.0.conv1", "conv3_x.0.bn1", "conv3_x.0.relu1", "conv3_x.0.conv2", "conv3_x.0.bn2",
         "conv3_x.0.scale"]
    )
    assert not any(".shortcut." in n for b in branches for n in b)


def test_resnet110_saves_about_a_quarter_of_training_macs():
    g = zoo.build("resnet110_sd")
    full = analyze(g).totals["macs"]
    ratio = expected_training_macs(g) / full
    # every block of a stage costs the same, and the p_l average to (3L - 1)/(4L) = 0.7454 over
    # L = 54: the expected count sits just under 3/4 of the full one
    assert 0.74 < ratio < 0.75


def test_bad_p_last_and_graph_without_branches():
    with pytest.raises(ArchcostError, match="p_last"):
        zoo.build("resnet110_sd", p_last=0)
    with pytest.raises(ArchcostError, match="no stochastic residual branch"):
        expected_training_macs(zoo.build("resnet20"))


def test_cifar_sd_net_keeps_the_authors_conv_biases():
    # ResidualDrop.lua's convs keep cudnn's bias: conv1's 16 plus two per block at 16/32/64 widths
    extra = 16 + 18 * 2 * (16 + 32 + 64)
    sd, plain = (analyze(zoo.build(name)).totals["params"] for name in ("resnet110_sd", "resnet110"))
    assert sd - plain == extra
