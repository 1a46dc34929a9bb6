"""The cuda backend's training kernels (``train_forward``, ``backward``, ``backward_count`` of the
adapters in archcost/kernels/cuda/, plus ``DropoutTrain`` and ``SoftmaxCrossEntropy``) against the
float64 references of archcost/kernels/reference_grad_{conv,pointwise,tensor}.py (themselves
checked against finite differences by the cpu backward tests), on random (never zero) inputs.

Every op runs through ``check``: its training forward on device arrays against the reference's
(the kept extras too), then its backward handed only what the op keeps under the "archcost"
saving policy (``op.saves``; the rest None), into input gradients pre-filled with random values
(they must accumulate, +=) and parameter gradients pre-filled with NaN (they must be overwritten,
=). Frozen parameters (absent from param_grads) must get nothing and params never change (but
batch norm's running statistics, updated as the reference does).

Without a GPU these run on numba-cuda's simulator (tests/conftest.py sets NUMBA_ENABLE_CUDASIM=1
before numba.cuda is imported), which runs every CUDA thread as a Python thread: shapes stay at a
few channels and maps of a few pixels, and blocks of 32 threads (tiny GEMM tiles for the conv
forward) so that the larger gradients span several blocks.
"""

import math

import numpy as np
import pytest

from archcost import ops
from archcost.cost import Saved
from archcost.errors import ArchcostError
from archcost.execute import buffer_names, init_params
from archcost.kernels import reference
from archcost.kernels import reference_grad_conv as ref_conv
from archcost.kernels import reference_grad_pointwise as ref_pointwise
from archcost.kernels import reference_grad_tensor as ref_tensor
from archcost.kernels.cuda import _numba
from tests.kernels.cases import CONVT_SMALL, PAD_CASES, POOL_CASES, RESIZE_CASES

pytestmark = pytest.mark.cuda

if _numba.cuda is None:  # pragma: no cover - CI installs the cuda extra
    pytest.skip(f"CUDA kernel tests need numba-cuda: {_numba.IMPORT_ERROR}", allow_module_level=True)

from archcost.kernels import cpu  # noqa: E402
from archcost.kernels.cuda import backend, config  # noqa: E402
from archcost.kernels.cuda.pointwise import SoftmaxCrossEntropy  # noqa: E402

cuda = _numba.cuda
TOL = 1e-5  # float32 kernels (float64 sums) vs the float64 references, relative to the largest |reference|
FORWARD_TOL = 2e-6
CONV_OPS = (ops.Conv2d, ops.ConvTranspose2d, ops.Linear, ops.MaxPool2d, ops.AvgPool2d, ops.GlobalAvgPool)
POINTWISE_OPS = (ops.Activation, ops.BatchNorm, ops.LayerNorm, ops.GroupNorm, ops.LRN, ops.Scale, ops.Softmax, ops.Dropout)


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr(config, "THREADS", 32)
    monkeypatch.setattr(config, "REDUCE_THREADS", 4)
    monkeypatch.setattr(config, "GEMM_BLOCK", (4, 2))
    monkeypatch.setattr(config, "GEMM_WORK", (2, 2))
    monkeypatch.setattr(config, "GEMM_DEPTH", 4)
    monkeypatch.setattr(config, "GEMV_MAX_ROWS", 2)


def _random(shape, rng, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _close(got, ref, tol=TOL, what=""):
    """``got`` within ``tol`` of ``ref``, relative to ref's largest magnitude (absolute where ref is
    all zero: a grid's gradient on a 1x1 input with align_corners)."""
    got = np.asarray(got)
    assert got.shape == ref.shape, what
    assert np.isfinite(got).all(), f"{what}: a NaN left: some element was never written"
    scale = float(np.abs(ref).max())
    err = float(np.abs(got.astype(np.float64) - ref).max()) / (scale if scale > 0 else 1.0)
    assert err < tol, f"{what}: relative error {err:.2e}"


def _dev(a):
    return cuda.to_device(np.ascontiguousarray(a))


def _adapter(op):
    return backend.ADAPTERS[type(op)]


def _host_inputs(op, in_shapes, rng, scale):
    if isinstance(op, ops.GridSample):  # grid points in [-1.6, 1.6]: some half or wholly outside
        return [_random(in_shapes[0], rng), rng.uniform(-1.6, 1.6, in_shapes[1]).astype(np.float32)]
    return [_random(s, rng, scale) for s in in_shapes]


def _params(op, in_shapes, out_shape, rng):
    params = init_params(op, in_shapes, out_shape, rng)
    if isinstance(op, ops.BatchNorm):  # running statistics away from the defaults
        params["mean"] = _random(out_shape[1], rng)
        params["var"] = rng.uniform(0.5, 2.0, out_shape[1]).astype(np.float32)
    return params


def _extras(op, saved, out_shape, rng):
    """Host arrays of the tensors the op keeps besides inputs and output: NaN or -1, so a cell
    never written shows; dropout's mask pre-filled with 0/1, as the executor does."""
    extras = {}
    for name, shape, dtype in saved.extras:
        if name == "mask":
            extras[name] = (rng.random(shape) >= op.p).astype(np.uint8)
        elif np.dtype(dtype).kind == "f":
            extras[name] = np.full(shape, np.nan, dtype)
        else:
            extras[name] = np.full(shape, -1, dtype)
    return extras


def _reference_extras(op, xs, extras):
    """Dropout with p = 0 keeps no mask: to the reference, a mask of ones."""
    if isinstance(op, ops.Dropout) and "mask" not in extras:
        return {"mask": np.ones(xs[0].shape, np.uint8)}
    return extras


def _reference_train_forward(op, params, xs, out_shape, extras):
    """(out, kept extras, running-statistic updates) of the float64 references."""
    extras = _reference_extras(op, xs, extras)
    if isinstance(op, POINTWISE_OPS):
        return ref_pointwise.train_forward(op, params, xs, extras)
    out = reference.forward(op, xs, params, out_shape)
    kept = {}
    if isinstance(op, ops.MaxPool2d):
        kept["indices"] = ref_conv.max_pool_indices(op, xs[0].astype(np.float64), out_shape[2:])
    if isinstance(op, ops.Maxout):
        x = xs[0]
        kept["indices"] = np.argmax(x.reshape(x.shape[0], -1, op.pieces, *x.shape[2:]), axis=2)
    return out, kept, {}


def _reference_backward(op, params, xs, out, gy, want, names, extras):
    if isinstance(op, CONV_OPS):
        return ref_conv.backward(op, params, xs, out, gy, want, names)
    if isinstance(op, POINTWISE_OPS):
        return ref_pointwise.backward(op, params, xs, out, gy, want, names, _reference_extras(op, xs, extras))
    return ref_tensor.backward(op, params, xs, out, gy, want, names)


class Trip:
    """One training forward and backward of an op's cuda adapter on device arrays, checked against
    the references; the device arrays stay for further checks (a second backward, ...)."""

    def __init__(self, op, *in_shapes, want=None, names=None, seed=0, scale=1.0, xs=None, params=None,
                 in_place=False, saved=None, tol=TOL):
        rng = np.random.default_rng(seed)
        self.op, self.adapter, self.tol = op, _adapter(op), tol
        out_shape = op.infer(tuple(in_shapes))
        self.xs = _host_inputs(op, in_shapes, rng, scale) if xs is None else xs
        self.params = _params(op, in_shapes, out_shape, rng) if params is None else params
        self.params_before = {k: v.copy() for k, v in self.params.items()}
        self.want = [True] * len(in_shapes) if want is None else list(want)
        trainable = [k for k in self.params if k not in buffer_names(op)]
        self.names = trainable if names is None else list(names)
        if saved is None:  # what the op keeps, given what is wanted
            saved = op.saves(tuple(in_shapes), out_shape, "archcost", tuple(self.want), bool(self.names))
        self.saved = saved
        extras = _extras(op, self.saved, out_shape, rng)

        # training forward
        self.d_xs = [_dev(x) for x in self.xs]
        self.d_extras = {k: _dev(v) for k, v in extras.items()}
        self.d_out = self.d_xs[0] if in_place else _dev(np.full(out_shape, np.nan, np.float32))
        self.adapter.train_forward(op, self.params, self.d_xs, self.d_out, self.d_extras)
        self.out = self.d_out.copy_to_host()
        self.ref_out, ref_extras, updates = _reference_train_forward(op, self.params_before, self.xs, out_shape,
                                                                     extras)
        _close(self.out, self.ref_out, FORWARD_TOL, "forward")
        for name, d in self.d_extras.items():  # what it keeps, as the reference has it
            got, value = d.copy_to_host(), ref_extras[name]
            if got.dtype.kind == "f":
                _close(got, value, FORWARD_TOL, name)
            else:
                assert np.array_equal(got, value), name
        for name, value in updates.items():  # batch norm's running statistics, updated in place
            _close(self.params[name], value, FORWARD_TOL, name)
        for name in self.params:
            if name not in updates:
                assert np.array_equal(self.params[name], self.params_before[name]), f"{name} changed"

        # backward
        self.gy = _random(out_shape, rng)
        self.d_gy = _dev(self.gy)
        self.ref_in, self.ref_p = _reference_backward(op, self.params_before, self.xs, self.ref_out, self.gy,
                                                      self.want, self.names, extras)
        compared = [r for r in self.ref_in if r is not None] + list(self.ref_p.values())
        assert not compared or any(np.abs(r).max() > 0 for r in compared), "all-zero gradients prove nothing"
        self.bases = [_random(x.shape, rng, max(1e-3, float(np.abs(r).max()))) if w else None
                      for x, w, r in zip(self.xs, self.want, self.ref_in)]
        self.d_grads = [None if b is None else _dev(b) for b in self.bases]
        self.d_pgrads = {k: _dev(np.full(self.params[k].shape, np.nan, np.float32)) for k in self.names}
        self.backward()
        self.check(1)

    def backward(self):
        kept_inputs = [x if i in self.saved.inputs else None for i, x in enumerate(self.d_xs)]
        kept_out = self.d_out if self.saved.output else None
        self.adapter.backward(self.op, self.params, kept_inputs, kept_out, self.d_extras, self.d_gy, self.d_grads,
                              self.d_pgrads)
        assert set(self.d_pgrads) == set(self.names), "the backward added or dropped a param gradient"
        for name, value in self.params.items():
            if name not in ("mean", "var"):
                assert np.array_equal(value, self.params_before[name]), f"param {name} changed"

    def check(self, times):
        """After ``times`` backwards: the input gradients hold base + times * reference (+=), the
        param gradients the reference once (=)."""
        for i, (d, base, ref) in enumerate(zip(self.d_grads, self.bases, self.ref_in)):
            if d is None:
                assert ref is None
                continue
            _close(d.copy_to_host().astype(np.float64) - base, times * ref, self.tol, f"input {i} gradient")
        for name, d in self.d_pgrads.items():
            if name in self.ref_p:
                _close(d.copy_to_host(), self.ref_p[name], self.tol, f"param {name} gradient")
            else:  # a buffer named anyway (fixed RBF centres): never written
                assert np.isnan(d.copy_to_host()).all(), name
        return self

    def again(self):
        """A second backward into the same buffers: input gradients add again, params overwrite."""
        self.backward()
        return self.check(2)


# --- Conv2d, Linear -------------------------------------------------------------------------

C = ops.Conv2d
CONV_CASES = {
    "3x3 pad 1": (C(4, 3, padding=1), (2, 3, 5, 5)),
    "stride 2, asymmetric padding": (C(3, 3, stride=2, padding=(0, 1, 2, 0)), (1, 2, 6, 7)),
    "same, even kernel": (C(3, 4, padding="same"), (1, 2, 5, 6)),
    "same, dilation 2": (C(3, 3, dilation=2, padding="same"), (1, 2, 6, 5)),
    "depthwise stride 2": (C(4, 3, stride=2, padding=1, groups=4), (1, 4, 6, 6)),
    "groups 2, (3, 2) stride (2, 1) dilation (1, 2)": (C(4, (3, 2), stride=(2, 1), dilation=(1, 2), padding=(1, 2),
                                                          groups=2), (2, 4, 5, 6)),
    "1x1 stride 3, no bias": (C(3, 1, stride=3, bias=False), (1, 3, 7, 7)),
    "kernel larger than the input": (C(2, 5, padding=2, bias=False), (2, 2, 2, 3)),
    "bottom/right padding past the last window": (C(2, 3, stride=2, padding=(0, 3, 0, 3)), (1, 2, 5, 5)),
}
LINEAR_CASES = [(5, (3, 7), True), (4, (2, 3, 6), False), (3, (1, 9), True)]


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d(case):
    Trip(*CONV_CASES[case])


@pytest.mark.parametrize("case", CONV_CASES)
def test_conv2d_backward_count(case):
    """The cpu's counts (the same (output, tap) pairs) with performed + padded == the forward MACs
    for either gradient, and performed == the taps on the input (ones convolved with ones)."""
    op, shape = CONV_CASES[case]
    out_shape = op.infer((shape,))
    counts = _adapter(op).backward_count(op, {}, (shape,), out_shape, True, True)
    assert counts == cpu.ADAPTERS[ops.Conv2d].backward_count(op, {}, (shape,), out_shape, True, True)
    macs = op.cost((shape,), out_shape).macs
    assert counts[0] + counts[1] == counts[2] + counts[3] == macs
    plain = ops.Conv2d(op.out_channels, op.kernel, op.stride, op.padding, op.dilation, op.groups, bias=False)
    ones = {"weight": np.ones((op.out_channels, shape[1] // op.groups, *op.kernel), np.float32)}
    assert counts[0] == counts[2] == int(reference.conv2d(plain, np.ones(shape), ones).sum())
    assert _adapter(op).backward_count(op, {}, (shape,), out_shape, False, True) == (0, 0, *counts[2:])
    assert _adapter(op).backward_count(op, {}, (shape,), out_shape, True, False) == (*counts[:2], 0, 0)


@pytest.mark.parametrize("features,shape,bias", LINEAR_CASES)
def test_linear(features, shape, bias):
    op = ops.Linear(features, bias=bias)
    Trip(op, shape)
    out_shape = op.infer((shape,))
    macs = op.cost((shape,), out_shape).macs
    assert _adapter(op).backward_count(op, {}, (shape,), out_shape, True, True) == (macs, 0, macs, 0)
    assert _adapter(op).backward_count(op, {}, (shape,), out_shape, False, True) == (0, 0, macs, 0)


@pytest.mark.parametrize("op,shape", [CONV_CASES["3x3 pad 1"], CONV_CASES["depthwise stride 2"],
                                      (ops.Linear(4), (2, 3, 6))], ids=["conv", "depthwise", "linear"])
def test_conv_linear_frozen_weight_accumulate_and_overwrite(op, shape):
    """Weight frozen (its gradient needs the input, which is then not kept): only the bias is
    written. Nothing trained and no input gradient: nothing happens. Twice into the same buffers:
    the input gradient adds again, the param gradients are overwritten."""
    trip = Trip(op, shape, names=["bias"], saved=Saved())  # the input not kept
    _adapter(op).backward(op, trip.params, [None], None, {}, trip.d_gy, [None], {})
    trip.again()
    Trip(op, shape, want=[False], names=["weight"]).again()


# --- ConvTranspose2d --------------------------------------------------------------------------

@pytest.mark.parametrize("case", CONVT_SMALL)
def test_conv_transpose2d(case):
    Trip(*CONVT_SMALL[case])


@pytest.mark.parametrize("case", ["4x4/2 pad 1 (DCGAN)", "depthwise"])
def test_conv_transpose2d_frozen_weight_accumulate_and_overwrite(case):
    """As for conv: weight frozen (its input then not kept), only the bias is written; twice into
    the same buffers, the input gradient adds again and the param gradients are overwritten."""
    op, shape = CONVT_SMALL[case]
    Trip(op, shape, names=["bias"], saved=Saved()).again()
    Trip(op, shape, want=[False], names=["weight"]).again()


@pytest.mark.parametrize("case", CONVT_SMALL)
def test_conv_transpose2d_backward_count(case):
    """The cpu's counts, performed + padded == the forward MACs for either gradient."""
    op, shape = CONVT_SMALL[case]
    out_shape = op.infer((shape,))
    counts = _adapter(op).backward_count(op, {}, (shape,), out_shape, True, True)
    assert counts == cpu.ADAPTERS[ops.ConvTranspose2d].backward_count(op, {}, (shape,), out_shape, True, True)
    macs = op.cost((shape,), out_shape).macs
    assert counts[0] + counts[1] == counts[2] + counts[3] == macs


# --- pooling --------------------------------------------------------------------------------

POOL_MAP = (1, 2, 7, 8)


@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool(case):
    Trip(ops.MaxPool2d(**POOL_CASES[case]), POOL_MAP)


@pytest.mark.parametrize("include_pad", [True, False])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool(case, include_pad):
    Trip(ops.AvgPool2d(**POOL_CASES[case], count_include_pad=include_pad), POOL_MAP)


@pytest.mark.parametrize("shape", [(2, 3, 3, 4), (1, 3, 1, 1)])
def test_global_avg_pool(shape):
    Trip(ops.GlobalAvgPool(), shape)


@pytest.mark.parametrize("case", ["3x3/2 pad 1 ceil", "3x3/1 pad 1", "asymmetric padding"])
def test_max_pool_ties_go_to_the_first_cell_scanned(case):
    """Inputs from {0, 1, 2} tie in most windows: the index is the first maximum in row-major order
    (checked by Trip against the reference's), and the gradient goes there alone."""
    x = np.random.default_rng(5).integers(0, 3, POOL_MAP).astype(np.float32)
    Trip(ops.MaxPool2d(**POOL_CASES[case]), POOL_MAP, xs=[x])


def test_max_pool_indices_never_point_at_padding():
    op = ops.MaxPool2d(3, 2, padding=1)
    x = -np.abs(_random((1, 1, 4, 4), np.random.default_rng(0))) - 1.0
    trip = Trip(op, x.shape, xs=[x])
    index = trip.d_extras["indices"].copy_to_host().reshape(-1)
    assert ((index >= 0) & (index < 16)).all() and (x.reshape(-1)[index] == trip.out.reshape(-1)).all()


# --- activations ----------------------------------------------------------------------------

ACTIVATION_CASES = [(fn, s) for fn in ops.ACTIVATIONS for s in (0.2, -0.3) if not (fn == "elu" and s < 0)]
ACTIVATION_CASES += [("leaky_relu", 0.0), ("elu", 1.0)]


@pytest.mark.parametrize("fn,slope", ACTIVATION_CASES)
def test_activation(fn, slope):
    # scale 4 reaches relu6's, hardswish's and hardsigmoid's clipped ranges and saturates the rest
    op = ops.Activation(fn, slope=slope)
    trip = Trip(op, (2, 3, 5), scale=4.0)
    assert trip.saved.output == op.keeps_output() and trip.saved.inputs == (() if op.keeps_output() else (0,))


def test_activation_derivatives_at_the_kinks_follow_pytorch():
    x = np.array([-3.0, 0.0, 3.0, 6.0], np.float32)
    expected = {"relu": [0, 0, 1, 1], "relu6": [0, 0, 1, 0], "leaky_relu": [0.5, 0.5, 1, 1],
                "elu": [0.5 * math.exp(-3.0), 0.5, 1, 1], "hardswish": [-0.5, 0.5, 1.5, 1],
                "hardsigmoid": [0, 1 / 6, 0, 0]}
    for fn, values in expected.items():
        op = ops.Activation(fn, slope=0.5)
        y = _dev(reference.forward(op, [x], {}, x.shape).astype(np.float32))
        dx = _dev(np.zeros_like(x))
        keep_out = op.keeps_output()
        _adapter(op).backward(op, {}, [None if keep_out else _dev(x)], y if keep_out else None, {},
                              _dev(np.ones_like(x)), [dx], {})
        np.testing.assert_allclose(dx.copy_to_host(), values, rtol=1e-6, err_msg=fn)


def test_activation_train_forward_in_place():
    """In place (out is the input's buffer): relu, which keeps its output, forward and backward;
    gelu, which keeps its input and so never runs in place in training, the forward."""
    Trip(ops.Activation("relu"), (3, 10), scale=3.0, in_place=True)
    op = ops.Activation("gelu")
    x = _random((3, 10), np.random.default_rng(1), 3.0)
    d_x = _dev(x)
    _adapter(op).train_forward(op, {}, [d_x], d_x, {})
    _close(d_x.copy_to_host(), reference.forward(op, [x], {}, x.shape), FORWARD_TOL)


def test_activation_backward_needs_the_kept_tensor_and_elu_alpha_nonnegative():
    x = _dev(np.ones((2, 3), np.float32))
    adapter = _adapter(ops.Activation())
    with pytest.raises(ArchcostError, match="output"):
        adapter.backward(ops.Activation("relu"), {}, [x], None, {}, x, [_dev(np.zeros((2, 3), np.float32))], {})
    with pytest.raises(ArchcostError, match="alpha"):
        adapter.backward(ops.Activation("elu", slope=-0.5), {}, [None], x, {}, x,
                         [_dev(np.zeros((2, 3), np.float32))], {})
    adapter.backward(ops.Activation("relu"), {}, [None], None, {}, x, [None], {})  # nothing wanted


# --- batch norm, layer norm, LRN, scale, softmax --------------------------------------------

@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(2, 3, 2, 3), (4, 5), (2, 3, 4)])
def test_batch_norm(shape, affine):
    """Batch statistics (mean and invstd kept), the running statistics updated in place as the
    reference (PyTorch) does, and every gradient."""
    Trip(ops.BatchNorm(affine=affine), shape, scale=2.0)


def test_batch_norm_needs_more_than_one_value_per_channel():
    op = ops.BatchNorm()
    params = init_params(op, ((1, 3),), (1, 3), np.random.default_rng(0))
    extras = {"mean": cuda.device_array(3, np.float32), "invstd": cuda.device_array(3, np.float32)}
    with pytest.raises(ArchcostError, match="more than 1 value"):
        _adapter(op).train_forward(op, params, [_dev(np.ones((1, 3), np.float32))],
                                   cuda.device_array((1, 3), np.float32), extras)


@pytest.mark.parametrize("axis,shape", [(-1, (2, 3, 5)), (1, (2, 4, 2, 2)), (2, (2, 3, 4, 2))])
def test_layer_norm(axis, shape):
    Trip(ops.LayerNorm(axis), shape, scale=3.0)


# At least 3 values per group: with 2, x_hat is +-1 and the data gradient cancels to ~0, so an
# error relative to it measures only float32 rounding.
@pytest.mark.parametrize("groups,affine,shape", [(1, True, (2, 4, 2, 3)), (4, True, (2, 4, 2, 3)),
                                                 (2, True, (2, 4, 2, 3)), (2, False, (2, 4, 3)), (2, True, (3, 8))])
def test_group_norm(groups, affine, shape):
    Trip(ops.GroupNorm(groups, affine=affine), shape, scale=3.0)


@pytest.mark.parametrize("size,shape", [(5, (1, 6, 2, 2)), (4, (2, 5, 1, 2)), (1, (1, 3, 2, 2)),
                                        (5, (1, 3, 1, 2))])  # the last: fewer channels than the window
def test_lrn(size, shape):
    Trip(ops.LRN(size, alpha=0.5, beta=0.75, k=1.0), shape, scale=1.5)  # alpha large: cross terms matter


@pytest.mark.parametrize("op,shape", [(ops.Scale(0.8), (2, 3, 2, 2)), (ops.Scale(None), (2, 3, 2, 2)),
                                      (ops.Scale(None, axis=-1), (2, 2, 5)), (ops.Scale(None, axis=2), (2, 2, 3, 2)),
                                      (ops.Scale(None), (3, 5))], ids=str)
def test_scale(op, shape):
    Trip(op, shape)


@pytest.mark.parametrize("axis,shape", [(-1, (3, 5)), (1, (2, 4, 2, 2)), (2, (2, 2, 3, 2))])
def test_softmax(axis, shape):
    Trip(ops.Softmax(axis), shape, scale=3.0)


SEMANTICS_CASES = [(ops.BatchNorm(), (2, 3, 2, 2)), (ops.LayerNorm(-1), (2, 3, 4)), (ops.LayerNorm(1), (2, 4, 2, 1)),
                   (ops.Scale(None, axis=-1), (2, 2, 5)), (ops.Affine(1), (2, 3, 2, 2)),
                   (ops.RBF(3, trainable=True), (3, 4)), (ops.GroupNorm(2), (2, 4, 2, 1))]


@pytest.mark.parametrize("op,shape", SEMANTICS_CASES, ids=str)
def test_input_grads_accumulate_param_grads_overwrite(op, shape):
    Trip(op, shape).again()


@pytest.mark.parametrize("op,shape", SEMANTICS_CASES, ids=str)
def test_frozen_params_are_neither_computed_nor_touched(op, shape):
    """Each trainable param frozen in turn, then all of them; and params without an input gradient."""
    params = init_params(op, (shape,), op.infer((shape,)), np.random.default_rng(0))
    trainable = [k for k in params if k not in buffer_names(op)]
    for frozen in [*([name] for name in trainable), trainable]:
        Trip(op, shape, names=[n for n in trainable if n not in frozen])
    Trip(op, shape, want=[False])


# --- dropout and the loss -------------------------------------------------------------------

@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("p,shape", [(0.3, (2, 5)), (0.5, (2, 3, 2, 2)), (0.0, (3, 4))])
def test_dropout(p, shape, in_place):
    """Dropout in training through its adapter (tensor.ViewKernel hands it to DropoutTrain): the
    executor's pre-filled mask, y = x * mask / (1 - p), and the masked gradient; p = 0 keeps no
    mask and is the identity."""
    trip = Trip(ops.Dropout(p), shape, in_place=in_place)
    if p:
        assert (trip.out[trip.d_extras["mask"].copy_to_host() == 0] == 0).all()
    else:
        assert trip.d_extras == {} and np.array_equal(trip.out, trip.xs[0])


def test_dropout_train_needs_its_mask():
    from archcost.kernels.cuda.pointwise import DropoutTrain

    x = _dev(np.ones((2, 3), np.float32))
    with pytest.raises(ArchcostError, match="mask"):
        DropoutTrain.train_forward(ops.Dropout(0.5), {}, [x], x, {})


@pytest.mark.parametrize("labels_on_device", [False, True])
@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 2, 2)])
def test_softmax_cross_entropy(shape, labels_on_device):
    rng = np.random.default_rng(10)
    logits = _random(shape, rng, 4.0)
    labels = rng.integers(0, shape[1], (shape[0], *shape[2:]))
    probs = _dev(np.full(shape, np.nan, np.float32))
    lab = _dev(labels) if labels_on_device else labels
    loss = SoftmaxCrossEntropy.forward(_dev(logits), lab, probs)
    ref_loss, ref_probs, ref_grad = ref_pointwise.softmax_cross_entropy(logits, labels)
    assert isinstance(loss, float) and abs(loss - ref_loss) < 1e-9 * ref_loss
    _close(probs.copy_to_host(), ref_probs, FORWARD_TOL, "probs")
    base = _random(shape, rng, 1.0 / labels.size)
    grad = _dev(base)
    SoftmaxCrossEntropy.backward(probs, lab, grad)
    _close(grad.copy_to_host().astype(np.float64) - base, ref_grad, TOL, "grad")
    SoftmaxCrossEntropy.backward(probs, lab, grad)  # accumulates
    _close(grad.copy_to_host().astype(np.float64) - base, 2 * ref_grad, TOL, "grad twice")


def test_softmax_cross_entropy_rejects_bad_labels():
    logits = _dev(np.zeros((2, 3), np.float32))
    probs = _dev(np.zeros((2, 3), np.float32))
    for labels in (np.array([0, 3]), np.array([-1, 0]), np.array([[0, 1]]), _dev(np.array([0, 5]))):
        with pytest.raises(ArchcostError, match="labels"):
            SoftmaxCrossEntropy.forward(logits, labels, probs)


# --- views, concat, add, mean, mul, channel pad, permute ------------------------------------

@pytest.mark.parametrize("op,shape", [(ops.Flatten(), (2, 3, 2, 2)), (ops.Reshape((4, -1)), (2, 3, 2, 2)),
                                      (ops.Reshape((2, 3, 2)), (3, 12))], ids=str)
def test_view(op, shape):
    Trip(op, shape)


def test_view_in_place_is_free_both_ways():
    """A view run in place on its input's buffer copies nothing, and a gradient that is a view of
    its input gradient's buffer is already there: not doubled."""
    op, shape = ops.Reshape((4, -1)), (2, 3, 2, 2)
    adapter = _adapter(op)
    x = _dev(_random(shape, np.random.default_rng(1)))
    before = x.copy_to_host()
    adapter.train_forward(op, {}, [x], x.reshape(*op.infer((shape,))), {})
    assert np.array_equal(x.copy_to_host(), before)
    adapter.backward(op, {}, [None], None, {}, x.reshape(*op.infer((shape,))), [x], {})
    assert np.array_equal(x.copy_to_host(), before)


@pytest.mark.parametrize("axis,shapes", [(1, [(2, 2, 2, 2), (2, 3, 2, 2), (2, 1, 2, 2)]), (-1, [(2, 2, 3), (2, 2, 2)]),
                                         (1, [(2, 3), (2, 2)]), (2, [(2, 2, 1, 3), (2, 2, 2, 3)])])
def test_concat(axis, shapes):
    Trip(ops.Concat(axis), *shapes)


@pytest.mark.parametrize("want", [[True, False, True], [False, True, True], [False, False, True], [True, True, False]])
def test_concat_skips_unwanted_inputs(want):
    Trip(ops.Concat(1), (2, 2, 3), (2, 3, 3), (2, 1, 3), want=want)


def test_concat_needs_the_sizes_before_a_wanted_input():
    """Concat keeps nothing: sizes come from the gradient buffers, or from placeholders carrying
    only a shape (any array with the input's shape)."""
    op, shapes = ops.Concat(1), [(2, 3, 4), (2, 5, 4), (2, 2, 4)]
    gy = _random((2, 10, 4), np.random.default_rng(0))
    grads = [None, _dev(np.zeros(shapes[1], np.float32)), None]
    with pytest.raises(ArchcostError, match="offset of input 1 is unknown"):
        _adapter(op).backward(op, {}, [None, None, None], None, {}, _dev(gy), grads, {})
    placeholders = [np.broadcast_to(np.float32(0), s) for s in shapes]
    _adapter(op).backward(op, {}, placeholders, None, {}, _dev(gy), grads, {})
    assert np.array_equal(grads[1].copy_to_host(), gy[:, 3:8])


@pytest.mark.parametrize("op,k", [(ops.Add(), 2), (ops.Add(), 3), (ops.Mean(), 2), (ops.Mean(), 3)], ids=str)
def test_add_mean(op, k):
    Trip(op, *[(2, 3, 4)] * k, want=[True] * (k - 1) + [False])


def test_add_into_one_buffer_twice():
    """x + x: both input gradients are the same buffer; it gets grad_out twice."""
    rng = np.random.default_rng(0)
    gy, acc = _random((2, 6), rng), _random((2, 6), rng)
    d_acc = _dev(acc)
    _adapter(ops.Add()).backward(ops.Add(), {}, [None, None], None, {}, _dev(gy), [d_acc, d_acc], {})
    np.testing.assert_allclose(d_acc.copy_to_host(), acc.astype(np.float64) + 2 * gy, rtol=1e-6)


ADD_SHAPES = [((2, 3, 2, 3), (2, 3, 1, 1)), ((2, 1, 1, 1), (2, 3, 2, 2)), ((3, 5), (3, 1)), ((2, 3, 2), (2, 3, 2)),
              ((1, 3, 1, 2), (2, 1, 3, 2)), ((2, 2, 3, 2, 2), (2, 2, 3, 1, 1))]


@pytest.mark.parametrize("op", [ops.Add(), ops.Sub()], ids=str)
@pytest.mark.parametrize("a,b", ADD_SHAPES, ids=str)
def test_add_sub_broadcast(op, a, b):
    Trip(op, a, b)


@pytest.mark.parametrize("want", [[True, False], [False, True]])
@pytest.mark.parametrize("op", [ops.Add(), ops.Sub()], ids=str)
def test_add_sub_broadcast_one_side(op, want):
    Trip(op, (2, 3, 2, 2), (2, 3, 1, 1), want=want)


MUL_SHAPES = [((2, 3, 2, 3), (2, 3, 1, 1)), ((2, 1, 1, 1), (2, 3, 2, 2)), ((3, 5), (3, 1)), ((2, 3, 2), (2, 3, 2)),
              ((1, 3, 1, 2), (2, 1, 3, 2)), ((2, 3, 4), (2, 1, 4)), ((2, 2, 3, 2, 2), (2, 2, 3, 1, 1)),
              ((2, 3, 1, 2, 2), (1, 3, 1, 2, 2))]


@pytest.mark.parametrize("a,b", MUL_SHAPES, ids=str)
def test_mul(a, b):
    Trip(ops.Mul(), a, b)


@pytest.mark.parametrize("axis,keepdims,shape", [(1, False, (2, 2, 3, 2, 2)), (2, True, (1, 3, 2, 2, 3)),
                                                 (-1, False, (3, 4))], ids=str)
def test_reduce_sum(axis, keepdims, shape):
    Trip(ops.ReduceSum(axis, keepdims), shape)


@pytest.mark.parametrize("want", [[True, False], [False, True]])
def test_mul_one_side(want):
    Trip(ops.Mul(), (2, 3, 2, 2), (2, 3, 1, 1), want=want)


@pytest.mark.parametrize("out_channels,stride,shape", [(5, 1, (2, 3, 3, 3)), (4, 2, (1, 3, 5, 4)),
                                                       (4, 3, (2, 2, 4, 5)), (4, 2, (1, 4, 1, 1))])
def test_channel_pad(out_channels, stride, shape):
    Trip(ops.ChannelPad(out_channels, stride), shape)


@pytest.mark.parametrize("dims,shape", [((0, 2, 3, 1), (2, 3, 2, 4)), ((0, 3, 1, 2), (1, 2, 3, 4)),
                                        ((0, 2, 1), (2, 3, 4)), ((0, 1), (3, 4)),
                                        ((0, 2, 1, 3, 4), (1, 2, 3, 2, 2)),
                                        # 5 or 6 axes left after merging: the 6-axis gathers
                                        ((0, 3, 5, 1, 2, 4), (2, 3, 4, 2, 5, 2)),
                                        ((0, 2, 4, 1, 5, 3), (1, 3, 2, 2, 3, 2)),
                                        ((0, 2, 4, 1, 3), (1, 3, 2, 4, 3))], ids=str)
def test_permute(dims, shape):
    Trip(ops.Permute(dims), shape)


def test_permute_of_7_merged_axes_is_one_error():
    op, shape = ops.Permute((0, 2, 4, 6, 1, 3, 5)), (1, 2, 2, 2, 2, 2, 2)
    g = _dev(_random(op.infer((shape,)), np.random.default_rng(0)))
    with pytest.raises(ArchcostError, match="^permute: the cuda kernels handle up to 6 axes, got 7$"):
        _adapter(op).backward(op, {}, [None], None, {}, g, [_dev(np.zeros(shape, np.float32))], {})


# --- channel select, affine, RBF, maxout, affine grid, grid sample --------------------------

@pytest.mark.parametrize("channels,shape", [((3, 0, 2), (2, 5, 2, 3)), ((1, 0), (3, 4))], ids=str)
def test_channel_select(channels, shape):
    Trip(ops.ChannelSelect(channels), shape)


@pytest.mark.parametrize("names", [("gamma", "beta"), ("gamma",), ("beta",), ()], ids=str)
@pytest.mark.parametrize("axis,shape", [(1, (2, 3, 2, 2)), (-1, (2, 2, 4)), (1, (3, 4))])
def test_affine(axis, shape, names):
    Trip(ops.Affine(axis), shape, names=names)


@pytest.mark.parametrize("trainable", [False, True])
@pytest.mark.parametrize("shape,units", [((3, 8), 4), ((1, 5), 1)])
def test_rbf(shape, units, trainable):
    Trip(ops.RBF(units, trainable=trainable), shape)


def test_rbf_fixed_centres_never_get_a_gradient():
    """Fixed centres are a buffer: even named in param_grads they are not written (Trip checks
    they stay NaN); trainable ones without an input gradient."""
    Trip(ops.RBF(4, trainable=False), (3, 6), names=["centres"])
    Trip(ops.RBF(4, trainable=True), (3, 6), want=[False])


@pytest.mark.parametrize("pieces,shape", [(3, (2, 6, 2, 2)), (1, (1, 3, 2, 2)), (2, (3, 10))])
def test_maxout(pieces, shape):
    Trip(ops.Maxout(pieces), shape)  # the winning pieces against the reference's argmax


def test_maxout_ties_go_to_the_first_piece():
    x = np.array([[2.0, 2.0, 1.0, -1.0, 4.0, 4.0]], np.float32)
    trip = Trip(ops.Maxout(3), x.shape, xs=[x])
    assert trip.out.tolist() == [[2.0, 4.0]] and trip.d_extras["indices"].copy_to_host().tolist() == [[0, 1]]


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(3, 4), (1, 1)], ids=str)
def test_affine_grid(size, align_corners):
    Trip(ops.AffineGrid(*size, align_corners=align_corners), (2, 6))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("x_shape,grid_hw", [((2, 2, 3, 4), (3, 4)), ((1, 2, 1, 1), (2, 2))], ids=str)
def test_grid_sample(x_shape, grid_hw, align_corners):
    Trip(ops.GridSample(align_corners=align_corners), x_shape, (x_shape[0], *grid_hw, 2))


@pytest.mark.parametrize("case", RESIZE_CASES)
def test_resize(case):
    """The gather (one thread per input element over the runs of outputs that read it) against
    the reference's transposed interpolation matrices; nothing is kept."""
    Trip(*RESIZE_CASES[case])


@pytest.mark.parametrize("case", PAD_CASES)
def test_pad(case):
    """The gather (one thread per input element over the outputs that copied it, the host's
    inverted maps) against the reference's transposed 0/1 matrices; nothing is kept."""
    Trip(*PAD_CASES[case])


@pytest.mark.parametrize("want", [[True, False], [False, True]])
def test_grid_sample_one_input(want):
    Trip(ops.GridSample(), (1, 2, 3, 4), (1, 3, 2, 2), want=want)


def test_grid_sample_points_outside_get_no_gradient():
    """Points whose four corners are all outside the input, and NaN points, read zero: no
    gradient to x, none to the grid."""
    x = np.arange(1.0, 7.0, dtype=np.float32).reshape(1, 1, 2, 3)
    grid = np.array([[[[1e30, 0.0], [-1e30, 0.0], [0.0, 3.0], [-2.5, 0.0], [np.nan, 0.0]]]], np.float32)
    for align in (False, True):
        op = ops.GridSample(align_corners=align)
        grads = [_dev(np.zeros_like(x)), _dev(np.zeros_like(grid))]
        _adapter(op).backward(op, {}, [_dev(x), _dev(grid)], None, {}, _dev(np.ones((1, 1, 1, 5), np.float32)),
                              grads, {})
        assert (grads[0].copy_to_host() == 0).all() and (grads[1].copy_to_host() == 0).all()


# --- what every adapter has -----------------------------------------------------------------

def test_every_op_has_cuda_training_methods():
    for op_type, adapter in backend.ADAPTERS.items():
        assert callable(adapter.train_forward) and callable(adapter.backward), op_type.__name__
    assert callable(_adapter(ops.Conv2d(1, 1)).backward_count) and callable(_adapter(ops.Linear(1)).backward_count)


def test_input_gradients_must_be_contiguous():
    """Kernels write input gradients through reshaped views: a strided one is refused in one line
    (a GPU would refuse the reshape, the simulator would write into a copy)."""
    y = _dev(np.full((3, 4), 0.25, np.float32))
    strided = cuda.device_array((4, 3), np.float32).T
    with pytest.raises(ArchcostError, match="C-contiguous"):
        _adapter(ops.Softmax(-1)).backward(ops.Softmax(-1), {}, [None], y, {}, y, [strided], {})


@pytest.mark.parametrize("op,shape", [CONV_CASES["groups 2, (3, 2) stride (2, 1) dilation (1, 2)"],
                                      (ops.Linear(4), (2, 3, 6)), (ops.BatchNorm(), (2, 3, 2, 2)),
                                      (ops.LayerNorm(1), (2, 4, 2, 1)), (ops.RBF(3, trainable=True), (3, 4)),
                                      (ops.GroupNorm(2), (2, 4, 2, 1))],
                         ids=lambda v: getattr(v, "kind", None) or "x".join(map(str, v)))
def test_param_grads_into_strided_views(op, shape):
    """Parameter gradients are written element by element, so strided device views of larger
    buffers (every other element of one) take them; the elements in between stay untouched."""
    trip = Trip(op, shape)
    holders = {name: cuda.to_device(np.full((*d.shape, 2), np.nan, np.float32)) for name, d in trip.d_pgrads.items()}
    trip.d_pgrads = {name: h[..., 0] for name, h in holders.items()}
    trip.backward()
    for name, h in holders.items():
        host = h.copy_to_host()
        _close(host[..., 0], trip.ref_p[name], TOL, name)
        assert np.isnan(host[..., 1]).all(), name


@pytest.mark.parametrize("op", [ops.Add(), ops.Sub()], ids=str)
def test_a_5_axis_add_or_sub_that_does_not_merge_to_4_is_one_error(op):
    """Broadcast on alternating axes leaves 5 groups: refused in one line naming the op."""
    rng = np.random.default_rng(0)
    x, y = _dev(_random((2, 3, 1, 4, 5), rng)), _dev(_random((1, 3, 2, 4, 1), rng))
    with pytest.raises(ArchcostError, match=f"^{op.kind}: the cuda kernels handle up to 4 axes"):
        _adapter(op).run(op, None, [x, y], _dev(np.empty((2, 3, 2, 4, 5), np.float32)))
