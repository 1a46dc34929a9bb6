"""Each CUDA kernel against the float64 numpy reference on random (never zero) inputs, with the
edge cases of the cpu kernel tests, on tiny blocks so every multi-block and tile-edge path runs;
the counting kernels against the analytic MACs; one small graph on the cuda backend against the
cpu backend; and the one-line errors of ``archcost validate --device cuda`` without a device.

Without a GPU these run on numba-cuda's simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1),
which runs every CUDA thread as a Python thread: shapes stay at a few channels and 5-9 pixel maps.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from archcost import ops
from archcost.cli import main
from archcost.execute import Executor, init_params
from archcost.graph import Graph
from archcost.kernels import reference
from archcost.kernels.cuda import _numba
from archcost.validation import relative_error

pytestmark = pytest.mark.cuda

if _numba.cuda is None:  # pragma: no cover - CI installs the cuda extra
    pytest.skip(f"CUDA kernel tests need numba-cuda: {_numba.IMPORT_ERROR}", allow_module_level=True)

from archcost.kernels.cuda import backend, config, conv  # noqa: E402

cuda = _numba.cuda
TOL = 2e-6  # float32 kernels vs float64 reference on small random problems, as for the cpu


@pytest.fixture(autouse=True)
def tiny_blocks(monkeypatch):
    """Blocks of a few threads and tiles of a few outputs: every map spans several blocks and tiles,
    and every tile has a ragged edge (GEMM tiles of 8 pixels x 4 channels, 4-deep slices)."""
    monkeypatch.setattr(config, "THREADS", 8)
    monkeypatch.setattr(config, "REDUCE_THREADS", 4)
    monkeypatch.setattr(config, "GEMM_BLOCK", (4, 2))
    monkeypatch.setattr(config, "GEMM_WORK", (2, 2))
    monkeypatch.setattr(config, "GEMM_DEPTH", 4)
    monkeypatch.setattr(config, "GEMV_MAX_ROWS", 2)


def _random(shape, rng, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def execute(op, *in_shapes, seed=0, scale=1.0, params=None):
    """Run ``op``'s cuda adapter on random device inputs; return (host output, float64 reference,
    state, device inputs, device output)."""
    rng = np.random.default_rng(seed)
    out_shape = op.infer(in_shapes)
    xs = [_random(s, rng, scale) for s in in_shapes]
    if params is None:
        params = init_params(op, in_shapes, out_shape, rng)
        if isinstance(op, ops.BatchNorm):
            params["mean"] = _random(out_shape[1], rng)
            params["var"] = rng.uniform(0.5, 2.0, out_shape[1]).astype(np.float32)
    adapter = backend.ADAPTERS[type(op)]
    state = adapter.prepare(op, in_shapes, out_shape, params)
    dxs = [cuda.to_device(x) for x in xs]
    dout = cuda.to_device(np.full(out_shape, np.nan, np.float32))
    adapter.run(op, state, dxs, dout)
    ref = reference.forward(op, xs, params, out_shape)
    return dout.copy_to_host(), ref, state, dxs, dout


def check(op, *in_shapes, tol=TOL, **kw):
    out, ref, state, dxs, dout = execute(op, *in_shapes, **kw)
    assert out.shape == ref.shape
    assert np.isfinite(out).all(), "a NaN left in the output: some element was never written"
    assert np.abs(ref).max() > 0, "a test on an all-zero reference proves nothing"
    err = relative_error(out, ref)
    assert err < tol, f"{op}: relative error {err:.2e}"
    return out, ref, state, dxs, dout


def test_validate_device_is_a_choice(capsys):
    assert main(["validate", "conv3x3", "--device", "tpu"]) == 2
    assert "invalid choice: 'tpu'" in capsys.readouterr().err


def test_every_cpu_op_has_a_cuda_kernel():
    from archcost.kernels import cpu

    assert [op.__name__ for op in cpu.ADAPTERS if op not in backend.ADAPTERS] == []


# --- convolution -------------------------------------------------------------------------

CONV_CASES = {
    "3x3 pad 1": (ops.Conv2d(5, 3, padding=1), (2, 3, 5, 5)),
    "stride > kernel": (ops.Conv2d(3, 2, stride=3), (1, 3, 8, 7)),
    "1x1 stride 3": (ops.Conv2d(5, 1, stride=3), (1, 4, 7, 7)),
    "padding >= kernel/2": (ops.Conv2d(3, 3, padding=2), (1, 3, 5, 5)),
    "1x1 spatial map": (ops.Conv2d(6, 3, padding=1), (2, 5, 1, 1)),
    "depthwise": (ops.Conv2d(6, 3, stride=2, padding=1, groups=6), (1, 6, 7, 7)),
    "depthwise x2": (ops.Conv2d(8, 3, padding=1, groups=4), (1, 4, 5, 5)),
    "groups 2, 3 per group": (ops.Conv2d(6, 3, padding=1, groups=2), (1, 4, 5, 5)),
    "asymmetric padding": (ops.Conv2d(4, 3, padding=(0, 1, 2, 0)), (1, 3, 6, 7)),
    "dilation": (ops.Conv2d(3, 3, dilation=(2, 1), padding=(2, 1)), (1, 3, 7, 6)),
    "non-square 1x5": (ops.Conv2d(4, (1, 5), padding=(0, 2)), (1, 3, 4, 7)),
    "5x5 stride 2 no bias": (ops.Conv2d(5, 5, stride=2, padding=2, bias=False), (1, 3, 7, 7)),
}


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d(case):
    op, shape = CONV_CASES[case]
    check(op, shape)


@pytest.mark.parametrize("case", ["depthwise", "depthwise x2"])
def test_depthwise_conv_on_the_tiled_kernel_too(case, monkeypatch):
    """groups = channels normally takes the direct kernel; the tiled one must handle it as well."""
    monkeypatch.setattr(config, "CONV_DIRECT_DEPTHWISE", False)
    op, shape = CONV_CASES[case]
    check(op, shape)


@pytest.mark.parametrize("case", ["3x3 pad 1", "groups 2, 3 per group"])
def test_conv2d_direct_kernel_is_not_a_special_case(case, monkeypatch):
    """The direct kernel (one thread per output) serves any conv, not only depthwise ones."""
    monkeypatch.setattr(conv, "uses_direct", lambda cg: True)
    op, shape = CONV_CASES[case]
    check(op, shape)


def test_conv2d_rejects_a_tile_config_it_cannot_stage(monkeypatch):
    from archcost.errors import ArchcostError

    monkeypatch.setattr(config, "GEMM_BLOCK", (4, 3))  # 3 threads per column cannot cover 2-pixel steps
    with pytest.raises(ArchcostError, match=r"GEMM_BLOCK\[1\] = 3 must be a multiple of GEMM_WORK\[0\] = 2"):
        execute(*CONV_CASES["3x3 pad 1"])


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_counts_every_multiply(case):
    """performed + padded == the analytic MACs; performed == the in-bounds taps, counted
    independently by convolving ones with ones in the reference."""
    op, shape = CONV_CASES[case]
    out, _, state, dxs, dout = execute(op, shape)
    performed, padded = backend.ADAPTERS[ops.Conv2d].count(op, state, dxs, dout)
    assert performed + padded == op.cost((shape,), out.shape).macs
    ones = {"weight": np.ones((op.out_channels, shape[1] // op.groups, *op.kernel), np.float32)}
    taps = reference.conv2d(ops.Conv2d(op.out_channels, op.kernel, op.stride, op.padding, op.dilation, op.groups,
                                       bias=False), np.ones(shape), ones)
    assert performed == int(taps.sum())


# --- pooling -----------------------------------------------------------------------------

POOL_CASES = {
    "2x2/2": dict(kernel=2, stride=2),
    "3x3/2 ceil last window": dict(kernel=3, stride=2, ceil_mode=True),
    "3x3/2 pad 1 ceil": dict(kernel=3, stride=2, padding=1, ceil_mode=True),
    "stride > kernel": dict(kernel=2, stride=3),
    "asymmetric padding": dict(kernel=3, stride=2, padding=(0, 1, 1, 0)),
    "non-square": dict(kernel=(3, 1), stride=(2, 1), padding=(1, 0)),
}


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool(case):
    check(ops.MaxPool2d(**POOL_CASES[case]), (1, 2, 6, 9))


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool(case, include_pad):
    check(ops.AvgPool2d(**POOL_CASES[case], count_include_pad=include_pad), (1, 2, 6, 9))


def test_max_pool_ignores_padding_of_negative_maps():
    op = ops.MaxPool2d(3, 2, padding=1)
    rng = np.random.default_rng(0)
    x = cuda.to_device(-np.abs(_random((1, 2, 5, 5), rng)) - 1.0)
    out = cuda.device_array((1, 2, 3, 3), np.float32)
    adapter = backend.ADAPTERS[ops.MaxPool2d]
    adapter.run(op, adapter.prepare(op, ((1, 2, 5, 5),), (1, 2, 3, 3), {}), [x], out)
    assert (out.copy_to_host() < -1.0 + 1e-7).all()  # a zero from the padding would have won


@pytest.mark.parametrize("size", [(2, 3, 5, 7), (1, 3, 1, 1)])
def test_global_avg_pool(size):
    check(ops.GlobalAvgPool(), size)


# --- linear ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,bias,path", [((2, 13), True, "gemv"), ((1, 9), False, "gemv"),
                                             ((7, 10), True, "gemm"), ((2, 3, 2, 6), False, "gemm")])
def test_linear(shape, bias, path):
    op = ops.Linear(9, bias=bias)
    rows = int(np.prod(shape[:-1]))
    assert (rows <= config.GEMV_MAX_ROWS) == (path == "gemv")
    out, _, state, dxs, dout = check(op, shape)
    performed, padded = backend.ADAPTERS[ops.Linear].count(op, state, dxs, dout)
    assert (performed, padded) == (op.cost((shape,), out.shape).macs, 0)


# --- per-element and per-channel ---------------------------------------------------------

def test_activations():
    for fn in ops.ACTIVATIONS:  # one test: each launch is cheap, the per-test overhead is not
        check(ops.Activation(fn, slope=0.2), (2, 3, 3, 3), scale=4.0)  # reaches saturating and clipped ranges


def test_activation_in_place():
    rng = np.random.default_rng(3)
    x = _random((3, 11), rng)
    ref = reference.forward(ops.Activation("silu"), [x], {}, x.shape)
    dx = cuda.to_device(x)
    adapter = backend.ADAPTERS[ops.Activation]
    adapter.run(ops.Activation("silu"), adapter.prepare(ops.Activation("silu"), (x.shape,), x.shape, {}), [dx], dx)
    assert relative_error(dx.copy_to_host(), ref) < TOL


@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(affine):
    check(ops.BatchNorm(affine=affine), (2, 5, 3, 3))
    check(ops.BatchNorm(affine=affine), (3, 7))


@pytest.mark.parametrize("axis,shape", [(-1, (2, 3, 2, 8)), (1, (2, 6, 2, 3))])
def test_layer_norm(axis, shape):
    check(ops.LayerNorm(axis), shape, scale=3.0)


@pytest.mark.parametrize("size", [5, 4, 1])
def test_lrn(size):
    check(ops.LRN(size, alpha=1e-2, beta=0.75, k=1.0), (1, 7, 3, 3), scale=3.0)


def test_scale():
    for op in (ops.Scale(0.8), ops.Scale(None), ops.Scale(None, axis=-1)):
        check(op, (2, 4, 3, 4))


@pytest.mark.parametrize("axis,shape", [(-1, (3, 10)), (1, (2, 6, 2, 3))])
def test_softmax(axis, shape):
    check(ops.Softmax(axis), shape, scale=5.0)


# --- multi-input and data movement -------------------------------------------------------

def test_add_mean():
    check(ops.Add(), (2, 3, 4, 4), (2, 3, 4, 4))
    check(ops.Add(), (2, 3, 4, 4), (2, 3, 4, 4), (2, 3, 4, 4))
    check(ops.Mean(), (2, 3, 4, 4), (2, 3, 4, 4), (2, 3, 4, 4))


@pytest.mark.parametrize("a,b", [((2, 6, 4, 5), (2, 6, 1, 1)), ((2, 1, 1, 1), (2, 6, 4, 5)), ((3, 7), (3, 1)),
                                 ((2, 1, 4, 5), (2, 6, 4, 5))])
def test_mul_broadcast(a, b):
    check(ops.Mul(), a, b)


@pytest.mark.parametrize("axis,shapes", [(1, [(2, 3, 4, 4), (2, 5, 4, 4), (2, 1, 4, 4)]),
                                         (-1, [(2, 4, 4, 3), (2, 4, 4, 6)]), (1, [(2, 7), (2, 2)])])
def test_concat(axis, shapes):
    check(ops.Concat(axis), *shapes)


@pytest.mark.parametrize("stride,shape", [(1, (2, 3, 5, 5)), (2, (2, 3, 7, 6)), (2, (1, 4, 1, 1))])
def test_channel_pad(stride, shape):
    out, *_ = check(ops.ChannelPad(8, stride), shape)
    assert (out[:, shape[1]:] == 0).all()


@pytest.mark.parametrize("dims,shape", [((0, 2, 3, 1), (2, 3, 4, 5)), ((0, 3, 1, 2), (2, 3, 4, 5)),
                                        ((0, 2, 1), (2, 3, 4))])
def test_permute(dims, shape):
    check(ops.Permute(dims), shape)


@pytest.mark.parametrize("op,shape", [(ops.Flatten(), (2, 3, 4, 4)), (ops.Reshape((4, -1)), (2, 3, 4, 4)),
                                      (ops.Dropout(0.3), (2, 5))])
def test_views_copy_into_a_fresh_buffer_and_are_free_in_place(op, shape):
    check(op, shape)  # out is a fresh buffer: the kernel copies
    rng = np.random.default_rng(1)
    x = _random(shape, rng)
    dx = cuda.to_device(x)
    out = dx.reshape(*op.infer((shape,)))  # in place: out is a view of the input's buffer
    backend.ADAPTERS[type(op)].run(op, None, [dx], out)
    assert _numba.device_address(out) == _numba.device_address(dx)
    assert (dx.copy_to_host() == x).all()


# --- the zoo's variant ops: ChannelSelect, Affine, RBF, Maxout, AffineGrid, GridSample ----
# The cases of tests/kernels/test_cpu_kernels_extra.py at simulator size; the hand-computed
# values there pin the reference, here they pin the device kernels as well.

def run_kernel(op, *xs, params=None):
    """The cuda adapter's host output on the given float32 host inputs."""
    in_shapes = tuple(x.shape for x in xs)
    out_shape = op.infer(in_shapes)
    adapter = backend.ADAPTERS[type(op)]
    state = adapter.prepare(op, in_shapes, out_shape, params or {})
    out = cuda.to_device(np.full(out_shape, np.nan, np.float32))
    adapter.run(op, state, [cuda.to_device(np.ascontiguousarray(x)) for x in xs], out)
    return out.copy_to_host()


def both(op, *xs, params=None):
    """(cuda output, float64 reference) on float32 host inputs ``xs``."""
    out = run_kernel(op, *xs, params=params)
    return out, reference.forward(op, xs, params or {}, out.shape)


@pytest.mark.parametrize("channels,shape", [((3, 0, 2), (2, 5, 3, 4)), ((4,), (1, 6, 2, 2)),
                                            ((1, 0), (3, 4)), ((0, 1, 2, 3), (2, 4, 3, 3))])
def test_channel_select(channels, shape):
    out, _, _, dxs, _ = check(ops.ChannelSelect(channels), shape)
    x = dxs[0].copy_to_host()
    for k, c in enumerate(channels):  # a gather, in the order given
        assert (out[:, k] == x[:, c]).all()


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
    assert run_kernel(ops.Affine(), x, params=params).ravel().tolist() == [3.0, 5.0, -3.0, 4.0]


@pytest.mark.parametrize("trainable", [False, True])
@pytest.mark.parametrize("shape,units", [((3, 84), 10), ((1, 5), 1)])
def test_rbf(shape, units, trainable):
    check(ops.RBF(units, trainable=trainable), shape)


def test_rbf_by_hand():
    # y_i = sum_j (x_j - w_ij)^2 with w_i the i-th centre (a row; the kernel reads them transposed):
    # x = (1, 2) against (1, 2), (0, 0), (-1, 1), (3, -1) -> 0, 5, 5, 13.
    x = np.array([[1.0, 2.0], [0.0, 0.0]], np.float32)
    params = {"centres": np.array([[1, 2], [0, 0], [-1, 1], [3, -1]], np.float32)}
    assert run_kernel(ops.RBF(4), x, params=params).tolist() == [[0.0, 5.0, 5.0, 13.0], [5.0, 0.0, 2.0, 10.0]]


@pytest.mark.parametrize("pieces,shape", [(3, (2, 6, 3, 4)), (2, (2, 8, 1, 1)), (1, (1, 3, 2, 2)),
                                          (2, (3, 10)), (5, (2, 15))])
def test_maxout(pieces, shape):
    check(ops.Maxout(pieces), shape)


def test_maxout_groups_consecutive_channels():
    # pieces 2: out[c] = max(in[2c], in[2c+1]); interleaved grouping would give (3, 4), not (2, 4).
    x = np.array([[1.0, 2.0, 3.0, -5.0], [-1.0, -2.0, 0.5, 4.0]], np.float32)
    out, ref = both(ops.Maxout(2), x)
    assert out.tolist() == ref.tolist() == [[2.0, 3.0], [-1.0, 4.0]]


IDENTITY = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(5, 7), (1, 3), (4, 1), (1, 1)])
def test_affine_grid(size, align_corners):
    check(ops.AffineGrid(*size, align_corners=align_corners), (3, 6))


def test_affine_grid_by_hand():
    """The 2x2 targets are the pixel centres {-1/2, +1/2} without align_corners, the corners
    {-1, +1} with it; a single target point is 0 either way (torch's linspace_from_neg_one)."""
    theta = np.array([IDENTITY,
                      [1.0, 0.0, 0.5, 0.0, 1.0, 0.0],  # translate x by +1/2
                      [0.0, -1.0, 0.0, 1.0, 0.0, 0.0]], np.float32)  # rotate: x_s = -y_t, y_s = x_t
    h = 0.5
    assert run_kernel(ops.AffineGrid(2, 2, align_corners=False), theta).tolist() == [
        [[[-h, -h], [h, -h]], [[-h, h], [h, h]]],  # row i is y_t, column j is x_t
        [[[0.0, -h], [1.0, -h]], [[0.0, h], [1.0, h]]],
        [[[h, -h], [h, h]], [[-h, -h], [-h, h]]],
    ]
    assert run_kernel(ops.AffineGrid(2, 3, align_corners=True), theta[:1]).tolist() == [
        [[[-1.0, -1.0], [0.0, -1.0], [1.0, -1.0]], [[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]]]
    for align in (False, True):
        assert run_kernel(ops.AffineGrid(1, 1, align_corners=align), theta[1:2]).tolist() == [[[[0.5, 0.0]]]]


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


def test_grid_sample_far_outside_nan_and_on_the_border():
    x = np.arange(1.0, 7.0, dtype=np.float32).reshape(1, 1, 2, 3)
    grid = np.array([[[[1e30, 0.0], [-1e30, 0.0], [0.0, 3.0], [1.0, 1.0], [np.nan, 0.0]]]], np.float32)
    for align in (False, True):
        out = run_kernel(ops.GridSample(align_corners=align), x, grid)
        assert out[0, 0, 0, [0, 1, 2, 4]].tolist() == [0.0, 0.0, 0.0, 0.0]  # no int overflow, NaN reads zero
        ref = reference.forward(ops.GridSample(align_corners=align), [x, grid[:, :, :4]], {}, (1, 1, 1, 4))
        np.testing.assert_allclose(out[..., :4], ref, rtol=1e-6)
    # (1, 1) with align_corners is exactly the bottom-right pixel; without, the outer corner of
    # that pixel: a quarter of it (half of each axis falls in the zero padding).
    assert run_kernel(ops.GridSample(align_corners=True), x, grid)[0, 0, 0, 3] == 6.0
    assert run_kernel(ops.GridSample(align_corners=False), x, grid)[0, 0, 0, 3] == 1.5


X22 = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)  # x[q, p] = 1 + p + 2q


@pytest.mark.parametrize("theta,align_grid,align_sample,expected", [
    (IDENTITY, False, False, [[1.0, 2.0], [3.0, 4.0]]),  # identity, matching: the input comes back
    (IDENTITY, True, True, [[1.0, 2.0], [3.0, 4.0]]),
    # translate x by +1/2: u in {0.5, 1.5}: averages of columns 0 and 1, then half column 1 + zero padding
    ([1.0, 0.0, 0.5, 0.0, 1.0, 0.0], False, False, [[1.5, 1.0], [3.5, 2.0]]),
    # scale by 1/2 with align_corners: u, v in {0.25, 0.75}, and x is linear: 1 + u + 2v
    ([0.5, 0.0, 0.0, 0.0, 0.5, 0.0], True, True, [[1.75, 2.25], [2.75, 3.25]]),
    ([0.0, 1.0, 0.0, 1.0, 0.0, 0.0], False, False, [[1.0, 3.0], [2.0, 4.0]]),  # swap axes: the transpose
    # an align_corners grid (points at +-1) sampled without it: half a pixel into the padding on
    # both axes, a quarter of each corner pixel
    (IDENTITY, True, False, [[0.25, 0.5], [0.75, 1.0]]),
])
def test_transformer_by_hand(theta, align_grid, align_sample, expected):
    grid = run_kernel(ops.AffineGrid(2, 2, align_grid), np.array([theta], np.float32))
    assert run_kernel(ops.GridSample(align_corners=align_sample), X22, grid)[0, 0].tolist() == expected


@pytest.mark.parametrize("align_corners,h,w,exact", [
    (False, 4, 8, True), (True, 5, 9, True),  # dyadic target coordinates: bit-exact
    (False, 3, 5, False), (True, 1, 6, False),
])
def test_identity_transform_reproduces_the_input(align_corners, h, w, exact):
    """affine_grid(identity) then grid_sample with the same align_corners, both on the device,
    returns the input: bit-exact where the target coordinates are dyadic, else up to float32
    rounding of the grid. A single row (h = 1) has its target at y_t = 0, which is row 0 either way."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 2, h, w)).astype(np.float32)
    grid = run_kernel(ops.AffineGrid(h, w, align_corners), np.array([IDENTITY], np.float32))
    out = run_kernel(ops.GridSample(align_corners=align_corners), x, grid)
    if exact:
        assert (out == x).all()
    np.testing.assert_allclose(out, x, rtol=0, atol=1e-5)


# --- whole graph -------------------------------------------------------------------------

def _small_net() -> Graph:
    """Conv, residual add, concat, pooling, BN, in-place ReLU on a shared tensor, global pool,
    flatten, linear, softmax: every rule of the buffer plan on 6x6 maps."""
    g = Graph("small")
    x = g.input((3, 6, 6))
    stem = g.add(ops.Conv2d(4, 3, padding=1), x, name="stem")
    a = g.add(ops.Activation("relu"), stem, name="relu_a")  # stem has two readers: a fresh buffer
    b = g.add(ops.Conv2d(4, 1), stem, name="proj")
    s = g.sum(a, b)
    c = g.concat(s, g.add(ops.MaxPool2d(3, 1, 1), s, name="pool"))
    c = g.add(ops.BatchNorm(), c, name="bn")
    c = g.add(ops.Activation("relu"), c, name="relu")  # in place
    c = g.add(ops.Conv2d(8, 3, stride=2, padding=1, groups=8), c, name="dw")
    f = g.add(ops.Flatten(), g.add(ops.GlobalAvgPool(), c, name="gap"), name="flatten")
    g.add(ops.Softmax(-1), g.add(ops.Linear(5), f, name="fc"), name="softmax")
    return g


def test_small_net_on_the_cuda_backend_matches_the_cpu_backend():
    g = _small_net()
    on_gpu = Executor(g, 2, "cuda", seed=0)
    inputs = on_gpu.random_inputs()
    gpu = on_gpu.forward(inputs, count=True)
    cpu = Executor(g, 2, "cpu", seed=0).forward(inputs, count=True)
    (name, out), = gpu.outputs.items()
    assert isinstance(out, np.ndarray) and out.shape == (2, 5)
    assert relative_error(out, cpu.outputs[name].astype(np.float64)) < 1e-5
    assert gpu.counts == cpu.counts  # same performed and padded multiplies per conv/linear
    assert gpu.peak_bytes == cpu.peak_bytes  # the arena follows the same buffer plan on the device
    layers = {n for n in g.topological_order() if n not in g.input_nodes()}
    assert set(gpu.seconds) == set(cpu.seconds) == layers  # the per-layer timer hook on both backends
    assert all(s >= 0 for s in gpu.seconds.values()) and all(s >= 0 for s in cpu.seconds.values())


def test_validate_on_cuda(capsys):
    assert main(["validate", "conv3x3", "--input", "3x5x5", "--batch", "2", "--device", "cuda"]) == 0
    out = capsys.readouterr().out
    assert "device cuda" in out and "1/1 layers validated" in out and "-> ok" in out


# --- no device -----------------------------------------------------------------------------

def _validate_in_subprocess(prelude: str, **env) -> subprocess.CompletedProcess:
    code = prelude + ("import sys; from archcost.cli import main\n"
                      "sys.exit(main(['validate', 'conv3x3', '--device', 'cuda']))")
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    environ.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120)


def test_validate_cuda_without_a_gpu_says_so_in_one_line():
    # CUDA_VISIBLE_DEVICES="" hides any real GPU, so this holds on a GPU machine too
    done = _validate_in_subprocess("", NUMBA_ENABLE_CUDASIM="0", CUDA_VISIBLE_DEVICES="")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == ("archcost: error: --device cuda: no CUDA GPU found (numba-cuda installed; "
                           "set NUMBA_ENABLE_CUDASIM=1 to use the simulator)\n")


def test_validate_cuda_without_numba_cuda_says_so_in_one_line():
    block = "import sys; sys.modules['numba_cuda'] = None; sys.modules['numba.cuda'] = None\n"
    done = _validate_in_subprocess(block, NUMBA_ENABLE_CUDASIM="1")
    assert done.returncode == 2
    assert done.stderr == "archcost: error: --device cuda: numba-cuda is not installed (pip install 'archcost[cuda]')\n"


def test_the_cuda_backend_without_a_device_is_one_archcost_error():
    code = ("from archcost.errors import ArchcostError\n"
            "from archcost.execute import Executor\nfrom archcost import zoo\n"
            "try:\n    Executor(zoo.build('conv3x3', input_shape=(3, 5, 5)), backend='cuda')\n"
            "except ArchcostError as e:\n    print(e)\n")
    environ = {k: v for k, v in os.environ.items() if k != "NUMBA_ENABLE_CUDASIM"}
    environ.update(NUMBA_ENABLE_CUDASIM="0", CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=environ, timeout=120)
    assert done.stdout.strip().startswith("backend 'cuda': no CUDA GPU found")


def test_importing_archcost_and_table_import_no_numba_cuda():
    code = ("import sys\nfrom archcost.cli import main\nimport archcost.kernels.cuda\n"
            "assert main(['table', 'vgg16']) == 0\n"
            "print('numba.cuda' in sys.modules, 'numba_cuda' in sys.modules, file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip() == "False False"


def test_a_graph_with_every_op_validates_on_cuda(monkeypatch):
    """archcost validate's four checks (shapes, counted = analytic MACs, output vs the float64
    reference per layer, measured = predicted peak) for every op in one graph, on the device."""
    from archcost.validation import validate
    from tests.test_execute import _every_op_graph

    monkeypatch.setattr(config, "GEMM_DEPTH", 16)  # fewer barriers: the simulator's slowest part
    g = _every_op_graph()
    assert {type(g.op(n)) for n in g.topological_order()} == set(ops.OPS)
    result = validate(g, batch=1, backend="cuda")
    assert result.ok, ([(c.name, c.problem) for c in result.failures], result.peak_ok)


def test_bench_cuda_conv_runs_tiny(tmp_path, capsys):
    """benchmarks/bench_cuda_conv.py --tiny: the GPU benchmark's code path, at simulator size."""
    import importlib.util
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_cuda_conv.py"
    spec = importlib.util.spec_from_file_location("bench_cuda_conv", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--tiny", "--out", str(tmp_path / "tiny")]) == 0
    report = json.loads((tmp_path / "tiny.json").read_text())
    stages = ((1, 2), (2, 2), (3, 3), (4, 3), (5, 3))  # VGG16: convs per stage
    assert [r["layer"] for r in report["layers"]] == [f"conv{s}_{i}" for s, n in stages for i in range(1, n + 1)]
    assert all(r["ours_ms"] > 0 for r in report["layers"])
    assert (tmp_path / "tiny.csv").read_text().count("\n") == 14
    assert "all convs:" in capsys.readouterr().out


def test_only_one_module_imports_numba_cuda():
    """archcost/kernels/cuda/_numba.py is the one importer; everything else takes ``cuda`` from it."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    pattern = re.compile(r"^\s*(import numba\.cuda|from numba\.cuda\b|from numba import .*\bcuda\b|import numba_cuda)",
                         re.MULTILINE)
    importers = sorted(str(p.relative_to(root)) for d in ("archcost", "benchmarks", "tests")
                       for p in (root / d).rglob("*.py") if pattern.search(p.read_text()))
    assert importers == ["archcost/kernels/cuda/_numba.py"]


def test_bench_runs_on_the_cuda_backend_with_measured_ceilings(tmp_path):
    """`archcost bench --device cuda` end to end (on the simulator here): per-layer times, the
    device's measured FMA and copy ceilings, and a RESULTS.json that the roofline reader accepts."""
    import json

    from archcost.cli import main
    from archcost.roofline import load_results

    out = tmp_path / "results.json"
    assert main(["bench", "conv3x3", "--input", "3x5x5", "--device", "cuda", "--repeat", "1", "-o", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["backend"] == "cuda" and data["peak_gflops"] > 0 and data["bandwidth_gbs"] > 0
    assert [layer["name"] for layer in data["layers"]] == ["conv1"]
    assert data["layers"][0]["macs"] == 25 * 3 * (3 * 3 * 3)  # 5x5 positions x 3 out x (3 in x 3x3)
    load_results(out)
