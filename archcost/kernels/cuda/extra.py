"""Kernels of the zoo's variant ops on device arrays: ChannelSelect and RBF (LeNet-5 as
published), Maxout (FitNets), AffineGrid and GridSample (Spatial Transformer). Affine (LeNet-5's
trainable coefficient and bias per channel) reuses ``pointwise.channel_affine``.

Each is one thread per output element (one per grid point for AffineGrid, which writes both
coordinates of its point), index arithmetic behind a bounds guard, blocks of ``config.THREADS``.
As on the cpu (archcost/kernels/cpu/extra.py): RBF accumulates in float64, and AffineGrid and
GridSample compute coordinates and weights in float64 from the float32 inputs, rounding once, on
the store; both follow ``torch.nn.functional.affine_grid`` / ``grid_sample`` (bilinear, zero
padding) for both settings of ``align_corners``.
"""

import math

import numpy as np

from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import axis_view, grid1d
from archcost.kernels.cuda.pointwise import channel_affine


@cuda.jit
def _channel_select(x, channels, out):
    """out[a, k, b] = x[a, channels[k], b] for x (A, C, B), out (A, K, B)."""
    i = cuda.grid(1)
    a_, k_, b_ = out.shape
    if i < a_ * k_ * b_:
        b = i % b_
        k = (i // b_) % k_
        a = i // (b_ * k_)
        out[a, k, b] = x[a, channels[k], b]


@cuda.jit
def _maxout(x, out, pieces):
    """out[a, c, b] = max over j < pieces of x[a, c * pieces + j, b] for x (A, C * pieces, B)."""
    i = cuda.grid(1)
    a_, c_, b_ = out.shape
    if i < a_ * c_ * b_:
        b = i % b_
        c = (i // b_) % c_
        a = i // (b_ * c_)
        first = c * pieces
        top = x[a, first, b]
        for j in range(1, pieces):
            v = x[a, first + j, b]
            if v > top:
                top = v
        out[a, c, b] = top


@cuda.jit
def _rbf(x, centres_t, out):
    """out[n, i] = sum_j (x[n, j] - centres_t[j, i])^2 in float64. The centres come transposed
    (F, out) so that neighbouring threads (consecutive i) read neighbouring addresses."""
    t = cuda.grid(1)
    n_, o_ = out.shape
    if t < n_ * o_:
        i = t % o_
        n = t // o_
        total = 0.0
        for j in range(x.shape[1]):
            d = float(x[n, j]) - float(centres_t[j, i])
            total += d * d
        out[n, i] = total


@cuda.jit(device=True)
def _target(k, size, align_corners):
    """The k-th of ``size`` target coordinates in [-1, 1] (torch's linspace_from_neg_one)."""
    if size <= 1:
        return 0.0
    if align_corners:
        return -1.0 + 2.0 * k / (size - 1)
    return (2.0 * k + 1.0) / size - 1.0


@cuda.jit
def _affine_grid(theta, out, align_corners):
    """theta (N, 6) = [[a, b, c], [d, e, f]] row-major; out (N, H, W, 2) = (x_s, y_s) with
    x_s = a*x_t + b*y_t + c, y_s = d*x_t + e*y_t + f; one thread per grid point (n, i, j)."""
    t = cuda.grid(1)
    n_, h_, w_, _ = out.shape
    if t < n_ * h_ * w_:
        j = t % w_
        i = (t // w_) % h_
        n = t // (w_ * h_)
        x_t = _target(j, w_, align_corners)
        y_t = _target(i, h_, align_corners)
        out[n, i, j, 0] = float(theta[n, 0]) * x_t + float(theta[n, 1]) * y_t + float(theta[n, 2])
        out[n, i, j, 1] = float(theta[n, 3]) * x_t + float(theta[n, 4]) * y_t + float(theta[n, 5])


@cuda.jit
def _grid_sample(x, grid, out, align_corners):
    """Bilinear sample of x (N, C, H, W) at grid (N, Ho, Wo, 2) into out (N, C, Ho, Wo), one
    thread per output element; corners outside the input read as zero."""
    t = cuda.grid(1)
    n_, c_, ho_, wo_ = out.shape
    if t < n_ * c_ * ho_ * wo_:
        j = t % wo_
        i = (t // wo_) % ho_
        c = (t // (wo_ * ho_)) % c_
        n = t // (wo_ * ho_ * c_)
        h_ = x.shape[2]
        w_ = x.shape[3]
        gx = float(grid[n, i, j, 0])
        gy = float(grid[n, i, j, 1])
        if align_corners:
            u = (gx + 1.0) * (w_ - 1) / 2.0
            v = (gy + 1.0) * (h_ - 1) / 2.0
        else:
            u = ((gx + 1.0) * w_ - 1.0) / 2.0
            v = ((gy + 1.0) * h_ - 1.0) / 2.0
        total = 0.0
        # Every corner outside (or a NaN point): zero, decided before any int conversion.
        if u > -1.0 and u < w_ and v > -1.0 and v < h_:
            fu = math.floor(u)
            fv = math.floor(v)
            p0 = int(fu)
            q0 = int(fv)
            du = u - fu
            dv = v - fv
            if q0 >= 0:
                if p0 >= 0:
                    total += (1.0 - dv) * (1.0 - du) * x[n, c, q0, p0]
                if p0 + 1 < w_:
                    total += (1.0 - dv) * du * x[n, c, q0, p0 + 1]
            if q0 + 1 < h_:
                if p0 >= 0:
                    total += dv * (1.0 - du) * x[n, c, q0 + 1, p0]
                if p0 + 1 < w_:
                    total += dv * du * x[n, c, q0 + 1, p0 + 1]
        out[n, c, i, j] = total


def _launch(kernel, n, *args):
    blocks, threads = grid1d(n)
    kernel[blocks, threads](*args)


class ChannelSelectKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return cuda.to_device(np.asarray(op.channels, np.int64))

    @staticmethod
    def run(op, state, inputs, out):
        out3 = axis_view(out, 1)
        _launch(_channel_select, out3.size, axis_view(inputs[0], 1), state, out3)


class AffineKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return (cuda.to_device(np.ascontiguousarray(params["gamma"], np.float32)),
                cuda.to_device(np.ascontiguousarray(params["beta"], np.float32)))

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(inputs[0], *state, out, op.axis)


class RBFKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return cuda.to_device(np.ascontiguousarray(np.asarray(params["centres"], np.float32).T))

    @staticmethod
    def run(op, state, inputs, out):
        _launch(_rbf, out.size, inputs[0], state, out)


class MaxoutKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return op.pieces

    @staticmethod
    def run(op, state, inputs, out):
        out3 = axis_view(out, 1)
        _launch(_maxout, out3.size, axis_view(inputs[0], 1), out3, state)


class AffineGridKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return bool(op.align_corners)

    @staticmethod
    def run(op, state, inputs, out):
        n, h, w, _ = out.shape
        _launch(_affine_grid, n * h * w, inputs[0], out, state)


class GridSampleKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return bool(op.align_corners)

    @staticmethod
    def run(op, state, inputs, out):
        _launch(_grid_sample, math.prod(out.shape), inputs[0], inputs[1], out, state)
