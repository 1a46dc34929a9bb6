"""Per-element and per-channel kernels: activations, batch norm, layer norm, group norm, LRN, scale,
softmax.

The formulas are the shared ones (archcost/kernels/formulas.py), inlined here by Numba.
Channel-wise kernels see a 3-D view ``(A, C, B)`` of a contiguous array (``adapters.axis_view``):
``A`` the axes before the channel axis, ``B`` those after, so one kernel serves NCHW maps, (N, F)
vectors and channels-last maps alike; layer norm, LRN and softmax loop over its ``(a, b)``
columns.

Training: each adapter also has ``train_forward`` and
``backward``; dropout's training half is ``DropoutTrain`` (its adapter is tensor.ViewKernel) and
the loss is ``SoftmaxCrossEntropy``. The backward kernels are parallel (``prange``) over what
they write alone: elements, (a, b) columns, channels (batch norm), or (chunk, channel) partial
sums of the parameter gradients, reduced per channel afterwards.
"""

import math

import numpy as np
from numba import njit, prange

from archcost.errors import ArchcostError
from archcost.kernels import adapters, formulas
from archcost.kernels.adapters import axis_view, group_view
from archcost.kernels.formulas import ACTIVATION_CODES

_activation = njit(inline="always")(formulas.activation)
_layer_norm_column = njit(inline="always")(formulas.layer_norm_column)
_lrn_column = njit(inline="always")(formulas.lrn_column)
_softmax_column = njit(inline="always")(formulas.softmax_column)
_activation_grad_from_output = njit(inline="always")(formulas.activation_grad_from_output)
_activation_grad_from_input = njit(inline="always")(formulas.activation_grad_from_input)
_layer_norm_train_column = njit(inline="always")(formulas.layer_norm_train_column)
_layer_norm_grad_column = njit(inline="always")(formulas.layer_norm_grad_column)
_lrn_train_column = njit(inline="always")(formulas.lrn_train_column)
_group_norm_group = njit(inline="always")(formulas.group_norm_group)
_group_norm_grad_group = njit(inline="always")(formulas.group_norm_grad_group)
_group_norm_param_channel = njit(inline="always")(formulas.group_norm_param_channel)
_lrn_grad_column = njit(inline="always")(formulas.lrn_grad_column)
_softmax_grad_column = njit(inline="always")(formulas.softmax_grad_column)
_softmax_cross_entropy_column = njit(inline="always")(formulas.softmax_cross_entropy_column)
_cross_entropy_grad_column = njit(inline="always")(formulas.cross_entropy_grad_column)


@njit(cache=True)
def activation(x, out, code, slope):
    """x, out: 1-D (may be the same array: the op runs in place)."""
    for i in range(x.size):
        out[i] = _activation(x[i], code, slope)


@njit(fastmath=True, cache=True)
def channel_affine(x, scale, shift, out):
    """out[a, c, b] = x[a, c, b] * scale[c] + shift[c] (BN at inference, learned scale)."""
    a_, c_, b_ = x.shape
    for a in range(a_):
        for c in range(c_):
            s, t = scale[c], shift[c]
            for b in range(b_):
                out[a, c, b] = x[a, c, b] * s + t


@njit(cache=True)
def layer_norm(x, gamma, beta, eps, out):
    """Normalise over axis 1 of (A, C, B), in float64 statistics."""
    for a in range(x.shape[0]):
        for b in range(x.shape[2]):
            _layer_norm_column(x, gamma, beta, eps, out, a, b)


@njit(cache=True)
def lrn(x, out, size, alpha, beta, k):
    """PyTorch's LocalResponseNorm over axis 1 of (A, C, B)."""
    for a in range(x.shape[0]):
        for b in range(x.shape[2]):
            _lrn_column(x, out, size, alpha, beta, k, a, b)


@njit(cache=True)
def softmax(x, out):
    """Softmax over axis 1 of (A, C, B)."""
    for a in range(x.shape[0]):
        for b in range(x.shape[2]):
            _softmax_column(x, out, a, b)


# --- training kernels --------------------------------------------------------------------------
# Backward kernels ADD into the input gradient (dx += ...) and WRITE the parameter gradients.
# Where a gradient is not wanted its kernel gets a one-element dummy of the same type and a false
# flag, so each kernel compiles once. Sums over many elements run in float64 locals.

_CHUNKS = 64  # partial sums of the per-channel parameter reductions: rows of a (chunks, C) table


@njit(parallel=True, cache=True)
def activation_grad_output(y, dy, dx, code, slope):
    """dx += dy * f'(x), f' from the kept output y (all 1-D)."""
    for i in prange(y.size):
        dx[i] += dy[i] * _activation_grad_from_output(y[i], code, slope)


@njit(parallel=True, cache=True)
def activation_grad_input(x, dy, dx, code, slope):
    """dx += dy * f'(x), f' from the kept input x (all 1-D)."""
    for i in prange(x.size):
        dx[i] += dy[i] * _activation_grad_from_input(x[i], code, slope)


@njit(parallel=True, cache=True)
def batch_norm_train(x, gamma, beta, eps, momentum, out, mean_out, invstd_out, running_mean, running_var):
    """Batch norm over all of (A, B) per channel of x (A, C, B) with the batch's statistics
    (biased variance), one channel per task: out = (x - mean) * invstd * gamma + beta; keeps
    mean and invstd; running_mean/var <- (1 - momentum) * running + momentum * (mean, unbiased var)."""
    a_, c_, b_ = x.shape
    m = a_ * b_
    for c in prange(c_):
        total = 0.0
        for a in range(a_):
            for b in range(b_):
                total += x[a, c, b]
        mean = total / m
        sq = 0.0
        for a in range(a_):
            for b in range(b_):
                d = x[a, c, b] - mean
                sq += d * d
        inv = 1.0 / math.sqrt(sq / m + eps)
        scale = inv * gamma[c]
        shift = float(beta[c])
        for a in range(a_):
            for b in range(b_):
                out[a, c, b] = (x[a, c, b] - mean) * scale + shift
        mean_out[c] = mean
        invstd_out[c] = inv
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * (sq / (m - 1))


@njit(parallel=True, cache=True)
def batch_norm_grad(x, mean, invstd, gamma, dy, dx, dgamma, dbeta, want_dx, want_gamma, want_beta):
    """Batch norm backward per channel of (A, C, B), from the kept batch mean and invstd:
    dbeta = sum dy, dgamma = sum dy * xh, dx += gamma * invstd * (dy - mean(dy) - xh * mean(dy xh))
    with xh = (x - mean) * invstd."""
    a_, c_, b_ = x.shape
    m = a_ * b_
    for c in prange(c_):
        mu = float(mean[c])
        inv = float(invstd[c])
        sdy = 0.0
        sdyx = 0.0
        for a in range(a_):
            for b in range(b_):
                g = float(dy[a, c, b])
                sdy += g
                sdyx += g * (x[a, c, b] - mu)
        sdyx *= inv
        if want_gamma:
            dgamma[c] = sdyx
        if want_beta:
            dbeta[c] = sdy
        if want_dx:
            k = float(gamma[c]) * inv
            mdy = sdy / m
            mdyx = sdyx / m
            for a in range(a_):
                for b in range(b_):
                    dx[a, c, b] += k * (dy[a, c, b] - mdy - (x[a, c, b] - mu) * inv * mdyx)


@njit(parallel=True, cache=True)
def layer_norm_train(x, gamma, beta, eps, out, mean, invstd):
    """Layer norm over axis 1 of (A, C, B), one (a, b) column per task, keeping mean/invstd (A, B)."""
    a_, _, b_ = x.shape
    for i in prange(a_ * b_):
        _layer_norm_train_column(x, gamma, beta, eps, out, mean, invstd, i // b_, i % b_)


@njit(parallel=True, cache=True)
def layer_norm_grad(x, gamma, mean, invstd, dy, dx):
    """dx += the layer norm's input gradient, one (a, b) column per task."""
    a_, _, b_ = x.shape
    for i in prange(a_ * b_):
        _layer_norm_grad_column(x, gamma, mean, invstd, dy, dx, i // b_, i % b_)


@njit(parallel=True, cache=True)
def channel_grad_sums(x, dy, mean, invstd, centred, dot, total):
    """Per channel c of (A, C, B): dot[c] = sum over (a, b) of dy * xh and total[c] = sum of dy
    (float64 (C,) outputs), xh = (x - mean[a, b]) * invstd[a, b] when ``centred`` (layer norm's
    dgamma) else x (a learned scale's dgamma). Partial sums over chunks of A, one (chunk,
    channel) pair per task, then reduced per channel: no two tasks write one cell."""
    a_, c_, b_ = x.shape
    chunks = min(a_, _CHUNKS)
    part_dot = np.zeros((chunks, c_))
    part_total = np.zeros((chunks, c_))
    for t in prange(chunks * c_):
        k = t // c_
        c = t % c_
        sd = 0.0
        st = 0.0
        for a in range(k * a_ // chunks, (k + 1) * a_ // chunks):
            for b in range(b_):
                g = float(dy[a, c, b])
                if centred:
                    sd += g * (x[a, c, b] - mean[a, b]) * invstd[a, b]
                else:
                    sd += g * x[a, c, b]
                st += g
        part_dot[k, c] = sd
        part_total[k, c] = st
    for c in prange(c_):
        sd = 0.0
        st = 0.0
        for k in range(chunks):
            sd += part_dot[k, c]
            st += part_total[k, c]
        dot[c] = sd
        total[c] = st


@njit(parallel=True, cache=True)
def group_norm_train(x, gamma, beta, eps, out, mean_out, invstd_out):
    """Group norm of x (N, C, S), G = mean_out.shape[1] groups, one (n, group) per task, keeping
    mean and invstd (N, G). Serves inference too (the statistics are the sample's own)."""
    g_ = mean_out.shape[1]
    for t in prange(x.shape[0] * g_):
        _group_norm_group(x, gamma, beta, eps, out, mean_out, invstd_out, t // g_, t % g_)


@njit(parallel=True, cache=True)
def group_norm_grad(x, gamma, mean, invstd, dy, dx):
    """dx += the group norm's input gradient, one (n, group) of x (N, C, S) per task."""
    g_ = mean.shape[1]
    for t in prange(x.shape[0] * g_):
        _group_norm_grad_group(x, gamma, mean, invstd, dy, dx, t // g_, t % g_)


@njit(parallel=True, cache=True)
def group_norm_param_grads(x, dy, mean, invstd, dgamma, dbeta, want_gamma, want_beta):
    """dgamma[c] = sum dy * xh, dbeta[c] = sum dy over (n, s) (written), one channel per task."""
    for c in prange(x.shape[1]):
        _group_norm_param_channel(x, dy, mean, invstd, dgamma, dbeta, want_gamma, want_beta, c)


@njit(parallel=True, cache=True)
def lrn_train(x, out, scale, size, alpha, beta, k):
    """PyTorch's LocalResponseNorm over axis 1 of (A, C, B), keeping the scale, a column per task."""
    a_, _, b_ = x.shape
    for i in prange(a_ * b_):
        _lrn_train_column(x, out, scale, size, alpha, beta, k, i // b_, i % b_)


@njit(parallel=True, cache=True)
def lrn_grad(x, scale, dy, dx, size, alpha, beta):
    """dx += the LRN input gradient, one (a, b) column per task."""
    a_, _, b_ = x.shape
    for i in prange(a_ * b_):
        _lrn_grad_column(x, scale, dy, dx, size, alpha, beta, i // b_, i % b_)


@njit(parallel=True, cache=True)
def scale_grad(dy, dx, factor):
    """dx += dy * factor (1-D)."""
    for i in prange(dy.size):
        dx[i] += dy[i] * factor


@njit(parallel=True, cache=True)
def channel_scale_grad(dy, gamma, dx):
    """dx[a, c, b] += dy[a, c, b] * gamma[c], one (a, c) row per task."""
    a_, c_, b_ = dy.shape
    for t in prange(a_ * c_):
        a = t // c_
        c = t % c_
        g = gamma[c]
        for b in range(b_):
            dx[a, c, b] += dy[a, c, b] * g


@njit(parallel=True, cache=True)
def softmax_grad(y, dy, dx):
    """dx += y * (dy - sum(dy * y)) over axis 1 of (A, C, B), a column per task."""
    a_, _, b_ = y.shape
    for i in prange(a_ * b_):
        _softmax_grad_column(y, dy, dx, i // b_, i % b_)


@njit(parallel=True, cache=True)
def dropout_train(x, mask, out, scale):
    """out = x * (mask * scale) (1-D; out may be x)."""
    for i in prange(x.size):
        out[i] = x[i] * (np.float32(mask[i]) * scale)


@njit(parallel=True, cache=True)
def dropout_grad(dy, mask, dx, scale):
    """dx += dy * (mask * scale) (1-D)."""
    for i in prange(dy.size):
        dx[i] += dy[i] * (np.float32(mask[i]) * scale)


@njit(parallel=True, cache=True)
def softmax_cross_entropy(x, labels, probs, losses):
    """Softmax of the logits x (A, C, B) over C into probs, and the mean over the (A, B) label
    positions of -log probs[label] (labels (A, B)); ``losses`` (A * B,) float64 scratch."""
    a_, _, b_ = x.shape
    n = a_ * b_
    for i in prange(n):
        a = i // b_
        b = i % b_
        losses[i] = _softmax_cross_entropy_column(x, labels[a, b], probs, a, b)
    total = 0.0
    for i in range(n):
        total += losses[i]
    return total / n


@njit(parallel=True, cache=True)
def cross_entropy_grad(probs, labels, dx, weight):
    """dx += (probs - onehot(labels)) * weight over axis 1 of (A, C, B), a column per task."""
    a_, _, b_ = probs.shape
    for i in prange(a_ * b_):
        a = i // b_
        b = i % b_
        _cross_entropy_grad_column(probs, labels[a, b], dx, weight, a, b)


# --- adapter helpers ---------------------------------------------------------------------------

_DUMMY1 = np.zeros(1, np.float32)
_OUTPUT_KEPT = frozenset(("relu", "relu6", "sigmoid", "tanh", "elu"))


def activation_keeps_output(op) -> bool:
    """Whether an activation's backward reads its OUTPUT (else its input): the "archcost" saving
    policy of relu, relu6, sigmoid, tanh, elu and leaky_relu with slope >= 0."""
    return op.fn in _OUTPUT_KEPT or (op.fn == "leaky_relu" and op.slope >= 0)


def _dummy3():
    return np.zeros((1, 1, 1), np.float32)


def _target(array, what: str):
    """A buffer the kernels write (through a reshaped view): it must be C-contiguous
    float32, or the writes would land in a copy."""
    if not (isinstance(array, np.ndarray) and array.dtype == np.float32 and array.flags.c_contiguous
            and array.flags.writeable):
        raise ArchcostError(f"{what}: the buffer a kernel writes must be a writable C-contiguous float32 array")
    return array


def _kept(array, op, what: str):
    if array is None:
        raise ArchcostError(f"{type(op).__name__} backward: the kept {what} is missing")
    return array


def _dx(grad_inputs):
    """The input gradient to accumulate into, or None."""
    return None if grad_inputs is None or grad_inputs[0] is None else _target(grad_inputs[0], "backward")


def _column_extra(extra, view):
    """A layer-norm statistic (the input's shape less the normalised axis) as (A, B)."""
    return _target(extra, "LayerNorm extras").reshape(view.shape[0], view.shape[2])


class ActivationKernel:
    prepare = staticmethod(adapters.activation_state)

    @staticmethod
    def run(op, state, inputs, out):
        activation(inputs[0].reshape(-1), out.reshape(-1), *state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """As at inference; ``out`` may be ``inputs[0]`` (in place)."""
        activation(inputs[0].reshape(-1), out.reshape(-1), ACTIVATION_CODES[op.fn], np.float32(op.slope))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        dx = _dx(grad_inputs)
        if dx is None:
            return
        code, slope = ACTIVATION_CODES[op.fn], np.float32(op.slope)
        if activation_keeps_output(op):
            if op.fn == "elu" and op.slope < 0:
                raise ArchcostError("Activation backward: elu keeps its output, from which the gradient is "
                                    "defined only for alpha >= 0 (as PyTorch's in-place elu)")
            y = _kept(out, op, "output")
            activation_grad_output(y.reshape(-1), grad_out.reshape(-1), dx.reshape(-1), code, slope)
        else:
            x = _kept(inputs[0], op, "input")
            activation_grad_input(x.reshape(-1), grad_out.reshape(-1), dx.reshape(-1), code, slope)


class BatchNormKernel:
    prepare = staticmethod(adapters.batch_norm_state)
    momentum = 0.1  # PyTorch's default

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(axis_view(inputs[0], 1), *state, axis_view(out, 1))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """Batch statistics; writes extras "mean", "invstd" and updates params "mean"/"var" in place."""
        x = axis_view(inputs[0], 1)
        c = x.shape[1]
        if x.shape[0] * x.shape[2] < 2:
            raise ArchcostError(f"BatchNorm training: expected more than 1 value per channel, got input shape "
                                f"{tuple(inputs[0].shape)} (as PyTorch)")
        gamma = params["gamma"] if op.affine else np.ones(c, np.float32)
        beta = params["beta"] if op.affine else np.zeros(c, np.float32)
        batch_norm_train(x, gamma, beta, float(op.eps), BatchNormKernel.momentum, axis_view(out, 1),
                         extras["mean"], extras["invstd"], params["mean"], params["var"])

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        param_grads = param_grads or {}
        dx = _dx(grad_inputs)
        want_gamma = op.affine and "gamma" in param_grads
        want_beta = op.affine and "beta" in param_grads
        if dx is None and not (want_gamma or want_beta):
            return
        x = axis_view(_kept(inputs[0], op, "input"), 1)
        gamma = params["gamma"] if op.affine else np.ones(x.shape[1], np.float32)
        batch_norm_grad(x, extras["mean"], extras["invstd"], gamma, axis_view(grad_out, 1),
                        _dummy3() if dx is None else axis_view(dx, 1),
                        _target(param_grads["gamma"], "BatchNorm dgamma") if want_gamma else _DUMMY1,
                        _target(param_grads["beta"], "BatchNorm dbeta") if want_beta else _DUMMY1,
                        dx is not None, want_gamma, want_beta)


class LayerNormKernel:
    prepare = staticmethod(adapters.layer_norm_state)

    @staticmethod
    def run(op, state, inputs, out):
        layer_norm(axis_view(inputs[0], op.axis), *state, axis_view(out, op.axis))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """Writes extras "mean", "invstd" (the input's shape without the normalised axis)."""
        x = axis_view(inputs[0], op.axis)
        layer_norm_train(x, params["gamma"], params["beta"], float(op.eps), axis_view(out, op.axis),
                         _column_extra(extras["mean"], x), _column_extra(extras["invstd"], x))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        param_grads = param_grads or {}
        dx = _dx(grad_inputs)
        want_params = "gamma" in param_grads or "beta" in param_grads
        if dx is None and not want_params:
            return
        x = axis_view(_kept(inputs[0], op, "input"), op.axis)
        mean, invstd = _column_extra(extras["mean"], x), _column_extra(extras["invstd"], x)
        dy = axis_view(grad_out, op.axis)
        if dx is not None:
            layer_norm_grad(x, params["gamma"], mean, invstd, dy, axis_view(dx, op.axis))
        if want_params:
            dot, total = np.empty(x.shape[1]), np.empty(x.shape[1])
            channel_grad_sums(x, dy, mean, invstd, True, dot, total)
            if "gamma" in param_grads:
                _target(param_grads["gamma"], "LayerNorm dgamma")[...] = dot
            if "beta" in param_grads:
                _target(param_grads["beta"], "LayerNorm dbeta")[...] = total


def _group_stats(extra, n, groups, what: str):
    return _target(extra, f"GroupNorm {what}").reshape(n, groups)


class GroupNormKernel:
    prepare = staticmethod(adapters.group_norm_state)

    @staticmethod
    def run(op, state, inputs, out):
        gamma, beta, eps = state
        x = group_view(inputs[0])
        # The statistics are the sample's own at inference too; scratch, not kept.
        mean, invstd = np.empty((x.shape[0], op.groups), np.float32), np.empty((x.shape[0], op.groups), np.float32)
        group_norm_train(x, gamma, beta, eps, group_view(out), mean, invstd)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """Writes extras "mean", "invstd" (N, groups)."""
        x = group_view(inputs[0])
        gamma, beta, eps = adapters.group_norm_state(op, (tuple(x.shape),), None, params)
        group_norm_train(x, gamma, beta, eps, group_view(out), _group_stats(extras["mean"], x.shape[0], op.groups,
                         "mean"), _group_stats(extras["invstd"], x.shape[0], op.groups, "invstd"))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        param_grads = param_grads or {}
        dx = _dx(grad_inputs)
        want_gamma = op.affine and "gamma" in param_grads
        want_beta = op.affine and "beta" in param_grads
        if dx is None and not (want_gamma or want_beta):
            return
        x = group_view(_kept(inputs[0], op, "input"))
        mean = _group_stats(extras["mean"], x.shape[0], op.groups, "mean")
        invstd = _group_stats(extras["invstd"], x.shape[0], op.groups, "invstd")
        dy = group_view(grad_out)
        if dx is not None:
            gamma, _, _ = adapters.group_norm_state(op, (tuple(x.shape),), None, params)
            group_norm_grad(x, gamma, mean, invstd, dy, group_view(dx))
        if want_gamma or want_beta:
            group_norm_param_grads(x, dy, mean, invstd,
                                   _target(param_grads["gamma"], "GroupNorm dgamma") if want_gamma else _DUMMY1,
                                   _target(param_grads["beta"], "GroupNorm dbeta") if want_beta else _DUMMY1,
                                   want_gamma, want_beta)


class LRNKernel:
    prepare = staticmethod(adapters.lrn_state)

    @staticmethod
    def run(op, state, inputs, out):
        lrn(axis_view(inputs[0], 1), axis_view(out, 1), *state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """Writes extras "scale" (input shape): k + alpha / size * the window's sum of squares."""
        lrn_train(axis_view(inputs[0], 1), axis_view(out, 1), axis_view(_target(extras["scale"], "LRN scale"), 1),
                  *adapters.lrn_state(op, None, None, params))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        dx = _dx(grad_inputs)
        if dx is None:
            return
        lrn_grad(axis_view(_kept(inputs[0], op, "input"), 1), axis_view(extras["scale"], 1),
                 axis_view(grad_out, 1), axis_view(dx, 1), op.size, float(op.alpha), float(op.beta))


class ScaleKernel:
    prepare = staticmethod(adapters.scale_state)

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(axis_view(inputs[0], op.axis), *state, axis_view(out, op.axis))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        state = adapters.scale_state(op, None, out.shape, params)
        channel_affine(axis_view(inputs[0], op.axis), *state, axis_view(out, op.axis))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        param_grads = param_grads or {}
        dx = _dx(grad_inputs)
        if op.factor is not None:
            if dx is not None:
                scale_grad(grad_out.reshape(-1), dx.reshape(-1), float(op.factor))
            return
        dy = axis_view(grad_out, op.axis)
        if dx is not None:
            channel_scale_grad(dy, np.ascontiguousarray(params["gamma"], np.float32), axis_view(dx, op.axis))
        if "gamma" in param_grads:
            x = axis_view(_kept(inputs[0], op, "input"), op.axis)
            dot, total = np.empty(x.shape[1]), np.empty(x.shape[1])
            dummy = np.zeros((1, 1), np.float32)
            channel_grad_sums(x, dy, dummy, dummy, False, dot, total)
            _target(param_grads["gamma"], "Scale dgamma")[...] = dot


class SoftmaxKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        softmax(axis_view(inputs[0], op.axis), axis_view(out, op.axis))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        softmax(axis_view(inputs[0], op.axis), axis_view(out, op.axis))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        dx = _dx(grad_inputs)
        if dx is None:
            return
        softmax_grad(axis_view(_kept(out, op, "output"), op.axis), axis_view(grad_out, op.axis),
                     axis_view(dx, op.axis))


class DropoutTrain:
    """Dropout in training mode (the executor wires it into tensor.ViewKernel): extras "mask"
    (uint8 0/1, output shape) is pre-filled by the executor; y = x * mask / (1 - p), computed as
    PyTorch does: x times (mask times the float32 1 / (1 - p))."""

    @staticmethod
    def scale(op) -> np.float32:
        return np.float32(1.0) / np.float32(1.0 - op.p)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """``out`` may be ``inputs[0]`` (in place). p = 0 keeps no mask: the identity."""
        if not op.p:
            if out.ctypes.data != inputs[0].ctypes.data:
                out[...] = inputs[0]
            return
        dropout_train(inputs[0].reshape(-1), extras["mask"].reshape(-1), out.reshape(-1), DropoutTrain.scale(op))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        dx = _dx(grad_inputs)
        if dx is None:
            return
        if not op.p:
            dx += grad_out
            return
        dropout_grad(grad_out.reshape(-1), extras["mask"].reshape(-1), dx.reshape(-1), DropoutTrain.scale(op))


class SoftmaxCrossEntropy:
    """The training loss: softmax cross-entropy over axis 1 of logits (N, C, ...), labels int64
    (N, ...) in [0, C), the mean over the label positions. Keeps "probs" (logits' shape)."""

    @staticmethod
    def _labels(logits, labels):
        shape = tuple(logits.shape)
        if len(shape) < 2 or tuple(labels.shape) != shape[:1] + shape[2:]:
            raise ArchcostError(f"SoftmaxCrossEntropy: labels of shape {tuple(labels.shape)} do not fit logits "
                                f"of shape {shape} (want the logits' shape without axis 1)")
        labels = np.ascontiguousarray(labels, np.int64)
        if labels.size and (labels.min() < 0 or labels.max() >= shape[1]):
            raise ArchcostError(f"SoftmaxCrossEntropy: labels must lie in [0, {shape[1]}), got "
                                f"{labels.min()}..{labels.max()}")
        return labels.reshape(math.prod(shape[:1]), math.prod(shape[2:]))

    @staticmethod
    def forward(logits, labels, probs) -> float:
        """Writes probs (softmax over axis 1); returns the mean cross-entropy (computed in float64)."""
        lab = SoftmaxCrossEntropy._labels(logits, labels)
        losses = np.empty(lab.size)
        return float(softmax_cross_entropy(axis_view(logits, 1), lab, axis_view(_target(probs, "probs"), 1), losses))

    @staticmethod
    def backward(probs, labels, grad_logits) -> None:
        """grad_logits += (probs - onehot(labels)) / the number of label positions."""
        lab = SoftmaxCrossEntropy._labels(probs, labels)
        cross_entropy_grad(axis_view(probs, 1), lab, axis_view(_target(grad_logits, "grad_logits"), 1),
                           1.0 / lab.size)
