"""FractalNet: block layout, named shapes, drop-path expected cost against a hand derivation."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.zoo.fractalnet import block_convs, expected_training_macs, fractalnet


def test_block_layout_follows_the_expansion_rule():
    # C=2: f_2(z) = join(conv(conv(z)), conv(z))
    assert block_convs(2) == [(2, 1, 0), (2, 2, 1), (1, 2, 0)]
    # C=4: 15 convs (2^C - 1); the deepest column has 8
    convs = block_convs(4)
    assert len(convs) == 15
    assert sum(1 for column, _, _ in convs if column == 4) == 8


def test_fractalnet20_named_shapes_and_joins():
    g = zoo.build("fractalnet20")
    assert g.shape("block1.col3_conv4") == (1, 64, 32, 32)
    assert g.shape("block1.pool") == (1, 64, 16, 16)
    assert g.shape("block4.join4") == (1, 512, 4, 4)
    assert g.shape("block5.pool") == (1, 512, 1, 1)
    assert g.shape("fc") == (1, 10)
    # the last join of a C-column block averages all C columns (Fig. 1)
    assert len(g.inputs("block1.join4")) == 3
    assert len(g.inputs("block1.join2")) == 2
    # 20 conv layers on the deepest path: B * 2^(C-1)
    assert sum(1 for n in g.topological_order() if ".col3_conv" in n and n[-1].isdigit()) == 20


def test_fractalnet40_last_join_has_four_inputs():
    g = zoo.build("fractalnet40")
    assert len(g.inputs("block5.join8")) == 4
    assert sum(1 for n in g.topological_order() if ".col4_conv" in n and n[-1].isdigit()) == 40


def test_bad_arguments():
    with pytest.raises(ArchcostError, match="widths has 3 entries but blocks is 5"):
        fractalnet(widths=(16, 32, 64))
    with pytest.raises(ArchcostError, match="columns must be a positive int"):
        fractalnet(columns=0)


def test_drop_path_expected_macs_closed_form_c2_b1():
    g = fractalnet(columns=2, blocks=1, widths=(8,), num_classes=10, input_shape=(3, 8, 8))
    a = 8 * 8 * 8 * 3 * 9  # column 2, conv 1: 3 -> 8 channels on 8x8
    b = 8 * 8 * 8 * 8 * 9  # column 2, conv 2: 8 -> 8
    c = 8 * 8 * 8 * 3 * 9  # column 1: 3 -> 8
    fc = 8 * 4 * 4 * 10  # after the 2x2 pool: 4x4x8 -> 10
    assert analyze(g).totals["macs"] == a + b + c + fc
    p, gf = 0.15, 0.5
    local = (a + b + c) * (1 - p + p * p / 2)
    global_ = (a + b + c) / 2
    expected = gf * global_ + (1 - gf) * local + fc
    assert expected_training_macs(g, 2) == pytest.approx(expected, rel=1e-12)
    # without skipping dead paths, local batches cost the full forward
    full = gf * global_ + (1 - gf) * (a + b + c) + fc
    assert expected_training_macs(g, 2, skip_dropped=False) == pytest.approx(full, rel=1e-12)
    # no drop at all: the plain forward pass
    assert expected_training_macs(g, 2, local_drop=0.0, global_fraction=0.0) == pytest.approx(a + b + c + fc)


def test_drop_path_local_probabilities_sum_to_one_on_c3():
    # with equal unit cost per conv and p -> 0, the local expectation tends to the full count;
    # with global drop only, it is the mean column size (1 + 2 + 4) / 3 convs per block
    g = fractalnet(columns=3, blocks=1, widths=(4,), input_shape=(4, 4, 4))
    macs = {r.name: r.macs for r in analyze(g).records}
    block = sum(m for n, m in macs.items() if n.startswith("block1.") and "conv" in n)
    assert expected_training_macs(g, 3, local_drop=0.0, global_fraction=0.0) == pytest.approx(block + macs["fc"])
    per_conv = 4 * 4 * 4 * 4 * 9
    assert expected_training_macs(g, 3, global_fraction=1.0) == pytest.approx(7 / 3 * per_conv + macs["fc"])
    assert expected_training_macs(g, 3) < expected_training_macs(g, 3, skip_dropped=False)


def test_drop_path_bad_probability():
    g = fractalnet(columns=2, blocks=1, widths=(8,), input_shape=(3, 8, 8))
    with pytest.raises(ArchcostError, match="local_drop"):
        expected_training_macs(g, 2, local_drop=1.0)
