"""Float64 numpy references of the pointwise ops' training forward and backward, and of the
softmax cross-entropy loss, written independently of the kernels.

The kernels loop over (a, c, b) views and use the closed forms of each gradient from the kept
tensors; here everything works on whole arrays and is derived another way:

- activations: the derivative from the INPUT always (the kernels read the output where the
  saving policy keeps it), as array expressions (sigmoid as 0.5 * (1 + tanh(x / 2)), tanh's as
  1 / cosh^2, hardswish's by ``np.select``);
- batch norm, layer norm and group norm: the staged chain rule through the mean, the variance and the
  normalised value (the textbook backprop of the computation graph), not the folded formula;
- LRN: the adjoint of the window sum is itself a window sum of a channel-padded array
  (``sliding_window_view``), padded the other way round from the forward's;
- softmax: the Jacobian-vector product y * (dy - <dy, y>) on whole arrays; the loss as the mean
  negative log-softmax (``take_along_axis``) with a one-hot from ``put_along_axis``.

``train_forward(op, params, inputs, extras=None) -> (out, kept extras, param updates)`` and
``backward(op, params, inputs, out, grad_out, want_inputs, want_params, extras=None) ->
(list of input grads (None where not wanted), dict of param grads)`` dispatch on the op; inputs,
outputs and gradients are float64 arrays, params the float32 dict of archcost.execute.init_params
(never modified here). Dropout needs ``extras["mask"]``; where it is not given, the mask is read
back from a nonzero input and its output.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from archcost import ops
from archcost.errors import ArchcostError
from archcost.kernels import reference

BN_MOMENTUM = 0.1
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _f64(a):
    return None if a is None else np.asarray(a, np.float64)


def _channel_shape(ndim, axis):
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return shape


def _other_axes(ndim, axis):
    return tuple(i for i in range(ndim) if i != axis % ndim)


# --- activations -------------------------------------------------------------------------------

def activation_derivative(op: ops.Activation, x):
    """f'(x) on the whole array, with PyTorch's values at the kinks."""
    a = op.slope
    with np.errstate(over="ignore"):
        sig = 0.5 * (1.0 + np.tanh(0.5 * x))
        table = {
            "relu": lambda: (x > 0).astype(np.float64),
            "relu6": lambda: ((x > 0) & (x < 6)).astype(np.float64),
            "leaky_relu": lambda: np.where(x > 0, 1.0, a),
            "elu": lambda: np.where(x > 0, 1.0, a * np.exp(np.minimum(x, 0.0))),
            "sigmoid": lambda: sig * (1.0 - sig),
            "tanh": lambda: 1.0 / np.cosh(x) ** 2,
            "gelu": lambda: 0.5 * (1.0 + _erf(x / math.sqrt(2.0))) + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi),
            "silu": lambda: sig + x * sig * (1.0 - sig),
            "hardswish": lambda: np.select([x < -3.0, x <= 3.0], [0.0, (2.0 * x + 3.0) / 6.0], 1.0),
            "hardsigmoid": lambda: np.where(np.abs(x) < 3.0, 1.0 / 6.0, 0.0),
        }
        return table[op.fn]()


def activation_derivative_from_output(op: ops.Activation, y):
    """f' from the output, for the fns whose output determines it (used only when the input is
    not given)."""
    a = op.slope
    table = {
        "relu": lambda: (y > 0).astype(np.float64),
        "relu6": lambda: ((y > 0) & (y < 6)).astype(np.float64),
        "leaky_relu": lambda: np.where(y > 0, 1.0, a),
        "elu": lambda: np.where(y > 0, 1.0, y + a),
        "sigmoid": lambda: y - y * y,
        "tanh": lambda: 1.0 - y * y,
    }
    if op.fn not in table or (op.fn in ("leaky_relu", "elu") and a < 0):
        raise ArchcostError(f"reference: the {op.fn} gradient needs the input")
    return table[op.fn]()


# --- batch norm (training) ---------------------------------------------------------------------

def batch_norm_train(op: ops.BatchNorm, x, params, momentum=BN_MOMENTUM):
    """(y, {"mean", "invstd"} per channel, {"mean", "var"}: the updated running statistics)."""
    axes = _other_axes(x.ndim, 1)
    shape = _channel_shape(x.ndim, 1)
    m = x.size // x.shape[1]
    mean = x.mean(axis=axes)
    var = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
    invstd = 1.0 / np.sqrt(var + op.eps)
    y = (x - mean.reshape(shape)) * invstd.reshape(shape)
    if op.affine:
        y = y * params["gamma"].astype(np.float64).reshape(shape) + params["beta"].astype(np.float64).reshape(shape)
    running = {
        "mean": (1.0 - momentum) * params["mean"].astype(np.float64) + momentum * mean,
        "var": (1.0 - momentum) * params["var"].astype(np.float64) + momentum * var * m / (m - 1),
    }
    return y, {"mean": mean, "invstd": invstd}, running


def _normalise_backward(x, gamma, dy, eps, axes, want_x):
    """Staged backprop of y = (x - mu) / sqrt(var + eps) * gamma with mu, var over ``axes``:
    returns (dx or None, sum of dy * xhat, sum of dy) (the sums over ``axes``, keepdims)."""
    n = math.prod(x.shape[i] for i in axes)
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=axes, keepdims=True)
    rstd = (var + eps) ** -0.5
    xhat = xc * rstd
    dot = (dy * xhat)
    dx = None
    if want_x:
        dxhat = dy * gamma
        dvar = (dxhat * xc).sum(axis=axes, keepdims=True) * -0.5 * rstd ** 3
        dmu = -(dxhat * rstd).sum(axis=axes, keepdims=True) + dvar * (-2.0 * xc).mean(axis=axes, keepdims=True)
        dx = dxhat * rstd + dvar * 2.0 * xc / n + dmu / n
    return dx, dot, dy


def batch_norm_backward(op: ops.BatchNorm, params, x, dy, want_x, want_params):
    shape = _channel_shape(x.ndim, 1)
    axes = _other_axes(x.ndim, 1)
    gamma = params["gamma"].astype(np.float64).reshape(shape) if op.affine else 1.0
    dx, dot, total = _normalise_backward(x, gamma, dy, op.eps, axes, want_x)
    grads = {}
    if op.affine and "gamma" in want_params:
        grads["gamma"] = dot.sum(axis=axes)
    if op.affine and "beta" in want_params:
        grads["beta"] = total.sum(axis=axes)
    return dx, grads


# --- layer norm --------------------------------------------------------------------------------

def layer_norm_train(op: ops.LayerNorm, x, params):
    """(y, {"mean", "invstd"}: the input's shape less the normalised axis)."""
    mean = x.mean(axis=op.axis)
    var = x.var(axis=op.axis)
    invstd = 1.0 / np.sqrt(var + op.eps)
    return reference.layer_norm(op, x, params), {"mean": mean, "invstd": invstd}


def layer_norm_backward(op: ops.LayerNorm, params, x, dy, want_x, want_params):
    shape = _channel_shape(x.ndim, op.axis)
    gamma = params["gamma"].astype(np.float64).reshape(shape)
    dx, dot, total = _normalise_backward(x, gamma, dy, op.eps, (op.axis % x.ndim,), want_x)
    others = _other_axes(x.ndim, op.axis)
    grads = {}
    if "gamma" in want_params:
        grads["gamma"] = dot.sum(axis=others)
    if "beta" in want_params:
        grads["beta"] = total.sum(axis=others)
    return dx, grads


# --- group norm --------------------------------------------------------------------------------

def group_norm_train(op: ops.GroupNorm, x, params):
    """(y, {"mean", "invstd"}: (N, groups))."""
    grouped = x.reshape(x.shape[0], op.groups, -1)
    invstd = 1.0 / np.sqrt(grouped.var(axis=2) + op.eps)
    return reference.group_norm(op, x, params), {"mean": grouped.mean(axis=2), "invstd": invstd}


def group_norm_backward(op: ops.GroupNorm, params, x, dy, want_x, want_params):
    """The staged chain rule on the (N, G, C/G, S) view, statistics over axes (2, 3); gamma per
    channel broadcast along axis 2 of the view; its sums over (N, S) are the param grads."""
    n, c = x.shape[0], x.shape[1]
    shape4 = (n, op.groups, c // op.groups, -1)
    x4, dy4 = x.reshape(shape4), dy.reshape(shape4)
    gamma = params["gamma"].astype(np.float64).reshape(1, op.groups, c // op.groups, 1) if op.affine else 1.0
    dx, dot, total = _normalise_backward(x4, gamma, dy4, op.eps, (2, 3), want_x)
    grads = {}
    if op.affine and "gamma" in want_params:
        grads["gamma"] = dot.sum(axis=(0, 3)).reshape(c)
    if op.affine and "beta" in want_params:
        grads["beta"] = total.sum(axis=(0, 3)).reshape(c)
    return (dx.reshape(x.shape) if dx is not None else None), grads


# --- LRN ---------------------------------------------------------------------------------------

def _window_sum(t, before, after, size):
    """Sum over axis 1 of windows of ``size`` channels of ``t`` zero-padded by (before, after)."""
    pad = [(0, 0)] * t.ndim
    pad[1] = (before, after)
    return sliding_window_view(np.pad(t, pad), size, axis=1).sum(axis=-1)


def lrn_train(op: ops.LRN, x):
    """(y, {"scale"}): scale = k + alpha / size * the sum of squares over channel c's window
    [c - size//2, c + (size-1)//2]."""
    scale = op.k + op.alpha / op.size * _window_sum(x * x, op.size // 2, (op.size - 1) // 2, op.size)
    return x * scale ** -op.beta, {"scale": scale}


def lrn_backward(op: ops.LRN, x, dy):
    """y = x * s^-beta, s_c = k + alpha/size sum_{j in W(c)} x_j^2. The adjoint of the window sum
    sends t_c to every j in W(c), i.e. j gathers the c in [j - (size-1)//2, j + size//2]: a window
    sum of t padded ((size-1)//2, size//2), the forward's padding reversed."""
    _, kept = lrn_train(op, x)
    s = kept["scale"]
    t = dy * x * (-op.beta) * s ** (-op.beta - 1.0)  # dL/ds_c
    gathered = _window_sum(t, (op.size - 1) // 2, op.size // 2, op.size)
    return dy * s ** -op.beta + gathered * (op.alpha / op.size) * 2.0 * x


# --- scale, softmax, dropout -------------------------------------------------------------------

def scale_backward(op: ops.Scale, params, x, dy, want_x, want_params):
    if op.factor is not None:
        return (dy * op.factor if want_x else None), {}
    shape = _channel_shape(dy.ndim, op.axis)
    gamma = params["gamma"].astype(np.float64)
    grads = {}
    if "gamma" in want_params:
        grads["gamma"] = (dy * x).sum(axis=_other_axes(dy.ndim, op.axis))
    return (dy * gamma.reshape(shape) if want_x else None), grads


def softmax_backward(op: ops.Softmax, y, dy):
    return y * (dy - (dy * y).sum(axis=op.axis, keepdims=True))


def dropout_mask(op: ops.Dropout, x, out, extras):
    if not op.p:  # p = 0: the identity, no mask kept
        return np.ones_like(_f64(x if x is not None else out))
    if extras is not None and "mask" in extras:
        return np.asarray(extras["mask"], np.float64)
    if x is None or out is None or not (x != 0).all():
        raise ArchcostError("reference: dropout needs its mask (or a nonzero input and its output)")
    return np.rint(out / x * (1.0 - op.p))


# --- the loss ----------------------------------------------------------------------------------

def softmax_cross_entropy(logits, labels):
    """(mean loss, probs, dL/dlogits) of softmax cross-entropy over axis 1 of ``logits``
    (N, C, ...), ``labels`` (N, ...) int, the mean over the label positions."""
    logits = np.asarray(logits, np.float64)
    z = logits - logits.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    index = np.asarray(labels, np.int64)[:, None]
    loss = -np.take_along_axis(log_probs, index, axis=1).mean()
    probs = np.exp(log_probs)
    onehot = np.zeros_like(logits)
    np.put_along_axis(onehot, index, 1.0, axis=1)
    return float(loss), probs, (probs - onehot) / index.size


# --- dispatch ----------------------------------------------------------------------------------

def train_forward(op, params, inputs, extras=None):
    """(out, kept extras, param updates) of ``op`` in training mode, all float64. BatchNorm's
    updates are the new running "mean" and "var"; the other ops update nothing."""
    x = _f64(inputs[0])
    if isinstance(op, ops.BatchNorm):
        return batch_norm_train(op, x, params)
    if isinstance(op, ops.LayerNorm):
        return (*layer_norm_train(op, x, params), {})
    if isinstance(op, ops.GroupNorm):
        return (*group_norm_train(op, x, params), {})
    if isinstance(op, ops.LRN):
        return (*lrn_train(op, x), {})
    if isinstance(op, ops.Dropout):
        mask = dropout_mask(op, x, None, extras)
        return x * mask / (1.0 - op.p), {"mask": mask}, {}
    if isinstance(op, (ops.Activation, ops.Scale, ops.Softmax)):
        return reference.forward(op, [x], params, x.shape), {}, {}
    raise ArchcostError(f"reference: no training forward for op {type(op).__name__}")


def backward(op, params, inputs, out, grad_out, want_inputs, want_params, extras=None):
    """(input grads, param grads) of ``op``: the first a list with one entry per input (None where
    ``want_inputs`` is false), the second a dict of the names in ``want_params`` that the op has."""
    x = _f64(inputs[0]) if inputs else None
    y = _f64(out)
    dy = _f64(grad_out)
    want_x = bool(want_inputs[0])
    want_params = set(want_params or ())
    grads = {}
    if isinstance(op, ops.Activation):
        dx = dy * (activation_derivative(op, x) if x is not None else activation_derivative_from_output(op, y))
    elif isinstance(op, ops.BatchNorm):
        dx, grads = batch_norm_backward(op, params, x, dy, want_x, want_params)
    elif isinstance(op, ops.LayerNorm):
        dx, grads = layer_norm_backward(op, params, x, dy, want_x, want_params)
    elif isinstance(op, ops.GroupNorm):
        dx, grads = group_norm_backward(op, params, x, dy, want_x, want_params)
    elif isinstance(op, ops.LRN):
        dx = lrn_backward(op, x, dy)
    elif isinstance(op, ops.Scale):
        dx, grads = scale_backward(op, params, x, dy, want_x, want_params)
    elif isinstance(op, ops.Softmax):
        dx = softmax_backward(op, y if y is not None else reference.softmax(op, x), dy)
    elif isinstance(op, ops.Dropout):
        dx = dy * dropout_mask(op, x, y, extras) / (1.0 - op.p)
    else:
        raise ArchcostError(f"reference: no backward for op {type(op).__name__}")
    return [dx if want_x else None], grads
