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
"""

from functools import lru_cache

import numpy as np
from numba import float32, int64

from archcost.errors import ArchcostError
from archcost.kernels import adapters
from archcost.kernels.cuda import config
from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import grid1d


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
