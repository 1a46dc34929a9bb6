"""Max, average and global average pooling on NCHW float32 maps.

The window formulas are the shared ones (``formulas.max_window``, ``formulas.avg_window``),
inlined here by Numba: windows are clipped to the input, padding never enters a max, and
average pooling divides as PyTorch does (with ``count_include_pad`` the window's cells inside
the padded input, so a ceil-mode window hanging past the bottom/right padding counts fewer;
without it, only the cells inside the input).
"""

import numpy as np
from numba import njit, prange

from archcost.kernels import adapters, formulas

_max_window = njit(inline="always")(formulas.max_window)
_avg_window = njit(inline="always")(formulas.avg_window)


@njit(parallel=True, cache=True)  # no fastmath: the max starts from -inf
def max_pool2d(x, out, kh, kw, sh, sw, pt, pl):
    n_, c_ = x.shape[0], x.shape[1]
    oh_, ow_ = out.shape[2], out.shape[3]
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        for oh in range(oh_):
            for ow in range(ow_):
                out[n, c, oh, ow] = _max_window(x, n, c, oh * sh - pt, ow * sw - pl, kh, kw)


@njit(parallel=True, fastmath=True, cache=True)
def avg_pool2d(x, out, kh, kw, sh, sw, pt, pb, pl, pr, count_include_pad):
    n_, c_ = x.shape[0], x.shape[1]
    oh_, ow_ = out.shape[2], out.shape[3]
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        for oh in range(oh_):
            for ow in range(ow_):
                # float32 sums (with fastmath): the window is small
                out[n, c, oh, ow] = _avg_window(x, n, c, oh * sh - pt, ow * sw - pl, kh, kw, pb, pr,
                                                count_include_pad, np.float32(0.0))


@njit(parallel=True, fastmath=True, cache=True)
def global_avg_pool(x, out):
    n_, c_, h_, w_ = x.shape
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        total = 0.0  # float64 accumulator: H*W may be large
        for ih in range(h_):
            for iw in range(w_):
                total += x[n, c, ih, iw]
        out[n, c, 0, 0] = total / (h_ * w_)


class MaxPool2dKernel:
    prepare = staticmethod(adapters.max_pool_state)

    @staticmethod
    def run(op, state, inputs, out):
        max_pool2d(inputs[0], out, *state)


class AvgPool2dKernel:
    prepare = staticmethod(adapters.avg_pool_state)

    @staticmethod
    def run(op, state, inputs, out):
        avg_pool2d(inputs[0], out, *state)


class GlobalAvgPoolKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        global_avg_pool(inputs[0], out)
