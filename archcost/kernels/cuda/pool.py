"""Max, average and global average pooling on NCHW float32 device maps.

Max and average pooling: one thread per output element, computing the shared window formula
(``formulas.max_window``, ``formulas.avg_window``, as the cpu kernels do): its window clipped to
the input (padding never enters a max); the average divides as PyTorch does (with
``count_include_pad`` the cells inside the padded input, else those inside the input; a ceil-mode
window hanging past the padding counts fewer). Global average pooling: one block per (sample,
channel), each thread summing a strided share of the map in float64, then a tree reduction in
shared memory (``REDUCE_THREADS``, a power of two).

Training (each adapter's ``train_forward`` and ``backward``): max pooling's training forward
``_max_pool_train`` is one thread per output scanning its window as ``formulas.max_window`` does
(rows then columns, clipped, the first strict maximum wins) and writing the winner's flat index
``ih * W + iw`` into the int32 ``indices``; the average poolings' training forward is their
inference forward. The backward kernels gather, one thread per input element, the only writer
of it: ``_max_pool_grad`` sums grad_out over the windows holding the element whose index points
at it; ``_avg_pool_grad`` sums grad_out / divisor over the windows holding it, the divisor as
``formulas.avg_window`` computes it (``_avg_divisor``); ``_global_avg_pool_grad`` adds
grad_out / (H * W). The windows holding input row ``ih`` are the output rows ``oh`` with
``oh * sh - top <= ih < oh * sh - top + kh`` (``_window_range``; likewise for columns).
"""

import math
from functools import lru_cache

from numba import float64

from archcost.errors import ArchcostError
from archcost.kernels import adapters, formulas
from archcost.kernels.cuda import config
from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import coords4, device_function, input_grad, launch

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


# --- training --------------------------------------------------------------------------------


@cuda.jit
def _max_pool_train(x, out, indices, kh, kw, sh, sw, pt, pl):
    """``_max_pool``, also writing the winner's flat index ih * W + iw into ``indices`` (the scan
    of ``formulas.max_window``: rows, then columns, clipped; only a strictly greater value wins)."""
    i = cuda.grid(1)
    n_, c_, oh_, ow_ = out.shape
    if i < n_ * c_ * oh_ * ow_:
        n, c, oh, ow = coords4(i, c_, oh_, ow_)
        h_, w_ = x.shape[2], x.shape[3]
        hs = oh * sh - pt
        ws = ow * sw - pl
        h0 = max(hs, 0)
        w0 = max(ws, 0)
        best = -math.inf
        arg = h0 * w_ + w0  # a window holds at least one cell (padding <= kernel / 2)
        for ih in range(h0, min(hs + kh, h_)):
            for iw in range(w0, min(ws + kw, w_)):
                v = x[n, c, ih, iw]
                if v > best:
                    best = v
                    arg = ih * w_ + iw
        out[n, c, oh, ow] = best
        indices[n, c, oh, ow] = arg


@device_function
def _window_range(i, pad, k, s, size):
    """[lo, hi) of the outputs (of ``size``) whose window (start o * s - pad, k long) holds input
    index i; no division of a negative number."""
    first = i + pad - k + 1  # the smallest o * s whose window still reaches i
    lo = 0 if first <= 0 else (first + s - 1) // s
    return lo, min((i + pad) // s + 1, size)


@device_function
def _avg_divisor(hs, ws, kh, kw, h_, w_, pb, pr, count_include_pad):
    """The divisor of ``formulas.avg_window`` for the window at (hs, ws)."""
    he = min(hs + kh, h_ + pb)
    we = min(ws + kw, w_ + pr)
    if count_include_pad:
        return (he - hs) * (we - ws)
    return (min(he, h_) - max(hs, 0)) * (min(we, w_) - max(ws, 0))


@cuda.jit
def _max_pool_grad(gy, indices, dx, kh, kw, sh, sw, pt, pl):
    """dx (N, C, H, W) += grad_out summed over the windows whose ``indices`` entry is this element."""
    i = cuda.grid(1)
    n_, c_, h_, w_ = dx.shape
    if i < n_ * c_ * h_ * w_:
        n, c, ih, iw = coords4(i, c_, h_, w_)
        oh0, oh1 = _window_range(ih, pt, kh, sh, gy.shape[2])
        ow0, ow1 = _window_range(iw, pl, kw, sw, gy.shape[3])
        me = ih * w_ + iw
        total = 0.0
        for oh in range(oh0, oh1):
            for ow in range(ow0, ow1):
                if indices[n, c, oh, ow] == me:
                    total += gy[n, c, oh, ow]
        dx[n, c, ih, iw] += total


@cuda.jit
def _avg_pool_grad(gy, dx, kh, kw, sh, sw, pt, pb, pl, pr, count_include_pad):
    """dx (N, C, H, W) += grad_out / divisor summed over the windows holding this element."""
    i = cuda.grid(1)
    n_, c_, h_, w_ = dx.shape
    if i < n_ * c_ * h_ * w_:
        n, c, ih, iw = coords4(i, c_, h_, w_)
        oh0, oh1 = _window_range(ih, pt, kh, sh, gy.shape[2])
        ow0, ow1 = _window_range(iw, pl, kw, sw, gy.shape[3])
        total = 0.0
        for oh in range(oh0, oh1):
            for ow in range(ow0, ow1):
                divisor = _avg_divisor(oh * sh - pt, ow * sw - pl, kh, kw, h_, w_, pb, pr, count_include_pad)
                total += gy[n, c, oh, ow] / divisor
        dx[n, c, ih, iw] += total


@cuda.jit
def _global_avg_pool_grad(gy, dx):
    """dx (N, C, H, W) += gy (N, C, 1, 1) / (H * W)."""
    i = cuda.grid(1)
    n_, c_, h_, w_ = dx.shape
    if i < n_ * c_ * h_ * w_:
        n, c, ih, iw = coords4(i, c_, h_, w_)
        dx[n, c, ih, iw] += gy[n, c, 0, 0] / (h_ * w_)


class MaxPool2dKernel:
    prepare = staticmethod(adapters.max_pool_state)

    @staticmethod
    def run(op, state, inputs, out):
        launch(_max_pool, math.prod(out.shape), inputs[0], out, *state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The forward, and extras["indices"] (int32, out's shape): each output's argmax as the
        flat index ih * W + iw into its input plane."""
        state = adapters.max_pool_state(op, None, None, params)
        launch(_max_pool_train, math.prod(out.shape), inputs[0], out, extras["indices"], *state)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += grad_out gathered from extras["indices"] (the input is not kept)."""
        dx = input_grad(grad_inputs)
        if dx is not None:
            state = adapters.max_pool_state(op, None, None, params)
            launch(_max_pool_grad, math.prod(dx.shape), grad_out, extras["indices"], dx, *state)


class AvgPool2dKernel:
    prepare = staticmethod(adapters.avg_pool_state)

    @staticmethod
    def run(op, state, inputs, out):
        launch(_avg_pool, math.prod(out.shape), inputs[0], out, *state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The inference forward; nothing is kept."""
        AvgPool2dKernel.run(op, adapters.avg_pool_state(op, None, None, params), inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += grad_out / divisor gathered over each element's windows (shapes only)."""
        dx = input_grad(grad_inputs)
        if dx is not None:
            state = adapters.avg_pool_state(op, None, None, params)
            launch(_avg_pool_grad, math.prod(dx.shape), grad_out, dx, *state)


class GlobalAvgPoolKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        n_, c_, h_, w_ = inputs[0].shape
        threads = config.REDUCE_THREADS
        if threads < 1 or threads & (threads - 1):
            raise ArchcostError(f"cuda config: REDUCE_THREADS must be a power of two, got {threads}")
        _global_avg_kernel(threads)[n_ * c_, threads](inputs[0].reshape(n_ * c_, h_ * w_), out.reshape(n_ * c_))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The inference forward; nothing is kept."""
        GlobalAvgPoolKernel.run(op, None, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += grad_out / (H * W) on every cell of its plane (shapes only)."""
        dx = input_grad(grad_inputs)
        if dx is not None:
            launch(_global_avg_pool_grad, math.prod(dx.shape), grad_out, dx)
