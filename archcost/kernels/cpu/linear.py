"""Linear layer on the last axis: ``out[m, o] = sum_f x[m, f] * w[o, f] + b[o]``, our own loops.

At batch 1 a linear layer is a matrix-vector product: every weight is read once and used once,
so its speed is the rate the weights stream from memory. The weight stays in its (O, F) layout
(each output a contiguous dot product the vectorizer turns into zmm FMAs over f, with fastmath
allowing the reassociation); one prange task takes ``ROWS`` outputs, whose four rows stream
side by side and share each load of x, and loops over the batch rows inside the task so a row
block of the weight is read from memory once and reused from cache for every sample.
``linear_count`` walks the same loops and returns ``(performed, 0)``: a linear layer has no
padding, so every counted multiply is performed.

**Training** (``LinearKernel.train_forward``/``backward``/``backward_count``) works on the same
(M, F) view (M = every leading axis of the input). ``linear_grad_data`` (dx += gy @ w) runs one
prange task per block of ``GRAD_ROWS`` rows x ``GRAD_COLS`` features, which only it writes: each
weight row's slice is read once for the block's rows; ``linear_grad_weight`` (dw = gy^T @ x) one
task per block of ``GRAD_ROWS`` outputs x ``GRAD_COLS`` features, summing over the M rows;
``linear_grad_bias`` sums gy over the rows. All sums are float64 locals. Counts walk the same
loops; padded is 0.
"""

import math

import numpy as np
from numba import njit, prange

from archcost.kernels import adapters
from archcost.kernels.cpu.conv import accumulate_into, as_float32, write_into

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


# --- training: the backward kernels ----------------------------------------------------------

GRAD_ROWS = 4  # rows of the batch (data gradient) or outputs (weight gradient) per task
GRAD_COLS = 256  # features per task: a float64 accumulator block of GRAD_ROWS x GRAD_COLS
BIAS_COLS = 64  # outputs per bias-gradient task


@njit(parallel=True, fastmath=True, cache=True)
def linear_grad_data(gy, w, dx):
    """dx (M, F) += gy (M, O) @ w (O, F). One prange task per (block of GRAD_ROWS rows, block of
    GRAD_COLS features): a float64 accumulator over the O outputs, added into dx at the end."""
    m_, o_ = gy.shape
    f_ = w.shape[1]
    row_blocks = (m_ + GRAD_ROWS - 1) // GRAD_ROWS
    col_blocks = (f_ + GRAD_COLS - 1) // GRAD_COLS
    for task in prange(row_blocks * col_blocks):
        m0 = (task // col_blocks) * GRAD_ROWS
        f0 = (task % col_blocks) * GRAD_COLS
        rows = min(GRAD_ROWS, m_ - m0)
        cols = min(GRAD_COLS, f_ - f0)
        acc = np.zeros((GRAD_ROWS, GRAD_COLS), np.float64)
        for o in range(o_):
            wo = w[o, f0:f0 + cols]
            for r in range(rows):
                g = np.float64(gy[m0 + r, o])
                ar = acc[r]
                for f in range(cols):
                    ar[f] += g * wo[f]
        for r in range(rows):
            for f in range(cols):
                dx[m0 + r, f0 + f] += acc[r, f]


@njit(cache=True)
def linear_grad_data_count(m_, o_, f_):
    """The loops of ``linear_grad_data``, each innermost row replaced by its trip count."""
    row_blocks = (m_ + GRAD_ROWS - 1) // GRAD_ROWS
    col_blocks = (f_ + GRAD_COLS - 1) // GRAD_COLS
    performed = 0
    for task in range(row_blocks * col_blocks):
        rows = min(GRAD_ROWS, m_ - (task // col_blocks) * GRAD_ROWS)
        cols = min(GRAD_COLS, f_ - (task % col_blocks) * GRAD_COLS)
        for o in range(o_):
            for r in range(rows):
                performed += cols
    return performed, 0


@njit(parallel=True, fastmath=True, cache=True)
def linear_grad_weight(x, gy, dw):
    """dw (O, F) = gy (M, O)^T @ x (M, F). One prange task per (block of GRAD_ROWS outputs, block
    of GRAD_COLS features): a float64 sum over the M rows, written at the end."""
    m_, f_ = x.shape
    o_ = gy.shape[1]
    row_blocks = (o_ + GRAD_ROWS - 1) // GRAD_ROWS
    col_blocks = (f_ + GRAD_COLS - 1) // GRAD_COLS
    for task in prange(row_blocks * col_blocks):
        o0 = (task // col_blocks) * GRAD_ROWS
        f0 = (task % col_blocks) * GRAD_COLS
        rows = min(GRAD_ROWS, o_ - o0)
        cols = min(GRAD_COLS, f_ - f0)
        acc = np.zeros((GRAD_ROWS, GRAD_COLS), np.float64)
        for m in range(m_):
            xm = x[m, f0:f0 + cols]
            for r in range(rows):
                g = np.float64(gy[m, o0 + r])
                ar = acc[r]
                for f in range(cols):
                    ar[f] += g * xm[f]
        for r in range(rows):
            for f in range(cols):
                dw[o0 + r, f0 + f] = acc[r, f]


@njit(cache=True)
def linear_grad_weight_count(m_, o_, f_):
    """The loops of ``linear_grad_weight``, each innermost row replaced by its trip count."""
    row_blocks = (o_ + GRAD_ROWS - 1) // GRAD_ROWS
    col_blocks = (f_ + GRAD_COLS - 1) // GRAD_COLS
    performed = 0
    for task in range(row_blocks * col_blocks):
        rows = min(GRAD_ROWS, o_ - (task // col_blocks) * GRAD_ROWS)
        cols = min(GRAD_COLS, f_ - (task % col_blocks) * GRAD_COLS)
        for m in range(m_):
            for r in range(rows):
                performed += cols
    return performed, 0


@njit(parallel=True, fastmath=True, cache=True)
def linear_grad_bias(gy, db):
    """db (O,) = the sum of gy (M, O) over its rows; one prange task per BIAS_COLS outputs."""
    m_, o_ = gy.shape
    for task in prange((o_ + BIAS_COLS - 1) // BIAS_COLS):
        o0 = task * BIAS_COLS
        cols = min(BIAS_COLS, o_ - o0)
        acc = np.zeros(BIAS_COLS, np.float64)
        for m in range(m_):
            for j in range(cols):
                acc[j] += gy[m, o0 + j]
        for j in range(cols):
            db[o0 + j] = acc[j]


def _rows(a):
    """The (M, last axis) view of a C-contiguous array."""
    return a.reshape(-1, a.shape[-1])


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

    # --- training ------------------------------------------------------------------------------

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The training forward is the inference forward; nothing goes in ``extras``."""
        state = LinearKernel.prepare(op, tuple(tuple(x.shape) for x in inputs), tuple(out.shape), params)
        LinearKernel.run(op, state, [as_float32(x) for x in inputs], out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """On the (M, F) view of any rank >= 2: grad_inputs[0] += gy @ weight;
        param_grads["weight"] = gy^T @ x (x: the kept input 0); param_grads["bias"] = gy summed
        over the rows. A name missing from ``param_grads`` is frozen and not computed."""
        gy = _rows(as_float32(grad_out))
        dx = grad_inputs[0] if grad_inputs else None
        if dx is not None:
            w = as_float32(params["weight"])
            accumulate_into(dx, lambda buf: linear_grad_data(gy, w, _rows(buf)))
        if "weight" in param_grads:
            if inputs[0] is None:
                raise ValueError("Linear backward: the weight gradient needs the kept input 0")
            x = _rows(as_float32(inputs[0]))
            write_into(param_grads["weight"], lambda buf: linear_grad_weight(x, gy, buf))
        if op.bias and "bias" in param_grads:
            write_into(param_grads["bias"], lambda buf: linear_grad_bias(gy, buf))

    @staticmethod
    def backward_count(op, params, in_shapes, out_shape, want_data, want_weight):
        """(data performed, 0, weight performed, 0): the multiplies of ``linear_grad_data`` and
        ``linear_grad_weight`` on these shapes, counted by their loops; a gradient not wanted
        counts (0, 0)."""
        f = in_shapes[0][-1]
        m = math.prod(in_shapes[0][:-1])
        o = out_shape[-1]
        data = linear_grad_data_count(m, o, f) if want_data else (0, 0)
        weight = linear_grad_weight_count(m, o, f) if want_weight else (0, 0)
        return int(data[0]), int(data[1]), int(weight[0]), int(weight[1])
