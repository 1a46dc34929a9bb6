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
prange task per block of ``TILE`` rows x ``data_cols(F)`` features, which only it writes: it
streams each weight row's run of features once, adding gy[m, o] times it into float32 row
partials (vectorised over the features), moved into float64 totals every ``GRAD_TERMS``
outputs. ``linear_grad_weight`` (dw = gy^T @ x) runs one task per block of ``TILE`` outputs x
``WEIGHT_COLS`` features with the conv kernels' register tile (``TILE`` outputs x ``LANES``
features in zmm accumulators, per row one vector load of x and ``TILE`` broadcasts of gy),
float32 over at most ``GRAD_TERMS`` rows, float64 totals beyond. ``linear_grad_bias`` sums gy
over the rows in float64. Counts walk the same loops; padded is 0.
"""

import math

import numpy as np
from numba import carray, njit, prange

from archcost.kernels import adapters
from archcost.kernels.cpu.conv import LANES, TILE, _stack_tile, accumulate_into, as_float32, write_into

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
#
# Both gradients are products with a short side (the batch's rows M) and use the conv kernels'
# register tile: TILE rows of the result x LANES features in TILE zmm accumulators, per term one
# vector load and TILE broadcasts. Features past the last whole LANES block go a row at a time.

GRAD_TERMS = 256  # terms of a float32 partial sum (then added to float64 totals)
WEIGHT_COLS = 1024  # features per weight-gradient task


def data_cols(f: int) -> int:
    """Features per data-gradient task: about an eighth of the row (tasks for every thread),
    in multiples of 256, from 256 to 4096 (long contiguous runs of each weight row)."""
    return max(256, min(4096, (f // 8 + 255) // 256 * 256))
BIAS_COLS = 64  # outputs per bias-gradient task


@njit(parallel=True, fastmath=True, cache=True)
def linear_grad_data(gy, w, dx, block):
    """dx (M, F) += gy (M, O) @ w (O, F). One prange task per (block of TILE rows, ``block``
    features, see ``data_cols``), which only it writes. It streams the weight row by row, each
    row's ``block`` features a contiguous run (so each weight is read once, in long runs), adding
    gy[m, o] times the run into a float32 partial per row (vectorised over the features); every
    GRAD_TERMS outputs the partials are added to float64 totals, which go into dx."""
    m_, o_ = gy.shape
    f_ = w.shape[1]
    row_blocks = (m_ + TILE - 1) // TILE
    col_blocks = (f_ + block - 1) // block
    for task in prange(row_blocks * col_blocks):
        m0 = (task // col_blocks) * TILE
        f0 = (task % col_blocks) * block
        rows = min(TILE, m_ - m0)
        cols = min(block, f_ - f0)
        part = np.zeros((TILE, block), np.float32)
        tot = np.zeros((TILE, block), np.float64)
        for o0 in range(0, o_, GRAD_TERMS):
            for o in range(o0, min(o0 + GRAD_TERMS, o_)):
                wr = w[o, f0:f0 + cols]
                for q in range(rows):
                    gv = gy[m0 + q, o]
                    pq = part[q]
                    for c in range(cols):
                        pq[c] += gv * wr[c]
            for q in range(rows):
                for c in range(cols):
                    tot[q, c] += part[q, c]
                    part[q, c] = 0.0
        for q in range(rows):
            for c in range(cols):
                dx[m0 + q, f0 + c] += tot[q, c]


@njit(cache=True)
def linear_grad_data_count(m_, o_, f_, block):
    """The loops of ``linear_grad_data``, each row's feature loop replaced by its trip count."""
    row_blocks = (m_ + TILE - 1) // TILE
    col_blocks = (f_ + block - 1) // block
    performed = 0
    for task in range(row_blocks * col_blocks):
        rows = min(TILE, m_ - (task // col_blocks) * TILE)
        cols = min(block, f_ - (task % col_blocks) * block)
        for o0 in range(0, o_, GRAD_TERMS):
            for o in range(o0, min(o0 + GRAD_TERMS, o_)):
                for q in range(rows):
                    performed += cols
    return performed, 0


@njit(fastmath=True, inline="always")
def _weight_tile(g, o0, o1, o2, o3, o4, o5, o6, o7, x, r0, r1, f, acc):
    """acc[q, j] = sum over rows t in [r0, r1) of g[t, o_q] * x[t, f + j]: TILE outputs against
    the LANES input columns from f, over the rows of one chunk."""
    for i in range(TILE * LANES):
        acc[i] = 0.0
    for t in range(r0, r1):
        gt = g[t]
        xt = x[t, f:]
        x0 = gt[o0]
        x1 = gt[o1]
        x2 = gt[o2]
        x3 = gt[o3]
        x4 = gt[o4]
        x5 = gt[o5]
        x6 = gt[o6]
        x7 = gt[o7]
        for j in range(LANES):
            xv = xt[j]
            acc[j] += x0 * xv
            acc[LANES + j] += x1 * xv
            acc[2 * LANES + j] += x2 * xv
            acc[3 * LANES + j] += x3 * xv
            acc[4 * LANES + j] += x4 * xv
            acc[5 * LANES + j] += x5 * xv
            acc[6 * LANES + j] += x6 * xv
            acc[7 * LANES + j] += x7 * xv


@njit(parallel=True, fastmath=True, cache=True)
def linear_grad_weight(x, gy, dw):
    """dw (O, F) = gy (M, O)^T @ x (M, F). One prange task per (block of TILE outputs, block of
    WEIGHT_COLS features), which only it writes: per LANES features a register tile sums the M
    rows in float32 chunks of GRAD_TERMS rows; a single chunk (M <= GRAD_TERMS) is stored as is,
    longer sums go through float64 totals. Features past the last whole LANES block go a row at
    a time; a partial output block re-reads its last output (results dropped)."""
    m_, f_ = x.shape
    o_ = gy.shape[1]
    out_blocks = (o_ + TILE - 1) // TILE
    col_blocks = (f_ + WEIGHT_COLS - 1) // WEIGHT_COLS
    for task in prange(out_blocks * col_blocks):
        k0 = (task // col_blocks) * TILE
        f0 = (task % col_blocks) * WEIGHT_COLS
        outs = min(TILE, o_ - k0)
        cols = min(WEIGHT_COLS, f_ - f0)
        vecs = cols // LANES
        acc = carray(_stack_tile(np.float32), TILE * LANES)
        tot = np.zeros(TILE * LANES, np.float64)
        last = k0 + outs - 1
        for v in range(vecs):
            f = f0 + v * LANES
            if m_ <= GRAD_TERMS:
                _weight_tile(gy, k0, min(k0 + 1, last), min(k0 + 2, last), min(k0 + 3, last), min(k0 + 4, last),
                             min(k0 + 5, last), min(k0 + 6, last), min(k0 + 7, last), x, 0, m_, f, acc)
                for q in range(outs):
                    for j in range(LANES):
                        dw[k0 + q, f + j] = acc[q * LANES + j]
            else:
                for i in range(TILE * LANES):
                    tot[i] = 0.0
                for r0 in range(0, m_, GRAD_TERMS):
                    r1 = min(r0 + GRAD_TERMS, m_)
                    _weight_tile(gy, k0, min(k0 + 1, last), min(k0 + 2, last), min(k0 + 3, last),
                                 min(k0 + 4, last), min(k0 + 5, last), min(k0 + 6, last), min(k0 + 7, last),
                                 x, r0, r1, f, acc)
                    for i in range(TILE * LANES):
                        tot[i] += acc[i]
                for q in range(outs):
                    for j in range(LANES):
                        dw[k0 + q, f + j] = tot[q * LANES + j]
        for q in range(outs):
            for c in range(vecs * LANES, cols):
                total = 0.0
                for r0 in range(0, m_, GRAD_TERMS):
                    s = np.float32(0.0)
                    for r in range(r0, min(r0 + GRAD_TERMS, m_)):
                        s += gy[r, k0 + q] * x[r, f0 + c]
                    total += s
                dw[k0 + q, f0 + c] = total


@njit(cache=True)
def linear_grad_weight_count(m_, o_, f_):
    """The loops of ``linear_grad_weight``, each tile's and each single feature's row loop
    replaced by its trip count (x the real outputs and features it serves)."""
    out_blocks = (o_ + TILE - 1) // TILE
    col_blocks = (f_ + WEIGHT_COLS - 1) // WEIGHT_COLS
    performed = 0
    for task in range(out_blocks * col_blocks):
        outs = min(TILE, o_ - (task // col_blocks) * TILE)
        cols = min(WEIGHT_COLS, f_ - (task % col_blocks) * WEIGHT_COLS)
        vecs = cols // LANES
        for v in range(vecs):
            for r0 in range(0, m_, GRAD_TERMS):
                performed += outs * LANES * (min(r0 + GRAD_TERMS, m_) - r0)
        for q in range(outs):
            for c in range(vecs * LANES, cols):
                for r0 in range(0, m_, GRAD_TERMS):
                    performed += min(r0 + GRAD_TERMS, m_) - r0
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
            accumulate_into(dx, lambda buf: linear_grad_data(gy, w, _rows(buf), data_cols(w.shape[1])))
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
        data = linear_grad_data_count(m, o, f, data_cols(f)) if want_data else (0, 0)
        weight = linear_grad_weight_count(m, o, f) if want_weight else (0, 0)
        return int(data[0]), int(data[1]), int(weight[0]), int(weight[1])
