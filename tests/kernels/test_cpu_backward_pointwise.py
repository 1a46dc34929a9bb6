"""Training kernels of the pointwise ops (archcost/kernels/cpu/pointwise.py): activations, batch
norm, layer norm, LRN, scale, softmax, dropout and the softmax cross-entropy loss.

Each kernel's training forward and backward against the float64 reference
(archcost/kernels/reference_grad_pointwise.py) on random inputs, for every fn and axis variant,
with only the tensors the saving policy keeps handed to the backward; the references themselves
against central finite differences on tiny float64 problems; and the buffer semantics: input
gradients accumulate (+=), parameter gradients overwrite (=), frozen parameters are neither
computed nor touched, and batch norm's running statistics follow PyTorch's update.
"""

import math

import numpy as np
import pytest

from archcost import ops
from archcost.errors import ArchcostError
from archcost.execute import init_params
from archcost.kernels import reference
from archcost.kernels import reference_grad_pointwise as ref_grad
from archcost.kernels.cpu import pointwise
from archcost.kernels.cpu.pointwise import (ActivationKernel, BatchNormKernel, DropoutTrain, GroupNormKernel,
                                            LayerNormKernel, LRNKernel, ScaleKernel, SoftmaxCrossEntropy,
                                            SoftmaxKernel)
from archcost.validation import relative_error

TOL = 1e-5  # float32 kernels vs float64 references, relative to the gradient's norm
FD_TOL = 1e-6  # float64 references vs central differences
ADAPTERS = {ops.Activation: ActivationKernel, ops.BatchNorm: BatchNormKernel, ops.LayerNorm: LayerNormKernel,
            ops.GroupNorm: GroupNormKernel, ops.LRN: LRNKernel, ops.Scale: ScaleKernel, ops.Softmax: SoftmaxKernel, ops.Dropout: DropoutTrain}


def _random(shape, rng, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _params(op, shape, rng):
    params = init_params(op, (shape,), shape, rng)
    if isinstance(op, ops.BatchNorm):
        params["mean"] = _random(shape[1], rng)
        params["var"] = rng.uniform(0.5, 2.0, shape[1]).astype(np.float32)
    return params


def _extras(op, shape):
    """The preallocated kept tensors, NaN so a cell never written shows."""
    if isinstance(op, ops.BatchNorm):
        return {"mean": np.full(shape[1], np.nan, np.float32), "invstd": np.full(shape[1], np.nan, np.float32)}
    if isinstance(op, ops.LayerNorm):
        rest = tuple(d for i, d in enumerate(shape) if i != op.axis % len(shape))
        return {"mean": np.full(rest, np.nan, np.float32), "invstd": np.full(rest, np.nan, np.float32)}
    if isinstance(op, ops.GroupNorm):
        stats = (shape[0], op.groups)
        return {"mean": np.full(stats, np.nan, np.float32), "invstd": np.full(stats, np.nan, np.float32)}
    if isinstance(op, ops.LRN):
        return {"scale": np.full(shape, np.nan, np.float32)}
    return {}


def _keeps(op):
    """(input kept, output kept): the saving policy of train_interface.md."""
    if isinstance(op, ops.Activation):
        out = pointwise.activation_keeps_output(op)
        return not out, out
    if isinstance(op, ops.Softmax):
        return False, True
    if isinstance(op, ops.Scale) and op.factor is not None:
        return False, False
    return True, False


def _trainable(op, params):
    return [name for name in ("gamma", "beta") if name in params]


class Trip:
    """One training forward and backward of an adapter, and the reference's."""

    def __init__(self, op, shape, rng, scale=1.0, params=None, extras=None, names=None, want_x=True):
        self.adapter = ADAPTERS[type(op)]
        self.x = _random(shape, rng, scale)
        self.params = _params(op, shape, rng) if params is None else params
        self.params_before = {k: v.copy() for k, v in self.params.items()}
        self.extras = _extras(op, shape) if extras is None else extras
        self.out = np.full(shape, np.nan, np.float32)
        x_before = self.x.copy()
        self.adapter.train_forward(op, self.params, [self.x], self.out, self.extras)
        assert (self.x == x_before).all()
        self.ref_out, self.ref_extras, self.ref_updates = ref_grad.train_forward(op, self.params_before, [self.x],
                                                                               self.extras)
        self.dy = _random(shape, rng)
        names = _trainable(op, self.params) if names is None else names
        (self.ref_dx,), self.ref_pgrads = ref_grad.backward(op, self.params_before, [self.x], self.ref_out, self.dy,
                                                            [want_x], names, self.extras)
        # Accumulate into a nonzero base of the gradient's scale; parameter gradients start NaN.
        self.base = None
        if want_x:
            self.base = _random(shape, rng, float(np.abs(self.ref_dx).max()))
        self.grad_x = None if self.base is None else self.base.copy()
        self.pgrads = {n: np.full(self.params[n].shape, np.nan, np.float32) for n in names}
        keep_in, keep_out = _keeps(op)
        self.adapter.backward(op, self.params, [self.x if keep_in else None], self.out if keep_out else None,
                              self.extras, self.dy, [self.grad_x], self.pgrads)

    def dx(self):
        """What the backward added to the input gradient."""
        return self.grad_x.astype(np.float64) - self.base

    def check(self, tol=TOL):
        assert np.isfinite(self.out).all()
        assert relative_error(self.out, self.ref_out) < tol
        for name, value in self.ref_extras.items():
            assert self.extras[name].shape == value.shape
            assert relative_error(self.extras[name], value) < tol, name
        if self.grad_x is not None:
            assert np.abs(self.ref_dx).max() > 0
            assert relative_error(self.dx(), self.ref_dx) < tol
        assert set(self.pgrads) == set(self.ref_pgrads)
        for name, value in self.ref_pgrads.items():
            assert np.isfinite(self.pgrads[name]).all(), name
            assert relative_error(self.pgrads[name], value) < tol, name
        return self


# --- activations ---------------------------------------------------------------------------------

ACTIVATION_CASES = [(fn, s) for fn in ops.ACTIVATIONS for s in (0.2, -0.3) if not (fn == "elu" and s < 0)]
ACTIVATION_CASES += [("leaky_relu", 0.0), ("elu", 1.0)]


@pytest.mark.parametrize("fn,slope", ACTIVATION_CASES)
def test_activation_backward(fn, slope):
    # scale 4 reaches relu6's, hardswish's and hardsigmoid's clipped ranges and saturates the rest
    Trip(ops.Activation(fn, slope=slope), (2, 3, 5, 7), np.random.default_rng(0), scale=4.0).check()


def test_activation_saving_policy():
    keeps = {fn: pointwise.activation_keeps_output(ops.Activation(fn, slope=0.1)) for fn in ops.ACTIVATIONS}
    assert [fn for fn, out in keeps.items() if out] == ["relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh"]
    assert pointwise.activation_keeps_output(ops.Activation("leaky_relu", slope=0.0))
    assert not pointwise.activation_keeps_output(ops.Activation("leaky_relu", slope=-0.1))


def test_activation_train_forward_in_place():
    op = ops.Activation("gelu")
    x = _random((4, 50), np.random.default_rng(1), 3.0)
    ref = reference.forward(op, [x], {}, x.shape)
    ActivationKernel.train_forward(op, {}, [x], x, {})
    assert relative_error(x, ref) < 2e-6


def test_activation_derivatives_at_the_kinks_follow_pytorch():
    x = np.array([-3.0, 0.0, 3.0, 6.0], np.float32)
    expected = {"relu": [0, 0, 1, 1], "relu6": [0, 0, 1, 0], "leaky_relu": [0.5, 0.5, 1, 1],
                "elu": [0.5 * math.exp(-3.0), 0.5, 1, 1], "hardswish": [-0.5, 0.5, 1.5, 1],
                "hardsigmoid": [0, 1 / 6, 0, 0]}
    for fn, values in expected.items():
        op = ops.Activation(fn, slope=0.5)
        dx = np.zeros_like(x)
        y = reference.forward(op, [x], {}, x.shape).astype(np.float32)
        keep_in, keep_out = _keeps(op)
        ActivationKernel.backward(op, {}, [x if keep_in else None], y if keep_out else None, {}, np.ones_like(x),
                                  [dx], {})
        np.testing.assert_allclose(dx, values, rtol=1e-6, err_msg=fn)
        np.testing.assert_allclose(ref_grad.activation_derivative(op, x.astype(np.float64)), values, rtol=1e-12,
                                   err_msg=fn)


def test_activation_backward_needs_the_kept_tensor_and_elu_alpha_nonnegative():
    x = np.ones((2, 3), np.float32)
    with pytest.raises(ArchcostError, match="output"):
        ActivationKernel.backward(ops.Activation("relu"), {}, [x], None, {}, x, [np.zeros_like(x)], {})
    with pytest.raises(ArchcostError, match="alpha"):
        ActivationKernel.backward(ops.Activation("elu", slope=-0.5), {}, [None], x, {}, x, [np.zeros_like(x)], {})
    ActivationKernel.backward(ops.Activation("relu"), {}, [None], None, {}, x, [None], {})  # nothing wanted


# --- batch norm ----------------------------------------------------------------------------------

@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("shape", [(2, 6, 5, 5), (3, 10), (4, 3, 7)])
def test_batch_norm_train(shape, affine):
    trip = Trip(ops.BatchNorm(affine=affine), shape, np.random.default_rng(2), scale=2.0).check()
    for name, value in trip.ref_updates.items():  # running statistics updated in place
        assert relative_error(trip.params[name], value) < TOL, name
    if affine:
        assert all((trip.params[n] == trip.params_before[n]).all() for n in ("gamma", "beta"))


def test_batch_norm_running_stats_follow_pytorch():
    """running <- 0.9 running + 0.1 batch, the variance unbiased (m / (m - 1)), over two steps;
    normalising uses the biased variance."""
    rng = np.random.default_rng(3)
    op = ops.BatchNorm()
    shape = (3, 4, 2, 5)
    params = _params(op, shape, rng)
    mean, var = params["mean"].astype(np.float64), params["var"].astype(np.float64)
    for _ in range(2):
        x = _random(shape, rng, 3.0) + 1.5
        extras = _extras(op, shape)
        out = np.empty(shape, np.float32)
        BatchNormKernel.train_forward(op, params, [x], out, extras)
        x64 = x.astype(np.float64)
        mean = 0.9 * mean + 0.1 * x64.mean(axis=(0, 2, 3))
        var = 0.9 * var + 0.1 * x64.var(axis=(0, 2, 3), ddof=1)
        np.testing.assert_allclose(params["mean"], mean, rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(params["var"], var, rtol=1e-6)
        np.testing.assert_allclose(extras["invstd"], 1.0 / np.sqrt(x64.var(axis=(0, 2, 3)) + op.eps), rtol=1e-6)


def test_batch_norm_needs_more_than_one_value_per_channel():
    op = ops.BatchNorm()
    params = _params(op, (1, 3), np.random.default_rng(0))
    with pytest.raises(ArchcostError, match="more than 1 value"):
        BatchNormKernel.train_forward(op, params, [np.ones((1, 3), np.float32)], np.empty((1, 3), np.float32),
                                      _extras(op, (1, 3)))


# --- layer norm, LRN, scale, softmax -------------------------------------------------------------

@pytest.mark.parametrize("axis,shape", [(-1, (2, 4, 5, 16)), (1, (2, 8, 3, 3)), (-1, (3, 12)), (2, (2, 3, 4, 5)),
                                        (-1, (3, 50, 8))])  # the last: 150 rows, more than one per chunk
def test_layer_norm_train(axis, shape):
    Trip(ops.LayerNorm(axis), shape, np.random.default_rng(4), scale=3.0).check()


@pytest.mark.parametrize("groups,affine,shape", [(1, True, (2, 6, 4, 5)), (6, True, (2, 6, 4, 5)),
                                                 (3, True, (3, 6, 4, 5)), (2, False, (2, 6, 4, 5)),
                                                 (2, True, (4, 6)), (4, True, (2, 8, 7)), (8, False, (2, 8, 7))])
def test_group_norm_train(groups, affine, shape):
    trip = Trip(ops.GroupNorm(groups, affine=affine), shape, np.random.default_rng(6), scale=3.0).check()
    assert set(trip.pgrads) == ({"gamma", "beta"} if affine else set())


def test_group_norm_one_group_is_a_layer_norm_over_c_h_w():
    """groups 1 normalises each sample over (C, H, W): the LayerNorm reference on the flattened
    sample (its gamma and beta spread over H, W) gives the same output and input gradient."""
    rng = np.random.default_rng(7)
    shape = (2, 3, 2, 4)
    gn = Trip(ops.GroupNorm(1, eps=1e-6), shape, rng, scale=2.0).check()
    ln = ops.LayerNorm(-1, eps=1e-6)
    flat = (shape[0], 3 * 2 * 4)
    ln_params = {k: np.repeat(v, 8) for k, v in gn.params_before.items()}
    y, _, _ = ref_grad.train_forward(ln, ln_params, [gn.x.reshape(flat)])
    (dx,), _ = ref_grad.backward(ln, ln_params, [gn.x.reshape(flat)], y, gn.dy.reshape(flat), [True], [])
    assert relative_error(gn.out.reshape(flat), y) < TOL
    assert relative_error(gn.dx().reshape(flat), dx) < TOL


@pytest.mark.parametrize("size,shape", [(5, (2, 9, 4, 3)), (4, (2, 9, 4, 3)), (1, (1, 5, 3, 2)), (2, (2, 6, 3, 3)),
                                        (5, (1, 3, 2, 2))])  # the last: fewer channels than the window
def test_lrn_train(size, shape):
    op = ops.LRN(size, alpha=0.5, beta=0.75, k=1.0)  # alpha large enough that the cross terms matter
    trip = Trip(op, shape, np.random.default_rng(5), scale=1.5).check()
    direct = trip.dy * trip.ref_extras["scale"] ** -op.beta  # the gradient without the window terms
    assert relative_error(direct, trip.ref_dx) > 1e-2


def test_lrn_train_alexnet_constants():
    Trip(ops.LRN(5, alpha=1e-4, beta=0.75, k=2.0), (2, 8, 3, 3), np.random.default_rng(6), scale=3.0).check()


@pytest.mark.parametrize("op,shape", [(ops.Scale(0.8), (2, 4, 3, 4)), (ops.Scale(None), (2, 4, 3, 4)),
                                      (ops.Scale(None, axis=-1), (2, 40, 3, 5)),  # 240 rows: several chunks
                                      (ops.Scale(None, axis=2), (2, 3, 4, 5)), (ops.Scale(None), (3, 5))])
def test_scale_train(op, shape):
    Trip(op, shape, np.random.default_rng(7)).check()


@pytest.mark.parametrize("axis,shape", [(-1, (3, 10)), (1, (2, 6, 3, 3)), (2, (2, 3, 4, 5))])
def test_softmax_train(axis, shape):
    Trip(ops.Softmax(axis), shape, np.random.default_rng(8), scale=3.0).check()


# --- dropout -------------------------------------------------------------------------------------

@pytest.mark.parametrize("in_place", [False, True])
@pytest.mark.parametrize("p,shape", [(0.3, (2, 5)), (0.5, (2, 3, 4, 4)), (0.0, (3, 7))])
def test_dropout_train(p, shape, in_place):
    rng = np.random.default_rng(9)
    op = ops.Dropout(p)
    x = _random(shape, rng)
    mask = (rng.random(shape) >= p).astype(np.uint8)
    ref_out, _, _ = ref_grad.train_forward(op, {}, [x], {"mask": mask})
    out = x if in_place else np.full(shape, np.nan, np.float32)
    DropoutTrain.train_forward(op, {}, [x], out, {"mask": mask})
    assert relative_error(out, ref_out) < 1e-6
    assert (out[mask == 0] == 0).all()
    dy = _random(shape, rng)
    base = _random(shape, rng)
    dx = base.copy()
    DropoutTrain.backward(op, {}, [None], None, {"mask": mask}, dy, [dx], {})
    (ref,), _ = ref_grad.backward(op, {}, [None], None, dy, [True], (), {"mask": mask})
    assert relative_error(dx.astype(np.float64) - base, ref) < TOL


# --- the loss ------------------------------------------------------------------------------------

@pytest.mark.parametrize("shape", [(4, 10), (2, 5, 3, 3), (3, 7, 4)])
def test_softmax_cross_entropy(shape):
    rng = np.random.default_rng(10)
    logits = _random(shape, rng, 4.0)
    labels = rng.integers(0, shape[1], (shape[0], *shape[2:]))
    probs = np.full(shape, np.nan, np.float32)
    loss = SoftmaxCrossEntropy.forward(logits, labels, probs)
    ref_loss, ref_probs, ref_grad_logits = ref_grad.softmax_cross_entropy(logits, labels)
    assert isinstance(loss, float) and loss > 0
    assert abs(loss - ref_loss) < 1e-9 * ref_loss
    assert relative_error(probs, ref_probs) < 1e-6
    base = _random(shape, rng, 1.0 / labels.size)
    grad = base.copy()
    SoftmaxCrossEntropy.backward(probs, labels, grad)
    assert relative_error(grad.astype(np.float64) - base, ref_grad_logits) < TOL
    SoftmaxCrossEntropy.backward(probs, labels, grad)  # accumulates
    assert relative_error(grad.astype(np.float64) - base, 2 * ref_grad_logits) < TOL


def test_softmax_cross_entropy_rejects_bad_labels():
    logits = np.zeros((2, 3), np.float32)
    probs = np.empty_like(logits)
    for labels in (np.array([0, 3]), np.array([-1, 0]), np.array([[0, 1]])):
        with pytest.raises(ArchcostError, match="labels"):
            SoftmaxCrossEntropy.forward(logits, labels, probs)


# --- buffer semantics ----------------------------------------------------------------------------

SEMANTICS_CASES = [(ops.BatchNorm(), (2, 4, 3, 3)), (ops.LayerNorm(-1), (2, 3, 6)), (ops.LayerNorm(1), (2, 5, 2, 2)),
                   (ops.Scale(None, axis=-1), (3, 4, 5)), (ops.GroupNorm(2), (2, 4, 3, 3))]


@pytest.mark.parametrize("op,shape", SEMANTICS_CASES)
def test_input_grads_accumulate_param_grads_overwrite(op, shape):
    trip = Trip(op, shape, np.random.default_rng(11)).check()
    first = {n: g.copy() for n, g in trip.pgrads.items()}
    keep_in, keep_out = _keeps(op)
    trip.adapter.backward(op, trip.params, [trip.x if keep_in else None], trip.out if keep_out else None, trip.extras,
                          trip.dy, [trip.grad_x], trip.pgrads)
    assert relative_error(trip.dx(), 2 * trip.ref_dx) < TOL
    for name, value in first.items():
        assert (trip.pgrads[name] == value).all(), name


@pytest.mark.parametrize("frozen", [("gamma",), ("beta",), ("gamma", "beta")])
@pytest.mark.parametrize("op,shape", SEMANTICS_CASES)
def test_frozen_params_are_neither_computed_nor_touched(op, shape, frozen):
    rng = np.random.default_rng(12)
    params = _params(op, shape, rng)
    names = [n for n in _trainable(op, params) if n not in frozen]
    trip = Trip(op, shape, rng, params=params, names=names).check()
    assert set(trip.pgrads) == set(names)
    for name, value in trip.params_before.items():
        if name not in ("mean", "var"):
            assert (trip.params[name] == value).all(), name


@pytest.mark.parametrize("op,shape", SEMANTICS_CASES)
def test_param_grads_without_an_input_grad(op, shape):
    Trip(op, shape, np.random.default_rng(13), want_x=False).check()


@pytest.mark.parametrize("op", [ops.BatchNorm(), ops.LayerNorm(-1), ops.GroupNorm(3), ops.LRN(3), ops.Scale(None), ops.Scale(2.0),
                                ops.Softmax(-1), ops.Activation("gelu"), ops.Dropout(0.5)], ids=str)
def test_backward_with_nothing_wanted_reads_nothing(op):
    dy = np.ones((2, 3, 2, 2), np.float32)
    ADAPTERS[type(op)].backward(op, {}, [None], None, {}, dy, [None], {})


def test_gradient_buffers_must_be_contiguous():
    op = ops.Softmax(-1)
    y = np.full((3, 4), 0.25, np.float32)
    with pytest.raises(ArchcostError, match="C-contiguous"):
        SoftmaxKernel.backward(op, {}, [None], y, {}, y, [np.zeros((4, 3), np.float32).T], {})


# --- the references against finite differences ---------------------------------------------------

def _numeric_grad(loss, array, h=1e-6):
    """Central differences of ``loss()`` over the float64 ``array``, perturbed in place."""
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        old = array[index]
        array[index] = old + h
        up = loss()
        array[index] = old - h
        down = loss()
        array[index] = old
        grad[index] = (up - down) / (2 * h)
    return grad


def _fd_check(op, shape, seed, scale=1.0, avoid=()):
    """L = sum(weights * train forward): the reference backward of dL/dy = weights against
    central differences, for the input and every float64 parameter."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape) * scale
    for kink in avoid:  # keep the points off the derivative's jumps
        x = np.where(np.abs(x - kink) < 0.05, x + 0.1, x)
    params = {k: v.astype(np.float64) for k, v in _params(op, shape, rng).items()}
    extras = {"mask": (rng.random(shape) > 0.4).astype(np.uint8)} if isinstance(op, ops.Dropout) else None
    weights = rng.standard_normal(shape)

    def loss():
        return float((ref_grad.train_forward(op, params, [x], extras)[0] * weights).sum())

    names = _trainable(op, params)
    out = ref_grad.train_forward(op, params, [x], extras)[0]
    (dx,), pgrads = ref_grad.backward(op, params, [x], out, weights, [True], names, extras)
    numeric = _numeric_grad(loss, x)
    assert np.abs(numeric).max() > 0
    assert relative_error(dx, numeric) < FD_TOL
    assert set(pgrads) == set(names)
    for name in names:
        assert relative_error(pgrads[name], _numeric_grad(loss, params[name])) < FD_TOL, name


@pytest.mark.parametrize("fn,slope", ACTIVATION_CASES)
def test_fd_activation_reference(fn, slope):
    _fd_check(ops.Activation(fn, slope=slope), (3, 4), 20, scale=4.0, avoid=(-3.0, 0.0, 3.0, 6.0))


def test_fd_activation_reference_from_the_output():
    """The reference's fallback when only the output is given agrees with the input form."""
    rng = np.random.default_rng(21)
    x = rng.standard_normal((3, 5)) * 4.0
    for fn in ("relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh"):
        op = ops.Activation(fn, slope=0.3)
        y = reference.activation(op, x)
        np.testing.assert_allclose(ref_grad.activation_derivative_from_output(op, y),
                                   ref_grad.activation_derivative(op, x), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("op,shape", [
    (ops.BatchNorm(), (3, 2, 2)), (ops.BatchNorm(affine=False), (2, 3, 2, 1)), (ops.BatchNorm(), (4, 2)),
    (ops.LayerNorm(-1), (2, 2, 4)), (ops.LayerNorm(1), (2, 3, 2, 1)),
    (ops.GroupNorm(2), (2, 4, 2, 1)), (ops.GroupNorm(3, affine=False), (2, 3, 2)), (ops.GroupNorm(1), (2, 4)),
    (ops.LRN(3, alpha=0.5, beta=0.75, k=1.0), (1, 5, 2, 1)), (ops.LRN(4, alpha=0.8, beta=0.6, k=1.5), (2, 5, 1, 1)),
    (ops.LRN(1, alpha=0.5, beta=1.0, k=1.0), (1, 3, 1, 2)),
    (ops.Scale(0.7), (2, 3)), (ops.Scale(None, axis=-1), (2, 2, 3)),
    (ops.Softmax(1), (2, 4, 2)), (ops.Softmax(-1), (3, 4)),
    (ops.Dropout(0.4), (2, 5)),
], ids=lambda v: "x".join(map(str, v)) if isinstance(v, tuple) else str(v).replace(" ", ""))
def test_fd_reference(op, shape):
    _fd_check(op, shape, 22, scale=1.5)


@pytest.mark.parametrize("shape", [(3, 4), (2, 3, 2)])
def test_fd_softmax_cross_entropy_reference(shape):
    rng = np.random.default_rng(23)
    logits = rng.standard_normal(shape) * 2.0
    labels = rng.integers(0, shape[1], (shape[0], *shape[2:]))
    _, _, grad = ref_grad.softmax_cross_entropy(logits, labels)
    numeric = _numeric_grad(lambda: ref_grad.softmax_cross_entropy(logits, labels)[0], logits)
    assert relative_error(grad, numeric) < FD_TOL
