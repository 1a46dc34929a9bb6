"""PolyNet: PolyInception variants (structure, weight sharing) and the Very Deep PolyNet's stages."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.zoo.polynet import params_with_sharing, polyinception, shared_conv_weights

# Inception-ResNet-B's convs before its closing 1x1 (1152 -> 128 -> 1x7 160 -> 7x1 192; 1152 -> 192)
F_PATH_WEIGHTS = 1152 * 128 + 128 * 160 * 7 + 160 * 192 * 7 + 1152 * 192
F_PARAMS = F_PATH_WEIGHTS + 384 * 1152 + 2 * (128 + 160 + 192 + 192 + 1152)  # + closing conv + BN


def test_variants_differ_only_in_wiring_and_sharing():
    counts = {n: analyze(zoo.build(n)).totals for n in (
        "polyinception_poly2", "polyinception_mpoly2", "polyinception_2way",
        "polyinception_poly3", "polyinception_mpoly3", "polyinception_3way")}
    for name in ("polyinception_poly2", "polyinception_mpoly2", "polyinception_2way"):
        assert counts[name]["params"] == 2 * F_PARAMS  # as built: one set of layers per application
    assert counts["polyinception_poly3"]["params"] == 3 * F_PARAMS
    # poly-N shares F's path convs over its N applications; mpoly and n-way share nothing
    assert params_with_sharing(zoo.build("polyinception_poly2")) == 2 * F_PARAMS - F_PATH_WEIGHTS
    assert params_with_sharing(zoo.build("polyinception_poly3")) == 3 * F_PARAMS - 2 * F_PATH_WEIGHTS
    assert shared_conv_weights(zoo.build("polyinception_mpoly3")) == 0
    assert shared_conv_weights(zoo.build("polyinception_3way")) == 0


def test_wiring():
    g = zoo.build("polyinception_mpoly2")
    # the second order reads ReLU of the first order's output; the sum takes I, F, G.F
    assert g.inputs("mpoly2.apply2.path0_1x1.conv") == ("mpoly2.apply1.relu_out",)
    assert g.inputs("mpoly2.add") == ("input", "mpoly2.apply1.conv2d.bn", "mpoly2.apply2.conv2d.bn")
    g = zoo.build("polyinception_2way")
    assert g.inputs("way2.apply2.path0_1x1.conv") == ("input",)
    assert g.shape("way2.relu") == (1, 1152, 17, 17)


def test_polynet_stage_shapes():
    g = zoo.build("polynet")
    assert g.shape("stem.concat1") == (1, 160, 81, 81)
    assert g.shape("stem.concat3") == (1, 384, 39, 39)
    assert g.shape("stage_a.9.way2.relu") == (1, 384, 39, 39)
    assert g.shape("reduction_a.concat") == (1, 1152, 19, 19)
    assert g.shape("stage_b.0.poly3.relu") == (1, 1152, 19, 19)
    assert g.shape("stage_b.19.way2.relu") == (1, 1152, 19, 19)
    assert g.shape("reduction_b.concat") == (1, 2048, 9, 9)
    assert g.shape("stage_c.9.way2.relu") == (1, 2048, 9, 9)
    assert g.shape("head.fc") == (1, 1000)
    # residual scales fall linearly from 1 to 0.7 (module 0 has none, the last one 0.7)
    assert "stage_a.0.way2.apply1.scale" not in g
    assert g.op("stage_c.9.way2.apply1.scale").factor == pytest.approx(0.7)


def test_bad_arguments():
    with pytest.raises(ArchcostError, match="kind must be one of poly, mpoly, way"):
        polyinception(kind="tree")
    with pytest.raises(ArchcostError, match="unit must be one of A, B, C"):
        polyinception(unit="D")
