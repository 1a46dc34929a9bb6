"""Linear layer on the last axis, ``out[m, o] = sum_f x[m, f] * wt[f, o] + b[o]``, on device arrays.

Rows ``m`` are the batch times any leading positions. Many rows (``> GEMV_MAX_ROWS``): a tiled
GEMM: each block stages ``GEMM_DEPTH``-deep slices of ``x`` and of the packed weight ``wt (F, O)``
in shared memory and each thread accumulates a ``wy x wx`` register tile (x over outputs, y over
rows). Few rows (a classifier at small batch): a GEMV: one thread per (row, output), reading
``wt`` rows coalesced across the block while a block-sized chunk of the row ``x[m]`` sits in
shared memory. ``linear_count`` has one thread per row add its ``F x O`` multiplies: a linear
layer has no padding, so all are performed.
"""

import math
from functools import lru_cache

import numpy as np
from numba import float32, int64

from archcost.kernels import adapters
from archcost.kernels.cuda import config
from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import grid1d


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
