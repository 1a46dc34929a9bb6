"""Per-element and per-channel kernels on device arrays: activations, batch norm, layer norm,
group norm, LRN, scale, softmax.

The formulas are the shared ones (archcost/kernels/formulas.py) as inlined device functions.
Per-element kernels take flat views, one thread per element. Channel-wise kernels see the same
``(A, C, B)`` view as the cpu kernels (``adapters.axis_view``): the affine (batch norm, scale) has
one thread per element; layer norm, LRN and softmax have one thread per ``(a, b)`` column, which
loops over the ``C`` channels of its column (statistics in float64, as on the cpu).

Training: each adapter also has ``train_forward`` and ``backward``; dropout's training half is
``DropoutTrain`` (its adapter is tensor.ViewKernel) and the loss is ``SoftmaxCrossEntropy``. The
backward kernels ADD into the input gradient and WRITE the parameter gradients, each thread the
only writer of what it writes: one thread per element (activations, dropout, scale, the batch
norm's data gradient), per ``(a, b)`` column (layer norm, LRN, softmax, the loss: the shared
per-column formulas), or per channel (the batch statistics and every per-channel parameter
gradient: a float64 sum over all ``(a, b)``). Batch norm's training forward is a per-channel
statistics kernel (mean, biased variance for normalising, the running statistics updated as
PyTorch does) and a per-element normalisation; its backward a per-channel kernel of the two sums
(which are dbeta and dgamma) and a per-element data gradient. The host params are uploaded on each
call (they change every step); batch norm's updated running statistics are copied back into them.
"""

import math

import numpy as np
from numba import float32

from archcost.errors import ArchcostError
from archcost.kernels import adapters, formulas
from archcost.kernels.adapters import axis_view, group_view
from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import (contiguous, coords3, device_function, dummy, flat, input_grad, kept,
                                          launch, param_to_device, uploaded)
from archcost.kernels.formulas import ACTIVATION_CODES

_activation_value = device_function(formulas.activation)
_layer_norm_column = device_function(formulas.layer_norm_column)
_lrn_column = device_function(formulas.lrn_column)
_softmax_column = device_function(formulas.softmax_column)
_activation_grad_from_output = device_function(formulas.activation_grad_from_output)
_activation_grad_from_input = device_function(formulas.activation_grad_from_input)
_layer_norm_train_column = device_function(formulas.layer_norm_train_column)
_layer_norm_grad_column = device_function(formulas.layer_norm_grad_column)
_lrn_train_column = device_function(formulas.lrn_train_column)
_group_norm_group = device_function(formulas.group_norm_group)
_group_norm_grad_group = device_function(formulas.group_norm_grad_group)
_group_norm_param_channel = device_function(formulas.group_norm_param_channel)
_lrn_grad_column = device_function(formulas.lrn_grad_column)
_softmax_grad_column = device_function(formulas.softmax_grad_column)
_softmax_cross_entropy_column = device_function(formulas.softmax_cross_entropy_column)
_cross_entropy_grad_column = device_function(formulas.cross_entropy_grad_column)


@cuda.jit
def _activation(x, out, code, slope):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = _activation_value(x[i], code, slope)


@cuda.jit
def _affine(x, scale, shift, out, inner):
    """out[a, c, b] = x[a, c, b] * scale[c] + shift[c] on flat arrays; ``inner`` = B."""
    i = cuda.grid(1)
    if i < out.size:
        c = (i // inner) % scale.size
        out[i] = x[i] * scale[c] + shift[c]


@cuda.jit
def _layer_norm(x, gamma, beta, eps, out):
    j = cuda.grid(1)  # column (a, b)
    b_ = x.shape[2]
    if j < x.shape[0] * b_:
        a = j // b_
        _layer_norm_column(x, gamma, beta, eps, out, a, j - a * b_)


@cuda.jit
def _lrn(x, out, size, alpha, beta, k):
    j = cuda.grid(1)  # column (a, b)
    b_ = x.shape[2]
    if j < x.shape[0] * b_:
        a = j // b_
        _lrn_column(x, out, size, alpha, beta, k, a, j - a * b_)


@cuda.jit
def _softmax(x, out):
    j = cuda.grid(1)  # column (a, b)
    b_ = x.shape[2]
    if j < x.shape[0] * b_:
        a = j // b_
        _softmax_column(x, out, a, j - a * b_)


# --- training kernels --------------------------------------------------------------------------


@cuda.jit
def _activation_grad_output(y, dy, dx, code, slope):
    """dx += dy * f'(x), f' from the kept output y (flat)."""
    i = cuda.grid(1)
    if i < dx.size:
        dx[i] += dy[i] * _activation_grad_from_output(y[i], code, slope)


@cuda.jit
def _activation_grad_input(x, dy, dx, code, slope):
    """dx += dy * f'(x), f' from the kept input x (flat)."""
    i = cuda.grid(1)
    if i < dx.size:
        dx[i] += dy[i] * _activation_grad_from_input(x[i], code, slope)


@cuda.jit
def _batch_norm_stats(x, eps, momentum, mean_out, invstd_out, running_mean, running_var):
    """Per channel c of x (A, C, B), one thread each: the batch mean and invstd = 1 / sqrt(biased
    variance + eps) (float64 sums, stored float32), and running <- (1 - momentum) * running +
    momentum * (mean, unbiased variance)."""
    c = cuda.grid(1)
    a_, c_, b_ = x.shape
    if c < c_:
        m = a_ * b_
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
        mean_out[c] = mean
        invstd_out[c] = 1.0 / math.sqrt(sq / m + eps)
        running_mean[c] = (1.0 - momentum) * running_mean[c] + momentum * mean
        running_var[c] = (1.0 - momentum) * running_var[c] + momentum * (sq / (m - 1))


@cuda.jit
def _batch_norm_apply(x, mean, invstd, gamma, beta, out):
    """out = (x - mean[c]) * invstd[c] * gamma[c] + beta[c] on (A, C, B), one thread per element."""
    i = cuda.grid(1)
    a_, c_, b_ = x.shape
    if i < a_ * c_ * b_:
        a, c, b = coords3(i, c_, b_)
        out[a, c, b] = (float(x[a, c, b]) - float(mean[c])) * float(invstd[c]) * float(gamma[c]) + float(beta[c])


@cuda.jit
def _batch_norm_grad_sums(x, mean, invstd, dy, sums, dgamma, dbeta, want_gamma, want_beta):
    """Per channel c of (A, C, B), one thread each: sums[c] = (sum dy, sum dy * xh) in float64,
    xh = (x - mean) * invstd; they are dbeta and dgamma, written when wanted."""
    c = cuda.grid(1)
    a_, c_, b_ = x.shape
    if c < c_:
        mu = float(mean[c])
        sdy = 0.0
        sdyx = 0.0
        for a in range(a_):
            for b in range(b_):
                g = float(dy[a, c, b])
                sdy += g
                sdyx += g * (float(x[a, c, b]) - mu)
        sdyx *= float(invstd[c])
        sums[c, 0] = sdy
        sums[c, 1] = sdyx
        if want_gamma:
            dgamma[c] = sdyx
        if want_beta:
            dbeta[c] = sdy


@cuda.jit
def _batch_norm_grad_data(x, mean, invstd, gamma, dy, sums, dx):
    """dx += gamma * invstd * (dy - mean(dy) - xh * mean(dy * xh)) on (A, C, B), one thread per
    element, from the per-channel ``sums`` of ``_batch_norm_grad_sums``."""
    i = cuda.grid(1)
    a_, c_, b_ = x.shape
    if i < a_ * c_ * b_:
        a, c, b = coords3(i, c_, b_)
        m = a_ * b_
        inv = float(invstd[c])
        xh = (float(x[a, c, b]) - float(mean[c])) * inv
        dx[a, c, b] += float(gamma[c]) * inv * (float(dy[a, c, b]) - sums[c, 0] / m - xh * (sums[c, 1] / m))


@cuda.jit
def _layer_norm_train(x, gamma, beta, eps, out, mean, invstd):
    j = cuda.grid(1)  # column (a, b)
    b_ = x.shape[2]
    if j < x.shape[0] * b_:
        a = j // b_
        _layer_norm_train_column(x, gamma, beta, eps, out, mean, invstd, a, j - a * b_)


@cuda.jit
def _layer_norm_grad(x, gamma, mean, invstd, dy, dx):
    j = cuda.grid(1)  # column (a, b)
    b_ = x.shape[2]
    if j < x.shape[0] * b_:
        a = j // b_
        _layer_norm_grad_column(x, gamma, mean, invstd, dy, dx, a, j - a * b_)


@cuda.jit
def _channel_grad_sums(x, dy, mean, invstd, centred, dgamma, dbeta, want_gamma, want_beta):
    """Per channel c of (A, C, B), one thread each, float64 sums over (a, b): dgamma[c] = sum dy * xh
    with xh = (x - mean[a, b]) * invstd[a, b] when ``centred`` (layer norm) else x (a learned scale,
    the affine), and dbeta[c] = sum dy; each written only when wanted."""
    c = cuda.grid(1)
    a_, c_, b_ = dy.shape
    if c < c_:
        sd = 0.0
        st = 0.0
        for a in range(a_):
            for b in range(b_):
                g = float(dy[a, c, b])
                st += g
                if want_gamma:
                    if centred:
                        sd += g * (float(x[a, c, b]) - float(mean[a, b])) * float(invstd[a, b])
                    else:
                        sd += g * float(x[a, c, b])
        if want_gamma:
            dgamma[c] = sd
        if want_beta:
            dbeta[c] = st


@cuda.jit
def _group_norm(x, gamma, beta, eps, out, mean, invstd):
    t = cuda.grid(1)  # (sample, group)
    g_ = mean.shape[1]
    if t < x.shape[0] * g_:
        n = t // g_
        _group_norm_group(x, gamma, beta, eps, out, mean, invstd, n, t - n * g_)


@cuda.jit
def _group_norm_grad(x, gamma, mean, invstd, dy, dx):
    t = cuda.grid(1)  # (sample, group)
    g_ = mean.shape[1]
    if t < x.shape[0] * g_:
        n = t // g_
        _group_norm_grad_group(x, gamma, mean, invstd, dy, dx, n, t - n * g_)


@cuda.jit
def _group_norm_param_grads(x, dy, mean, invstd, dgamma, dbeta, want_gamma, want_beta):
    c = cuda.grid(1)  # channel
    if c < x.shape[1]:
        _group_norm_param_channel(x, dy, mean, invstd, dgamma, dbeta, want_gamma, want_beta, c)


@cuda.jit
def _lrn_train(x, out, scale, size, alpha, beta, k):
    j = cuda.grid(1)  # column (a, b)
    b_ = x.shape[2]
    if j < x.shape[0] * b_:
        a = j // b_
        _lrn_train_column(x, out, scale, size, alpha, beta, k, a, j - a * b_)


@cuda.jit
def _lrn_grad(x, scale, dy, dx, size, alpha, beta):
    j = cuda.grid(1)  # column (a, b)
    b_ = x.shape[2]
    if j < x.shape[0] * b_:
        a = j // b_
        _lrn_grad_column(x, scale, dy, dx, size, alpha, beta, a, j - a * b_)


@cuda.jit
def _scaled_accumulate(dy, dx, factor):
    """dx += dy * factor (flat)."""
    i = cuda.grid(1)
    if i < dx.size:
        dx[i] += dy[i] * factor


@cuda.jit
def _channel_scale_accumulate(dy, gamma, dx, inner):
    """dx[a, c, b] += dy[a, c, b] * gamma[c] on flat arrays; ``inner`` = B."""
    i = cuda.grid(1)
    if i < dx.size:
        dx[i] += dy[i] * gamma[(i // inner) % gamma.size]


@cuda.jit
def _softmax_grad(y, dy, dx):
    j = cuda.grid(1)  # column (a, b)
    b_ = y.shape[2]
    if j < y.shape[0] * b_:
        a = j // b_
        _softmax_grad_column(y, dy, dx, a, j - a * b_)


@cuda.jit
def _dropout(x, mask, out, scale):
    """out = x * (mask * scale) (flat; out may be x)."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] = x[i] * (float32(mask[i]) * scale)


@cuda.jit
def _dropout_grad(dy, mask, dx, scale):
    """dx += dy * (mask * scale) (flat)."""
    i = cuda.grid(1)
    if i < dx.size:
        dx[i] += dy[i] * (float32(mask[i]) * scale)


@cuda.jit
def _softmax_cross_entropy(x, labels, probs, losses):
    """Per label position (a, b), one thread each: probs[a, :, b] = the softmax of the logits
    column, losses[a * B + b] = -log probs[label] (float64)."""
    j = cuda.grid(1)
    b_ = x.shape[2]
    if j < x.shape[0] * b_:
        a = j // b_
        b = j - a * b_
        losses[j] = _softmax_cross_entropy_column(x, labels[a, b], probs, a, b)


@cuda.jit
def _cross_entropy_grad(probs, labels, dx, weight):
    """dx[a, :, b] += (probs - onehot(labels[a, b])) * weight, one thread per column."""
    j = cuda.grid(1)
    b_ = probs.shape[2]
    if j < probs.shape[0] * b_:
        a = j // b_
        b = j - a * b_
        _cross_entropy_grad_column(probs, labels[a, b], dx, weight, a, b)


def channel_affine(x, scale, shift, out, axis):
    """x, out device arrays; scale, shift device vectors over ``axis``."""
    inner = axis_view(out, axis).shape[2]
    launch(_affine, out.size, flat(x), scale, shift, flat(out), inner)


def _per_column(kernel, x3, *args):
    """Launch a one-thread-per-column ``kernel`` over the (a, b) columns of x3 (A, C, B)."""
    launch(kernel, x3.shape[0] * x3.shape[2], x3, *args)


def channel_grad_sums(x, dy, mean, invstd, centred, dgamma, dbeta):
    """Launch ``_channel_grad_sums`` on (A, C, B) views; ``dgamma``/``dbeta``: the device arrays to
    write, or None where not wanted (``x``, ``mean``, ``invstd`` are read only as they need)."""
    launch(_channel_grad_sums, dy.shape[1], x, dy, mean, invstd, centred,
           dummy() if dgamma is None else dgamma, dummy() if dbeta is None else dbeta,
           dgamma is not None, dbeta is not None)


def channel_scale_accumulate(dy, gamma, dx, axis):
    """dx += dy * gamma over ``axis`` (gamma: a device vector), dy and dx C-contiguous."""
    inner = axis_view(dx, axis).shape[2]
    launch(_channel_scale_accumulate, dx.size, flat(dy), gamma, flat(dx), inner)


def _column_extra(extra, view):
    """A layer-norm statistic (the input's shape less the normalised axis) as (A, B)."""
    return contiguous(extra, "LayerNorm extras").reshape(view.shape[0], view.shape[2])


class ActivationKernel:
    prepare = staticmethod(adapters.activation_state)

    @staticmethod
    def run(op, state, inputs, out):
        launch(_activation, out.size, flat(inputs[0]), flat(out), *state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """As at inference; ``out`` may be ``inputs[0]`` (in place)."""
        ActivationKernel.run(op, adapters.activation_state(op, None, None, params), inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += grad_out * f', f' from the kept output (relu, relu6, sigmoid, tanh, elu,
        leaky_relu with slope >= 0) or else the kept input."""
        dx = input_grad(grad_inputs)
        if dx is None:
            return
        code, slope = ACTIVATION_CODES[op.fn], np.float32(op.slope)
        dy, dx = flat(grad_out), flat(dx)
        if op.keeps_output():
            if op.fn == "elu" and op.slope < 0:
                raise ArchcostError("Activation backward: elu keeps its output, from which the gradient is "
                                    "defined only for alpha >= 0 (as PyTorch's in-place elu)")
            y = flat(kept(out, op, "output"))
            launch(_activation_grad_output, dx.size, y, dy, dx, code, slope)
        else:
            x = flat(kept(inputs[0] if inputs else None, op, "input"))
            launch(_activation_grad_input, dx.size, x, dy, dx, code, slope)


class BatchNormKernel:
    prepare = staticmethod(uploaded(adapters.batch_norm_state))
    momentum = 0.1  # PyTorch's default

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(inputs[0], *state, out, 1)

    @staticmethod
    def _gamma_beta(op, params, c):
        if op.affine:
            return param_to_device(params["gamma"]), param_to_device(params["beta"])
        return cuda.to_device(np.ones(c, np.float32)), cuda.to_device(np.zeros(c, np.float32))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """Batch statistics; writes extras "mean", "invstd" and updates params "mean"/"var" (host
        arrays) in place."""
        x = axis_view(inputs[0], 1)
        c = x.shape[1]
        if x.shape[0] * x.shape[2] < 2:
            raise ArchcostError(f"BatchNorm training: expected more than 1 value per channel, got input shape "
                                f"{tuple(inputs[0].shape)} (as PyTorch)")
        running_mean, running_var = param_to_device(params["mean"]), param_to_device(params["var"])
        mean, invstd = extras["mean"], extras["invstd"]
        launch(_batch_norm_stats, c, x, float(op.eps), BatchNormKernel.momentum, mean, invstd,
               running_mean, running_var)
        launch(_batch_norm_apply, x.size, x, mean, invstd, *BatchNormKernel._gamma_beta(op, params, c),
               axis_view(out, 1))
        params["mean"][...] = running_mean.copy_to_host()
        params["var"][...] = running_var.copy_to_host()

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """From the kept input and batch mean/invstd: grad_inputs[0] += the data gradient;
        param_grads "gamma" = sum dy * xh, "beta" = sum dy (affine only, where named)."""
        param_grads = param_grads or {}
        dx = input_grad(grad_inputs)
        want_gamma = op.affine and "gamma" in param_grads
        want_beta = op.affine and "beta" in param_grads
        if dx is None and not (want_gamma or want_beta):
            return
        x = axis_view(kept(inputs[0] if inputs else None, op, "input"), 1)
        dy = axis_view(grad_out, 1)
        mean, invstd = extras["mean"], extras["invstd"]
        c = x.shape[1]
        sums = cuda.device_array((c, 2), np.float64)
        launch(_batch_norm_grad_sums, c, x, mean, invstd, dy, sums,
               param_grads["gamma"] if want_gamma else dummy(), param_grads["beta"] if want_beta else dummy(),
               want_gamma, want_beta)
        if dx is not None:
            gamma = param_to_device(params["gamma"]) if op.affine else cuda.to_device(np.ones(c, np.float32))
            launch(_batch_norm_grad_data, x.size, x, mean, invstd, gamma, dy, sums, axis_view(dx, 1))


class ScaleKernel:
    prepare = staticmethod(uploaded(adapters.scale_state))

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(inputs[0], *state, out, op.axis)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        ScaleKernel.run(op, ScaleKernel.prepare(op, None, tuple(out.shape), params), inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """A fixed factor: grad_inputs[0] += grad_out * factor (nothing kept). A learned gamma:
        grad_inputs[0] += grad_out * gamma; param_grads["gamma"] = sum grad_out * x (kept input)."""
        param_grads = param_grads or {}
        dx = input_grad(grad_inputs)
        if op.factor is not None:
            if dx is not None:
                launch(_scaled_accumulate, dx.size, flat(grad_out), flat(dx), float(op.factor))
            return
        if dx is not None:
            channel_scale_accumulate(grad_out, param_to_device(params["gamma"]), dx, op.axis)
        if "gamma" in param_grads:
            x = axis_view(kept(inputs[0] if inputs else None, op, "input"), op.axis)
            none = dummy(ndim=2)
            channel_grad_sums(x, axis_view(grad_out, op.axis), none, none, False, param_grads["gamma"], None)


class LayerNormKernel:
    prepare = staticmethod(uploaded(adapters.layer_norm_state))

    @staticmethod
    def run(op, state, inputs, out):
        _per_column(_layer_norm, axis_view(inputs[0], op.axis), *state, axis_view(out, op.axis))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """Writes extras "mean", "invstd" (the input's shape without the normalised axis)."""
        x = axis_view(inputs[0], op.axis)
        _per_column(_layer_norm_train, x, param_to_device(params["gamma"]), param_to_device(params["beta"]),
                    float(op.eps), axis_view(out, op.axis), _column_extra(extras["mean"], x),
                    _column_extra(extras["invstd"], x))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """From the kept input and statistics: grad_inputs[0] += the data gradient per column;
        param_grads "gamma" = sum dy * xh, "beta" = sum dy per channel (where named)."""
        param_grads = param_grads or {}
        dx = input_grad(grad_inputs)
        if dx is None and not ("gamma" in param_grads or "beta" in param_grads):
            return
        x = axis_view(kept(inputs[0] if inputs else None, op, "input"), op.axis)
        mean, invstd = _column_extra(extras["mean"], x), _column_extra(extras["invstd"], x)
        dy = axis_view(grad_out, op.axis)
        if dx is not None:
            _per_column(_layer_norm_grad, x, param_to_device(params["gamma"]), mean, invstd, dy,
                        axis_view(dx, op.axis))
        if "gamma" in param_grads or "beta" in param_grads:
            channel_grad_sums(x, dy, mean, invstd, True, param_grads.get("gamma"), param_grads.get("beta"))


def _group_stats(extra, n, groups, what: str):
    return contiguous(extra, f"GroupNorm {what}").reshape(n, groups)


class GroupNormKernel:
    """One thread per (sample, group) for the normalisation and the data gradient, one per
    channel for the param gradients (float64 sums, as on the cpu)."""

    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        gamma, beta, eps = adapters.group_norm_state(op, in_shapes, out_shape, params)
        return cuda.to_device(np.ascontiguousarray(gamma)), cuda.to_device(np.ascontiguousarray(beta)), eps

    @staticmethod
    def run(op, state, inputs, out):
        x = group_view(inputs[0])
        # The statistics are the sample's own at inference too; scratch, not kept.
        stats = [cuda.device_array((x.shape[0], op.groups), np.float32) for _ in range(2)]
        launch(_group_norm, x.shape[0] * op.groups, x, *state, group_view(out), *stats)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """Writes extras "mean", "invstd" (N, groups)."""
        x = group_view(inputs[0])
        state = GroupNormKernel.prepare(op, (tuple(x.shape),), None, params)
        launch(_group_norm, x.shape[0] * op.groups, x, *state, group_view(out),
               _group_stats(extras["mean"], x.shape[0], op.groups, "mean"),
               _group_stats(extras["invstd"], x.shape[0], op.groups, "invstd"))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """From the kept input and statistics: grad_inputs[0] += the data gradient; param_grads
        "gamma" = sum dy * xh, "beta" = sum dy per channel (affine only, where named; written)."""
        param_grads = param_grads or {}
        dx = input_grad(grad_inputs)
        want_gamma = op.affine and "gamma" in param_grads
        want_beta = op.affine and "beta" in param_grads
        if dx is None and not (want_gamma or want_beta):
            return
        x = group_view(kept(inputs[0] if inputs else None, op, "input"))
        mean = _group_stats(extras["mean"], x.shape[0], op.groups, "mean")
        invstd = _group_stats(extras["invstd"], x.shape[0], op.groups, "invstd")
        dy = group_view(grad_out)
        if dx is not None:
            gamma, _, _ = GroupNormKernel.prepare(op, (tuple(x.shape),), None, params)
            launch(_group_norm_grad, x.shape[0] * op.groups, x, gamma, mean, invstd, dy, group_view(dx))
        if want_gamma or want_beta:
            launch(_group_norm_param_grads, x.shape[1], x, dy, mean, invstd,
                   param_grads["gamma"] if want_gamma else dummy(), param_grads["beta"] if want_beta else dummy(),
                   want_gamma, want_beta)


class LRNKernel:
    prepare = staticmethod(adapters.lrn_state)

    @staticmethod
    def run(op, state, inputs, out):
        _per_column(_lrn, axis_view(inputs[0], 1), axis_view(out, 1), *state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """Writes extras "scale" (input shape): k + alpha / size * the window's sum of squares."""
        _per_column(_lrn_train, axis_view(inputs[0], 1), axis_view(out, 1),
                    axis_view(contiguous(extras["scale"], "LRN scale"), 1), *adapters.lrn_state(op, None, None, params))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += the LRN input gradient per column, from the kept input and scale."""
        dx = input_grad(grad_inputs)
        if dx is not None:
            _per_column(_lrn_grad, axis_view(kept(inputs[0] if inputs else None, op, "input"), 1),
                        axis_view(extras["scale"], 1), axis_view(grad_out, 1), axis_view(dx, 1),
                        op.size, float(op.alpha), float(op.beta))


class SoftmaxKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        _per_column(_softmax, axis_view(inputs[0], op.axis), axis_view(out, op.axis))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        SoftmaxKernel.run(op, None, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += y * (dy - sum(dy * y)) per column, from the kept output y."""
        dx = input_grad(grad_inputs)
        if dx is not None:
            _per_column(_softmax_grad, axis_view(kept(out, op, "output"), op.axis), axis_view(grad_out, op.axis),
                        axis_view(dx, op.axis))


class DropoutTrain:
    """Dropout in training mode (the executor wires it into tensor.ViewKernel): extras "mask"
    (uint8 0/1 device array, output shape) is pre-filled by the executor; y = x * mask / (1 - p),
    computed as PyTorch does: x times (mask times the float32 1 / (1 - p))."""

    @staticmethod
    def scale(op) -> np.float32:
        return np.float32(1.0) / np.float32(1.0 - op.p)

    @staticmethod
    def _mask(extras):
        mask = (extras or {}).get("mask")
        if mask is None:
            raise ArchcostError("Dropout training: extras 'mask' (the executor's pre-filled 0/1 mask) is missing")
        return flat(contiguous(mask, "Dropout mask"))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """``out`` may be ``inputs[0]`` (in place)."""
        launch(_dropout, out.size, flat(inputs[0]), DropoutTrain._mask(extras), flat(out), DropoutTrain.scale(op))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += grad_out * mask / (1 - p) (the mask is all it keeps)."""
        dx = input_grad(grad_inputs)
        if dx is not None:
            launch(_dropout_grad, dx.size, flat(grad_out), DropoutTrain._mask(extras), flat(dx),
                   DropoutTrain.scale(op))


class SoftmaxCrossEntropy:
    """The training loss: softmax cross-entropy over axis 1 of the logits (N, C, ...) (a device
    array), labels int64 (N, ...) in [0, C) (a host or device array), the mean over the label
    positions. Keeps "probs" (a device array of the logits' shape)."""

    @staticmethod
    def _labels(logits, labels):
        """The labels as an int64 (A, B) device array, checked on the host (they are small)."""
        shape = tuple(logits.shape)
        if len(shape) < 2 or tuple(labels.shape) != shape[:1] + shape[2:]:
            raise ArchcostError(f"SoftmaxCrossEntropy: labels of shape {tuple(labels.shape)} do not fit logits "
                                f"of shape {shape} (want the logits' shape without axis 1)")
        on_device = not isinstance(labels, np.ndarray)
        host = np.ascontiguousarray(labels.copy_to_host() if on_device else labels, np.int64)
        if host.size and (host.min() < 0 or host.max() >= shape[1]):
            raise ArchcostError(f"SoftmaxCrossEntropy: labels must lie in [0, {shape[1]}), got "
                                f"{host.min()}..{host.max()}")
        rows = (math.prod(shape[:1]), math.prod(shape[2:]))
        if on_device and labels.dtype == np.int64 and labels.is_c_contiguous():
            return labels.reshape(*rows)
        return cuda.to_device(host.reshape(rows))

    @staticmethod
    def forward(logits, labels, probs) -> float:
        """Writes probs (softmax over axis 1); returns the mean cross-entropy (float64 per position,
        summed on the host)."""
        lab = SoftmaxCrossEntropy._labels(logits, labels)
        losses = cuda.device_array(lab.size, np.float64)
        launch(_softmax_cross_entropy, lab.size, axis_view(logits, 1), lab,
               axis_view(contiguous(probs, "probs"), 1), losses)
        return float(losses.copy_to_host().sum() / lab.size)

    @staticmethod
    def backward(probs, labels, grad_logits) -> None:
        """grad_logits += (probs - onehot(labels)) / the number of label positions."""
        lab = SoftmaxCrossEntropy._labels(probs, labels)
        launch(_cross_entropy_grad, lab.size, axis_view(probs, 1), lab,
               axis_view(contiguous(grad_logits, "grad_logits"), 1), 1.0 / lab.size)
