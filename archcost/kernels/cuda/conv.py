"""2-D convolution on NCHW float32 device maps.

Tiled path (``_tiled_kernel``): convolution as implicit GEMM, per (sample, group):
``out[k, p] = sum_r W[k, r] * X[r, p] + b[k]`` with ``r`` over (input channel, ky, kx) and ``p``
over output pixels. ``X`` is never built: each block stages a ``GEMM_DEPTH``-deep slice of it in
shared memory straight from the input map, writing 0 for taps that fall in the padding, next to
the matching slice of the packed weights ``(G, R, Kg)``; every thread then accumulates a
``wy x wx`` register tile. A thread always stages the same pixel column, so its window origin
(``_origin``: the only division by the map width) is computed once per block; each staged
element costs the two divisions of ``_tap``. Groups, stride, dilation and asymmetric padding
only change this index arithmetic. Launch: grid (pixel tiles, channel tiles, N * G).

Direct path (``_direct``): one thread per output element, looping over its taps; used for
depthwise convolutions (one input channel per group), where a GEMM tile would be mostly empty.

Counting (``conv2d_count``): one thread per (sample, group, pixel) walks the taps with ``_origin``
and ``_tap``, the same index arithmetic both kernels use, and adds up those that read the input
(``performed``) and those that read padding (``padded``, multiplied as zero by the tiled kernel and
skipped by the direct one) over the group's ``Kg`` output channels; ``performed + padded`` must
equal the analytic MACs.

Training (``Conv2dKernel.train_forward``/``backward``/``backward_count``): the training forward is
the inference forward, its weights packed afresh (they change every step). The backward reads the
raw (K, Cg, KH, KW) weight and runs three gather kernels, each thread the only writer of its
element, so no atomics are needed: ``_grad_data`` has one thread per input element, summing
``w[k, c, ky, kx] * gy[n, k, oh, ow]`` over the taps (ky, kx) whose output (oh, ow) reads it
(``ih + top - ky*dh`` a multiple of the stride inside the output) and the ``Kg`` output channels
of its group, and adds the sum into dx; ``_grad_weight`` one thread per weight, summing
``gy * x`` over N x OH x OW with the taps on padding skipped; ``_grad_bias`` one thread per output
channel. All sums run in float64 locals. The kernels visit exactly the (output, tap) pairs whose
tap reads the input, the pairs the cpu kernels multiply, so ``backward_count`` reuses the cpu
counting loops on the host (shape arithmetic): performed + padded == the forward MACs.
"""

from functools import lru_cache

import numpy as np
from numba import float32, int64

from archcost.errors import ArchcostError
from archcost.kernels import adapters
from archcost.kernels.cuda import config
from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import coords4, flat, grid1d, input_grad, kept, launch, param_to_device


@cuda.jit(device=True)
def _origin(p, ow_, sh, sw, pt, pl):
    """Output pixel ``p`` (flat over OH x OW) -> input row and column of its window's first tap."""
    oh = p // ow_
    return oh * sh - pt, (p - oh * ow_) * sw - pl


@cuda.jit(device=True)
def _tap(r, khw, kw_, dh, dw):
    """Row ``r`` of the implicit GEMM -> (channel in group, row offset, column offset) of its tap."""
    c = r // khw
    rem = r - c * khw
    ky = rem // kw_
    return c, ky * dh, (rem - ky * kw_) * dw


@lru_cache(maxsize=None)
def _tiled_kernel(bx, by, wx, wy, depth):
    tp, tk = bx * wx, by * wy

    @cuda.jit
    def kernel(x, wp, bias, out, sh, sw, pt, pl, dh, dw, kh_, kw_, ow_):
        # x (N, C, H, W); wp (G, R, Kg); bias (K,); out (N, K, P)
        h_, w_ = x.shape[2], x.shape[3]
        groups, r_, kg = wp.shape
        p_ = out.shape[2]
        cg = x.shape[1] // groups
        khw = kh_ * kw_
        tx = cuda.threadIdx.x
        ty = cuda.threadIdx.y
        tid = ty * bx + tx
        p0 = cuda.blockIdx.x * tp
        k0 = cuda.blockIdx.y * tk
        n = cuda.blockIdx.z // groups
        g = cuda.blockIdx.z - n * groups
        xs = cuda.shared.array((depth, tp), float32)
        ws = cuda.shared.array((depth, tk), float32)
        acc = cuda.local.array((wy, wx), float32)
        for i in range(wy):
            for j in range(wx):
                acc[i, j] = 0.0
        # Each thread stages one pixel column of the X slice (tp divides the block's thread count),
        # so the pixel's window origin is computed once, not per staged element.
        pp = tid % tp
        p = p0 + pp
        ih0, iw0 = _origin(p, ow_, sh, sw, pt, pl)
        for r0 in range(0, r_, depth):
            for rr in range(tid // tp, depth, (bx * by) // tp):
                r = r0 + rr
                v = float32(0.0)
                if r < r_ and p < p_:
                    c, dy, dx = _tap(r, khw, kw_, dh, dw)
                    ih = ih0 + dy
                    iw = iw0 + dx
                    if ih >= 0 and ih < h_ and iw >= 0 and iw < w_:
                        v = x[n, g * cg + c, ih, iw]
                xs[rr, pp] = v
            for e in range(tid, depth * tk, bx * by):
                rr = e // tk
                kk = e - rr * tk
                r = r0 + rr
                k = k0 + kk
                v = float32(0.0)
                if r < r_ and k < kg:
                    v = wp[g, r, k]
                ws[rr, kk] = v
            cuda.syncthreads()
            for rr in range(depth):
                for i in range(wy):
                    a = ws[rr, ty + i * by]
                    for j in range(wx):
                        acc[i, j] += a * xs[rr, tx + j * bx]
            cuda.syncthreads()
        for i in range(wy):
            k = k0 + ty + i * by
            if k < kg:
                ko = g * kg + k
                for j in range(wx):
                    p = p0 + tx + j * bx
                    if p < p_:
                        out[n, ko, p] = acc[i, j] + bias[ko]

    return kernel


@cuda.jit
def _direct(x, wp, bias, out, sh, sw, pt, pl, dh, dw, kh_, kw_, ow_):
    """One thread per output element; wp (G, R, Kg) as for the tiled kernel."""
    i = cuda.grid(1)
    n_, k_, p_ = out.shape
    if i < n_ * k_ * p_:
        h_, w_ = x.shape[2], x.shape[3]
        groups, r_, kg = wp.shape
        cg = x.shape[1] // groups
        khw = kh_ * kw_
        p = i % p_
        ko = (i // p_) % k_
        n = i // (p_ * k_)
        g = ko // kg
        k = ko - g * kg
        ih0, iw0 = _origin(p, ow_, sh, sw, pt, pl)
        total = float32(0.0)
        for r in range(r_):
            c, dy, dx = _tap(r, khw, kw_, dh, dw)
            ih = ih0 + dy
            iw = iw0 + dx
            if ih >= 0 and ih < h_ and iw >= 0 and iw < w_:
                total += wp[g, r, k] * x[n, g * cg + c, ih, iw]
        out[n, ko, p] = total + bias[ko]


@cuda.jit
def _count(x, kg, r_, groups, p_, sh, sw, pt, pl, dh, dw, kh_, kw_, ow_, totals):
    """One thread per (sample, group, pixel): taps inside the input and in the padding, times Kg."""
    i = cuda.grid(1)
    if i < x.shape[0] * groups * p_:
        ih0, iw0 = _origin(i % p_, ow_, sh, sw, pt, pl)
        inside_taps = 0
        for r in range(r_):
            c, dy, dx = _tap(r, kh_ * kw_, kw_, dh, dw)
            ih = ih0 + dy
            iw = iw0 + dx
            if ih >= 0 and ih < x.shape[2] and iw >= 0 and iw < x.shape[3]:
                inside_taps += 1
        cuda.atomic.add(totals, 0, int64(inside_taps * kg))
        cuda.atomic.add(totals, 1, int64((r_ - inside_taps) * kg))


def pack_conv_weights(weight: np.ndarray, groups: int) -> np.ndarray:
    """(K, Cg, KH, KW) -> (G, R = Cg*KH*KW, Kg) float32: a GEMM operand, output channels contiguous."""
    k, cg, kh, kw = weight.shape
    packed = weight.reshape(groups, k // groups, cg * kh * kw).transpose(0, 2, 1)
    return np.ascontiguousarray(packed, np.float32)


def uses_direct(cg: int) -> bool:
    return config.CONV_DIRECT_DEPTHWISE and cg == 1


def conv2d(x, wp, bias, out, geometry, kernel_hw):
    """Launch: x (N, C, H, W), wp (G, R, Kg), out (N, K, OH, OW) device arrays."""
    n_, k_, oh_, ow_ = out.shape
    out3 = out.reshape(n_, k_, oh_ * ow_)
    args = (*geometry, *kernel_hw, ow_)
    groups, _, kg = wp.shape
    if uses_direct(x.shape[1] // groups):
        blocks, threads = grid1d(n_ * k_ * oh_ * ow_)
        _direct[blocks, threads](x, wp, bias, out3, *args)
        return
    (bx, by), (wx, wy) = config.GEMM_BLOCK, config.GEMM_WORK
    if by % wx:
        raise ArchcostError(f"cuda config: GEMM_BLOCK[1] = {by} must be a multiple of GEMM_WORK[0] = {wx} "
                            "(each thread stages one pixel column of the conv tile)")
    grid = (-(-(oh_ * ow_) // (bx * wx)), -(-kg // (by * wy)), n_ * groups)
    if grid[1] > 65535 or grid[2] > 65535:  # CUDA's limit on the y and z grid dimensions
        raise ArchcostError(f"conv2d (cuda): batch x groups = {grid[2]} or channel tiles = {grid[1]} exceed "
                            f"the grid limit 65535; run a smaller batch")
    _tiled_kernel(bx, by, wx, wy, config.GEMM_DEPTH)[grid, (bx, by)](x, wp, bias, out3, *args)


def conv2d_count(x, wp, out, geometry, kernel_hw) -> tuple[int, int]:
    n_, _, oh_, ow_ = out.shape
    groups, r_, kg = wp.shape
    totals = cuda.to_device(np.zeros(2, np.int64))
    blocks, threads = grid1d(n_ * groups * oh_ * ow_)
    _count[blocks, threads](x, kg, r_, groups, oh_ * ow_, *geometry, *kernel_hw, ow_, totals)
    performed, padded = totals.copy_to_host()
    return int(performed), int(padded)


# --- training ------------------------------------------------------------------------------------


@cuda.jit
def _grad_data(gy, weight, dx, sh, sw, pt, pl, dh, dw):
    """dx (N, C, H, W) += the data gradient for grad_out gy (N, K, OH, OW), weight (K, Cg, KH, KW);
    one thread per input element, gathering the taps that read it."""
    i = cuda.grid(1)
    n_, c_, h_, w_ = dx.shape
    if i < n_ * c_ * h_ * w_:
        n, ci, ih, iw = coords4(i, c_, h_, w_)
        k_, cg, kh_, kw_ = weight.shape
        oh_, ow_ = gy.shape[2], gy.shape[3]
        kg = k_ // (c_ // cg)
        g = ci // cg
        c = ci - g * cg
        total = 0.0
        for ky in range(kh_):
            th = ih + pt - ky * dh  # oh * sh, when some output row oh reads row ih through tap ky
            if th < 0 or th % sh != 0 or th // sh >= oh_:
                continue
            oh = th // sh
            for kx in range(kw_):
                tw = iw + pl - kx * dw
                if tw < 0 or tw % sw != 0 or tw // sw >= ow_:
                    continue
                ow = tw // sw
                for k in range(g * kg, (g + 1) * kg):
                    total += weight[k, c, ky, kx] * gy[n, k, oh, ow]
        dx[n, ci, ih, iw] += total


@cuda.jit
def _grad_weight(x, gy, dwt, sh, sw, pt, pl, dh, dw):
    """dwt (K, Cg, KH, KW) = sum over (n, oh, ow) of gy[n, k, oh, ow] times the input under tap
    (ky, kx), taps on padding skipped; one thread per weight."""
    i = cuda.grid(1)
    k_, cg, kh_, kw_ = dwt.shape
    if i < k_ * cg * kh_ * kw_:
        k, c, ky, kx = coords4(i, cg, kh_, kw_)
        n_, c_, h_, w_ = x.shape
        oh_, ow_ = gy.shape[2], gy.shape[3]
        kg = k_ // (c_ // cg)
        ci = (k // kg) * cg + c
        total = 0.0
        for n in range(n_):
            for oh in range(oh_):
                ih = oh * sh - pt + ky * dh
                if ih < 0 or ih >= h_:
                    continue
                for ow in range(ow_):
                    iw = ow * sw - pl + kx * dw
                    if iw >= 0 and iw < w_:
                        total += gy[n, k, oh, ow] * x[n, ci, ih, iw]
        dwt[k, c, ky, kx] = total


@cuda.jit
def _grad_bias(gy, db):
    """db (K,) = gy (N, K, OH, OW) summed over (n, oh, ow); one thread per output channel."""
    k = cuda.grid(1)
    n_, k_, oh_, ow_ = gy.shape
    if k < k_:
        total = 0.0
        for n in range(n_):
            for oh in range(oh_):
                for ow in range(ow_):
                    total += gy[n, k, oh, ow]
        db[k] = total


def conv2d_grad_data(gy, weight, dx, geometry):
    launch(_grad_data, dx.size, gy, weight, dx, *geometry)


def conv2d_grad_weight(x, gy, dwt, geometry):
    launch(_grad_weight, dwt.size, x, gy, dwt, *geometry)


def conv2d_grad_bias(gy, db):
    launch(_grad_bias, db.size, gy, db)


class Conv2dKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        wp = cuda.to_device(pack_conv_weights(params["weight"], op.groups))
        bias = cuda.to_device(adapters.bias_or_zeros(op, out_shape[1], params))
        return wp, bias, adapters.conv_geometry(op, in_shapes[0]), tuple(op.kernel)

    @staticmethod
    def run(op, state, inputs, out):
        wp, bias, geometry, kernel_hw = state
        conv2d(inputs[0], wp, bias, out, geometry, kernel_hw)

    @staticmethod
    def count(op, state, inputs, out):
        wp, _, geometry, kernel_hw = state
        return conv2d_count(inputs[0], wp, out, geometry, kernel_hw)

    # --- training ------------------------------------------------------------------------------

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The training forward is the inference forward, its weights packed and uploaded afresh
        (they change every step). Nothing goes in ``extras``: the backward keeps only input 0."""
        in_shapes = tuple(tuple(x.shape) for x in inputs)
        state = Conv2dKernel.prepare(op, in_shapes, tuple(out.shape), params)
        Conv2dKernel.run(op, state, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += the data gradient (from params["weight"]); param_grads["weight"] = the
        weight gradient (from the kept input 0); param_grads["bias"] = the bias gradient. A name
        missing from ``param_grads`` is a frozen param and is not computed."""
        param_grads = param_grads or {}
        dx = input_grad(grad_inputs)
        if dx is not None:
            conv2d_grad_data(grad_out, param_to_device(params["weight"]), dx, adapters.conv_geometry(op, dx.shape))
        if "weight" in param_grads:
            x = kept(inputs[0] if inputs else None, op, "input 0 (the weight gradient needs it)")
            conv2d_grad_weight(x, grad_out, param_grads["weight"], adapters.conv_geometry(op, x.shape))
        if op.bias and "bias" in param_grads:
            conv2d_grad_bias(grad_out, param_grads["bias"])

    @staticmethod
    def backward_count(op, params, in_shapes, out_shape, want_data, want_weight):
        """(data performed, data padded, weight performed, weight padded): the gather kernels multiply
        the (output, tap) pairs whose tap reads the input, the same pairs as the cpu kernels, so the
        cpu's counting loops count them (on the host: shape arithmetic only). A gradient not wanted
        counts (0, 0); the bias gradient is adds only."""
        from archcost.kernels.cpu.conv import Conv2dKernel as CpuConv2dKernel

        return CpuConv2dKernel.backward_count(op, params, in_shapes, out_shape, want_data, want_weight)


# --- ConvTranspose2d: a conv's kernels with the roles swapped (see cpu/conv.py) ---------------
#
# The forward is the conv data-gradient gather ``_grad_data`` with x as its grad_out, onto an
# output first set to the bias; the data gradient is the conv forward (``conv2d``) of grad_out
# with the same weight read as (K = C_in, Cg = out_channels / groups, KH, KW), into a scratch
# map added into dx; the weight gradient is ``_grad_weight`` with grad_out as its input and x as
# its grad_out. Every one of them bounds-tests each tap against both maps, so output_padding and
# bottom/right padding need nothing more.


@cuda.jit
def _fill_bias(out, bias):
    """out (N, K, OH, OW) = bias[k]; one thread per element."""
    i = cuda.grid(1)
    n_, k_, oh_, ow_ = out.shape
    if i < n_ * k_ * oh_ * ow_:
        n, k, oh, ow = coords4(i, k_, oh_, ow_)
        out[n, k, oh, ow] = bias[k]


@cuda.jit
def _add_into(dst, src):
    """dst += src, both flat; one thread per element."""
    i = cuda.grid(1)
    if i < dst.shape[0]:
        dst[i] += src[i]


class ConvTranspose2dKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        weight = param_to_device(params["weight"])
        bias = cuda.to_device(adapters.bias_or_zeros(op, out_shape[1], params))
        return weight, bias, adapters.conv_geometry(op, in_shapes[0])

    @staticmethod
    def run(op, state, inputs, out):
        weight, bias, geometry = state
        launch(_fill_bias, out.size, out, bias)
        conv2d_grad_data(inputs[0], weight, out, geometry)

    @staticmethod
    def count(op, state, inputs, out):
        """(performed, padded): the gather visits the (input, tap) pairs that land inside the
        output, those the cpu's counting loops walk (shape arithmetic on the host)."""
        from archcost.kernels.cpu.conv import ConvTranspose2dKernel as CpuConvTranspose2dKernel

        return CpuConvTranspose2dKernel.count(op, None, inputs, out)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The inference forward; nothing goes in ``extras`` (the backward keeps only input 0)."""
        in_shapes = tuple(tuple(x.shape) for x in inputs)
        state = ConvTranspose2dKernel.prepare(op, in_shapes, tuple(out.shape), params)
        ConvTranspose2dKernel.run(op, state, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += the data gradient; param_grads["weight"] = the weight gradient (from
        the kept input 0); param_grads["bias"] = the bias gradient. A name missing from
        ``param_grads`` is a frozen param and is not computed."""
        param_grads = param_grads or {}
        dx = input_grad(grad_inputs)
        if dx is not None:
            weight = params["weight"]
            wp = cuda.to_device(pack_conv_weights(np.asarray(weight, np.float32), op.groups))
            zeros = cuda.to_device(np.zeros(dx.shape[1], np.float32))
            data = cuda.device_array(tuple(dx.shape), np.float32)
            conv2d(grad_out, wp, zeros, data, adapters.conv_geometry(op, dx.shape), tuple(op.kernel))
            launch(_add_into, dx.size, flat(dx), flat(data))
        if "weight" in param_grads:
            x = kept(inputs[0] if inputs else None, op, "input 0 (the weight gradient needs it)")
            conv2d_grad_weight(grad_out, x, param_grads["weight"], adapters.conv_geometry(op, x.shape))
        if op.bias and "bias" in param_grads:
            conv2d_grad_bias(grad_out, param_grads["bias"])

    @staticmethod
    def backward_count(op, params, in_shapes, out_shape, want_data, want_weight):
        """The cpu's counting loops (shape arithmetic): the gather and tiled kernels visit the same
        (output, tap) pairs inside the maps as the cpu kernels."""
        from archcost.kernels.cpu.conv import ConvTranspose2dKernel as CpuConvTranspose2dKernel

        return CpuConvTranspose2dKernel.backward_count(op, params, in_shapes, out_shape, want_data, want_weight)
