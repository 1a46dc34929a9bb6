"""Shape and cost rules of ops added after the core set, one section per branch."""

import pytest

from archcost.errors import ShapeError
from archcost.ops import RBF, Affine, ChannelSelect

# --- zoo-misc: ChannelSelect, Affine, RBF (LeNet-5 as published) ---------------------------------


def test_channel_select_shape_and_cost():
    op = ChannelSelect((0, 1, 3, 4))
    assert op.infer(((2, 6, 14, 14),)) == (2, 4, 14, 14)
    cost = op.cost(((2, 6, 14, 14),), (2, 4, 14, 14))
    assert (cost.params, cost.macs, cost.other) == (0, 0, 0)
    assert op.window(((2, 6, 14, 14),)) is None


@pytest.mark.parametrize("channels, message", [((), "empty"), ((0, 0), "repeat"), ((-1,), ">= 0"), ((1.5,), "ints")])
def test_channel_select_bad_arguments(channels, message):
    with pytest.raises(ShapeError, match=message):
        ChannelSelect(channels)


def test_channel_select_out_of_range():
    with pytest.raises(ShapeError, match="channel 6 is out of range for 6 channels"):
        ChannelSelect((0, 6)).infer(((1, 6, 14, 14),))


def test_affine_counts_a_scale_and_a_bias_per_channel():
    op = Affine()
    out = op.infer(((2, 6, 14, 14),))
    cost = op.cost(((2, 6, 14, 14),), out)
    assert out == (2, 6, 14, 14)
    assert (cost.weights, cost.biases, cost.buffers, cost.macs) == (6, 6, 0, 0)
    assert cost.other == 2 * 2 * 6 * 14 * 14
    with pytest.raises(ShapeError, match="axis 0"):
        Affine(axis=0).infer(((2, 6),))


def test_rbf_fixed_centres_are_buffers():
    op = RBF(10)
    out = op.infer(((3, 84),))
    cost = op.cost(((3, 84),), out)
    assert out == (3, 10)
    assert (cost.params, cost.buffers, cost.macs) == (0, 840, 0)
    assert cost.other == 3 * 3 * 10 * 84  # subtract, square, add per term
    trained = RBF(10, trainable=True).cost(((3, 84),), out)
    assert (trained.params, trained.buffers) == (840, 0)


def test_rbf_bad_arguments():
    with pytest.raises(ShapeError, match="out_features"):
        RBF(0)
    with pytest.raises(ShapeError, match=r"\(N, F\)"):
        RBF(10).infer(((1, 84, 1, 1),))
