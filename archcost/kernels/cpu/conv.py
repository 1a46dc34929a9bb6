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
forward is the inference forward. The backward reads the raw (K, Cg, KH, KW) weight, repacked
per call (it changes every step). Convs with at least ``MIN_BLOCKED_CHANNELS`` input channels
per group (data gradient) or output channels per group (weight gradient) run blocked kernels
built like the forward's:

- ``conv2d_grad_data_blocked``: the data gradient as a transposed convolution. Along each axis
  the input coordinates fall into a few classes reached by the same taps at the same output
  offsets (the stride-1 interior, each border row/column, each phase ``ih mod sh`` of a strided
  conv; ``grad_data_plan``, cached per geometry); a class of rows x a class of columns gets one
  tap list, run by the forward's micro-kernel (TILE input positions x LANES input channels in
  registers; per term one 16-wide weight load and TILE broadcasts of grad_out). No term lands
  on padding, none is tested for it: the classes on the padding are never run.
- ``conv2d_grad_weight_blocked``: per row of taps, a register tile of TILE (kx, input channel)
  pairs x LANES output channels summed over the output positions in bounds for the tile (per
  position one vector load of grad_out, repacked with LANES output channels contiguous, once per
  call or chunk by chunk per task, ``grad_out_packing``, and TILE broadcasts of x), float32 over
  chunks of about ``GRAD_CHUNK`` positions, float64 across chunks. A 1x1 stride-1 conv walks its
  plane in rows of up to GRAD_CHUNK positions (``_weight_rows``).

Depthwise and narrow groups run the row kernels: ``conv2d_grad_data`` (one prange task per
input plane (n, c): a float64 copy of the plane gathers the taps of every output channel of c's
group, ``GRAD_KB`` channels a pass) and ``conv2d_grad_weight`` (one task per ``GRAD_KB`` output
channels x one input channel: per tap a float64 sum over the batch's output plane of float32
row dot products). ``conv2d_grad_bias`` sums grad_out per channel in float64. Every backward
kernel skips padded taps; the counts (``conv2d_grad_data_blocked_count``,
``conv2d_grad_weight_blocked_count`` and the row kernels' ``conv2d_grad_data_count``,
``conv2d_grad_weight_count``) walk the same loops, so for either gradient performed + padded
equals the forward MACs and performed is the in-bounds taps.
"""

import functools

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


@functools.lru_cache(maxsize=64)
def _cached_geometry(op, in_shape, out_shape):
    """``blocked_geometry`` once per (op, shapes), read-only: the training forward's, every step."""
    geometry = blocked_geometry(op, in_shape, out_shape)
    for a in geometry[1:]:
        a.flags.writeable = False
    return geometry


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


# --- training: the backward kernels (rows: depthwise and narrow groups) ----------------------
#
# The row kernels read the raw (K, Cg, KH, KW) weight, not a packed one (the weight changes every
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


# --- training, blocked: register tiles for the backward of convs with >= 8 channels a group ---
#
# The data gradient is a transposed convolution: input position (n, ih, iw) gets w[k, c, ky, kx] *
# gy[n, k, oh, ow] for every tap (ky, kx) and output (oh, ow) with ih = oh*sh - pt + ky*dh (and
# alike for columns). Which (ky, oh) reach a row ih depends on ih only through its border and its
# phase ih mod sh, so along each axis the coordinates fall in a few classes (``_axis_classes``):
# those reached by the same taps at the same output offsets from a per-coordinate base. A class of
# rows x a class of columns is a set of input positions that all get the same tap list, so one
# micro-kernel like the forward's (TILE positions x LANES channels in registers, one weight vector
# and TILE broadcasts of grad_out per term) runs over them with no bounds test and no padded term:
# the stride-1 interior is one class, its borders and corners a few small ones, and a strided
# conv decomposes into its phases. Classes of coordinates on the padding (reached by taps that
# land outside the input) are never run; the count walks them as padded.
#
# The weight gradient, dW[k, c, ky, kx] = sum over (n, oh, ow) of gy * x, is summed per row of
# taps ky over the output positions in bounds: a register tile of TILE (kx, input channel) pairs
# x LANES output channels, per position one vector load of grad_out (repacked with LANES output
# channels contiguous, ``grad_out_packing``), TILE broadcasts of x and TILE FMAs. With
# Cg a multiple of TILE a tile's pairs share kx, hence their in-bounds columns; otherwise (the
# 3-channel first layers) the tile runs the columns in bounds for all its pairs and each pair
# adds its own border columns alone.

GRAD_CSUP = 4  # TILE-channel blocks' worth (x KW pair blocks) of pairs per weight-gradient task ...
GRAD_TASK_POSITIONS = 2048  # ... times as many again as the batch's output positions fall short of this
GRAD_CHUNK = 512  # output positions (whole rows, at least one) per float32 partial of the weight gradient
GRAD_SPAN = TILE * CHUNK  # input positions per data-gradient task


def uses_blocked_grad_data(op, in_channels) -> bool:
    """The blocked data gradient fills LANES input channels per register."""
    return in_channels // op.groups >= MIN_BLOCKED_CHANNELS


def uses_blocked_grad_weight(op) -> bool:
    """The blocked weight gradient fills LANES output channels per register."""
    return op.out_channels // op.groups >= MIN_BLOCKED_CHANNELS


def _axis_classes(size_in, size_out, k, s, d, pad):
    """Along one axis: the coordinates i (inside [0, size_in) or on the padding) that some tap
    reaches, grouped by the taps that reach them: tap t of output o reaches i = o*s - pad + t*d.
    Returns {(inside, ((t, o - base), ...)): [(i, base), ...]} with base the least o reaching i,
    so every offset is >= 0. Coordinates no tap reaches (stride > kernel) are in no class."""
    reach = {}
    for o in range(size_out):
        for t in range(k):
            reach.setdefault(o * s - pad + t * d, []).append((t, o))
    classes = {}
    for i in sorted(reach):
        pairs = reach[i]
        base = min(o for _, o in pairs)
        key = (0 <= i < size_in, tuple(sorted((t, o - base) for t, o in pairs)))
        classes.setdefault(key, []).append((i, base))
    return classes


@functools.lru_cache(maxsize=64)
def grad_data_plan(n, c, h, w, k, groups, kh, kw, oh, ow, sh, sw, pt, pl, dh, dw):
    """The input positions of a conv's data gradient in classes of positions that get the same
    terms (a class of rows x a class of columns x the batch, see ``_axis_classes``). Returns
    (bases, outs, toff, trow, items, pitems), read-only:

    - ``bases[p]``: the offset in grad_out (channel 0 of the group) of position p's base output;
      ``outs[p]``: its offset in dx (channel 0 of the group), both uint64, class by class;
    - ``toff[t]``, ``trow[t]``: term t's offset in grad_out from the base and its row in the
      packed weight (``pack_grad_data_weights``), uint32, class by class; a class's terms run
      over its taps (ky, output channel k, kx), kx innermost, so consecutive terms read
      neighbouring grad_out columns and consecutive weight rows;
    - ``items``: (p0, p1, t0, t1) per data-gradient task: positions [p0, p1) of one class (at
      most GRAD_SPAN), that class's terms [t0, t1);
    - ``pitems``: (positions, taps) of each class on the padding, never run, counted as padded.

    Cached per geometry: the arrays are built in numpy once, not per step."""
    rows = _axis_classes(h, oh, kh, sh, dh, pt)
    cols = _axis_classes(w, ow, kw, sw, dw, pl)
    kg = k // groups
    if kg * oh * ow + oh * ow >= 2 ** 32 or kh * kw * kg >= 2 ** 32:
        raise ValueError("conv data gradient: grad_out too large for 32-bit term offsets")
    bases, outs, toff, trow, items, pitems = [], [], [], [], [], []
    npos = nterm = 0
    sample = np.arange(n, dtype=np.int64)[:, None, None]
    channel = np.arange(kg, dtype=np.int64)[:, None]
    for (rin, rtaps), rlist in rows.items():
        for (cin, ctaps), clist in cols.items():
            count = n * len(rlist) * len(clist)
            if not (rin and cin):
                pitems.append((count, len(rtaps) * len(ctaps)))
                continue
            ri, rb = (np.array(v, np.int64)[None, :, None] for v in zip(*rlist))
            ci, cb = (np.array(v, np.int64)[None, None, :] for v in zip(*clist))
            bases.append((sample * (k * oh * ow) + rb * ow + cb).ravel())
            outs.append((sample * (c * h * w) + ri * w + ci).ravel())
            tx = np.array([t for t, _ in ctaps], np.int64)[None, :]
            ox = np.array([d for _, d in ctaps], np.int64)[None, :]
            for ty, dy in rtaps:
                toff.append((channel * (oh * ow) + dy * ow + ox).ravel())
                trow.append(((ty * kg + channel) * kw + tx).ravel())
            terms = len(rtaps) * len(ctaps) * kg
            items.extend((npos + p, npos + min(p + GRAD_SPAN, count), nterm, nterm + terms)
                         for p in range(0, count, GRAD_SPAN))
            npos += count
            nterm += terms

    def joined(parts, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype)

    plan = (joined(bases, np.uint64), joined(outs, np.uint64), joined(toff, np.uint32), joined(trow, np.uint32),
            np.array(items, np.int64).reshape(-1, 4), np.array(pitems, np.int64).reshape(-1, 2))
    for a in plan:
        a.flags.writeable = False
    return plan


def pack_grad_data_weights(weight: np.ndarray, groups: int) -> np.ndarray:
    """(K, Cg, KH, KW) -> (G, CB, KH*kg*KW, LANES): rows (ky, k, kx) over the group's kg output
    channels, the group's input channels in blocks of LANES on the last axis (last block
    zero-filled)."""
    k, cg, kh, kw = weight.shape
    kg = k // groups
    cblocks = -(-cg // LANES)
    w = np.zeros((groups, kg, cblocks * LANES, kh, kw), np.float32)
    w[:, :, :cg] = weight.reshape(groups, kg, cg, kh, kw)
    w = w.reshape(groups, kg, cblocks, LANES, kh, kw).transpose(0, 2, 4, 1, 5, 3)
    return np.ascontiguousarray(w.reshape(groups, cblocks, kh * kg * kw, LANES))


@njit(fastmath=True, inline="always")
def _grad_data_tile(gf, bases, p, wk, toff, trow, acc):
    """acc[q, j] = sum over terms t of gf[bases[p + q] + toff[t]] * wk[trow[t], j], for q < TILE:
    the forward's micro-kernel, with each term's weight row looked up."""
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
    for t in range(toff.shape[0]):
        o = toff[t]
        x0 = gf[b0 + o]
        x1 = gf[b1 + o]
        x2 = gf[b2 + o]
        x3 = gf[b3 + o]
        x4 = gf[b4 + o]
        x5 = gf[b5 + o]
        x6 = gf[b6 + o]
        x7 = gf[b7 + o]
        r = trow[t]
        for j in range(LANES):
            wv = wk[r, j]
            acc[j] += x0 * wv
            acc[LANES + j] += x1 * wv
            acc[2 * LANES + j] += x2 * wv
            acc[3 * LANES + j] += x3 * wv
            acc[4 * LANES + j] += x4 * wv
            acc[5 * LANES + j] += x5 * wv
            acc[6 * LANES + j] += x6 * wv
            acc[7 * LANES + j] += x7 * wv


@njit(fastmath=True, inline="always")
def _grad_data_one(gf, base, wk, toff, trow, acc):
    for j in range(LANES):
        acc[j] = 0.0
    for t in range(toff.shape[0]):
        xv = gf[base + toff[t]]
        r = trow[t]
        for j in range(LANES):
            acc[j] += xv * wk[r, j]


@njit(parallel=True, fastmath=True, cache=True)
def conv2d_grad_data_blocked(gy, wd, dx, bases, outs, toff, trow, items):
    """dx (N, C, H, W) += the data gradient for grad_out gy (N, K, OH, OW) and the packed weight
    wd (``pack_grad_data_weights``) over the classes of ``grad_data_plan``. One prange task:
    (group, block of LANES input channels, item: up to CHUNK tiles of TILE positions of one
    class), whose dx elements only it writes. A tile sums its class's taps x kg output channels
    in float32 registers (as many terms as the forward's tile sums), then adds into dx."""
    n_, k_, oh_, ow_ = gy.shape
    c_, h_, w_ = dx.shape[1], dx.shape[2], dx.shape[3]
    groups, cblocks, nrows, lanes = wd.shape
    kg = k_ // groups
    cg = c_ // groups
    hw = h_ * w_
    gf = gy.reshape(-1)
    df = dx.reshape(-1)
    nitems = items.shape[0]
    for task in prange(groups * cblocks * nitems):
        it = task % nitems
        rest = task // nitems
        cb = rest % cblocks
        g = rest // cblocks
        acc = carray(_stack_tile(np.float32), TILE * LANES)
        one = carray(_stack_one(np.float32), LANES)
        wk = wd[g, cb]
        gg = gf[g * kg * oh_ * ow_:]
        c0 = g * cg + cb * LANES
        nb = min(LANES, cg - cb * LANES)
        dg = df[c0 * hw:]
        p1 = items[it, 1]
        to = toff[items[it, 2]:items[it, 3]]  # the class's terms
        tr = trow[items[it, 2]:items[it, 3]]
        p = items[it, 0]
        while p + TILE <= p1:
            _grad_data_tile(gg, bases, p, wk, to, tr, acc)
            for q in range(TILE):
                o = outs[p + q]
                for j in range(nb):
                    dg[o + np.uint64(j * hw)] += acc[q * LANES + j]
            p += TILE
        while p < p1:
            _grad_data_one(gg, bases[p], wk, to, tr, one)
            o = outs[p]
            for j in range(nb):
                dg[o + np.uint64(j * hw)] += one[j]
            p += 1


@njit(cache=True)
def conv2d_grad_data_blocked_count(items, pitems, kg, groups, cg):
    """The loops of ``conv2d_grad_data_blocked`` (per group, block of LANES input channels and
    item: its tiles, then its single positions), each position's terms (its class's taps x kg)
    counted x the block's real channels; the classes on the padding, which it never runs,
    walked alike (taps x kg terms a position) and counted as padded."""
    cblocks = (cg + LANES - 1) // LANES
    performed = 0
    padded = 0
    for task in range(groups * cblocks):
        cb = task % cblocks
        nb = min(LANES, cg - cb * LANES)
        for it in range(items.shape[0]):
            p1, t0, t1 = items[it, 1], items[it, 2], items[it, 3]
            p = items[it, 0]
            while p + TILE <= p1:
                performed += TILE * (t1 - t0) * nb
                p += TILE
            while p < p1:
                performed += (t1 - t0) * nb
                p += 1
        for it in range(pitems.shape[0]):
            padded += pitems[it, 0] * pitems[it, 1] * kg * nb
    return performed, padded


@njit(parallel=True, cache=True)
def pack_grad_out_lanes(gy, gt):
    """gt (G, KB, N*OH*OW, LANES) = gy (N, K, OH, OW) with each group's output channels in blocks
    of LANES on the last axis (lanes past the group's last channel zero); 256 positions at a
    time, so the 16 passes over a run of positions stay in cache."""
    n_, k_, oh_, ow_ = gy.shape
    groups, kblocks = gt.shape[0], gt.shape[1]
    kg = k_ // groups
    npos = oh_ * ow_
    runs = (npos + 255) // 256
    for task in prange(groups * kblocks * n_ * runs):
        run = task % runs
        rest = task // runs
        n = rest % n_
        rest //= n_
        kb = rest % kblocks
        g = rest // kblocks
        k0 = g * kg + kb * LANES
        nk = min(LANES, kg - kb * LANES)
        p0 = run * 256
        p1 = min(p0 + 256, npos)
        dst = gt[g, kb, n * npos + p0:n * npos + p1]
        for j in range(nk):
            src = gy[n, k0 + j].reshape(-1)[p0:p1]
            for p in range(p1 - p0):
                dst[p, j] = src[p]
        for j in range(nk, LANES):
            for p in range(p1 - p0):
                dst[p, j] = 0.0


@njit(fastmath=True, inline="always")
def _grad_weight_tile(xf, gk, rbase, r0, r1, oh_, ow_, ohl, ohh, lo, hi, sh, sw, ihoff, plane, w_, coff, acc):
    """acc[q, j] = sum over the batch's output rows r in [r0, r1) (r = n*OH + oh, oh in
    [ohl, ohh)) and columns ow in [lo, hi) of x[n*plane + (oh*sh + ihoff)*W + ow*sw + coff[q]] *
    gk[(r - rbase)*OW + ow, j] (gk: grad_out of LANES output channels contiguous from row rbase).
    Column q of the tile is a pair (kx, input channel) whose offset in x coff[q] is; every
    (oh, ow) summed is in bounds for all eight."""
    for i in range(TILE * LANES):
        acc[i] = 0.0
    cmin = coff[0]
    for q in range(1, TILE):
        cmin = min(cmin, coff[q])
    o0 = np.uint64(coff[0] - cmin)  # the columns' offsets from a common base, loop-invariant
    o1 = np.uint64(coff[1] - cmin)
    o2 = np.uint64(coff[2] - cmin)
    o3 = np.uint64(coff[3] - cmin)
    o4 = np.uint64(coff[4] - cmin)
    o5 = np.uint64(coff[5] - cmin)
    o6 = np.uint64(coff[6] - cmin)
    o7 = np.uint64(coff[7] - cmin)
    step = np.uint64(sw)
    cols = np.uint64(hi - lo)
    for r in range(r0, r1):
        n = r // oh_
        oh = r - n * oh_
        if oh < ohl or oh >= ohh:
            continue
        xb = xf[np.uint64(n * plane + (oh * sh + ihoff) * w_ + lo * sw + cmin):]
        gr = gk[(r - rbase) * ow_ + lo:]
        for i in range(cols):
            xi = i * step
            x0 = xb[o0 + xi]
            x1 = xb[o1 + xi]
            x2 = xb[o2 + xi]
            x3 = xb[o3 + xi]
            x4 = xb[o4 + xi]
            x5 = xb[o5 + xi]
            x6 = xb[o6 + xi]
            x7 = xb[o7 + xi]
            for j in range(LANES):
                gv = gr[i, j]
                acc[j] += x0 * gv
                acc[LANES + j] += x1 * gv
                acc[2 * LANES + j] += x2 * gv
                acc[3 * LANES + j] += x3 * gv
                acc[4 * LANES + j] += x4 * gv
                acc[5 * LANES + j] += x5 * gv
                acc[6 * LANES + j] += x6 * gv
                acc[7 * LANES + j] += x7 * gv


@njit(fastmath=True, inline="always")
def _grad_weight_edge(xf, gk, rbase, r0, r1, oh_, ow_, ohl, ohh, a, b, sh, sw, ihoff, plane, w_, cq, tot):
    """tot[j] += the sum of one tile column (offset cq) over columns [a, b) of the chunk's rows:
    the columns in bounds for it but not for the whole tile (a tile whose pairs have different
    kx, near the left and right borders), in float64."""
    for r in range(r0, r1):
        n = r // oh_
        oh = r - n * oh_
        if oh < ohl or oh >= ohh:
            continue
        base = n * plane + (oh * sh + ihoff) * w_ + cq
        gr = gk[(r - rbase) * ow_:]
        for ow in range(a, b):
            xv = np.float64(xf[base + ow * sw])
            for j in range(LANES):
                tot[j] += xv * gr[ow, j]


@njit(inline="always")
def _pair_blocks_per_task(kw_, positions):
    """GRAD_CSUP channel blocks' worth of pair blocks (x KW), more on small maps so that a task's
    setup is paid over enough work."""
    return GRAD_CSUP * kw_ * max(1, GRAD_TASK_POSITIONS // positions)


@njit(inline="always")
def _pair(m, cg, kw_):
    """(kx, c) of pair m of a row of taps. With Cg a multiple of TILE the pairs go by blocks of
    TILE channels, each block's KW taps in turn (a tile's pairs share kx, and a channel block's
    taps follow each other while its rows of x are in cache); otherwise kx-major, m = kx*Cg + c."""
    if cg % TILE == 0:
        blk = m // TILE
        cb = blk // kw_
        return blk - cb * kw_, cb * TILE + m - blk * TILE
    kx = m // cg
    return kx, m - kx * cg


@njit(cache=True)
def _pair_columns(mb, nm, cg, g, hw, dw, pl, kw_, w_, ow_, sw, kxs, coff):
    """The tile of pairs mb .. mb + nm - 1 (``_pair``; the last one repeated up to TILE): per
    column its kx and offset in x; returns the columns [lo, hi) in bounds for every pair of the
    tile (hi <= lo when none is) and whether its pairs have different kx."""
    lo = 0
    hi = ow_
    mixed = False
    for q in range(TILE):
        kx, c = _pair(mb + min(q, nm - 1), cg, kw_)
        kxs[q] = kx
        coff[q] = (g * cg + c) * hw + kx * dw - pl
        owl, owh = _valid_range(kx * dw - pl, sw, w_, ow_)
        lo = max(lo, owl)
        hi = min(hi, owh)
        mixed = mixed or kx != kxs[0]
    return lo, hi, mixed


@njit(parallel=True, fastmath=True, cache=True)
def conv2d_grad_weight_blocked(x, gy, gt, dwt, sh, sw, pt, pl, dh, dw, rows_per_chunk):
    """dwt (K, Cg, KH, KW) = the weight gradient from the input x (N, C, H, W) and grad_out gy
    (N, K, OH, OW): per row of taps ky, the (kx, input channel) pairs (``_pair``) go TILE to a
    register tile (TILE pairs x LANES output channels). grad_out comes with LANES output channels
    contiguous either in gt (G, KB, N*OH*OW, LANES), packed by ``pack_grad_out_lanes``, or, when
    gt has no positions, packed by each task chunk by chunk into a small buffer (``grad_out_packing``
    picks). One prange task per (group, block of LANES output channels, run of
    ``_pair_blocks_per_task`` pair blocks), whose weight entries only it writes. Per chunk of
    ``rows_per_chunk`` output rows of the batch (in cache across the task's pair blocks and
    taps), pair block and ky, the tile sums the positions in bounds for all its pairs in float32
    (at most max(GRAD_CHUNK, OW) terms), then is added to the task's float64 totals; a tile whose
    pairs have different kx (Cg not a multiple of TILE) adds each pair's border columns, in bounds
    for it alone, one pair at a time. Taps on padding are skipped."""
    n_, c_, h_, w_ = x.shape
    k_, cg, kh_, kw_ = dwt.shape
    oh_, ow_ = gy.shape[2], gy.shape[3]
    groups, kblocks = gt.shape[0], gt.shape[1]
    local = gt.shape[2] == 0
    kg = k_ // groups
    pairs = kw_ * cg
    pbl = (pairs + TILE - 1) // TILE
    csup = _pair_blocks_per_task(kw_, n_ * oh_ * ow_)
    nsup = (pbl + csup - 1) // csup
    plane = c_ * h_ * w_
    hw = h_ * w_
    xf = x.reshape(-1)
    rows = n_ * oh_
    for task in prange(groups * kblocks * nsup):
        sup = task % nsup
        rest = task // nsup
        kb = rest % kblocks
        g = rest // kblocks
        acc = carray(_stack_tile(np.float32), TILE * LANES)
        pb0 = sup * csup
        npb = min(csup, pbl - pb0)
        # the task's pair blocks, set up once: per block its columns' kx and offsets in x, the
        # columns in bounds for all of them, whether their kx differ; and the rows in bounds per ky
        coffs = np.empty((npb, TILE), np.int64)
        kxs = np.empty((npb, TILE), np.int64)
        spans = np.empty((npb, 3), np.int64)
        for pbi in range(npb):
            mb = (pb0 + pbi) * TILE
            lo, hi, mixed = _pair_columns(mb, min(TILE, pairs - mb), cg, g, hw, dw, pl, kw_, w_, ow_, sw, kxs[pbi],
                                          coffs[pbi])
            spans[pbi, 0] = lo
            spans[pbi, 1] = hi
            spans[pbi, 2] = mixed
        tapped = np.empty((kh_, 2), np.int64)
        for ky in range(kh_):
            tapped[ky, 0], tapped[ky, 1] = _valid_range(ky * dh - pt, sh, h_, oh_)
        tot = np.zeros((npb, kh_, TILE * LANES), np.float64)
        k0 = g * kg + kb * LANES
        nk = min(LANES, kg - kb * LANES)
        gk = np.zeros((rows_per_chunk * ow_ if local else 0, LANES), np.float32) if local else gt[g, kb]
        for r0 in range(0, rows, rows_per_chunk):
            r1 = min(r0 + rows_per_chunk, rows)
            rbase = 0
            if local:  # this task's LANES channels of grad_out for the chunk's rows
                rbase = r0
                for r in range(r0, r1):
                    n = r // oh_
                    src = gy[n, k0:k0 + nk, r - n * oh_]
                    dst = gk[(r - r0) * ow_:]
                    for j in range(nk):
                        for ow in range(ow_):
                            dst[ow, j] = src[j, ow]
            for pbi in range(npb):
                nm = min(TILE, pairs - (pb0 + pbi) * TILE)
                lo = spans[pbi, 0]
                hi = spans[pbi, 1]
                coff = coffs[pbi]
                for ky in range(kh_):
                    ohl = tapped[ky, 0]
                    ohh = tapped[ky, 1]
                    if ohh <= ohl:
                        continue
                    t = tot[pbi, ky]
                    if hi > lo:
                        _grad_weight_tile(xf, gk, rbase, r0, r1, oh_, ow_, ohl, ohh, lo, hi, sh, sw, ky * dh - pt,
                                          plane, w_, coff, acc)
                        for i in range(TILE * LANES):
                            t[i] += acc[i]
                        if spans[pbi, 2] == 0:  # one kx: the tile covered every pair's columns
                            continue
                    for q in range(nm):
                        owl, owh = _valid_range(kxs[pbi, q] * dw - pl, sw, w_, ow_)
                        tq = t[q * LANES:(q + 1) * LANES]
                        if hi <= lo:
                            _grad_weight_edge(xf, gk, rbase, r0, r1, oh_, ow_, ohl, ohh, owl, owh, sh, sw, ky * dh - pt,
                                              plane, w_, coff[q], tq)
                            continue
                        if owl < lo:
                            _grad_weight_edge(xf, gk, rbase, r0, r1, oh_, ow_, ohl, ohh, owl, lo, sh, sw, ky * dh - pt,
                                              plane, w_, coff[q], tq)
                        if hi < owh:
                            _grad_weight_edge(xf, gk, rbase, r0, r1, oh_, ow_, ohl, ohh, hi, owh, sh, sw, ky * dh - pt,
                                              plane, w_, coff[q], tq)
        for pbi in range(npb):
            mb = (pb0 + pbi) * TILE
            for q in range(min(TILE, pairs - mb)):
                kx, c = _pair(mb + q, cg, kw_)
                for ky in range(kh_):
                    for j in range(nk):
                        dwt[k0 + j, c, ky, kx] = tot[pbi, ky, q * LANES + j]


@njit(cache=True)
def conv2d_grad_weight_blocked_count(n_, c_, h_, w_, k_, groups, kh_, kw_, oh_, ow_, sh, sw, pt, pl, dh, dw,
                                     rows_per_chunk):
    """The loops of ``conv2d_grad_weight_blocked`` down to its rows: per task, chunk, pair block,
    ky and row, each real pair's in-bounds columns (the tile's shared ones and its own border
    ones) x the block's real output channels performed, the rest of the row padded; a row whose
    tap lands on padding, or a ky skipped whole, padded."""
    cg = c_ // groups
    kg = k_ // groups
    kblocks = (kg + LANES - 1) // LANES
    pairs = kw_ * cg
    pbl = (pairs + TILE - 1) // TILE
    csup = _pair_blocks_per_task(kw_, n_ * oh_ * ow_)
    nsup = (pbl + csup - 1) // csup
    rows = n_ * oh_
    performed = 0
    padded = 0
    for task in range(groups * kblocks * nsup):
        sup = task % nsup
        kb = (task // nsup) % kblocks
        nk = min(LANES, kg - kb * LANES)
        pb0 = sup * csup
        npb = min(csup, pbl - pb0)
        for r0 in range(0, rows, rows_per_chunk):
            r1 = min(r0 + rows_per_chunk, rows)
            for pbi in range(npb):
                mb = (pb0 + pbi) * TILE
                nm = min(TILE, pairs - mb)
                for ky in range(kh_):
                    ohl, ohh = _valid_range(ky * dh - pt, sh, h_, oh_)
                    for r in range(r0, r1):
                        oh = r % oh_
                        for q in range(nm):
                            kx, c = _pair(mb + q, cg, kw_)
                            owl, owh = _valid_range(kx * dw - pl, sw, w_, ow_)
                            if ohh <= ohl or oh < ohl or oh >= ohh:
                                padded += nk * ow_
                            else:
                                performed += nk * (owh - owl)
                                padded += nk * (ow_ - (owh - owl))
    return performed, padded


def grad_rows_per_chunk(ow: int) -> int:
    """Output rows per float32 partial of the blocked weight gradient: GRAD_CHUNK positions'
    worth of whole rows, at least one."""
    return max(1, GRAD_CHUNK // ow)


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
    def prepare(op, in_shapes, out_shape, params, geometry_of=None):
        weight = params["weight"]
        bias = adapters.bias_or_zeros(op, out_shape[1], params)
        geometry = adapters.conv_geometry(op, in_shapes[0])  # (sh, sw, top, left, dh, dw)
        if uses_blocked(op):
            padded_hw, taps, bases = (geometry_of or blocked_geometry)(op, in_shapes[0], out_shape)
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
        every step; the blocked kernel's offsets, which do not, are built once per geometry).
        Nothing goes in ``extras``: the backward keeps only input 0."""
        in_shapes = tuple(tuple(int(d) for d in x.shape) for x in inputs)
        state = Conv2dKernel.prepare(op, in_shapes, tuple(int(d) for d in out.shape), params, _cached_geometry)
        Conv2dKernel.run(op, state, [as_float32(x) for x in inputs], out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += the data gradient (from params["weight"]); param_grads["weight"] = the
        weight gradient (from the kept input 0); param_grads["bias"] = the bias gradient. A name
        missing from ``param_grads`` is a frozen param and is not computed. Convs with at least
        MIN_BLOCKED_CHANNELS input (data) or output (weight) channels per group run the blocked
        kernels, the others (depthwise, narrow groups) the row kernels."""
        gy = as_float32(grad_out)
        dx = grad_inputs[0] if grad_inputs else None
        if dx is not None:
            weight = as_float32(params["weight"])
            geometry = adapters.conv_geometry(op, dx.shape)
            if uses_blocked_grad_data(op, dx.shape[1]):
                plan = grad_data_plan(*_grad_args(op, dx.shape, gy.shape))
                wd = pack_grad_data_weights(weight, op.groups)
                accumulate_into(dx, lambda buf: conv2d_grad_data_blocked(gy, wd, buf, *plan[:5]))
            else:
                accumulate_into(dx, lambda buf: conv2d_grad_data(gy, weight, buf, *geometry))
        if "weight" in param_grads:
            if inputs[0] is None:
                raise ValueError("Conv2d backward: the weight gradient needs the kept input 0")
            x = as_float32(inputs[0])
            geometry = adapters.conv_geometry(op, x.shape)
            if uses_blocked_grad_weight(op):
                oh, ow = _weight_rows(op, x.shape, gy.shape)
                xw, gw = x, gy
                if (oh, ow) != gy.shape[2:]:  # a merged 1x1 plane: the same memory in longer rows
                    xw = x.reshape(x.shape[0], x.shape[1], oh, ow)
                    gw = gy.reshape(gy.shape[0], gy.shape[1], oh, ow)
                kblocks = -(-(op.out_channels // op.groups) // LANES)
                if grad_out_packing(op, xw.shape, gw.shape) == "once":
                    gt = np.empty((op.groups, kblocks, gw.shape[0] * oh * ow, LANES), np.float32)
                    pack_grad_out_lanes(gw, gt)
                else:
                    gt = np.empty((op.groups, kblocks, 0, LANES), np.float32)
                write_into(param_grads["weight"], lambda buf: conv2d_grad_weight_blocked(
                    xw, gw, gt, buf, *geometry, grad_rows_per_chunk(ow)))
            else:
                write_into(param_grads["weight"], lambda buf: conv2d_grad_weight(x, gy, buf, *geometry))
        if op.bias and "bias" in param_grads:
            write_into(param_grads["bias"], lambda buf: conv2d_grad_bias(gy, buf))

    @staticmethod
    def backward_count(op, params, in_shapes, out_shape, want_data, want_weight):
        """(data performed, data padded, weight performed, weight padded): the multiplies of the
        data- and weight-gradient kernels ``backward`` runs on these shapes, counted by their
        loops; a gradient not wanted counts (0, 0). The bias gradient is adds only."""
        args = _grad_args(op, in_shapes[0], out_shape)
        n, c, h, w, k, groups = args[:6]
        data = weight = (0, 0)
        if want_data:
            if uses_blocked_grad_data(op, c):
                plan = grad_data_plan(*args)
                data = conv2d_grad_data_blocked_count(plan[4], plan[5], k // groups, groups, c // groups)
            else:
                data = conv2d_grad_data_count(*args)
        if want_weight:
            if uses_blocked_grad_weight(op):
                oh, ow = _weight_rows(op, in_shapes[0], out_shape)
                if (oh, ow) != tuple(args[8:10]):  # a merged 1x1 plane: input rows as output rows
                    args = (n, c, oh, ow, k, groups, *args[6:8], oh, ow, *args[10:])
                weight = conv2d_grad_weight_blocked_count(*args, grad_rows_per_chunk(ow))
            else:
                weight = conv2d_grad_weight_count(*args)
        return int(data[0]), int(data[1]), int(weight[0]), int(weight[1])


def grad_out_packing(op, in_shape, out_shape) -> str:
    """How the blocked weight gradient gets grad_out with LANES output channels contiguous:
    "once" for the whole batch before the kernel (``pack_grad_out_lanes``: one pass, but a
    buffer as large as grad_out, fresh memory each call), or "tasks": each task packs its chunk
    of rows, which costs nothing extra where one task takes all the pairs of its output block
    (few input channels: the first layers, whose grad_out is the largest) and is repeated by
    every task of a block otherwise."""
    cg = in_shape[1] // op.groups
    kw = op.kernel[1]
    pbl = -(-(kw * cg) // TILE)
    per_task = GRAD_CSUP * kw * max(1, GRAD_TASK_POSITIONS // (out_shape[0] * out_shape[2] * out_shape[3]))
    return "tasks" if pbl <= per_task else "once"


def _weight_rows(op, in_shape, out_shape):
    """The (rows, row length) the blocked weight gradient walks the output plane in: the plane's
    own, except for a 1x1 stride-1 unpadded conv, whose input and output planes are the same
    contiguous positions: there d of its rows make one (the largest divisor d of OH with
    d * OW <= GRAD_CHUNK), so short rows (7, 14) do not cost a row's setup each."""
    oh, ow = int(out_shape[2]), int(out_shape[3])
    sh, sw, top, left, dh, dw = adapters.conv_geometry(op, in_shape)
    if tuple(op.kernel) != (1, 1) or (sh, sw, top, left) != (1, 1, 0, 0) or tuple(in_shape[2:]) != (oh, ow):
        return oh, ow
    d = max(d for d in range(1, oh + 1) if oh % d == 0 and (d == 1 or d * ow <= GRAD_CHUNK))
    return oh // d, ow * d


def _grad_args(op, in_shape, out_shape):
    """(N, C, H, W, K, groups, KH, KW, OH, OW, sh, sw, top, left, dh, dw) as Python ints: the
    geometry the backward kernels and their counts take."""
    n, c, h, w = in_shape
    sh, sw, top, left, dh, dw = adapters.conv_geometry(op, in_shape)
    return tuple(int(v) for v in (n, c, h, w, out_shape[1], op.groups, *op.kernel, out_shape[2], out_shape[3],
                                  sh, sw, top, left, dh, dw))


# --- ConvTranspose2d: a conv's backward kernels with the roles swapped -----------------------
#
# A transposed conv with weight (C, Kg, KH, KW) on x (N, C, H, W) is the data gradient of the
# conv whose weight is that same array read as (K = C output channels, Cg = Kg input channels,
# KH, KW), whose input is this op's output (N, K_out, OH, OW) and whose output is x: so the
# forward is ``conv2d_grad_data`` with x as its grad_out, the data gradient is that conv's
# forward (``conv2d``) on grad_out, and the weight gradient is that conv's weight gradient with
# grad_out as its input and x as its grad_out. The row kernels bounds-test every tap against
# both maps, so output_padding and bottom/right padding (which make this op's output a size the
# conv's shape rule would not give from x) need nothing more. Their counts walk the same loops.


def _transposed_args(op, in_shape, out_shape):
    """The geometry (``_grad_args`` order) of the conv a transposed conv is the transpose of:
    that conv's input is this op's output, its output this op's input."""
    n, c, h, w = (int(d) for d in in_shape)
    sh, sw, top, left, dh, dw = adapters.conv_geometry(op, in_shape)
    return tuple(int(v) for v in (n, out_shape[1], out_shape[2], out_shape[3], c, op.groups, *op.kernel, h, w,
                                  sh, sw, top, left, dh, dw))


class ConvTranspose2dKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return as_float32(params["weight"]), adapters.bias_or_zeros(op, out_shape[1], params), \
            adapters.conv_geometry(op, in_shapes[0])

    @staticmethod
    def run(op, state, inputs, out):
        weight, bias, geometry = state
        x = as_float32(inputs[0])
        out[...] = bias[None, :, None, None]  # the scatter adds onto the bias
        accumulate_into(out, lambda buf: conv2d_grad_data(x, weight, buf, *geometry))

    @staticmethod
    def count(op, state, inputs, out):
        """(performed, padded): the scatter's (input, tap) pairs landing inside the output and on
        the cropped padding, by the loops of ``conv2d_grad_data``."""
        return conv2d_grad_data_count(*_transposed_args(op, tuple(inputs[0].shape), tuple(out.shape)))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The inference forward; nothing goes in ``extras`` (the backward keeps only input 0)."""
        in_shapes = tuple(tuple(int(d) for d in x.shape) for x in inputs)
        ConvTranspose2dKernel.run(op, ConvTranspose2dKernel.prepare(op, in_shapes, out.shape, params), inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += the data gradient (the conv forward of grad_out, from
        params["weight"]); param_grads["weight"] = the weight gradient (from the kept input 0);
        param_grads["bias"] = the bias gradient. A name missing from ``param_grads`` is frozen."""
        gy = as_float32(grad_out)
        dx = grad_inputs[0] if grad_inputs else None
        if dx is not None:
            weight = as_float32(params["weight"])
            geometry = adapters.conv_geometry(op, dx.shape)
            data = np.empty(dx.shape, np.float32)
            conv2d(gy, pack_conv_weights(weight, op.groups), np.zeros(dx.shape[1], np.float32), data, *geometry)
            dx += data
        if "weight" in param_grads:
            if inputs[0] is None:
                raise ValueError("ConvTranspose2d backward: the weight gradient needs the kept input 0")
            x = as_float32(inputs[0])
            geometry = adapters.conv_geometry(op, x.shape)
            write_into(param_grads["weight"], lambda buf: conv2d_grad_weight(gy, x, buf, *geometry))
        if op.bias and "bias" in param_grads:
            write_into(param_grads["bias"], lambda buf: conv2d_grad_bias(gy, buf))

    @staticmethod
    def backward_count(op, params, in_shapes, out_shape, want_data, want_weight):
        """(data performed, data padded, weight performed, weight padded). The data gradient's
        ``conv2d`` visits the (output, tap) pairs of the transposed-of conv inside its input, the
        same pairs its data-gradient count loops walk; the weight gradient is that conv's."""
        args = _transposed_args(op, in_shapes[0], out_shape)
        data = conv2d_grad_data_count(*args) if want_data else (0, 0)
        weight = conv2d_grad_weight_count(*args) if want_weight else (0, 0)
        return int(data[0]), int(data[1]), int(weight[0]), int(weight[1])
