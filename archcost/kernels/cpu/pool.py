"""Max, average and global average pooling on NCHW float32 maps.

Windows are clipped to the input; padding never enters a max. Average pooling divides as
PyTorch does: with ``count_include_pad`` the divisor counts the window's cells inside the
padded input (input + declared padding, so a ceil-mode window hanging past the bottom/right
padding counts fewer cells); without it, only the cells inside the input.
"""

import numpy as np
from numba import njit, prange


@njit(parallel=True, cache=True)  # no fastmath: the max starts from -inf
def max_pool2d(x, out, kh, kw, sh, sw, pt, pl):
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        for oh in range(oh_):
            hs = oh * sh - pt
            h0, h1 = max(hs, 0), min(hs + kh, h_)
            for ow in range(ow_):
                ws = ow * sw - pl
                w0, w1 = max(ws, 0), min(ws + kw, w_)
                best = -np.inf
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        v = x[n, c, ih, iw]
                        if v > best:
                            best = v
                out[n, c, oh, ow] = best


@njit(parallel=True, fastmath=True, cache=True)
def avg_pool2d(x, out, kh, kw, sh, sw, pt, pb, pl, pr, count_include_pad):
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        for oh in range(oh_):
            hs = oh * sh - pt
            he = min(hs + kh, h_ + pb)
            h0, h1 = max(hs, 0), min(he, h_)
            for ow in range(ow_):
                ws = ow * sw - pl
                we = min(ws + kw, w_ + pr)
                w0, w1 = max(ws, 0), min(we, w_)
                total = np.float32(0.0)
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        total += x[n, c, ih, iw]
                if count_include_pad:
                    divisor = (he - hs) * (we - ws)
                else:
                    divisor = (h1 - h0) * (w1 - w0)
                out[n, c, oh, ow] = total / divisor


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
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return (*op.kernel, *op.stride, op.padding[0], op.padding[2])

    @staticmethod
    def run(op, state, inputs, out):
        max_pool2d(inputs[0], out, *state)


class AvgPool2dKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return (*op.kernel, *op.stride, *op.padding, int(op.count_include_pad))

    @staticmethod
    def run(op, state, inputs, out):
        avg_pool2d(inputs[0], out, *state)


class GlobalAvgPoolKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return None

    @staticmethod
    def run(op, state, inputs, out):
        global_avg_pool(inputs[0], out)
