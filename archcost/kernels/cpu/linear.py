"""Linear layer on the last axis: ``out[m, o] = sum_f x[m, f] * w[o, f] + b[o]``, our own loops.

At batch 1 a linear layer is a matrix-vector product: every weight is read once and used once,
so its speed is the rate the weights stream from memory. The weight stays in its (O, F) layout
(each output a contiguous dot product the vectorizer turns into zmm FMAs over f, with fastmath
allowing the reassociation); one prange task takes ``ROWS`` outputs, whose four rows stream
side by side and share each load of x, and loops over the batch rows inside the task so a row
block of the weight is read from memory once and reused from cache for every sample.
``linear_count`` walks the same loops and returns ``(performed, 0)``: a linear layer has no
padding, so every counted multiply is performed.
"""

import numpy as np
from numba import njit, prange

from archcost.kernels import adapters

ROWS = 4  # outputs per task, streamed together


@njit(parallel=True, fastmath=True, cache=True)
def linear(x, w, bias, out):
    m_, f_ = x.shape
    o_ = w.shape[0]
    for task in prange((o_ + ROWS - 1) // ROWS):
        o0 = task * ROWS
        if o0 + ROWS <= o_:
            w0, w1, w2, w3 = w[o0], w[o0 + 1], w[o0 + 2], w[o0 + 3]
            for m in range(m_):
                xm = x[m]
                s0 = np.float32(0.0)
                s1 = np.float32(0.0)
                s2 = np.float32(0.0)
                s3 = np.float32(0.0)
                for f in range(f_):
                    xv = xm[f]
                    s0 += w0[f] * xv
                    s1 += w1[f] * xv
                    s2 += w2[f] * xv
                    s3 += w3[f] * xv
                out[m, o0] = s0 + bias[o0]
                out[m, o0 + 1] = s1 + bias[o0 + 1]
                out[m, o0 + 2] = s2 + bias[o0 + 2]
                out[m, o0 + 3] = s3 + bias[o0 + 3]
        else:
            for o in range(o0, o_):
                wo = w[o]
                for m in range(m_):
                    xm = x[m]
                    s = np.float32(0.0)
                    for f in range(f_):
                        s += wo[f] * xm[f]
                    out[m, o] = s + bias[o]


@njit(cache=True)
def linear_count(x, w, out):
    m_, f_ = x.shape
    o_ = w.shape[0]
    performed = 0
    for task in range((o_ + ROWS - 1) // ROWS):
        o0 = task * ROWS
        for o in range(o0, min(o0 + ROWS, o_)):
            for m in range(m_):
                performed += f_
    return performed, 0


class LinearKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return np.ascontiguousarray(params["weight"], np.float32), adapters.bias_or_zeros(op, op.out_features, params)

    @staticmethod
    def run(op, state, inputs, out):
        w, bias = state
        x = inputs[0]
        linear(x.reshape(-1, x.shape[-1]), w, bias, out.reshape(-1, out.shape[-1]))

    @staticmethod
    def count(op, state, inputs, out):
        x = inputs[0]
        return linear_count(x.reshape(-1, x.shape[-1]), state[0], out.reshape(-1, out.shape[-1]))
