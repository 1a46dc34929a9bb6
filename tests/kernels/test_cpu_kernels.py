"""Each CPU kernel against the float64 numpy reference on random (never zero) inputs, with the
edge cases that break index arithmetic; a few hand-computed values pin the reference itself."""

import subprocess
import sys

import numpy as np
import pytest

from archcost import ops
from archcost.execute import init_params
from archcost.kernels import cpu, reference
from archcost.kernels.cpu.conv import uses_blocked as conv_uses_blocked
from archcost.validation import relative_error

TOL = 2e-6  # float32 kernels vs float64 reference on small random problems


def _random(shape, rng, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def execute(op, *in_shapes, seed=0, scale=1.0, params=None):
    """Run ``op``'s cpu adapter on random inputs; return (output, float64 reference, state, inputs)."""
    rng = np.random.default_rng(seed)
    out_shape = op.infer(in_shapes)
    xs = [_random(s, rng, scale) for s in in_shapes]
    if params is None:
        params = init_params(op, in_shapes, out_shape, rng)
        if isinstance(op, ops.BatchNorm):
            params["mean"] = _random(out_shape[1], rng)
            params["var"] = rng.uniform(0.5, 2.0, out_shape[1]).astype(np.float32)
    adapter = cpu.ADAPTERS[type(op)]
    state = adapter.prepare(op, in_shapes, out_shape, params)
    out = np.full(out_shape, np.nan, np.float32)
    adapter.run(op, state, xs, out)
    ref = reference.forward(op, xs, params, out_shape)
    return out, ref, state, xs


def check(op, *in_shapes, tol=TOL, **kw):
    out, ref, state, xs = execute(op, *in_shapes, **kw)
    assert out.shape == ref.shape
    assert np.isfinite(out).all()
    assert np.abs(ref).max() > 0, "a test on an all-zero reference proves nothing"
    err = relative_error(out, ref)
    assert err < tol, f"{op}: relative error {err:.2e}"
    return out, ref, state, xs


def test_every_op_has_a_cpu_kernel_and_a_reference():
    kernel_ops = [op for op in ops.OPS if op is not ops.Input]
    assert [op.__name__ for op in kernel_ops if op not in cpu.ADAPTERS] == []
    assert [op.__name__ for op in kernel_ops if op not in reference.REFERENCE] == []


# --- convolution -------------------------------------------------------------------------

CONV_CASES = {
    "3x3 pad 1": (ops.Conv2d(8, 3, padding=1), (2, 5, 9, 9)),
    "stride > kernel": (ops.Conv2d(6, 2, stride=3), (1, 4, 11, 10)),
    "1x1 stride 3": (ops.Conv2d(5, 1, stride=3), (1, 7, 8, 8)),
    "padding >= kernel/2": (ops.Conv2d(4, 3, padding=2), (1, 3, 6, 6)),
    "1x1 kernel padded": (ops.Conv2d(4, 1, padding=1), (1, 3, 5, 5)),
    "1x1 spatial map": (ops.Conv2d(16, 3, padding=1), (2, 9, 1, 1)),
    "depthwise": (ops.Conv2d(12, 3, stride=2, padding=1, groups=12), (1, 12, 9, 9)),
    "depthwise x2": (ops.Conv2d(12, 3, padding=1, groups=6), (1, 6, 7, 7)),
    "groups 4, 10 per group": (ops.Conv2d(40, 3, padding=1, groups=4), (1, 8, 6, 6)),
    "asymmetric padding": (ops.Conv2d(5, 3, padding=(0, 1, 2, 0)), (1, 3, 7, 8)),
    "dilation": (ops.Conv2d(6, 3, dilation=(2, 3), padding=(2, 3)), (1, 4, 12, 13)),
    "non-square 1x7": (ops.Conv2d(9, (1, 7), padding=(0, 3)), (1, 5, 6, 10)),
    "non-square 3x1 stride (2,1)": (ops.Conv2d(9, (3, 1), stride=(2, 1), padding=(1, 0)), (1, 5, 10, 6)),
    "same stride 2": (ops.Conv2d(7, 7, stride=2, padding="same"), (1, 3, 15, 16)),
    "no bias": (ops.Conv2d(11, 5, stride=2, padding=2, bias=False), (2, 3, 13, 13)),
    # blocked kernel (>= 8 output channels per group): full and partial 16-channel blocks,
    # position counts that are and are not multiples of the 8-position tile, 1x1 without padding
    "blocked 3x3, 40 channels": (ops.Conv2d(40, 3, padding=1), (2, 6, 7, 9)),
    "blocked 1x1 GEMM, 32 channels": (ops.Conv2d(32, 1), (2, 24, 4, 4)),
    "blocked 1x1 stride 2": (ops.Conv2d(16, 1, stride=2, bias=False), (1, 8, 9, 7)),
    "blocked 7x7/2 pad 3": (ops.Conv2d(17, 7, stride=2, padding=3), (1, 3, 19, 17)),
    "blocked groups 2, 24 per group": (ops.Conv2d(48, 3, stride=2, padding=1, groups=2), (1, 6, 11, 11)),
    "blocked dilation, asymmetric pad": (ops.Conv2d(20, 3, dilation=2, padding=(1, 3, 0, 2)), (1, 5, 9, 8)),
    "blocked 1x1 map": (ops.Conv2d(64, 3, padding=1), (3, 16, 1, 1)),
}


def test_conv_paths_are_both_tested():
    paths = {"blocked" if conv_uses_blocked(op) else "rows" for op, _ in CONV_CASES.values()}
    assert paths == {"blocked", "rows"}


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d(case):
    op, shape = CONV_CASES[case]
    check(op, shape)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_counts_every_multiply(case):
    """performed + padded == the analytic MACs. The blocked kernel reads a zero-bordered copy
    and multiplies every tap (padded = 0); the row kernel skips padded taps, so its performed
    count must equal the in-bounds taps, counted independently by convolving ones with ones."""
    op, shape = CONV_CASES[case]
    out, _, state, xs = execute(op, shape)
    performed, padded = cpu.ADAPTERS[ops.Conv2d].count(op, state, xs, out)
    macs = op.cost((shape,), out.shape).macs
    assert performed + padded == macs
    if state[0] == "blocked":
        assert padded == 0
        return
    ones = {"weight": np.ones((op.out_channels, shape[1] // op.groups, *op.kernel), np.float32)}
    taps = reference.conv2d(ops.Conv2d(op.out_channels, op.kernel, op.stride, op.padding, op.dilation, op.groups,
                                       bias=False), np.ones(shape), ones)
    assert performed == int(taps.sum())
    assert (padded > 0) == (int(taps.sum()) < macs)


def test_reference_conv_counts_taps_by_hand():
    # ones * ones with pad 1 on 3x3: corners see 4 taps, edges 6, the centre 9.
    op = ops.Conv2d(1, 3, padding=1, bias=False)
    out = reference.conv2d(op, np.ones((1, 1, 3, 3)), {"weight": np.ones((1, 1, 3, 3), np.float32)})
    assert out[0, 0].tolist() == [[4, 6, 4], [6, 9, 6], [4, 6, 4]]


# --- pooling -----------------------------------------------------------------------------

POOL_CASES = {
    "2x2/2": dict(kernel=2, stride=2),
    "3x3/2 ceil last window": dict(kernel=3, stride=2, ceil_mode=True),
    "3x3/2 pad 1 ceil": dict(kernel=3, stride=2, padding=1, ceil_mode=True),
    "stride > kernel": dict(kernel=2, stride=3),
    "3x3/1 pad 1": dict(kernel=3, stride=1, padding=1),
    "asymmetric padding": dict(kernel=3, stride=2, padding=(0, 1, 1, 0)),
    "non-square": dict(kernel=(3, 1), stride=(2, 1), padding=(1, 0)),
}


@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("size", [(2, 3, 10, 10), (1, 2, 7, 9)])
def test_max_pool(case, size):
    check(ops.MaxPool2d(**POOL_CASES[case]), size)


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("case", POOL_CASES)
@pytest.mark.parametrize("size", [(2, 3, 10, 10), (1, 2, 7, 9)])
def test_avg_pool(case, size, include_pad):
    check(ops.AvgPool2d(**POOL_CASES[case], count_include_pad=include_pad), size)


def test_max_pool_ignores_padding_of_negative_maps():
    x_shape = (1, 1, 4, 4)
    out, ref, _, xs = execute(ops.MaxPool2d(3, 2, padding=1), x_shape, scale=1.0)
    negative = -np.abs(xs[0]) - 1.0
    cpu.ADAPTERS[ops.MaxPool2d].run(ops.MaxPool2d(3, 2, padding=1), (3, 3, 2, 2, 1, 1), [negative], out)
    assert (out < -1.0 + 1e-7).all()  # a zero from the padding would have won


def test_reference_avg_pool_divisor_matches_pytorch_by_hand():
    """PyTorch (ceil mode, 4x4, k3 s2 p1): the bottom-right window holds rows/cols 3..4, of which 4
    is padding; with count_include_pad it divides by 2*2 = 4, without by 1 (only x[3,3])."""
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    with_pad = reference.avg_pool2d(ops.AvgPool2d(3, 2, 1, ceil_mode=True), x, (3, 3))
    without = reference.avg_pool2d(ops.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False), x, (3, 3))
    assert with_pad[0, 0, 2, 2] == 16.0 / 4
    assert without[0, 0, 2, 2] == 16.0
    assert with_pad[0, 0, 0, 0] == (1 + 2 + 5 + 6) / 9
    assert without[0, 0, 0, 0] == (1 + 2 + 5 + 6) / 4


@pytest.mark.parametrize("size", [(2, 5, 7, 6), (1, 3, 1, 1)])
def test_global_avg_pool(size):
    check(ops.GlobalAvgPool(), size)


# --- linear ------------------------------------------------------------------------------

@pytest.mark.parametrize("shape,bias", [((3, 70), True), ((1, 130), False), ((2, 3, 4, 9), True)])
def test_linear(shape, bias):
    op = ops.Linear(67, bias=bias)
    out, _, state, xs = check(op, shape)
    performed, padded = cpu.ADAPTERS[ops.Linear].count(op, state, xs, out)
    assert (performed, padded) == (op.cost((shape,), out.shape).macs, 0)


# --- per-element and per-channel ---------------------------------------------------------

@pytest.mark.parametrize("fn", ops.ACTIVATIONS)
def test_activation(fn):
    op = ops.Activation(fn, slope=0.2)
    check(op, (2, 3, 5, 7), scale=4.0)  # scale 4 reaches the saturating and clipped ranges


def test_activation_in_place():
    rng = np.random.default_rng(3)
    x = _random((4, 50), rng)
    ref = reference.forward(ops.Activation("silu"), [x], {}, x.shape)
    cpu.ADAPTERS[ops.Activation].run(ops.Activation("silu"), (7, np.float32(0.01)), [x], x)
    assert relative_error(x, ref) < TOL


@pytest.mark.parametrize("shape", [(2, 6, 5, 5), (3, 10)])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm(shape, affine):
    check(ops.BatchNorm(affine=affine), shape)


@pytest.mark.parametrize("axis,shape", [(-1, (2, 4, 5, 16)), (1, (2, 8, 3, 3)), (-1, (3, 12))])
def test_layer_norm(axis, shape):
    check(ops.LayerNorm(axis), shape, scale=3.0)


@pytest.mark.parametrize("size", [5, 4, 1])
def test_lrn(size):
    check(ops.LRN(size, alpha=1e-2, beta=0.75, k=1.0), (2, 9, 4, 3), scale=3.0)


@pytest.mark.parametrize("op", [ops.Scale(0.8), ops.Scale(None), ops.Scale(None, axis=-1)])
def test_scale(op):
    check(op, (2, 4, 3, 4))


@pytest.mark.parametrize("axis,shape", [(-1, (3, 10)), (1, (2, 6, 3, 3))])
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
    out, _, _, xs = check(ops.ChannelPad(8, stride), shape)
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
    before = x.copy()
    out = x.reshape(op.infer((shape,)))  # in place: out is a view of the input's buffer
    cpu.ADAPTERS[type(op)].run(op, None, [x], out)
    assert np.shares_memory(out, x) and (x == before).all()


def test_importing_compiles_nothing():
    """Importing archcost imports no numba; importing the kernels compiles no signature."""
    code = (
        "import sys, archcost, archcost.execute\n"
        "import archcost.kernels.cpu as cpu\n"
        "from numba.core.registry import CPUDispatcher\n"
        "mods = [m for n, m in sys.modules.items() if n.startswith('archcost.kernels.cpu')]\n"
        "fns = [f for m in mods for f in vars(m).values() if isinstance(f, CPUDispatcher)]\n"
        "assert len(fns) > 15, len(fns)\n"
        "print(sum(len(f.signatures) for f in fns))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0"
    bare = subprocess.run([sys.executable, "-c", "import sys, archcost; print('numba' in sys.modules)"],
                          capture_output=True, text=True, check=True)
    assert bare.stdout.strip() == "False"
