"""Max, average and global average pooling on NCHW float32 device maps.

Max and average pooling: one thread per output element, computing the shared window formula
(``formulas.max_window``, ``formulas.avg_window``, as the cpu kernels do): its window clipped to
the input (padding never enters a max); the average divides as PyTorch does (with
``count_include_pad`` the cells inside the padded input, else those inside the input; a ceil-mode
window hanging past the padding counts fewer). Global average pooling: one block per (sample,
channel), each thread summing a strided share of the map in float64, then a tree reduction in
shared memory (``REDUCE_THREADS``, a power of two).
"""

import math
from functools import lru_cache

from numba import float64

from archcost.errors import ArchcostError
from archcost.kernels import adapters, formulas
from archcost.kernels.cuda import config
from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import coords4, device_function, launch

_max_window = device_function(formulas.max_window)
_avg_window = device_function(formulas.avg_window)


@cuda.jit
def _max_pool(x, out, kh, kw, sh, sw, pt, pl):
    i = cuda.grid(1)
    n_, c_, oh_, ow_ = out.shape
    if i < n_ * c_ * oh_ * ow_:
        n, c, oh, ow = coords4(i, c_, oh_, ow_)
        out[n, c, oh, ow] = _max_window(x, n, c, oh * sh - pt, ow * sw - pl, kh, kw)


@cuda.jit
def _avg_pool(x, out, kh, kw, sh, sw, pt, pb, pl, pr, count_include_pad):
    i = cuda.grid(1)
    n_, c_, oh_, ow_ = out.shape
    if i < n_ * c_ * oh_ * ow_:
        n, c, oh, ow = coords4(i, c_, oh_, ow_)
        # the window sums in float64 here, as it always has (the cpu kernel sums in float32)
        out[n, c, oh, ow] = _avg_window(x, n, c, oh * sh - pt, ow * sw - pl, kh, kw, pb, pr, count_include_pad, 0.0)


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


class MaxPool2dKernel:
    prepare = staticmethod(adapters.max_pool_state)

    @staticmethod
    def run(op, state, inputs, out):
        launch(_max_pool, math.prod(out.shape), inputs[0], out, *state)


class AvgPool2dKernel:
    prepare = staticmethod(adapters.avg_pool_state)

    @staticmethod
    def run(op, state, inputs, out):
        launch(_avg_pool, math.prod(out.shape), inputs[0], out, *state)


class GlobalAvgPoolKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        n_, c_, h_, w_ = inputs[0].shape
        threads = config.REDUCE_THREADS
        if threads < 1 or threads & (threads - 1):
            raise ArchcostError(f"cuda config: REDUCE_THREADS must be a power of two, got {threads}")
        _global_avg_kernel(threads)[n_ * c_, threads](inputs[0].reshape(n_ * c_, h_ * w_), out.reshape(n_ * c_))
