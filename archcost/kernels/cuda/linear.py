"""Linear layer on the last axis, ``out[m, o] = sum_f x[m, f] * wt[f, o] + b[o]``, on device arrays.

Rows ``m`` are the batch times any leading positions. Many rows (``> GEMV_MAX_ROWS``): a tiled
GEMM: each block stages ``GEMM_DEPTH``-deep slices of ``x`` and of the packed weight ``wt (F, O)``
in shared memory and each thread accumulates a ``wy x wx`` register tile (x over outputs, y over
rows). Few rows (a classifier at small batch): a GEMV: one thread per (row, output), reading
``wt`` rows coalesced across the block while a block-sized chunk of the row ``x[m]`` sits in
shared memory. ``linear_count`` has one thread per row add its ``F x O`` multiplies: a linear
layer has no padding, so all are performed.

Training (``LinearKernel.train_forward``/``backward``/``backward_count``) on the same (M, F) view:
the training forward is the inference forward; the backward reads the raw (O, F) weight and has
one thread per element of each gradient, the only writer of it: ``_grad_data`` dx[m, f] +=
sum_o gy[m, o] * w[o, f], ``_grad_weight`` dw[o, f] = sum_m gy[m, o] * x[m, f], ``_grad_bias``
db[o] = sum_m gy[m, o], all in float64 locals. ``backward_count`` is the cpu's (every multiply is
performed: M x O x F for either gradient).
"""

import math
from functools import lru_cache

import numpy as np
from numba import float32, int64

from archcost.kernels import adapters
from archcost.kernels.cuda import config
from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import grid1d, input_grad, kept, launch, param_to_device


@lru_cache(maxsize=None)
def _gemm_kernel(bx, by, wx, wy, depth):
    to, tm = bx * wx, by * wy

    @cuda.jit
    def kernel(x, wt, bias, out):
        m_, f_ = x.shape
        o_ = wt.shape[1]
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * bx + tx
        o0 = cuda.blockIdx.x * to
        m0 = cuda.blockIdx.y * tm
        xs = cuda.shared.array((depth, tm), float32)
        ws = cuda.shared.array((depth, to), float32)
        acc = cuda.local.array((wy, wx), float32)
        for i in range(wy):
            for j in range(wx):
                acc[i, j] = 0.0
        for f0 in range(0, f_, depth):
            for e in range(tid, depth * tm, bx * by):  # consecutive threads: consecutive features
                mm = e // depth
                ff = e - mm * depth
                v = float32(0.0)
                if m0 + mm < m_ and f0 + ff < f_:
                    v = x[m0 + mm, f0 + ff]
                xs[ff, mm] = v
            for e in range(tid, depth * to, bx * by):  # consecutive threads: consecutive outputs
                ff = e // to
                oo = e - ff * to
                v = float32(0.0)
                if f0 + ff < f_ and o0 + oo < o_:
                    v = wt[f0 + ff, o0 + oo]
                ws[ff, oo] = v
            cuda.syncthreads()
            for ff in range(depth):
                for i in range(wy):
                    a = xs[ff, ty + i * by]
                    for j in range(wx):
                        acc[i, j] += a * ws[ff, tx + j * bx]
            cuda.syncthreads()
        for i in range(wy):
            m = m0 + ty + i * by
            if m < m_:
                for j in range(wx):
                    o = o0 + tx + j * bx
                    if o < o_:
                        out[m, o] = acc[i, j] + bias[o]

    return kernel


@lru_cache(maxsize=None)
def _gemv_kernel(threads):
    @cuda.jit
    def kernel(x, wt, bias, out):
        f_ = x.shape[1]
        o_ = wt.shape[1]
        o = cuda.blockIdx.x * threads + cuda.threadIdx.x
        m = cuda.blockIdx.y
        chunk = cuda.shared.array(threads, float32)
        total = float32(0.0)
        for f0 in range(0, f_, threads):
            f = f0 + cuda.threadIdx.x
            chunk[cuda.threadIdx.x] = x[m, f] if f < f_ else float32(0.0)
            cuda.syncthreads()
            if o < o_:
                for ff in range(min(threads, f_ - f0)):
                    total += chunk[ff] * wt[f0 + ff, o]
            cuda.syncthreads()
        if o < o_:
            out[m, o] = total + bias[o]

    return kernel


@cuda.jit
def _count(m_, f_, o_, totals):
    m = cuda.grid(1)
    if m < m_:
        cuda.atomic.add(totals, 0, int64(f_ * o_))


def linear(x, wt, bias, out):
    """Launch: x (M, F), wt (F, O), out (M, O) device arrays."""
    m_, o_ = out.shape
    if m_ <= config.GEMV_MAX_ROWS:
        threads = config.THREADS
        _gemv_kernel(threads)[(-(-o_ // threads), m_), threads](x, wt, bias, out)
        return
    (bx, by), (wx, wy) = config.GEMM_BLOCK, config.GEMM_WORK
    grid = (-(-o_ // (bx * wx)), -(-m_ // (by * wy)))
    _gemm_kernel(bx, by, wx, wy, config.GEMM_DEPTH)[grid, (bx, by)](x, wt, bias, out)


@cuda.jit
def _grad_data(gy, w, dx):
    """dx (M, F) += gy (M, O) @ w (O, F); one thread per element of dx."""
    i = cuda.grid(1)
    m_, f_ = dx.shape
    if i < m_ * f_:
        m = i // f_
        f = i - m * f_
        total = 0.0
        for o in range(w.shape[0]):
            total += gy[m, o] * w[o, f]
        dx[m, f] += total


@cuda.jit
def _grad_weight(x, gy, dw):
    """dw (O, F) = gy (M, O)^T @ x (M, F); one thread per weight."""
    i = cuda.grid(1)
    o_, f_ = dw.shape
    if i < o_ * f_:
        o = i // f_
        f = i - o * f_
        total = 0.0
        for m in range(x.shape[0]):
            total += gy[m, o] * x[m, f]
        dw[o, f] = total


@cuda.jit
def _grad_bias(gy, db):
    """db (O,) = gy (M, O) summed over its rows; one thread per output."""
    o = cuda.grid(1)
    if o < db.shape[0]:
        total = 0.0
        for m in range(gy.shape[0]):
            total += gy[m, o]
        db[o] = total


def _rows(a):
    shape = tuple(a.shape)  # the simulator's shape object has no negative indexing
    return a.reshape(math.prod(shape[:-1]), shape[-1])


class LinearKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        wt = np.ascontiguousarray(params["weight"].T, np.float32)
        return cuda.to_device(wt), cuda.to_device(adapters.bias_or_zeros(op, op.out_features, params))

    @staticmethod
    def run(op, state, inputs, out):
        linear(_rows(inputs[0]), *state, _rows(out))

    @staticmethod
    def count(op, state, inputs, out):
        x = _rows(inputs[0])
        totals = cuda.to_device(np.zeros(2, np.int64))
        blocks, threads = grid1d(x.shape[0])
        _count[blocks, threads](x.shape[0], x.shape[1], state[0].shape[1], totals)
        performed, padded = totals.copy_to_host()
        return int(performed), int(padded)

    # --- training ------------------------------------------------------------------------------

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The training forward is the inference forward, its weight uploaded afresh; nothing goes
        in ``extras``."""
        state = LinearKernel.prepare(op, tuple(tuple(x.shape) for x in inputs), tuple(out.shape), params)
        LinearKernel.run(op, state, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """On the (M, F) view of any rank >= 2: grad_inputs[0] += gy @ weight;
        param_grads["weight"] = gy^T @ x (x: the kept input 0); param_grads["bias"] = gy summed
        over the rows. A name missing from ``param_grads`` is frozen and not computed."""
        param_grads = param_grads or {}
        gy = _rows(grad_out)
        dx = input_grad(grad_inputs)
        if dx is not None:
            dx = _rows(dx)
            launch(_grad_data, dx.size, gy, param_to_device(params["weight"]), dx)
        if "weight" in param_grads:
            x = _rows(kept(inputs[0] if inputs else None, op, "input 0 (the weight gradient needs it)"))
            dw = param_grads["weight"]
            launch(_grad_weight, dw.size, x, gy, dw)
        if op.bias and "bias" in param_grads:
            db = param_grads["bias"]
            launch(_grad_bias, db.size, gy, db)

    @staticmethod
    def backward_count(op, params, in_shapes, out_shape, want_data, want_weight):
        """(data performed, 0, weight performed, 0): each gradient's thread multiplies once per term
        of its sum, M x O x F in all, as the cpu's counting loops count (on the host); a gradient
        not wanted counts (0, 0)."""
        from archcost.kernels.cpu.linear import LinearKernel as CpuLinearKernel

        return CpuLinearKernel.backward_count(op, params, in_shapes, out_shape, want_data, want_weight)
