"""Kernels of the ops the zoo added for published variants: ChannelSelect and RBF (LeNet-5 as
published), Maxout (FitNets), AffineGrid and GridSample (Spatial Transformer). Affine (LeNet-5's
trainable subsampling coefficient and bias) reuses ``pointwise.channel_affine``.

AffineGrid and GridSample follow ``torch.nn.functional.affine_grid`` / ``grid_sample``
(bilinear, zero padding) for both settings of ``align_corners``; coordinates are computed in
float64 from the float32 inputs and rounded once, on the store.
"""

import math

import numpy as np
from numba import njit

from archcost.kernels.cpu.pointwise import axis_view, channel_affine


@njit(cache=True)
def channel_select(x, channels, out):
    """out[a, k, b] = x[a, channels[k], b] for x (A, C, B), out (A, K, B)."""
    a_, k_, b_ = out.shape
    for a in range(a_):
        for k in range(k_):
            c = channels[k]
            for b in range(b_):
                out[a, k, b] = x[a, c, b]


@njit(cache=True)
def maxout(x, pieces, out):
    """out[a, c, b] = max over j < pieces of x[a, c * pieces + j, b] for x (A, C * pieces, B)."""
    a_, c_, b_ = out.shape
    for a in range(a_):
        for c in range(c_):
            first = c * pieces
            for b in range(b_):
                top = x[a, first, b]
                for j in range(1, pieces):
                    v = x[a, first + j, b]
                    if v > top:
                        top = v
                out[a, c, b] = top


@njit(cache=True)
def rbf(x, centres, out):
    """out[n, i] = sum_j (x[n, j] - centres[i, j])^2, accumulated in float64."""
    n_, f_ = x.shape
    o_ = centres.shape[0]
    for n in range(n_):
        for i in range(o_):
            total = 0.0
            for j in range(f_):
                d = np.float64(x[n, j]) - np.float64(centres[i, j])
                total += d * d
            out[n, i] = total


@njit(cache=True)
def _target(k, size, align_corners):
    """The k-th of ``size`` target coordinates in [-1, 1] (torch's linspace_from_neg_one)."""
    if size <= 1:
        return 0.0
    if align_corners:
        return -1.0 + 2.0 * k / (size - 1)
    return (2.0 * k + 1.0) / size - 1.0


@njit(cache=True)
def affine_grid(theta, out, align_corners):
    """theta (N, 6) = [[a, b, c], [d, e, f]] row-major; out (N, H, W, 2) = (x_s, y_s) with
    x_s = a*x_t + b*y_t + c, y_s = d*x_t + e*y_t + f."""
    n_, h_, w_, _ = out.shape
    for n in range(n_):
        a, b, c = np.float64(theta[n, 0]), np.float64(theta[n, 1]), np.float64(theta[n, 2])
        d, e, f = np.float64(theta[n, 3]), np.float64(theta[n, 4]), np.float64(theta[n, 5])
        for i in range(h_):
            y_t = _target(i, h_, align_corners)
            for j in range(w_):
                x_t = _target(j, w_, align_corners)
                out[n, i, j, 0] = a * x_t + b * y_t + c
                out[n, i, j, 1] = d * x_t + e * y_t + f


@njit(cache=True)
def grid_sample(x, grid, out, align_corners):
    """Bilinear sampling of x (N, C, H, W) at grid (N, Ho, Wo, 2) into out (N, C, Ho, Wo);
    corners outside the input read as zero."""
    n_, c_, h_, w_ = x.shape
    _, ho_, wo_, _ = grid.shape
    for n in range(n_):
        for i in range(ho_):
            for j in range(wo_):
                gx, gy = np.float64(grid[n, i, j, 0]), np.float64(grid[n, i, j, 1])
                if align_corners:
                    u = (gx + 1.0) * (w_ - 1) / 2.0
                    v = (gy + 1.0) * (h_ - 1) / 2.0
                else:
                    u = ((gx + 1.0) * w_ - 1.0) / 2.0
                    v = ((gy + 1.0) * h_ - 1.0) / 2.0
                # Every corner is outside (or the point is NaN): zero, before any int conversion.
                if not (u > -1.0 and u < w_ and v > -1.0 and v < h_):
                    for c in range(c_):
                        out[n, c, i, j] = 0.0
                    continue
                fu, fv = math.floor(u), math.floor(v)
                p0, q0 = int(fu), int(fv)
                du, dv = u - fu, v - fv
                w00, w01 = (1.0 - dv) * (1.0 - du), (1.0 - dv) * du
                w10, w11 = dv * (1.0 - du), dv * du
                in_p0, in_p1 = p0 >= 0, p0 + 1 < w_
                in_q0, in_q1 = q0 >= 0, q0 + 1 < h_
                for c in range(c_):
                    total = 0.0
                    if in_q0:
                        if in_p0:
                            total += w00 * x[n, c, q0, p0]
                        if in_p1:
                            total += w01 * x[n, c, q0, p0 + 1]
                    if in_q1:
                        if in_p0:
                            total += w10 * x[n, c, q0 + 1, p0]
                        if in_p1:
                            total += w11 * x[n, c, q0 + 1, p0 + 1]
                    out[n, c, i, j] = total


class ChannelSelectKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return np.asarray(op.channels, np.int64)

    @staticmethod
    def run(op, state, inputs, out):
        channel_select(axis_view(inputs[0], 1), state, axis_view(out, 1))


class AffineKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return params["gamma"], params["beta"]

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(axis_view(inputs[0], op.axis), *state, axis_view(out, op.axis))


class RBFKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return params["centres"]

    @staticmethod
    def run(op, state, inputs, out):
        rbf(inputs[0], state, out)


class MaxoutKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return op.pieces

    @staticmethod
    def run(op, state, inputs, out):
        maxout(axis_view(inputs[0], 1), state, axis_view(out, 1))


class AffineGridKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return bool(op.align_corners)

    @staticmethod
    def run(op, state, inputs, out):
        affine_grid(inputs[0], out, state)


class GridSampleKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return bool(op.align_corners)

    @staticmethod
    def run(op, state, inputs, out):
        grid_sample(inputs[0], inputs[1], out, state)
