"""Shape and cost rules of ops added after the core set, one section per branch."""

import pytest

from archcost.errors import ArchcostError, ShapeError
from archcost.graph import Graph
from archcost.ops import RBF, Affine, AffineGrid, ChannelSelect, Conv2d, Flatten, GridSample, Linear, Maxout, Window

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


def test_channel_select_label_shows_runs_as_ranges():
    # A Split of 512 channels imported from ONNX: its label once listed all 256 channels.
    assert ChannelSelect(tuple(range(256, 512))).label() == "select 256-511"
    assert ChannelSelect((0, 1, 2, 7, 3, 4)).label() == "select 0-2,7,3,4"
    assert ChannelSelect((3, 2, 1)).label() == "select 3,2,1"  # the order is the op's


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


# --- zoo-variants: Maxout, AffineGrid, GridSample ---------------------------------------------


def test_maxout_groups_consecutive_channels():
    op = Maxout(2)
    assert op.infer(((1, 64, 32, 32),)) == (1, 32, 32, 32)
    assert Maxout(5).infer(((4, 2500),)) == (4, 500)
    # one comparison per output element for two pieces, four for five
    assert op.cost(((1, 64, 32, 32),), (1, 32, 32, 32)).other == 32 * 32 * 32
    assert Maxout(5).cost(((1, 2500),), (1, 500)).other == 500 * 4
    assert op.cost(((1, 64, 32, 32),), (1, 32, 32, 32)).params == 0
    assert op.window(((1, 64, 32, 32),)) is None


def test_maxout_errors():
    with pytest.raises(ShapeError, match="not divisible by pieces 3"):
        Maxout(3).infer(((1, 64, 8, 8),))
    with pytest.raises(ShapeError, match="pieces must be a positive int"):
        Maxout(0)
    g = Graph()
    x = g.input((3, 8, 8))
    x = g.add(Conv2d(10, 3), x, name="h0")
    with pytest.raises(ArchcostError, match="layer 'h0_maxout'.*not divisible"):
        g.add(Maxout(3), x, name="h0_maxout")


def test_affine_grid_shape_and_cost():
    op = AffineGrid(28, 28)
    assert op.infer(((5, 6),)) == (5, 28, 28, 2)
    out = (5, 28, 28, 2)
    cost = op.cost(((5, 6),), out)
    # x_s = a x_t + b y_t + c and y_s likewise: 2 multiplies + 2 adds per coordinate
    assert cost.other == 4 * 5 * 28 * 28 * 2
    assert cost.params == 0 and cost.macs == 0
    assert AffineGrid(7, 9).infer(((1, 6),)) == (1, 7, 9, 2)


def test_affine_grid_errors():
    with pytest.raises(ShapeError, match=r"theta of shape \(N, 6\), got 1x2x3"):
        AffineGrid(4, 4).infer(((1, 2, 3),))
    with pytest.raises(ShapeError, match="out_w must be a positive int"):
        AffineGrid(4, 0)
    g = Graph()
    x = g.input((8,))
    with pytest.raises(ArchcostError, match="layer 'grid'.*theta of shape"):
        g.add(AffineGrid(4, 4), x, name="grid")


def test_grid_sample_shape_cost_window():
    op = GridSample()
    x, grid = (2, 3, 60, 60), (2, 28, 28, 2)
    assert op.infer((x, grid)) == (2, 3, 28, 28)
    cost = op.cost((x, grid), (2, 3, 28, 28))
    # 7 per output element (4 corner products, 3 adds) + 14 per grid point (shared by channels)
    assert cost.other == 7 * 2 * 3 * 28 * 28 + 14 * 2 * 28 * 28
    assert cost.params == 0 and cost.macs == 0
    assert op.window((x, grid)) == Window(60, 60, 1, 1, 0, 0)


def test_grid_sample_errors():
    op = GridSample()
    with pytest.raises(ShapeError, match="two inputs"):
        op.infer(((1, 3, 8, 8),))
    with pytest.raises(ShapeError, match=r"grid of shape \(N, Ho, Wo, 2\), got 1x4x4x3"):
        op.infer(((1, 3, 8, 8), (1, 4, 4, 3)))
    with pytest.raises(ShapeError, match="batch of x \\(2\\) and grid \\(1\\) differ"):
        op.infer(((2, 3, 8, 8), (1, 4, 4, 2)))
    with pytest.raises(ShapeError, match="mode must be 'bilinear'"):
        GridSample(mode="bicubic")


def test_spatial_transformer_wires_in_a_graph():
    g = Graph()
    x = g.input((1, 28, 28))
    theta = g.add(Linear(6), g.add(Flatten(), x), name="theta")
    grid = g.add(AffineGrid(14, 14), theta, name="grid")
    out = g.add(GridSample(), x, grid, name="sample")
    assert g.shape(grid) == (1, 14, 14, 2)
    assert g.shape(out) == (1, 1, 14, 14)
