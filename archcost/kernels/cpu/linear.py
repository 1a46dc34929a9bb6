"""Linear layer on the last axis: ``out[m, o] = sum_f x[m, f] * w[f, o] + b[o]``, our own loops.

The weight is packed once as (F, O) so the innermost loop runs over contiguous outputs. Work is
split over (row, block of ``BLOCK`` outputs) so a batch-1 classifier still uses every core.
``linear_count`` walks the same loops and returns ``(performed, 0)``: a linear layer has no
padding, so every counted multiply is performed.
"""

import numpy as np
from numba import njit, prange

BLOCK = 64


@njit(parallel=True, fastmath=True, cache=True)
def linear(x, wt, bias, out):
    m_, f_ = x.shape
    o_ = wt.shape[1]
    blocks = (o_ + BLOCK - 1) // BLOCK
    for task in prange(m_ * blocks):
        m = task // blocks
        o0 = (task % blocks) * BLOCK
        o1 = min(o0 + BLOCK, o_)
        acc = np.zeros(BLOCK, np.float32)
        for f in range(f_):
            xv = x[m, f]
            for o in range(o0, o1):
                acc[o - o0] += xv * wt[f, o]
        for o in range(o0, o1):
            out[m, o] = acc[o - o0] + bias[o]


@njit(cache=True)
def linear_count(x, wt, out):
    m_, f_ = x.shape
    o_ = wt.shape[1]
    blocks = (o_ + BLOCK - 1) // BLOCK
    performed = 0
    for task in range(m_ * blocks):
        o0 = (task % blocks) * BLOCK
        o1 = min(o0 + BLOCK, o_)
        for f in range(f_):
            performed += o1 - o0
    return performed, 0


class LinearKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        wt = np.ascontiguousarray(params["weight"].T, np.float32)
        bias = params["bias"] if op.bias else np.zeros(op.out_features, np.float32)
        return wt, np.ascontiguousarray(bias, np.float32)

    @staticmethod
    def run(op, state, inputs, out):
        wt, bias = state
        x = inputs[0]
        linear(x.reshape(-1, x.shape[-1]), wt, bias, out.reshape(-1, out.shape[-1]))

    @staticmethod
    def count(op, state, inputs, out):
        x = inputs[0]
        return linear_count(x.reshape(-1, x.shape[-1]), state[0], out.reshape(-1, out.shape[-1]))
