"""Per-element and per-channel kernels on device arrays: activations, batch norm, layer norm,
LRN, scale, softmax.

Per-element kernels take flat views, one thread per element. Channel-wise kernels see the same
``(A, C, B)`` view as the cpu kernels (``common.axis_view``): the affine (batch norm, scale) has
one thread per element; layer norm, LRN and softmax have one thread per ``(a, b)`` column, which
loops over the ``C`` channels of its column (statistics in float64, as on the cpu).
"""

import math

import numpy as np

from archcost.kernels.cpu.pointwise import ACTIVATION_CODES
from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import axis_view, flat, grid1d


@cuda.jit
def _activation(x, out, code, slope):
    i = cuda.grid(1)
    if i < out.size:
        v = x[i]
        if code == 0:
            r = max(v, 0.0)
        elif code == 1:
            r = min(max(v, 0.0), 6.0)
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


@cuda.jit
def _affine(x, scale, shift, out, inner):
    """out[a, c, b] = x[a, c, b] * scale[c] + shift[c] on flat arrays; ``inner`` = B."""
    i = cuda.grid(1)
    if i < out.size:
        c = (i // inner) % scale.size
        out[i] = x[i] * scale[c] + shift[c]


@cuda.jit
def _layer_norm(x, gamma, beta, eps, out):
    j = cuda.grid(1)
    a_, c_, b_ = x.shape
    if j < a_ * b_:
        a = j // b_
        b = j - a * b_
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


@cuda.jit
def _lrn(x, out, size, alpha, beta, k):
    """PyTorch's LocalResponseNorm over C: window c - size//2 .. c + (size-1)//2 (clipped)."""
    j = cuda.grid(1)
    a_, c_, b_ = x.shape
    if j < a_ * b_:
        a = j // b_
        b = j - a * b_
        lo_off = size // 2
        hi_off = (size - 1) // 2
        for c in range(c_):
            total = 0.0
            for cc in range(max(c - lo_off, 0), min(c + hi_off + 1, c_)):
                v = x[a, cc, b]
                total += v * v
            out[a, c, b] = x[a, c, b] / (k + alpha / size * total) ** beta


@cuda.jit
def _softmax(x, out):
    j = cuda.grid(1)
    a_, c_, b_ = x.shape
    if j < a_ * b_:
        a = j // b_
        b = j - a * b_
        top = -math.inf
        for c in range(c_):
            top = max(top, x[a, c, b])
        total = 0.0
        for c in range(c_):
            e = math.exp(x[a, c, b] - top)
            out[a, c, b] = e
            total += e
        for c in range(c_):
            out[a, c, b] = out[a, c, b] / total


def channel_affine(x, scale, shift, out, axis):
    """x, out device arrays; scale, shift device vectors over ``axis``."""
    inner = axis_view(out, axis).shape[2]
    blocks, threads = grid1d(out.size)
    _affine[blocks, threads](flat(x), scale, shift, flat(out), inner)


class ActivationKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return ACTIVATION_CODES[op.fn], np.float32(op.slope)

    @staticmethod
    def run(op, state, inputs, out):
        blocks, threads = grid1d(out.size)
        _activation[blocks, threads](flat(inputs[0]), flat(out), *state)


class BatchNormKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        # Folded once on the host: y = x * gamma / sqrt(var + eps) + (beta - mean * gamma / sqrt(var + eps)).
        inv = 1.0 / np.sqrt(params["var"].astype(np.float64) + op.eps)
        gamma = params["gamma"].astype(np.float64) if op.affine else 1.0
        beta = params["beta"].astype(np.float64) if op.affine else 0.0
        scale = gamma * inv
        shift = beta - params["mean"].astype(np.float64) * scale
        return cuda.to_device(scale.astype(np.float32)), cuda.to_device(shift.astype(np.float32))

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(inputs[0], *state, out, 1)


class ScaleKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        if op.factor is None:
            gamma = params["gamma"]
        else:
            gamma = np.full(out_shape[op.axis], op.factor, np.float32)
        gamma = np.ascontiguousarray(gamma, np.float32)
        return cuda.to_device(gamma), cuda.to_device(np.zeros_like(gamma))

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(inputs[0], *state, out, op.axis)


class LayerNormKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return cuda.to_device(params["gamma"]), cuda.to_device(params["beta"]), float(op.eps)

    @staticmethod
    def run(op, state, inputs, out):
        x3, out3 = axis_view(inputs[0], op.axis), axis_view(out, op.axis)
        blocks, threads = grid1d(x3.shape[0] * x3.shape[2])
        _layer_norm[blocks, threads](x3, *state, out3)


class LRNKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return op.size, float(op.alpha), float(op.beta), float(op.k)

    @staticmethod
    def run(op, state, inputs, out):
        x3, out3 = axis_view(inputs[0], 1), axis_view(out, 1)
        blocks, threads = grid1d(x3.shape[0] * x3.shape[2])
        _lrn[blocks, threads](x3, out3, *state)


class SoftmaxKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return None

    @staticmethod
    def run(op, state, inputs, out):
        x3, out3 = axis_view(inputs[0], op.axis), axis_view(out, op.axis)
        blocks, threads = grid1d(x3.shape[0] * x3.shape[2])
        _softmax[blocks, threads](x3, out3)
