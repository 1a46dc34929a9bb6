"""Per-element and per-channel kernels: activations, batch norm, layer norm, LRN, scale, softmax.

Channel-wise kernels see a 3-D view ``(A, C, B)`` of a contiguous array: ``A`` the axes before
the channel axis, ``B`` those after, so one kernel serves NCHW maps, (N, F) vectors and
channels-last maps alike (``axis_view``).
"""

import math

import numpy as np
from numba import njit

# Activation codes: the kernels take an int, not a string.
ACTIVATION_CODES = {
    "relu": 0, "relu6": 1, "leaky_relu": 2, "elu": 3, "sigmoid": 4,
    "tanh": 5, "gelu": 6, "silu": 7, "hardswish": 8, "hardsigmoid": 9,
}


def axis_view(a: np.ndarray, axis: int) -> np.ndarray:
    """(A, C, B) view of contiguous ``a`` around ``axis``."""
    axis %= a.ndim
    before = int(np.prod(a.shape[:axis], dtype=np.int64))
    after = int(np.prod(a.shape[axis + 1:], dtype=np.int64))
    return a.reshape(before, a.shape[axis], after)


@njit(cache=True)
def activation(x, out, code, slope):
    """x, out: 1-D (may be the same array: the op runs in place)."""
    for i in range(x.size):
        v = x[i]
        if code == 0:
            r = v if v > 0 else np.float32(0.0)
        elif code == 1:
            r = min(max(v, np.float32(0.0)), np.float32(6.0))
        elif code == 2:
            r = v if v > 0 else v * slope
        elif code == 3:
            r = v if v > 0 else slope * (math.exp(v) - 1.0)
        elif code == 4:
            r = 1.0 / (1.0 + math.exp(-v))
        elif code == 5:
            r = math.tanh(v)
        elif code == 6:
            r = 0.5 * v * (1.0 + math.erf(v * 0.7071067811865476))
        elif code == 7:
            r = v / (1.0 + math.exp(-v))
        elif code == 8:
            r = v * min(max(v + 3.0, 0.0), 6.0) / 6.0
        else:
            r = min(max(v + 3.0, 0.0), 6.0) / 6.0
        out[i] = r


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
    a_, c_, b_ = x.shape
    for a in range(a_):
        for b in range(b_):
            mean = 0.0
            for c in range(c_):
                mean += x[a, c, b]
            mean /= c_
            var = 0.0
            for c in range(c_):
                d = x[a, c, b] - mean
                var += d * d
            inv = 1.0 / math.sqrt(var / c_ + eps)
            for c in range(c_):
                out[a, c, b] = (x[a, c, b] - mean) * inv * gamma[c] + beta[c]


@njit(cache=True)
def lrn(x, out, size, alpha, beta, k):
    """PyTorch's LocalResponseNorm over axis 1 of (A, C, B): window c - size//2 .. c + (size-1)//2."""
    a_, c_, b_ = x.shape
    lo_off, hi_off = size // 2, (size - 1) // 2
    for a in range(a_):
        for b in range(b_):
            for c in range(c_):
                total = 0.0
                for j in range(max(c - lo_off, 0), min(c + hi_off + 1, c_)):
                    total += x[a, j, b] * x[a, j, b]
                out[a, c, b] = x[a, c, b] / (k + alpha / size * total) ** beta


@njit(cache=True)
def softmax(x, out):
    """Softmax over axis 1 of (A, C, B)."""
    a_, c_, b_ = x.shape
    for a in range(a_):
        for b in range(b_):
            top = -np.inf
            for c in range(c_):
                top = max(top, x[a, c, b])
            total = 0.0
            for c in range(c_):
                e = math.exp(x[a, c, b] - top)
                out[a, c, b] = e
                total += e
            for c in range(c_):
                out[a, c, b] = out[a, c, b] / total


class ActivationKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return ACTIVATION_CODES[op.fn], np.float32(op.slope)

    @staticmethod
    def run(op, state, inputs, out):
        activation(inputs[0].reshape(-1), out.reshape(-1), *state)


class BatchNormKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        # Folded once: y = x * gamma / sqrt(var + eps) + (beta - mean * gamma / sqrt(var + eps)).
        inv = 1.0 / np.sqrt(params["var"].astype(np.float64) + op.eps)
        gamma = params["gamma"].astype(np.float64) if op.affine else 1.0
        beta = params["beta"].astype(np.float64) if op.affine else 0.0
        scale = gamma * inv
        shift = beta - params["mean"].astype(np.float64) * scale
        return scale.astype(np.float32), shift.astype(np.float32)

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(axis_view(inputs[0], 1), *state, axis_view(out, 1))


class LayerNormKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return params["gamma"], params["beta"], float(op.eps)

    @staticmethod
    def run(op, state, inputs, out):
        gamma, beta, eps = state
        layer_norm(axis_view(inputs[0], op.axis), gamma, beta, eps, axis_view(out, op.axis))


class LRNKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return op.size, float(op.alpha), float(op.beta), float(op.k)

    @staticmethod
    def run(op, state, inputs, out):
        lrn(axis_view(inputs[0], 1), axis_view(out, 1), *state)


class ScaleKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        if op.factor is None:
            gamma = params["gamma"]
        else:
            gamma = np.full(out_shape[op.axis], op.factor, np.float32)
        return gamma, np.zeros_like(gamma)

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(axis_view(inputs[0], op.axis), *state, axis_view(out, op.axis))


class SoftmaxKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return None

    @staticmethod
    def run(op, state, inputs, out):
        softmax(axis_view(inputs[0], op.axis), axis_view(out, op.axis))
