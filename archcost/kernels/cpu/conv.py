"""2-D convolution on NCHW float32 maps, with weights packed once per graph.

Packed layout (``pack_conv_weights``): ``(G, B, Cg, KH, KW, OB)``: per group ``G``, output
channels in blocks of ``OB`` (the last block zero-filled), so the inner loop multiplies one
input row by ``OB`` weights into an ``OB x OW`` accumulator. One prange task is one
(sample, group, channel block, output row); padded taps are skipped, never multiplied.

``conv2d_count`` walks the same loops and returns ``(performed, padded)``: the multiplies the
kernel really does and the padded taps it skips. archcost's MAC convention (cost.py) counts
padded taps as multiplies by zero, so ``performed + padded`` must equal the analytic MACs.
"""

import numpy as np
from numba import njit, prange

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


class Conv2dKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        weight = params["weight"]
        bias = params["bias"] if op.bias else np.zeros(out_shape[1], np.float32)
        top, _, left, _ = op.pads(in_shapes[0][2], in_shapes[0][3])
        geometry = (op.stride[0], op.stride[1], top, left, op.dilation[0], op.dilation[1])
        return pack_conv_weights(weight, op.groups), np.ascontiguousarray(bias, np.float32), geometry

    @staticmethod
    def run(op, state, inputs, out):
        wp, bias, geometry = state
        conv2d(inputs[0], wp, bias, out, *geometry)

    @staticmethod
    def count(op, state, inputs, out):
        wp, _, geometry = state
        return conv2d_count(inputs[0], wp, out, *geometry)
