"""CPU kernels of the zoo's variant ops (ChannelSelect, Affine, RBF, Maxout, AffineGrid,
GridSample) against the float64 reference on random inputs, plus hand-computed values that pin
the reference itself to the semantics of LeNet-5's RBF and PyTorch's affine_grid/grid_sample."""

import numpy as np
import pytest

from archcost import ops
from archcost.execute import init_params
from archcost.kernels import cpu, reference
from archcost.validation import relative_error
from tests.kernels.test_cpu_kernels import TOL, check, execute


def run_kernel(op, *xs):
    """The cpu adapter's output on the given float32 inputs (no params)."""
    out_shape = op.infer(tuple(x.shape for x in xs))
    adapter = cpu.ADAPTERS[type(op)]
    state = adapter.prepare(op, tuple(x.shape for x in xs), out_shape, {})
    out = np.full(out_shape, np.nan, np.float32)
    adapter.run(op, state, list(xs), out)
    return out


def both(op, *xs, params=None):
    """(kernel output, reference output) on float32 inputs ``xs``."""
    out = run_kernel(op, *xs)
    return out, reference.forward(op, xs, params or {}, out.shape)


# --- ChannelSelect -----------------------------------------------------------------------

@pytest.mark.parametrize("channels,shape", [((3, 0, 2), (2, 5, 3, 4)), ((4,), (1, 6, 2, 2)),
                                            ((1, 0), (3, 4)), ((0, 1, 2, 3), (2, 4, 3, 3))])
def test_channel_select(channels, shape):
    out, _, _, xs = check(ops.ChannelSelect(channels), shape)
    for k, c in enumerate(channels):  # a gather, in the order given
        assert (out[:, k] == xs[0][:, c]).all()


# --- Affine ------------------------------------------------------------------------------

@pytest.mark.parametrize("axis,shape", [(1, (2, 4, 3, 5)), (-1, (2, 3, 3, 6)), (1, (3, 7))])
def test_affine(axis, shape):
    op = ops.Affine(axis)
    p = init_params(op, (shape,), shape, np.random.default_rng(0))
    # Per-channel values that differ, so a kernel applying them on the wrong axis fails.
    assert p["gamma"].shape == p["beta"].shape == (shape[axis],) and np.ptp(p["gamma"]) > 0.1
    check(op, shape, params=p)


def test_affine_by_hand():
    # y = gamma_c * x + beta_c: channel 0 doubles and adds 1, channel 1 negates.
    x = np.array([[[[1.0, 2.0]], [[3.0, -4.0]]]], np.float32)  # (1, 2, 1, 2)
    params = {"gamma": np.array([2.0, -1.0], np.float32), "beta": np.array([1.0, 0.0], np.float32)}
    op = ops.Affine()
    adapter = cpu.ADAPTERS[ops.Affine]
    out = np.empty_like(x)
    adapter.run(op, adapter.prepare(op, (x.shape,), x.shape, params), [x], out)
    assert out.ravel().tolist() == [3.0, 5.0, -3.0, 4.0]
    assert reference.forward(op, [x], params, x.shape).ravel().tolist() == [3.0, 5.0, -3.0, 4.0]


# --- RBF ---------------------------------------------------------------------------------

@pytest.mark.parametrize("trainable", [False, True])
@pytest.mark.parametrize("shape,units", [((3, 84), 10), ((1, 5), 1)])
def test_rbf(shape, units, trainable):
    check(ops.RBF(units, trainable=trainable), shape)


def test_rbf_by_hand():
    # LeNet-5's output unit i: y_i = sum_j (x_j - w_ij)^2, w_i the i-th centre (a row).
    # x = (1, 2): centre (1, 2) -> 0; centre (0, 0) -> 1 + 4 = 5; centre (-1, 1) -> 4 + 1 = 5;
    # centre (3, -1) -> 4 + 9 = 13.
    x = np.array([[1.0, 2.0]], np.float32)
    params = {"centres": np.array([[1, 2], [0, 0], [-1, 1], [3, -1]], np.float32)}
    op = ops.RBF(4)
    adapter = cpu.ADAPTERS[ops.RBF]
    out = np.empty((1, 4), np.float32)
    adapter.run(op, adapter.prepare(op, (x.shape,), out.shape, params), [x], out)
    assert out.tolist() == [[0.0, 5.0, 5.0, 13.0]]
    assert reference.forward(op, [x], params, out.shape).tolist() == [[0.0, 5.0, 5.0, 13.0]]


# --- Maxout ------------------------------------------------------------------------------

@pytest.mark.parametrize("pieces,shape", [(3, (2, 6, 3, 4)), (2, (2, 8, 1, 1)), (1, (1, 3, 2, 2)),
                                          (2, (3, 10)), (5, (2, 15))])
def test_maxout(pieces, shape):
    check(ops.Maxout(pieces), shape)


def test_maxout_groups_consecutive_channels():
    # (N, 4) with pieces 2: out[c] = max(in[2c], in[2c+1]); interleaved grouping would give
    # max(in[c], in[c+2]) = (3, 4) instead of (2, 4).
    x = np.array([[1.0, 2.0, 3.0, -5.0], [-1.0, -2.0, 0.5, 4.0]], np.float32)
    out, ref = both(ops.Maxout(2), x)
    assert out.tolist() == ref.tolist() == [[2.0, 3.0], [-1.0, 4.0]]


# --- AffineGrid --------------------------------------------------------------------------

IDENTITY = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(5, 7), (1, 3), (4, 1), (1, 1)])
def test_affine_grid(size, align_corners):
    op = ops.AffineGrid(*size, align_corners=align_corners)
    out, ref, _, _ = execute(op, (3, 6))
    assert relative_error(out, ref) < TOL


def test_affine_grid_by_hand():
    """torch.nn.functional.affine_grid on a 2x2 target: without align_corners the target points
    are the pixel centres x_t, y_t in {-1/2, +1/2} ((2k + 1)/2 - 1); with it, the corners {-1, +1}.
    The last axis is (x_s, y_s) = theta @ (x_t, y_t, 1)."""
    theta = np.array([IDENTITY,
                      [1.0, 0.0, 0.5, 0.0, 1.0, 0.0],  # translate x by +1/2
                      [2.0, 0.0, 0.0, 0.0, 0.5, 0.0],  # scale x by 2, y by 1/2
                      [0.0, -1.0, 0.0, 1.0, 0.0, 0.0]], np.float32)  # rotate: x_s = -y_t, y_s = x_t
    out, ref = both(ops.AffineGrid(2, 2, align_corners=False), theta)
    h = 0.5
    expected = [
        [[[-h, -h], [h, -h]], [[-h, h], [h, h]]],  # identity: row i is y_t, column j is x_t
        [[[0.0, -h], [1.0, -h]], [[0.0, h], [1.0, h]]],  # x_s = x_t + 1/2
        [[[-1.0, -0.25], [1.0, -0.25]], [[-1.0, 0.25], [1.0, 0.25]]],  # (2 x_t, y_t / 2)
        [[[h, -h], [h, h]], [[-h, -h], [-h, h]]],  # (-y_t, x_t)
    ]
    assert out.tolist() == ref.tolist() == expected
    out, ref = both(ops.AffineGrid(2, 3, align_corners=True), theta[:1])
    # With align_corners, 3 columns span -1, 0, 1 and 2 rows -1, 1.
    expected = [[[[-1.0, -1.0], [0.0, -1.0], [1.0, -1.0]], [[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]]]
    assert out.tolist() == ref.tolist() == expected
    # A single target point is the centre 0 either way (torch's linspace_from_neg_one).
    for align in (False, True):
        out, ref = both(ops.AffineGrid(1, 1, align_corners=align), theta[1:2])
        assert out.tolist() == ref.tolist() == [[[[0.5, 0.0]]]]


# --- GridSample --------------------------------------------------------------------------

@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("x_shape,grid_hw", [((2, 3, 5, 6), (4, 7)), ((1, 2, 1, 1), (3, 3)), ((1, 1, 2, 9), (5, 2))])
def test_grid_sample(x_shape, grid_hw, align_corners):
    """Grid points in [-1.6, 1.6]: many sample between the border pixels and the zero padding,
    some fall wholly outside the input."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal(x_shape).astype(np.float32)
    grid = rng.uniform(-1.6, 1.6, (x_shape[0], *grid_hw, 2)).astype(np.float32)
    out, ref = both(ops.GridSample(align_corners=align_corners), x, grid)
    assert np.abs(ref).max() > 0 and np.isfinite(out).all()
    assert relative_error(out, ref) < TOL
    if x_shape == (2, 3, 5, 6):  # some points miss the input entirely and read zero
        missed = (ref == 0).all(axis=1)
        assert missed.any() and (out.transpose(0, 2, 3, 1)[missed] == 0).all()


def test_grid_sample_far_outside_and_on_the_border():
    x = np.arange(1.0, 7.0, dtype=np.float32).reshape(1, 1, 2, 3)
    grid = np.array([[[[1e30, 0.0], [-1e30, 0.0], [0.0, 3.0], [1.0, 1.0]]]], np.float32)
    for align in (False, True):
        out, ref = both(ops.GridSample(align_corners=align), x, grid)
        assert out[0, 0, 0, :3].tolist() == [0.0, 0.0, 0.0]
        np.testing.assert_allclose(out, ref, rtol=1e-6)
    # (1, 1) with align_corners is exactly the bottom-right pixel; without, it is the outer
    # corner of that pixel: a quarter of it (half of each axis falls in the zero padding).
    assert both(ops.GridSample(align_corners=True), x, grid)[0][0, 0, 0, 3] == 6.0
    assert both(ops.GridSample(align_corners=False), x, grid)[0][0, 0, 0, 3] == 1.5


X22 = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)  # x[q, p] = 1 + p + 2q


@pytest.mark.parametrize("theta,align_corners,expected", [
    # Identity, matching align_corners: the grid hits the pixels exactly, the input comes back.
    (IDENTITY, False, [[1.0, 2.0], [3.0, 4.0]]),
    (IDENTITY, True, [[1.0, 2.0], [3.0, 4.0]]),
    # Translate x by +1/2 without align_corners: x_s in {0, 1} -> u = ((x_s + 1) * 2 - 1) / 2 in
    # {0.5, 1.5}: u = 0.5 averages columns 0 and 1 ((1+2)/2 = 1.5, (3+4)/2 = 3.5); u = 1.5 is
    # half column 1, half zero padding (2/2 = 1, 4/2 = 2).
    ([1.0, 0.0, 0.5, 0.0, 1.0, 0.0], False, [[1.5, 1.0], [3.5, 2.0]]),
    # Scale by 1/2 with align_corners: x_s, y_s in {-1/2, 1/2} -> u, v = (s + 1) * (2 - 1) / 2 in
    # {0.25, 0.75}, all inside; x is linear in (p, q), so bilinear sampling gives 1 + u + 2v:
    # (0.25, 0.25) -> 1.75, (0.75, 0.25) -> 2.25, (0.25, 0.75) -> 2.75, (0.75, 0.75) -> 3.25.
    ([0.5, 0.0, 0.0, 0.0, 0.5, 0.0], True, [[1.75, 2.25], [2.75, 3.25]]),
    # Swap axes (x_s = y_t, y_s = x_t): the transpose.
    ([0.0, 1.0, 0.0, 1.0, 0.0, 0.0], False, [[1.0, 3.0], [2.0, 4.0]]),
])
def test_transformer_by_hand(theta, align_corners, expected):
    grid = run_kernel(ops.AffineGrid(2, 2, align_corners), np.array([theta], np.float32))
    out, ref = both(ops.GridSample(align_corners=align_corners), X22, grid)
    assert out[0, 0].tolist() == expected
    assert ref[0, 0].tolist() == expected


def test_mismatched_align_corners_by_hand():
    """An align_corners=True identity grid (points at +-1) sampled with align_corners=False:
    u = ((+-1 + 1) * 2 - 1) / 2 = -0.5 or 1.5, each half a pixel into the zero padding on both
    axes, so every output is a quarter of its corner pixel."""
    grid = run_kernel(ops.AffineGrid(2, 2, align_corners=True), np.array([IDENTITY], np.float32))
    out, ref = both(ops.GridSample(align_corners=False), X22, grid)
    assert out[0, 0].tolist() == ref[0, 0].tolist() == [[0.25, 0.5], [0.75, 1.0]]


@pytest.mark.parametrize("align_corners,h,w,exact", [
    (False, 4, 8, True), (True, 5, 9, True),  # dyadic target coordinates: bit-exact
    (False, 5, 7, False), (True, 5, 7, False), (False, 1, 6, False), (True, 1, 6, False),
])
def test_identity_transform_reproduces_the_input(align_corners, h, w, exact):
    """affine_grid(identity) then grid_sample with the same align_corners returns the input:
    bit-exact where the target coordinates are dyadic ((2k + 1)/w - 1 for w = 4, 8 without
    align_corners; -1 + 2k/(w - 1) for w = 5, 9 with it), else up to float32 rounding of the
    coordinates. A single row (h = 1) has its target at y_t = 0, which is row 0 either way."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, h, w)).astype(np.float32)
    theta = np.array([IDENTITY, IDENTITY], np.float32)
    grid = run_kernel(ops.AffineGrid(h, w, align_corners), theta)
    out, ref = both(ops.GridSample(align_corners=align_corners), x, grid)
    if exact:
        assert (out == x).all() and (ref == x).all()
    np.testing.assert_allclose(out, x, rtol=0, atol=1e-5)
    np.testing.assert_allclose(ref, x, rtol=0, atol=1e-5)
