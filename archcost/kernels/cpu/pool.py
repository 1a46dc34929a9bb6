"""Max, average and global average pooling on NCHW float32 maps.

The window formulas are the shared ones (``formulas.max_window``, ``formulas.avg_window``),
inlined here by Numba: windows are clipped to the input, padding never enters a max, and
average pooling divides as PyTorch does (with ``count_include_pad`` the window's cells inside
the padded input, so a ceil-mode window hanging past the bottom/right padding counts fewer;
without it, only the cells inside the input).

**Training** (each adapter's ``train_forward`` and ``backward``; prange over (n, c) planes, each
written by one task only): max pooling's training forward ``max_pool2d_train`` scans its windows
as ``formulas.max_window`` does (rows then columns, clipped, the first strict maximum wins) and
also writes the winner's flat index ``ih * W + iw`` into the int32 ``indices``;
``max_pool2d_grad`` adds each grad_out element at its index. ``avg_pool2d_grad`` spreads
grad_out / divisor over each window's cells in the input, the divisor as ``formulas.avg_window``
computes it; ``global_avg_pool_grad`` adds grad_out / (H * W) to every cell of its plane. The
average poolings' training forward is their inference forward.
"""

import math

import numpy as np
from numba import njit, prange

from archcost.kernels import adapters, formulas
from archcost.kernels.cpu.conv import accumulate_into, as_float32

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


# --- training ----------------------------------------------------------------------------------


@njit(parallel=True, cache=True)  # no fastmath: the max starts from -inf
def max_pool2d_train(x, out, indices, kh, kw, sh, sw, pt, pl):
    """``max_pool2d``, also writing each window's argmax as the flat index ih * W + iw into the
    int32 ``indices`` (out's shape). The scan is ``formulas.max_window``'s (rows, then columns,
    clipped to the map; a value wins only when it is strictly greater), so the value written is
    the inference kernel's and ties go to the first cell scanned."""
    n_, c_, h_, w_ = x.shape
    oh_, ow_ = out.shape[2], out.shape[3]
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        for oh in range(oh_):
            hs = oh * sh - pt
            h0 = max(hs, 0)
            h1 = min(hs + kh, h_)
            for ow in range(ow_):
                ws = ow * sw - pl
                w0 = max(ws, 0)
                w1 = min(ws + kw, w_)
                best = -math.inf
                arg = h0 * w_ + w0  # a window holds at least one cell (padding <= kernel / 2)
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        v = x[n, c, ih, iw]
                        if v > best:
                            best = v
                            arg = ih * w_ + iw
                out[n, c, oh, ow] = best
                indices[n, c, oh, ow] = arg


@njit(parallel=True, cache=True)
def max_pool2d_grad(gy, indices, dx):
    """dx (P, H*W) += gy (P, OH*OW) scattered to ``indices`` (P, OH*OW); P = N*C planes, one per
    prange task."""
    planes, outs = gy.shape
    for p in prange(planes):
        for q in range(outs):
            dx[p, indices[p, q]] += gy[p, q]


@njit(parallel=True, fastmath=True, cache=True)
def avg_pool2d_grad(gy, dx, kh, kw, sh, sw, pt, pb, pl, pr, count_include_pad):
    """dx (N, C, H, W) += for each output, gy / divisor on each of its window's cells inside the
    input. Window and divisor as ``formulas.avg_window``: with ``count_include_pad`` the window's
    cells inside the padded map (a ceil-mode window hanging past the bottom/right padding counts
    fewer), else the cells inside the map."""
    n_, c_, h_, w_ = dx.shape
    oh_, ow_ = gy.shape[2], gy.shape[3]
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        for oh in range(oh_):
            hs = oh * sh - pt
            he = min(hs + kh, h_ + pb)
            h0 = max(hs, 0)
            h1 = min(he, h_)
            for ow in range(ow_):
                ws = ow * sw - pl
                we = min(ws + kw, w_ + pr)
                w0 = max(ws, 0)
                w1 = min(we, w_)
                if count_include_pad:
                    divisor = (he - hs) * (we - ws)
                else:
                    divisor = (h1 - h0) * (w1 - w0)
                g = gy[n, c, oh, ow] / divisor
                for ih in range(h0, h1):
                    for iw in range(w0, w1):
                        dx[n, c, ih, iw] += g


@njit(parallel=True, fastmath=True, cache=True)
def global_avg_pool_grad(gy, dx):
    """dx (N, C, H, W) += gy (N, C, 1, 1) / (H * W) on every cell of its plane."""
    n_, c_, h_, w_ = dx.shape
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        g = gy[n, c, 0, 0] / (h_ * w_)
        for ih in range(h_):
            for iw in range(w_):
                dx[n, c, ih, iw] += g


def _planes(a):
    """The (N*C, H*W) view of a C-contiguous NCHW array."""
    return a.reshape(a.shape[0] * a.shape[1], a.shape[2] * a.shape[3])


class MaxPool2dKernel:
    prepare = staticmethod(adapters.max_pool_state)

    @staticmethod
    def run(op, state, inputs, out):
        max_pool2d(inputs[0], out, *state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The forward, and extras["indices"] (int32, out's shape): each output's argmax as the
        flat index ih * W + iw into its input plane."""
        state = adapters.max_pool_state(op, None, None, params)
        max_pool2d_train(as_float32(inputs[0]), out, extras["indices"], *state)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += grad_out scattered to extras["indices"] (the input is not kept)."""
        dx = grad_inputs[0] if grad_inputs else None
        if dx is None:
            return
        gy = _planes(as_float32(grad_out))
        indices = _planes(np.ascontiguousarray(extras["indices"], np.int32))
        accumulate_into(dx, lambda buf: max_pool2d_grad(gy, indices, _planes(buf)))


class AvgPool2dKernel:
    prepare = staticmethod(adapters.avg_pool_state)

    @staticmethod
    def run(op, state, inputs, out):
        avg_pool2d(inputs[0], out, *state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The inference forward; nothing is kept."""
        avg_pool2d(as_float32(inputs[0]), out, *adapters.avg_pool_state(op, None, None, params))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += grad_out / divisor spread over each window (shapes only)."""
        dx = grad_inputs[0] if grad_inputs else None
        if dx is None:
            return
        gy = as_float32(grad_out)
        state = adapters.avg_pool_state(op, None, None, params)
        accumulate_into(dx, lambda buf: avg_pool2d_grad(gy, buf, *state))


class GlobalAvgPoolKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        global_avg_pool(inputs[0], out)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The inference forward; nothing is kept."""
        global_avg_pool(as_float32(inputs[0]), out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += grad_out / (H * W) on every cell of its plane (shapes only)."""
        dx = grad_inputs[0] if grad_inputs else None
        if dx is None:
            return
        gy = as_float32(grad_out)
        accumulate_into(dx, lambda buf: global_avg_pool_grad(gy, buf))
