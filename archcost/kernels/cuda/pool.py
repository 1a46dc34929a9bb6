"""Max, average and global average pooling on NCHW float32 device maps.

Max and average pooling: one thread per output element, its window clipped to the input
(padding never enters a max); the average divides as PyTorch does (see the cpu kernels: with
``count_include_pad`` the cells inside the padded input, else those inside the input; a ceil-mode
window hanging past the padding counts fewer). Global average pooling: one block per (sample,
channel), each thread summing a strided share of the map in float64, then a tree reduction in
shared memory (``REDUCE_THREADS``, a power of two).
"""

import math
from functools import lru_cache

from numba import float64

from archcost.errors import ArchcostError
from archcost.kernels.cuda import config
from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import grid1d


@cuda.jit
def _max_pool(x, out, kh, kw, sh, sw, pt, pl):
    i = cuda.grid(1)
    n_, c_, oh_, ow_ = out.shape
    if i < n_ * c_ * oh_ * ow_:
        h_, w_ = x.shape[2], x.shape[3]
        ow = i % ow_
        oh = (i // ow_) % oh_
        c = (i // (ow_ * oh_)) % c_
        n = i // (ow_ * oh_ * c_)
        hs = oh * sh - pt
        ws = ow * sw - pl
        best = -math.inf
        for ih in range(max(hs, 0), min(hs + kh, h_)):
            for iw in range(max(ws, 0), min(ws + kw, w_)):
                v = x[n, c, ih, iw]
                if v > best:
                    best = v
        out[n, c, oh, ow] = best


@cuda.jit
def _avg_pool(x, out, kh, kw, sh, sw, pt, pb, pl, pr, count_include_pad):
    i = cuda.grid(1)
    n_, c_, oh_, ow_ = out.shape
    if i < n_ * c_ * oh_ * ow_:
        h_, w_ = x.shape[2], x.shape[3]
        ow = i % ow_
        oh = (i // ow_) % oh_
        c = (i // (ow_ * oh_)) % c_
        n = i // (ow_ * oh_ * c_)
        hs = oh * sh - pt
        he = min(hs + kh, h_ + pb)
        ws = ow * sw - pl
        we = min(ws + kw, w_ + pr)
        h0, h1 = max(hs, 0), min(he, h_)
        w0, w1 = max(ws, 0), min(we, w_)
        total = 0.0
        for ih in range(h0, h1):
            for iw in range(w0, w1):
                total += x[n, c, ih, iw]
        if count_include_pad:
            divisor = (he - hs) * (we - ws)
        else:
            divisor = (h1 - h0) * (w1 - w0)
        out[n, c, oh, ow] = total / divisor


@lru_cache(maxsize=None)
def _global_avg_kernel(threads):
    @cuda.jit
    def kernel(x, out):
        # x (N*C, H*W), out (N*C,): one block per row
        row = cuda.blockIdx.x
        t = cuda.threadIdx.x
        size = x.shape[1]
        partial = cuda.shared.array(threads, float64)
        total = 0.0
        for j in range(t, size, threads):
            total += x[row, j]
        partial[t] = total
        cuda.syncthreads()
        step = threads // 2
        while step > 0:
            if t < step:
                partial[t] += partial[t + step]
            cuda.syncthreads()
            step //= 2
        if t == 0:
            out[row] = partial[0] / size

    return kernel


def _launch(kernel, out, *args):
    blocks, threads = grid1d(math.prod(out.shape))
    kernel[blocks, threads](*args)


class MaxPool2dKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return (*op.kernel, *op.stride, op.padding[0], op.padding[2])

    @staticmethod
    def run(op, state, inputs, out):
        _launch(_max_pool, out, inputs[0], out, *state)


class AvgPool2dKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return (*op.kernel, *op.stride, *op.padding, int(op.count_include_pad))

    @staticmethod
    def run(op, state, inputs, out):
        _launch(_avg_pool, out, inputs[0], out, *state)


class GlobalAvgPoolKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return None

    @staticmethod
    def run(op, state, inputs, out):
        n_, c_, h_, w_ = inputs[0].shape
        threads = config.REDUCE_THREADS
        if threads < 1 or threads & (threads - 1):
            raise ArchcostError(f"cuda config: REDUCE_THREADS must be a power of two, got {threads}")
        _global_avg_kernel(threads)[n_ * c_, threads](inputs[0].reshape(n_ * c_, h_ * w_), out.reshape(n_ * c_))
