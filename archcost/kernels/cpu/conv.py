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

**Training** (``Conv2dKernel.train_forward``/``backward``/``backward_count``): the training
forward is the inference forward. The backward reads the raw (K, Cg, KH, KW) weight:
``conv2d_grad_data`` (one prange task per input plane (n, c), which only it writes: a float64
copy of the plane gathers the taps of every output channel of c's group, ``GRAD_KB`` channels a
pass, then is added into the gradient), ``conv2d_grad_weight`` (one task per ``GRAD_KB`` output
channels x one input channel, whose weight rows only it writes: per tap a float64 sum over the
batch's output plane of float32 row dot products) and ``conv2d_grad_bias``. Both skip padded
taps; their counts (``conv2d_grad_data_count``, ``conv2d_grad_weight_count``) walk the same
loops, so for either gradient performed + padded equals the forward MACs.
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


# --- training: the backward kernels ----------------------------------------------------------
#
# Both gradients read the raw (K, Cg, KH, KW) weight, not a packed one (the weight changes every
# step, so there is nothing to pack once). Taps are indexed as in ``conv2d``: output (oh, ow),
# tap (ky, kx) reads input row ``oh*sh - pt + ky*dh`` and column ``ow*sw + kx*dw - pl``; taps on
# the padding are skipped (never multiplied) and counted as padded, so that performed + padded
# equals the forward MACs for either gradient.


@njit(cache=True)
def _column_ranges(kw_, sw, dw, pl, w_, ow_):
    """Per kx, the output columns [lo, hi) whose tap lands inside the input row."""
    los = np.empty(kw_, np.int64)
    his = np.empty(kw_, np.int64)
    for kx in range(kw_):
        lo, hi = _valid_range(kx * dw - pl, sw, w_, ow_)
        los[kx] = lo
        his[kx] = hi
    return los, his


GRAD_KB = 4  # output channels whose grad_out rows one pass of the backward kernels takes together


@njit(parallel=True, fastmath=True, cache=True)
def conv2d_grad_data(gy, weight, dx, sh, sw, pt, pl, dh, dw):
    """dx (N, C, H, W) += the data gradient of a conv with weight (K, Cg, KH, KW) for grad_out gy
    (N, K, OH, OW). One prange task per input plane (n, c), which no other task writes: it
    scatters w[k, c, ky, kx] * gy[n, k, oh, ow] for every k of c's group into a float64 copy of
    the plane (K * KH * KW / stride terms meet in one element), then adds the plane into dx.

    The group's output channels go GRAD_KB at a time: each element of the plane gets the float32
    sum of their GRAD_KB products in one float64 add (a partial last block goes a channel at a
    time). Inner loops run over row slices from index 0, with unsigned indices for a stride (a
    signed index costs a wraparound test per element, and the vectorization)."""
    n_, c_, h_, w_ = dx.shape
    k_, cg, kh_, kw_ = weight.shape
    oh_, ow_ = gy.shape[2], gy.shape[3]
    kg = k_ // (c_ // cg)
    los, his = _column_ranges(kw_, sw, dw, pl, w_, ow_)
    step = np.uint64(sw)
    for task in prange(n_ * c_):
        n = task // c_
        ci = task % c_
        g = ci // cg
        c = ci - g * cg
        acc = np.zeros((h_, w_), np.float64)
        k_end = (g + 1) * kg
        for k in range(g * kg, k_end, GRAD_KB):
            nk = min(GRAD_KB, k_end - k)
            for oh in range(oh_):
                for ky in range(kh_):
                    ih = oh * sh - pt + ky * dh
                    if ih < 0 or ih >= h_:
                        continue
                    arow = acc[ih]
                    for kx in range(kw_):
                        lo = los[kx]
                        hi = his[kx]
                        a = arow[lo * sw + kx * dw - pl:]  # from the input column of output lo
                        if nk == GRAD_KB:
                            w0 = weight[k, c, ky, kx]
                            w1 = weight[k + 1, c, ky, kx]
                            w2 = weight[k + 2, c, ky, kx]
                            w3 = weight[k + 3, c, ky, kx]
                            g0 = gy[n, k, oh, lo:hi]
                            g1 = gy[n, k + 1, oh, lo:hi]
                            g2 = gy[n, k + 2, oh, lo:hi]
                            g3 = gy[n, k + 3, oh, lo:hi]
                            if sw == 1:
                                for j in range(hi - lo):
                                    a[j] += np.float64(w0 * g0[j] + w1 * g1[j] + w2 * g2[j] + w3 * g3[j])
                            else:
                                for j in range(hi - lo):
                                    a[np.uint64(j) * step] += np.float64(w0 * g0[j] + w1 * g1[j] + w2 * g2[j]
                                                                         + w3 * g3[j])
                        else:
                            for r in range(nk):
                                wv = np.float64(weight[k + r, c, ky, kx])
                                gr = gy[n, k + r, oh, lo:hi]
                                if sw == 1:
                                    for j in range(hi - lo):
                                        a[j] += wv * gr[j]
                                else:
                                    for j in range(hi - lo):
                                        a[np.uint64(j) * step] += wv * gr[j]
        for ih in range(h_):
            for iw in range(w_):
                dx[n, ci, ih, iw] += acc[ih, iw]


@njit(cache=True)
def conv2d_grad_data_count(n_, c_, h_, w_, k_, groups, kh_, kw_, oh_, ow_, sh, sw, pt, pl, dh, dw):
    """The loops of ``conv2d_grad_data`` with each innermost row replaced by its trip count, and
    the loop over the group's channel blocks (whose taps are all alike) by its total trip count,
    the kg channels of a group: (performed, padded)."""
    kg = k_ // groups
    los, his = _column_ranges(kw_, sw, dw, pl, w_, ow_)
    performed = 0
    padded = 0
    for task in range(n_ * c_):
        for oh in range(oh_):
            for ky in range(kh_):
                ih = oh * sh - pt + ky * dh
                if ih < 0 or ih >= h_:
                    padded += kg * kw_ * ow_
                    continue
                for kx in range(kw_):
                    inside = his[kx] - los[kx]
                    performed += kg * inside
                    padded += kg * (ow_ - inside)
    return performed, padded


@njit(parallel=True, fastmath=True, cache=True)
def conv2d_grad_weight(x, gy, dwt, sh, sw, pt, pl, dh, dw):
    """dwt (K, Cg, KH, KW) = the weight gradient: sum over (n, oh, ow) of gy[n, k, oh, ow] times
    the input under tap (ky, kx). One prange task per (group, block of GRAD_KB output channels,
    input channel c), writing those channels' weight rows for c: each input row under a tap is
    read once for the GRAD_KB grad_out rows, each product row summed in float32 (at most OW
    terms), the rows summed over the batch's output plane in float64. Row slices from index 0
    and unsigned stride indices, as in ``conv2d_grad_data``."""
    n_, c_, h_, w_ = x.shape
    k_, cg, kh_, kw_ = dwt.shape
    oh_, ow_ = gy.shape[2], gy.shape[3]
    groups = c_ // cg
    kg = k_ // groups
    blocks = (kg + GRAD_KB - 1) // GRAD_KB
    los, his = _column_ranges(kw_, sw, dw, pl, w_, ow_)
    step = np.uint64(sw)
    for task in prange(groups * blocks * cg):
        c = task % cg
        rest = task // cg
        b = rest % blocks
        g = rest // blocks
        k0 = g * kg + b * GRAD_KB
        nk = min(GRAD_KB, (g + 1) * kg - k0)
        ci = g * cg + c
        acc = np.zeros((GRAD_KB, kh_, kw_), np.float64)
        for n in range(n_):
            for oh in range(oh_):
                for ky in range(kh_):
                    ih = oh * sh - pt + ky * dh
                    if ih < 0 or ih >= h_:
                        continue
                    xrow = x[n, ci, ih]
                    for kx in range(kw_):
                        lo = los[kx]
                        hi = his[kx]
                        xs = xrow[lo * sw + kx * dw - pl:]  # from the input column of output lo
                        if nk == GRAD_KB:
                            g0 = gy[n, k0, oh, lo:hi]
                            g1 = gy[n, k0 + 1, oh, lo:hi]
                            g2 = gy[n, k0 + 2, oh, lo:hi]
                            g3 = gy[n, k0 + 3, oh, lo:hi]
                            s0 = np.float32(0.0)
                            s1 = np.float32(0.0)
                            s2 = np.float32(0.0)
                            s3 = np.float32(0.0)
                            if sw == 1:
                                for j in range(hi - lo):
                                    xv = xs[j]
                                    s0 += g0[j] * xv
                                    s1 += g1[j] * xv
                                    s2 += g2[j] * xv
                                    s3 += g3[j] * xv
                            else:
                                for j in range(hi - lo):
                                    xv = xs[np.uint64(j) * step]
                                    s0 += g0[j] * xv
                                    s1 += g1[j] * xv
                                    s2 += g2[j] * xv
                                    s3 += g3[j] * xv
                            acc[0, ky, kx] += s0
                            acc[1, ky, kx] += s1
                            acc[2, ky, kx] += s2
                            acc[3, ky, kx] += s3
                        else:
                            for r in range(nk):
                                gr = gy[n, k0 + r, oh, lo:hi]
                                s = np.float32(0.0)
                                if sw == 1:
                                    for j in range(hi - lo):
                                        s += gr[j] * xs[j]
                                else:
                                    for j in range(hi - lo):
                                        s += gr[j] * xs[np.uint64(j) * step]
                                acc[r, ky, kx] += s
        for r in range(nk):
            for ky in range(kh_):
                for kx in range(kw_):
                    dwt[k0 + r, c, ky, kx] = acc[r, ky, kx]


@njit(cache=True)
def conv2d_grad_weight_count(n_, c_, h_, w_, k_, groups, kh_, kw_, oh_, ow_, sh, sw, pt, pl, dh, dw):
    """The loops of ``conv2d_grad_weight`` with each innermost row replaced by its trip count, the
    loop over the batch (whose samples' taps are all alike) by its trip count N and the loop over
    a block's channels by its nk: (performed, padded)."""
    cg = c_ // groups
    kg = k_ // groups
    blocks = (kg + GRAD_KB - 1) // GRAD_KB
    los, his = _column_ranges(kw_, sw, dw, pl, w_, ow_)
    performed = 0
    padded = 0
    for task in range(groups * blocks * cg):
        b = (task // cg) % blocks
        nk = min(GRAD_KB, kg - b * GRAD_KB)
        for oh in range(oh_):
            for ky in range(kh_):
                ih = oh * sh - pt + ky * dh
                if ih < 0 or ih >= h_:
                    padded += n_ * nk * kw_ * ow_
                    continue
                for kx in range(kw_):
                    inside = his[kx] - los[kx]
                    performed += n_ * nk * inside
                    padded += n_ * nk * (ow_ - inside)
    return performed, padded


@njit(parallel=True, fastmath=True, cache=True)
def conv2d_grad_bias(gy, db):
    """db (K,) = sum of gy (N, K, OH, OW) over (n, oh, ow), one float64 sum per prange task k."""
    n_, k_, oh_, ow_ = gy.shape
    for k in prange(k_):
        acc = 0.0
        for n in range(n_):
            for oh in range(oh_):
                for ow in range(ow_):
                    acc += gy[n, k, oh, ow]
        db[k] = acc


def as_float32(a):
    """``a`` as a C-contiguous float32 array (itself when it already is one)."""
    return np.ascontiguousarray(a, np.float32)


def accumulate_into(target, compute):
    """Run ``compute(buffer)`` (a kernel that adds into ``buffer``) on ``target`` itself when it is
    a C-contiguous float32 array, else on a zeroed contiguous buffer added into ``target``."""
    if target.dtype == np.float32 and target.flags.c_contiguous:
        compute(target)
    else:
        buffer = np.zeros(target.shape, np.float32)
        compute(buffer)
        target += buffer


def write_into(target, compute):
    """Run ``compute(buffer)`` (a kernel that writes every element of ``buffer``) on ``target``,
    through a contiguous float32 buffer copied back when ``target`` is not one."""
    if target.dtype == np.float32 and target.flags.c_contiguous:
        compute(target)
    else:
        buffer = np.empty(target.shape, np.float32)
        compute(buffer)
        target[...] = buffer


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

    # --- training ------------------------------------------------------------------------------

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The training forward is the inference forward, its weights packed afresh (they change
        every step). Nothing goes in ``extras``: the backward keeps only input 0."""
        in_shapes = tuple(tuple(x.shape) for x in inputs)
        state = Conv2dKernel.prepare(op, in_shapes, tuple(out.shape), params)
        Conv2dKernel.run(op, state, [as_float32(x) for x in inputs], out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += the data gradient (from params["weight"]); param_grads["weight"] = the
        weight gradient (from the kept input 0); param_grads["bias"] = the bias gradient. A name
        missing from ``param_grads`` is a frozen param and is not computed."""
        gy = as_float32(grad_out)
        dx = grad_inputs[0] if grad_inputs else None
        if dx is not None:
            weight = as_float32(params["weight"])
            geometry = adapters.conv_geometry(op, dx.shape)
            accumulate_into(dx, lambda buf: conv2d_grad_data(gy, weight, buf, *geometry))
        if "weight" in param_grads:
            if inputs[0] is None:
                raise ValueError("Conv2d backward: the weight gradient needs the kept input 0")
            x = as_float32(inputs[0])
            geometry = adapters.conv_geometry(op, x.shape)
            write_into(param_grads["weight"], lambda buf: conv2d_grad_weight(x, gy, buf, *geometry))
        if op.bias and "bias" in param_grads:
            write_into(param_grads["bias"], lambda buf: conv2d_grad_bias(gy, buf))

    @staticmethod
    def backward_count(op, params, in_shapes, out_shape, want_data, want_weight):
        """(data performed, data padded, weight performed, weight padded): the multiplies of
        ``conv2d_grad_data`` and ``conv2d_grad_weight`` on these shapes, counted by their loops;
        a gradient not wanted counts (0, 0). The bias gradient is adds only."""
        n, c, h, w = in_shapes[0]
        k, oh, ow = out_shape[1], out_shape[2], out_shape[3]
        sh, sw, top, left, dh, dw = adapters.conv_geometry(op, in_shapes[0])
        args = (n, c, h, w, k, op.groups, *op.kernel, oh, ow, sh, sw, top, left, dh, dw)
        data = conv2d_grad_data_count(*args) if want_data else (0, 0)
        weight = conv2d_grad_weight_count(*args) if want_weight else (0, 0)
        return int(data[0]), int(data[1]), int(weight[0]), int(weight[1])
