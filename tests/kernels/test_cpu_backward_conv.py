"""The cpu training kernels of Conv2d, ConvTranspose2d, Linear, MaxPool2d, AvgPool2d and GlobalAvgPool
(``train_forward``, ``backward``, ``backward_count`` of their adapters) against the float64
references of archcost/kernels/reference_grad_conv.py, and those references against finite
differences of the forward reference (archcost/kernels/reference.py).

Every kernel test starts grad_inputs from random values (the kernels must add into them) and
param_grads from NaN (the kernels must overwrite them); inputs, weights and grad_out are random,
never zero. All arrays are float32 C-contiguous and every geometry argument a Python int, so each
kernel compiles one signature for the whole file.
"""

import numpy as np
import pytest

from archcost import ops
from archcost.execute import init_params
from archcost.kernels import cpu, reference
from archcost.kernels import reference_grad_conv as grad_ref
from tests.kernels.cases import CONV_FULL, CONVT_FULL, POOL_CASES

TOL = 1e-4  # float32 kernels vs the float64 reference, relative to the gradient's largest value
FD_TOL = 1e-7  # the float64 reference vs central differences (exact for these piecewise-linear ops)

C = ops.Conv2d
CONV_CASES = {
    **CONV_FULL,
    "same, even kernel (pads 1 before, 2 after)": (C(6, 4, padding="same"), (1, 3, 7, 9)),
    "same, dilation 2": (C(5, 3, dilation=2, padding="same"), (2, 4, 8, 7)),
    "depthwise same stride 2 dilation 2": (C(8, 3, stride=2, dilation=2, padding="same", groups=8), (1, 8, 10, 9)),
    "depthwise 5x5 asymmetric, stride (1, 2)": (C(6, 5, stride=(1, 2), padding=(2, 1, 0, 3), groups=6), (2, 6, 8, 9)),
    "groups 3, 3x2, stride (2, 3), dilation (1, 2)": (C(9, (3, 2), stride=(2, 3), dilation=(1, 2), padding=(1, 2),
                                                         groups=3), (2, 6, 9, 11)),
    "bottom/right padding past the last window": (C(4, 3, stride=2, padding=(0, 3, 0, 3)), (1, 2, 6, 6)),
    "kernel larger than the input": (C(3, 5, padding=2, bias=False), (2, 2, 2, 3)),
    "blocked depthwise multiplier 8": (C(16, 3, stride=2, padding="same", groups=2), (2, 2, 7, 8)),
}
LINEAR_CASES = [  # (out features, input shape, bias): ranks 2 to 4, rows and features past a block
    (67, (3, 70), True),
    (67, (1, 130), False),
    (67, (2, 3, 4, 9), True),
    (5, (6, 300), True),
    (9, (2, 5, 260), False),
]
POOL_MAPS = [(2, 3, 10, 10), (1, 2, 7, 9)]
GLOBAL_POOL_MAPS = [(2, 5, 7, 6), (1, 3, 1, 1)]


def _random(shape, rng, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _close(out, ref, tol=TOL):
    """``out`` within ``tol`` of ``ref``, relative to ref's largest magnitude."""
    assert out.shape == ref.shape
    assert np.isfinite(out).all(), "a NaN left: some element was never written"
    scale = float(np.abs(ref).max())
    assert scale > 0, "a test on an all-zero reference proves nothing"
    err = float(np.abs(out.astype(np.float64) - ref).max()) / scale
    assert err < tol, f"relative error {err:.2e}"


def _case_id(value) -> str:
    """A test id: the op's kind, or a shape as 2x3x5x5."""
    return getattr(value, "kind", None) or "x".join(map(str, value))


def _adapter(op):
    return cpu.ADAPTERS[type(op)]


def _keeps_input(op) -> bool:
    return isinstance(op, (ops.Conv2d, ops.ConvTranspose2d, ops.Linear))


def _problem(op, shape, seed=0):
    """(params, x, grad_out) of a random problem."""
    rng = np.random.default_rng(seed)
    out_shape = op.infer((shape,))
    params = init_params(op, (shape,), out_shape, rng)
    return params, _random(shape, rng), _random(out_shape, rng)


def _train_forward(op, params, x):
    out = np.full(op.infer((x.shape,)), np.nan, np.float32)
    extras = {"indices": np.full(out.shape, -1, np.int32)} if isinstance(op, ops.MaxPool2d) else {}
    _adapter(op).train_forward(op, params, [x], out, extras)
    return out, extras


def _backward(op, params, x, gy, grad_x, param_grads, keep_input=True):
    """Training forward then backward, as the executor runs them; returns (out, extras)."""
    out, extras = _train_forward(op, params, x)
    kept = [x if keep_input and _keeps_input(op) else None]
    _adapter(op).backward(op, params, kept, out, extras, gy, [grad_x], param_grads)
    return out, extras


def check_backward(op, shape, seed=0):
    """The kernels' training forward (== the inference kernel, bit for bit), input gradient (added
    to random values already there) and param gradients (written over NaN) vs the reference."""
    params, x, gy = _problem(op, shape, seed)
    start = _random(shape, np.random.default_rng(seed + 1))
    dx = start.copy()
    grads = {name: np.full(p.shape, np.nan, np.float32) for name, p in params.items()}
    out, extras = _backward(op, params, x, gy, dx, grads)

    adapter = _adapter(op)
    inference = np.full(out.shape, np.nan, np.float32)
    adapter.run(op, adapter.prepare(op, (shape,), out.shape, params), [x], inference)
    assert np.array_equal(out, inference)
    _close(out, reference.forward(op, [x], params, out.shape), tol=2e-6)

    (ref_dx,), ref_grads = grad_ref.backward(op, params, [x], out, gy, [True], True)
    _close(dx - start, ref_dx)
    assert set(grads) == set(ref_grads) == set(params)
    for name in grads:
        _close(grads[name], ref_grads[name])
    return params, x, gy, out, extras


# --- Conv2d ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_backward(case):
    check_backward(*CONV_CASES[case])


@pytest.mark.parametrize("case", ["3x3 pad 1", "blocked 3x3, 40 channels", "depthwise"])
def test_conv2d_frozen_and_unwanted_gradients_are_left_alone(case):
    op, shape = CONV_CASES[case]
    _check_frozen(op, shape)


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_backward_count(case):
    """For either gradient performed + padded == the forward MACs of the cost rule; performed is
    the in-bounds taps (counted independently: ones convolved with ones by the reference), so
    padded > 0 exactly where some tap lands on padding, which it does where there is top or left
    padding."""
    op, shape = CONV_CASES[case]
    out_shape = op.infer((shape,))
    params = init_params(op, (shape,), out_shape, np.random.default_rng(0))
    counts = _adapter(op).backward_count(op, params, (shape,), out_shape, True, True)
    data_performed, data_padded, weight_performed, weight_padded = counts
    macs = op.cost((shape,), out_shape).macs
    assert data_performed + data_padded == macs
    assert weight_performed + weight_padded == macs
    ones = {"weight": np.ones(params["weight"].shape, np.float32)}
    plain = ops.Conv2d(op.out_channels, op.kernel, op.stride, op.padding, op.dilation, op.groups, bias=False)
    taps = int(reference.conv2d(plain, np.ones(shape), ones).sum())
    assert data_performed == weight_performed == taps
    assert (data_padded > 0) == (weight_padded > 0) == (taps < macs)
    top, _, left, _ = op.pads(shape[2], shape[3])
    if top or left:
        assert data_padded > 0
    assert _adapter(op).backward_count(op, params, (shape,), out_shape, False, True) == (0, 0, *counts[2:])
    assert _adapter(op).backward_count(op, params, (shape,), out_shape, True, False) == (*counts[:2], 0, 0)


# --- ConvTranspose2d ---------------------------------------------------------------------------

T = ops.ConvTranspose2d
CONVT_CASES = {
    **CONVT_FULL,
    "dilation (2, 3), stride (3, 2), output_padding (2, 1)": (T(4, 3, stride=(3, 2), dilation=(2, 3), padding=(1, 2),
                                                                 output_padding=(2, 1)), (2, 3, 4, 5)),
    "groups 3, (3, 2), padding past a tap's reach": (T(6, (3, 2), stride=2, padding=(3, 0, 0, 2), groups=3),
                                                     (1, 6, 5, 4)),
}


@pytest.mark.parametrize("case", CONVT_CASES)
def test_conv_transpose2d_backward(case):
    check_backward(*CONVT_CASES[case])


@pytest.mark.parametrize("case", ["4x4/2 pad 1 (DCGAN)", "depthwise", "wide: 24 -> 20 channels"])
def test_conv_transpose2d_frozen_and_unwanted_gradients_are_left_alone(case):
    _check_frozen(*CONVT_CASES[case])


@pytest.mark.parametrize("case", CONVT_CASES)
def test_conv_transpose2d_backward_count(case):
    """For either gradient performed + padded == the forward MACs, performed the (input, tap)
    pairs landing inside the output (ones scattered with ones by the reference)."""
    op, shape = CONVT_CASES[case]
    out_shape = op.infer((shape,))
    params = init_params(op, (shape,), out_shape, np.random.default_rng(0))
    counts = _adapter(op).backward_count(op, params, (shape,), out_shape, True, True)
    macs = op.cost((shape,), out_shape).macs
    assert counts[0] + counts[1] == counts[2] + counts[3] == macs
    plain = T(op.out_channels, op.kernel, op.stride, op.padding, op.output_padding, op.dilation, op.groups,
              bias=False)
    ones = {"weight": np.ones(params["weight"].shape, np.float32)}
    landed = int(reference.forward(plain, [np.ones(shape)], ones, out_shape).sum())
    assert counts[0] == counts[2] == landed
    assert (counts[1] > 0) == (counts[3] > 0) == (landed < macs)
    assert _adapter(op).backward_count(op, params, (shape,), out_shape, False, True) == (0, 0, *counts[2:])
    assert _adapter(op).backward_count(op, params, (shape,), out_shape, True, False) == (*counts[:2], 0, 0)


def test_conv_transpose2d_forward_is_the_conv_data_gradient():
    """The transposed conv of x with weight W is the data gradient, for grad_out x, of the conv
    with weight W whose input has the transposed conv's output shape (PyTorch's definition)."""
    op, shape = CONVT_CASES["3x3/2 pad 1 output_padding 1"]
    params, x, _ = _problem(op, shape)
    out_shape = op.infer((shape,))
    conv = C(shape[1], op.kernel, op.stride, op.padding, op.dilation, op.groups, bias=False)
    assert conv.infer((out_shape,))[2:] == shape[2:]
    dx, _ = grad_ref.conv2d_backward(conv, {"weight": params["weight"]}, np.zeros(out_shape), x.astype(np.float64),
                                     True, ())
    bias = params["bias"].astype(np.float64)[None, :, None, None]
    _close(reference.forward(op, [x], params, out_shape), dx + bias, tol=1e-12)


# --- Linear ------------------------------------------------------------------------------------

@pytest.mark.parametrize("features,shape,bias", LINEAR_CASES)
def test_linear_backward(features, shape, bias):
    check_backward(ops.Linear(features, bias=bias), shape)


def test_linear_frozen_and_unwanted_gradients_are_left_alone():
    _check_frozen(ops.Linear(67), (2, 3, 4, 9))


@pytest.mark.parametrize("features,shape,bias", LINEAR_CASES)
def test_linear_backward_count(features, shape, bias):
    op = ops.Linear(features, bias=bias)
    out_shape = op.infer((shape,))
    macs = op.cost((shape,), out_shape).macs
    adapter = _adapter(op)
    assert adapter.backward_count(op, {}, (shape,), out_shape, True, True) == (macs, 0, macs, 0)
    assert adapter.backward_count(op, {}, (shape,), out_shape, False, True) == (0, 0, macs, 0)
    assert adapter.backward_count(op, {}, (shape,), out_shape, True, False) == (macs, 0, 0, 0)


# --- pooling -----------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", POOL_MAPS, ids=str)
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_backward(case, shape):
    op = ops.MaxPool2d(**POOL_CASES[case])
    params, x, gy, out, extras = check_backward(op, shape)
    index = extras["indices"]
    assert np.array_equal(index, grad_ref.max_pool_indices(op, x.astype(np.float64), out.shape[2:]))
    planes = x.reshape(x.shape[0] * x.shape[1], -1)
    winners = np.take_along_axis(planes, index.reshape(planes.shape[0], -1), axis=1)
    assert np.array_equal(winners, out.reshape(planes.shape[0], -1))  # each index holds its output's value


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool_ties_go_to_the_first_cell_scanned(case):
    """Inputs from {0, 1, 2} tie in most windows (a constant map in all): the index is the first
    maximum in row-major order, as the forward kernel scans, and the gradient goes there alone."""
    op = ops.MaxPool2d(**POOL_CASES[case])
    rng = np.random.default_rng(5)
    for x in (rng.integers(0, 3, (2, 3, 10, 10)).astype(np.float32), np.full((1, 2, 7, 9), -2.5, np.float32)):
        gy = _random(op.infer((x.shape,)), rng)
        dx = np.zeros_like(x)
        out, extras = _backward(op, {}, x, gy, dx, {})
        assert np.array_equal(extras["indices"], grad_ref.max_pool_indices(op, x.astype(np.float64), out.shape[2:]))
        (ref_dx,), _ = grad_ref.backward(op, {}, [x], out, gy, [True], ())
        _close(dx, ref_dx)


def test_max_pool_indices_never_point_at_padding():
    """On a map below -1 a zero from the padding would win: every index is a cell of the input
    holding the output's value."""
    op = ops.MaxPool2d(3, 2, padding=1)
    x = -np.abs(_random((1, 1, 4, 4), np.random.default_rng(0))) - 1.0
    out, extras = _train_forward(op, {}, x)
    index = extras["indices"].reshape(-1)
    assert ((index >= 0) & (index < 16)).all() and (out < -1.0).all()
    assert (x.reshape(-1)[index] == out.reshape(-1)).all()
    assert np.array_equal(extras["indices"], grad_ref.max_pool_indices(op, x.astype(np.float64), out.shape[2:]))


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("shape", POOL_MAPS, ids=str)
@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool_backward(case, shape, include_pad):
    check_backward(ops.AvgPool2d(**POOL_CASES[case], count_include_pad=include_pad), shape)


@pytest.mark.parametrize("shape", GLOBAL_POOL_MAPS, ids=str)
def test_global_avg_pool_backward(shape):
    check_backward(ops.GlobalAvgPool(), shape)


@pytest.mark.parametrize("op", [ops.MaxPool2d(3, 2, 1, ceil_mode=True), ops.AvgPool2d(3, 2, 1, ceil_mode=True),
                                ops.GlobalAvgPool()], ids=lambda op: op.kind)
def test_pool_without_input_gradient_does_nothing(op):
    x = _random((1, 2, 7, 9), np.random.default_rng(0))
    gy = _random(op.infer((x.shape,)), np.random.default_rng(1))
    before = x.copy()
    _backward(op, {}, x, gy, None, {})
    assert np.array_equal(x, before)


def test_avg_pool_divisor_by_hand():
    """PyTorch (ceil mode, 4x4, k3 s2 p1): the bottom-right window holds rows/cols 3..4 of which 4
    is padding; it divides by 4 with count_include_pad, by 1 (only x[3, 3]) without. With grad_out
    one at that window only, x[3, 3]'s gradient is 1/4 or 1; the top-left window (cells 0..1, 9
    with padding, 4 without) puts 1/9 or 1/4 on x[0, 0]."""
    x = np.arange(1.0, 17.0, dtype=np.float32).reshape(1, 1, 4, 4)
    for include_pad, corner, first in ((True, 1 / 4, 1 / 9), (False, 1.0, 1 / 4)):
        op = ops.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=include_pad)
        gy = np.zeros((1, 1, 3, 3), np.float32)
        gy[0, 0, 2, 2] = 1.0
        gy[0, 0, 0, 0] = 1.0
        dx = np.zeros_like(x)
        _backward(op, {}, x, gy, dx, {})
        (ref_dx,), _ = grad_ref.backward(op, {}, [x], None, gy, True, ())
        for grad in (dx, ref_dx):
            assert np.isclose(grad[0, 0, 3, 3], corner) and np.isclose(grad[0, 0, 0, 0], first)


# --- frozen params, unwanted gradients, accumulation ------------------------------------------

def _check_frozen(op, shape):
    """Bias trained, weight frozen: only the bias gradient is written (the weight gradient needs
    the input, which is then not kept: input None). No params trained and no input gradient:
    nothing written, nothing read from the input. Params are never modified. A second backward
    adds again into grad_inputs and writes the same param gradients (overwrite, not +=)."""
    params, x, gy = _problem(op, shape)
    before = {name: p.copy() for name, p in params.items()}
    (ref_dx,), ref = grad_ref.backward(op, params, [x], None, gy, [True], True)

    dx = np.zeros_like(x)
    grads = {"bias": np.full(params["bias"].shape, np.nan, np.float32)}
    _backward(op, params, x, gy, dx, grads, keep_input=False)
    assert set(grads) == {"bias"}
    _close(grads["bias"], ref["bias"])
    _close(dx, ref_dx)

    out, extras = _train_forward(op, params, x)
    _adapter(op).backward(op, params, [None], out, extras, gy, [None], {})
    for name in params:
        assert np.array_equal(params[name], before[name])

    grads = {"weight": np.full(params["weight"].shape, 7.0, np.float32)}
    _adapter(op).backward(op, params, [x], out, extras, gy, [dx], grads)
    _adapter(op).backward(op, params, [x], out, extras, gy, [dx], grads)
    _close(grads["weight"], ref["weight"])
    _close(dx, 3 * ref_dx)


STRIDED_CASES = [
    (C(40, 3, padding=1), (2, 6, 7, 9)),
    (C(12, 3, stride=2, padding=1, groups=12), (1, 12, 9, 9)),
    (ops.Linear(67), (2, 3, 4, 9)),
    (ops.MaxPool2d(3, 2, 1, ceil_mode=True), (2, 3, 10, 10)),
    (ops.AvgPool2d(3, 2, 1), (2, 3, 10, 10)),
    (ops.GlobalAvgPool(), (2, 5, 7, 6)),
    (ops.ConvTranspose2d(6, 3, stride=2, padding=1, output_padding=1, groups=2), (2, 4, 5, 5)),
]


@pytest.mark.parametrize("op,shape", STRIDED_CASES, ids=_case_id)
def test_gradients_into_strided_views(op, shape):
    """grad_inputs and param_grads that are strided views of larger buffers still get += and =."""
    params, x, gy = _problem(op, shape)
    (ref_dx,), ref = grad_ref.backward(op, params, [x], None, gy, [True], True)
    rng = np.random.default_rng(4)
    big = _random((2, *shape), rng)
    base = big.copy()
    dx = big[1][..., ::-1]  # reversed last axis: not C-contiguous
    holders = {name: np.full((*p.shape, 2), np.nan, np.float32) for name, p in params.items()}
    grads = {name: h[..., 0] for name, h in holders.items()}
    _backward(op, params, x, gy, dx, grads)
    assert np.array_equal(big[0], base[0])
    _close(dx - base[1][..., ::-1], ref_dx)
    for name in grads:
        _close(holders[name][..., 0], ref[name])
        assert np.isnan(holders[name][..., 1]).all()


# --- the references against finite differences ------------------------------------------------

def _numeric(loss, array, eps=1e-6):
    """Central differences of ``loss()`` in each element of ``array`` (perturbed in place)."""
    grad = np.zeros_like(array)
    for i in np.ndindex(array.shape):
        keep = array[i]
        array[i] = keep + eps
        up = loss()
        array[i] = keep - eps
        down = loss()
        array[i] = keep
        grad[i] = (up - down) / (2 * eps)
    return grad


def _distinct(shape, rng):
    """Values at least 0.1 apart: no max-pool window changes its winner under a 1e-6 step."""
    return (rng.permutation(int(np.prod(shape))).reshape(shape) * 0.1 - 1.0 + rng.uniform(0, 0.01, shape))


FD_OPS = [
    (C(4, 3, stride=2, padding=(1, 0, 2, 1), groups=2), (1, 4, 5, 6)),
    (C(3, 3, dilation=2, padding="same", groups=3), (2, 3, 5, 5)),
    (C(2, (2, 3), stride=(1, 2), padding=1, bias=False), (1, 3, 4, 5)),
    (ops.Linear(4), (2, 3, 5)),
    (ops.Linear(3, bias=False), (2, 6)),
    (ops.MaxPool2d(3, 2, padding=1, ceil_mode=True), (1, 2, 5, 6)),
    (ops.MaxPool2d((3, 2), (2, 1), padding=(0, 1, 1, 0)), (1, 2, 6, 5)),
    (ops.AvgPool2d(3, 2, padding=1, ceil_mode=True), (1, 2, 5, 6)),
    (ops.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False), (1, 2, 5, 6)),
    (ops.AvgPool2d(3, 2, padding=(0, 1, 1, 0), count_include_pad=False), (1, 1, 6, 5)),
    (ops.GlobalAvgPool(), (2, 3, 3, 4)),
    (ops.ConvTranspose2d(4, 3, stride=2, padding=(1, 0, 2, 1), output_padding=1, groups=2), (1, 4, 3, 4)),
    (ops.ConvTranspose2d(2, (2, 3), stride=(3, 1), dilation=(1, 2), padding=1, bias=False), (1, 3, 3, 3)),
]


@pytest.mark.parametrize("op,shape", FD_OPS, ids=_case_id)
def test_reference_matches_finite_differences(op, shape):
    """L = sum(forward(x, params) * R): the reference's gradients of L in x and in every param
    equal central differences of the float64 forward reference."""
    rng = np.random.default_rng(11)
    out_shape = op.infer((shape,))
    params = {k: v.astype(np.float64) for k, v in init_params(op, (shape,), out_shape, rng).items()}
    x = _distinct(shape, rng)
    r = rng.standard_normal(out_shape)

    def loss():
        return float((reference.forward(op, [x], params, out_shape) * r).sum())

    (dx,), grads = grad_ref.backward(op, params, [x], None, r, [True], True)
    assert set(grads) == set(params)
    _close(dx, _numeric(loss, x), tol=FD_TOL)
    for name, p in params.items():
        _close(grads[name], _numeric(loss, p), tol=FD_TOL)


def test_reference_respects_what_is_wanted():
    op, shape = CONV_CASES["3x3 pad 1"]
    params, x, gy = _problem(op, shape)
    (dx,), grads = grad_ref.backward(op, params, [x], None, gy, [False], ["bias"])
    assert dx is None and set(grads) == {"bias"}
    (dx,), grads = grad_ref.backward(op, params, [x], None, gy, True, None)
    assert dx is not None and grads == {}

