"""Kernels of the zoo's variant ops on device arrays: ChannelSelect and RBF (LeNet-5 as
published), Maxout (FitNets), AffineGrid and GridSample (Spatial Transformer). Affine (LeNet-5's
trainable coefficient and bias per channel) reuses ``pointwise.channel_affine``.

Each is one thread per output element (one per grid point for AffineGrid, which writes both
coordinates of its point), index arithmetic behind a bounds guard, blocks of ``config.THREADS``.
As on the cpu (archcost/kernels/cpu/extra.py): RBF accumulates in float64, and AffineGrid and
GridSample compute coordinates and weights in float64 from the float32 inputs, rounding once, on
the store; both follow ``torch.nn.functional.affine_grid`` / ``grid_sample`` (bilinear, zero
padding) for both settings of ``align_corners``. Maxout's max, the grid's target points and the
bilinear sample are the shared formulas (archcost/kernels/formulas.py) as device functions.
"""

import numpy as np

from archcost.kernels import adapters, formulas
from archcost.kernels.adapters import axis_view
from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import coords3, coords4, device_function, launch, uploaded
from archcost.kernels.cuda.pointwise import channel_affine

_maxout_value = device_function(formulas.maxout_value)
_grid_target = device_function(formulas.grid_target)
_grid_sample_span = device_function(formulas.grid_sample_span)


@cuda.jit
def _channel_select(x, channels, out):
    """out[a, k, b] = x[a, channels[k], b] for x (A, C, B), out (A, K, B)."""
    i = cuda.grid(1)
    a_, k_, b_ = out.shape
    if i < a_ * k_ * b_:
        a, k, b = coords3(i, k_, b_)
        out[a, k, b] = x[a, channels[k], b]


@cuda.jit
def _maxout(x, out, pieces):
    """out[a, c, b] = max over j < pieces of x[a, c * pieces + j, b] for x (A, C * pieces, B)."""
    i = cuda.grid(1)
    a_, c_, b_ = out.shape
    if i < a_ * c_ * b_:
        a, c, b = coords3(i, c_, b_)
        out[a, c, b] = _maxout_value(x, a, c, b, pieces)


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


@cuda.jit
def _affine_grid(theta, out, align_corners):
    """theta (N, 6) = [[a, b, c], [d, e, f]] row-major; out (N, H, W, 2) = (x_s, y_s) with
    x_s = a*x_t + b*y_t + c, y_s = d*x_t + e*y_t + f; one thread per grid point (n, i, j)."""
    t = cuda.grid(1)
    n_, h_, w_, _ = out.shape
    if t < n_ * h_ * w_:
        n, i, j = coords3(t, h_, w_)
        x_t = _grid_target(j, w_, align_corners)
        y_t = _grid_target(i, h_, align_corners)
        out[n, i, j, 0] = float(theta[n, 0]) * x_t + float(theta[n, 1]) * y_t + float(theta[n, 2])
        out[n, i, j, 1] = float(theta[n, 3]) * x_t + float(theta[n, 4]) * y_t + float(theta[n, 5])


@cuda.jit
def _grid_sample(x, grid, out, align_corners):
    """Bilinear sample of x (N, C, H, W) at grid (N, Ho, Wo, 2) into out (N, C, Ho, Wo), one
    thread per output element; corners outside the input read as zero."""
    t = cuda.grid(1)
    n_, c_, ho_, wo_ = out.shape
    if t < n_ * c_ * ho_ * wo_:
        n, c, i, j = coords4(t, c_, ho_, wo_)
        _grid_sample_span(x, grid, out, n, i, j, j + 1, c, c + 1, align_corners)  # one output


class ChannelSelectKernel:
    prepare = staticmethod(uploaded(adapters.channel_select_state))

    @staticmethod
    def run(op, state, inputs, out):
        out3 = axis_view(out, 1)
        launch(_channel_select, out3.size, axis_view(inputs[0], 1), state, out3)


class AffineKernel:
    prepare = staticmethod(uploaded(adapters.affine_state))

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(inputs[0], *state, out, op.axis)


class RBFKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return cuda.to_device(np.ascontiguousarray(np.asarray(params["centres"], np.float32).T))

    @staticmethod
    def run(op, state, inputs, out):
        launch(_rbf, out.size, inputs[0], state, out)


class MaxoutKernel:
    prepare = staticmethod(adapters.maxout_state)

    @staticmethod
    def run(op, state, inputs, out):
        out3 = axis_view(out, 1)
        launch(_maxout, out3.size, axis_view(inputs[0], 1), out3, state)


class AffineGridKernel:
    prepare = staticmethod(adapters.align_corners_state)

    @staticmethod
    def run(op, state, inputs, out):
        n, h, w, _ = out.shape
        launch(_affine_grid, n * h * w, inputs[0], out, state)


class GridSampleKernel:
    prepare = staticmethod(adapters.align_corners_state)

    @staticmethod
    def run(op, state, inputs, out):
        launch(_grid_sample, out.size, inputs[0], inputs[1], out, state)
