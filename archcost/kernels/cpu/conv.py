"""2-D convolution on NCHW float32 maps, with weights packed once per graph. Two kernels:

**Blocked** (``conv2d_blocked``; every conv with >= ``MIN_BLOCKED_CHANNELS`` output channels
per group): a register-blocked micro-kernel. Weights are packed as ``(G, B, taps, LANES)``: taps
in (ky, c, kx) order, output channels in blocks of ``LANES`` = 16 (one zmm register of float32).
The input is copied once per call into a zero-bordered buffer (skipped when there is no
padding), so a tap of output position p reads ``x[base[p] + tap_offset[t]]`` with no bounds
test, whatever the stride or dilation. One micro-kernel call accumulates ``TILE`` = 8 output
positions x 16 channels in 8 registers over all taps: per tap one 16-wide weight load, 8
broadcast loads of x and 8 vector FMAs. The accumulator tile is a stack array of constant size
(``stack.py``) indexed by constants after unrolling, which LLVM promotes to registers; with
fastmath the inner loop compiles to ``vfmadd231ps (x){1to16}, zmm_w, zmm_acc`` (see
docs/performance.md). Output positions are flattened over (oh, ow), so small maps (7x7) still
fill whole tiles, and a 1x1 conv is a plain GEMM over positions; positions run on across the
samples of a batch too. One prange task is (group, 16-channel block, run of ``CHUNK`` tiles).

**Rows** (``conv2d``; depthwise and narrow groups, where 16-lane blocks would be mostly zero
lanes): ``(G, B, Cg, KH, KW, OB)`` packing, one prange task per (sample, group, channel block,
output row), padded taps skipped, never multiplied.

Counting (``conv2d_count``, ``conv2d_blocked_count``) walks the same loops and returns
``(performed, padded)``: the multiplies the kernel really does and the padded taps it skips.
archcost's MAC convention (cost.py) counts padded taps as multiplies by zero, so ``performed +
padded`` must equal the analytic MACs. The blocked kernel multiplies padded taps by the zero
border (padded = 0); the row kernel skips them. Zero-filled lanes of a last, partial channel
block are wasted SIMD lanes, not counted multiplies.
"""

import numpy as np
from numba import carray, njit, prange

from archcost.kernels import adapters
from archcost.kernels.cpu.stack import stack_array_intrinsic

BLOCK = 8  # output channels per accumulator block


def pack_conv_weights(weight: np.ndarray, groups: int) -> np.ndarray:
    """(K, Cg, KH, KW) -> (G, B, Cg, KH, KW, OB) float32, C-contiguous."""
    k, cg, kh, kw = weight.shape
    kg = k // groups
    ob = min(BLOCK, kg)
    blocks = -(-kg // ob)
    packed = np.zeros((groups, blocks * ob, cg, kh, kw), np.float32)
    packed[:, :kg] = weight.reshape(groups, kg, cg, kh, kw)
    packed = packed.reshape(groups, blocks, ob, cg, kh, kw).transpose(0, 1, 3, 4, 5, 2)
    return np.ascontiguousarray(packed)


@njit(cache=True)
def _valid_range(off, sw, w, ow):
    """Output columns whose tap ``ow*sw + off`` lands inside [0, w)."""
    lo = 0 if off >= 0 else (-off + sw - 1) // sw
    hi = (w - 1 - off) // sw + 1
    if hi > ow:
        hi = ow
    if hi < lo:
        hi = lo
    return lo, hi


@njit(parallel=True, fastmath=True, cache=True)
def conv2d(x, wp, bias, out, sh, sw, pt, pl, dh, dw):
    n_, c_, h_, w_ = x.shape
    groups, blocks, cg, kh_, kw_, ob = wp.shape
    k_, oh_, ow_ = out.shape[1], out.shape[2], out.shape[3]
    kg = k_ // groups
    for task in prange(n_ * groups * blocks * oh_):
        oh = task % oh_
        rest = task // oh_
        b = rest % blocks
        rest //= blocks
        g = rest % groups
        n = rest // groups
        k0 = g * kg + b * ob
        nb = min(ob, kg - b * ob)
        acc = np.zeros((ob, ow_), np.float32)
        for c in range(cg):
            ci = g * cg + c
            for ky in range(kh_):
                ih = oh * sh - pt + ky * dh
                if ih < 0 or ih >= h_:
                    continue
                for kx in range(kw_):
                    off = kx * dw - pl
                    lo, hi = _valid_range(off, sw, w_, ow_)
                    for j in range(nb):
                        wv = wp[g, b, c, ky, kx, j]
                        for ow in range(lo, hi):
                            acc[j, ow] += wv * x[n, ci, ih, ow * sw + off]
        for j in range(nb):
            bv = bias[k0 + j]
            for ow in range(ow_):
                out[n, k0 + j, oh, ow] = acc[j, ow] + bv


@njit(cache=True)
def conv2d_count(x, wp, out, sh, sw, pt, pl, dh, dw):
    """The loops of ``conv2d`` with each innermost row replaced by its trip count."""
    n_, c_, h_, w_ = x.shape
    groups, blocks, cg, kh_, kw_, ob = wp.shape
    k_, oh_, ow_ = out.shape[1], out.shape[2], out.shape[3]
    kg = k_ // groups
    performed = 0
    padded = 0
    for task in range(n_ * groups * blocks * oh_):
        oh = task % oh_
        b = (task // oh_) % blocks
        nb = min(ob, kg - b * ob)
        for c in range(cg):
            for ky in range(kh_):
                ih = oh * sh - pt + ky * dh
                if ih < 0 or ih >= h_:
                    padded += kw_ * nb * ow_
                    continue
                for kx in range(kw_):
                    lo, hi = _valid_range(kx * dw - pl, sw, w_, ow_)
                    performed += nb * (hi - lo)
                    padded += nb * (ow_ - (hi - lo))
    return performed, padded


# --- blocked kernel: 16 output channels x TILE output positions in registers -----------------

LANES = 16  # output channels per block: one zmm register of float32
TILE = 8  # output positions per micro-kernel call: TILE accumulators of LANES lanes
CHUNK = 4  # tiles per prange task
_stack_tile = stack_array_intrinsic(TILE * LANES)
_stack_one = stack_array_intrinsic(LANES)


def blocked_geometry(op, in_shape, out_shape):
    """Offsets of the zero-bordered input copy the blocked kernel reads: per tap (ky, c, kx),
    its offset from a position's base, and per output position (n, oh, ow) of the batch, its base.
    Returns (padded_hw, tap_offsets, position_bases) as uint64 (every index is non-negative)."""
    _, c, h, w = in_shape
    top, bottom, left, right = op.pads(h, w)
    hp, wp = h + top + bottom, w + left + right
    (kh, kw), (sh, sw), (dh, dw) = op.kernel, op.stride, op.dilation
    cg = c // op.groups
    ky, ci, kx = np.meshgrid(np.arange(kh), np.arange(cg), np.arange(kw), indexing="ij")
    taps = (ci * hp * wp + ky * dh * wp + kx * dw).ravel()
    n, oh, ow = np.meshgrid(np.arange(in_shape[0]), np.arange(out_shape[2]), np.arange(out_shape[3]), indexing="ij")
    bases = (n * c * hp * wp + oh * sh * wp + ow * sw).ravel()
    return (hp, wp), taps.astype(np.uint64), bases.astype(np.uint64)


def pack_blocked_weights(weight: np.ndarray, groups: int) -> np.ndarray:
    """(K, Cg, KH, KW) -> (G, B, KH*Cg*KW, LANES): taps ordered (ky, c, kx) as in
    ``blocked_geometry``, output channels of a group in blocks of LANES (last block zero-filled)."""
    k, cg, kh, kw = weight.shape
    kg = k // groups
    blocks = -(-kg // LANES)
    w = np.zeros((groups, blocks * LANES, cg, kh, kw), np.float32)
    w[:, :kg] = weight.reshape(groups, kg, cg, kh, kw)
    w = w.reshape(groups, blocks, LANES, cg, kh, kw).transpose(0, 1, 4, 3, 5, 2)  # G, B, kh, cg, kw, lanes
    return np.ascontiguousarray(w.reshape(groups, blocks, kh * cg * kw, LANES))


@njit(parallel=True, cache=True)
def pad_copy(x, xp, top, left):
    """Copy x (N, C, H, W) into the interior of xp (N, C, Hp, Wp), whose border is already zero."""
    n_, c_, h_, w_ = x.shape
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        for i in range(h_):
            for j in range(w_):
                xp[n, c, top + i, left + j] = x[n, c, i, j]


@njit(fastmath=True, inline="always")
def _tile(xf, bases, p, wk, taps, acc):
    """acc[q, j] = sum over taps t of x[bases[p + q] + taps[t]] * wk[t, j], for q < TILE."""
    for i in range(TILE * LANES):
        acc[i] = 0.0
    b0 = bases[p]
    b1 = bases[p + 1]
    b2 = bases[p + 2]
    b3 = bases[p + 3]
    b4 = bases[p + 4]
    b5 = bases[p + 5]
    b6 = bases[p + 6]
    b7 = bases[p + 7]
    for t in range(taps.shape[0]):
        o = taps[t]
        x0 = xf[b0 + o]
        x1 = xf[b1 + o]
        x2 = xf[b2 + o]
        x3 = xf[b3 + o]
        x4 = xf[b4 + o]
        x5 = xf[b5 + o]
        x6 = xf[b6 + o]
        x7 = xf[b7 + o]
        for j in range(LANES):
            wv = wk[t, j]
            acc[j] += x0 * wv
            acc[LANES + j] += x1 * wv
            acc[2 * LANES + j] += x2 * wv
            acc[3 * LANES + j] += x3 * wv
            acc[4 * LANES + j] += x4 * wv
            acc[5 * LANES + j] += x5 * wv
            acc[6 * LANES + j] += x6 * wv
            acc[7 * LANES + j] += x7 * wv


@njit(fastmath=True, inline="always")
def _one(xf, base, wk, taps, acc):
    for j in range(LANES):
        acc[j] = 0.0
    for t in range(taps.shape[0]):
        xv = xf[base + taps[t]]
        for j in range(LANES):
            acc[j] += xv * wk[t, j]


@njit(cache=True, no_cpython_wrapper=True)
def _store_across_samples(of, acc, bias, p, npos, k_, k0, nb):
    """Store a tile whose positions straddle two samples (kept out of line: it is rare)."""
    for q in range(TILE):
        nq = (p + q) // npos
        row = (nq * k_ + k0) * npos + (p + q - nq * npos)
        for j in range(nb):
            of[row + j * npos] = acc[q * LANES + j] + bias[k0 + j]


@njit(parallel=True, fastmath=True, cache=True)
def conv2d_blocked(xp, wp, taps, bases, bias, out):
    """xp: the zero-bordered input (N, C, Hp, Wp); wp: ``pack_blocked_weights``; out (N, K, OH, OW);
    bases: per position (n, oh, ow) of the whole batch, its offset in xp (sample offset included),
    so tiles run across rows and samples and only the batch's last positions miss a full tile.
    One prange task: (group, block of LANES channels, CHUNK tiles of TILE positions)."""
    n_, c_, hp_, wp_ = xp.shape
    groups, blocks, ntaps, lanes = wp.shape
    k_ = out.shape[1]
    npos = out.shape[2] * out.shape[3]
    total = n_ * npos
    kg = k_ // groups
    cg = c_ // groups
    plane = hp_ * wp_
    xf = xp.reshape(-1)
    of = out.reshape(-1)
    span = TILE * CHUNK
    chunks = (total + span - 1) // span
    for task in prange(groups * blocks * chunks):
        chunk = task % chunks
        rest = task // chunks
        b = rest % blocks
        g = rest // blocks
        acc = carray(_stack_tile(np.float32), TILE * LANES)
        one = carray(_stack_one(np.float32), LANES)
        wk = wp[g, b]
        xg = xf[g * cg * plane:]
        k0 = g * kg + b * LANES
        nb = min(LANES, kg - b * LANES)
        p0 = chunk * span
        p1 = min(p0 + span, total)
        p = p0
        n = p0 // npos  # the sample of position p, tracked without a division per tile
        end = (n + 1) * npos  # where sample n ends
        while p + TILE <= p1:
            _tile(xg, bases, p, wk, taps, acc)
            while p >= end:
                n += 1
                end += npos
            if p + TILE <= end:  # the tile lies in one sample: 8 contiguous stores per channel
                row = (n * k_ + k0) * npos + (p - (end - npos))
                for j in range(nb):
                    bv = bias[k0 + j]
                    for q in range(TILE):
                        of[row + j * npos + q] = acc[q * LANES + j] + bv
            else:
                _store_across_samples(of, acc, bias, p, npos, k_, k0, nb)
            p += TILE
        while p < p1:
            _one(xg, bases[p], wk, taps, one)
            n = p // npos
            row = (n * k_ + k0) * npos + (p - n * npos)
            for j in range(nb):
                of[row + j * npos] = one[j] + bias[k0 + j]
            p += 1


@njit(cache=True)
def conv2d_blocked_count(xp, wp, taps, bases, out):
    """The loops of ``conv2d_blocked``: every tap of every position of every real channel is
    multiplied (padded taps read the zero border), so padded = 0."""
    n_ = xp.shape[0]
    groups, blocks, ntaps, lanes = wp.shape
    k_ = out.shape[1]
    npos = out.shape[2] * out.shape[3]
    kg = k_ // groups
    performed = 0
    for n in range(n_):
        for g in range(groups):
            for b in range(blocks):
                nb = min(LANES, kg - b * LANES)
                for p in range(npos):
                    performed += nb * taps.shape[0]
    return performed, 0


MIN_BLOCKED_CHANNELS = 8  # output channels per group below which the row kernel wastes fewer lanes


def uses_blocked(op) -> bool:
    """The blocked kernel fills LANES output channels per register; a group with fewer than
    MIN_BLOCKED_CHANNELS (depthwise, narrow groups) runs on the row kernel instead."""
    return op.out_channels // op.groups >= MIN_BLOCKED_CHANNELS


class Conv2dKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        weight = params["weight"]
        bias = adapters.bias_or_zeros(op, out_shape[1], params)
        geometry = adapters.conv_geometry(op, in_shapes[0])  # (sh, sw, top, left, dh, dw)
        if uses_blocked(op):
            padded_hw, taps, bases = blocked_geometry(op, in_shapes[0], out_shape)
            pads = geometry[2:4] if padded_hw != tuple(in_shapes[0][2:]) else None
            scratch = {}  # the zero-bordered input copy, allocated on first run and reused
            return "blocked", pack_blocked_weights(weight, op.groups), bias, (taps, bases, padded_hw, pads, scratch)
        return "rows", pack_conv_weights(weight, op.groups), bias, geometry

    @staticmethod
    def _padded(x, geometry):
        taps, bases, padded_hw, pads, scratch = geometry
        if pads is None:
            return x
        shape = x.shape[:2] + padded_hw
        xp = scratch.get(shape)
        if xp is None:
            xp = scratch[shape] = np.zeros(shape, np.float32)
        pad_copy(x, xp, *pads)
        return xp

    @staticmethod
    def run(op, state, inputs, out):
        kind, wp, bias, geometry = state
        if kind == "blocked":
            xp = Conv2dKernel._padded(inputs[0], geometry)
            conv2d_blocked(xp, wp, geometry[0], geometry[1], bias, out)
        else:
            conv2d(inputs[0], wp, bias, out, *geometry)

    @staticmethod
    def count(op, state, inputs, out):
        kind, wp, _, geometry = state
        if kind == "blocked":
            xp = Conv2dKernel._padded(inputs[0], geometry)
            return conv2d_blocked_count(xp, wp, geometry[0], geometry[1], out)
        return conv2d_count(inputs[0], wp, out, *geometry)
