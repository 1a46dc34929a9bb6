"""Kernels of the ops the zoo added for published variants: ChannelSelect and RBF (LeNet-5 as
published), Maxout (FitNets), AffineGrid and GridSample (Spatial Transformer). Affine (LeNet-5's
trainable subsampling coefficient and bias) reuses ``pointwise.channel_affine``.

AffineGrid and GridSample follow ``torch.nn.functional.affine_grid`` / ``grid_sample``
(bilinear, zero padding) for both settings of ``align_corners``; coordinates are computed in
float64 from the float32 inputs and rounded once, on the store. Maxout's max, the grid's target
points and the bilinear sample are the shared formulas (archcost/kernels/formulas.py).
"""

import numpy as np
from numba import njit

from archcost.kernels import adapters, formulas
from archcost.kernels.adapters import axis_view
from archcost.kernels.cpu.pointwise import channel_affine

_maxout_value = njit(inline="always")(formulas.maxout_value)
_grid_target = njit(inline="always")(formulas.grid_target)
_grid_sample_span = njit(inline="always")(formulas.grid_sample_span)


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
            for b in range(b_):
                out[a, c, b] = _maxout_value(x, a, c, b, pieces)


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
def affine_grid(theta, out, align_corners):
    """theta (N, 6) = [[a, b, c], [d, e, f]] row-major; out (N, H, W, 2) = (x_s, y_s) with
    x_s = a*x_t + b*y_t + c, y_s = d*x_t + e*y_t + f."""
    n_, h_, w_, _ = out.shape
    for n in range(n_):
        a, b, c = np.float64(theta[n, 0]), np.float64(theta[n, 1]), np.float64(theta[n, 2])
        d, e, f = np.float64(theta[n, 3]), np.float64(theta[n, 4]), np.float64(theta[n, 5])
        for i in range(h_):
            y_t = _grid_target(i, h_, align_corners)
            for j in range(w_):
                x_t = _grid_target(j, w_, align_corners)
                out[n, i, j, 0] = a * x_t + b * y_t + c
                out[n, i, j, 1] = d * x_t + e * y_t + f


@njit(cache=True)
def grid_sample(x, grid, out, align_corners):
    """Bilinear sampling of x (N, C, H, W) at grid (N, Ho, Wo, 2) into out (N, C, Ho, Wo);
    corners outside the input read as zero."""
    _, c_, ho_, wo_ = out.shape
    for n in range(x.shape[0]):
        for i in range(ho_):
            _grid_sample_span(x, grid, out, n, i, 0, wo_, 0, c_, align_corners)  # a row, all channels


class ChannelSelectKernel:
    prepare = staticmethod(adapters.channel_select_state)

    @staticmethod
    def run(op, state, inputs, out):
        channel_select(axis_view(inputs[0], 1), state, axis_view(out, 1))


class AffineKernel:
    prepare = staticmethod(adapters.affine_state)

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
    prepare = staticmethod(adapters.maxout_state)

    @staticmethod
    def run(op, state, inputs, out):
        maxout(axis_view(inputs[0], 1), state, axis_view(out, 1))


class AffineGridKernel:
    prepare = staticmethod(adapters.align_corners_state)

    @staticmethod
    def run(op, state, inputs, out):
        affine_grid(inputs[0], out, state)


class GridSampleKernel:
    prepare = staticmethod(adapters.align_corners_state)

    @staticmethod
    def run(op, state, inputs, out):
        grid_sample(inputs[0], inputs[1], out, state)
