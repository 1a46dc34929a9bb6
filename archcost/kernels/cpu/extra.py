"""Kernels of the ops the zoo added for published variants: ChannelSelect and RBF (LeNet-5 as
published), Maxout (FitNets), AffineGrid and GridSample (Spatial Transformer), and Resize (ONNX
Resize: nearest and bilinear, as HRNet and GhostNetV2 upsample). Affine (LeNet-5's trainable
subsampling coefficient and bias) reuses ``pointwise.channel_affine``. Resize reads index and
weight tables the host computed exactly (``adapters.resize_state``): nearest is a gather, linear
blends two columns then two rows in float64, rounding once on the store.

AffineGrid and GridSample follow ``torch.nn.functional.affine_grid`` / ``grid_sample``
(bilinear, zero padding) for both settings of ``align_corners``; coordinates are computed in
float64 from the float32 inputs and rounded once, on the store. Maxout's max, the grid's target
points and the bilinear sample are the shared formulas (archcost/kernels/formulas.py).

Training: the forward in training mode is the inference forward except Maxout's, which also
writes the winning piece (``extras["indices"]``, int32, first max wins as in the inference scan).
The backward kernels accumulate (``+=``) the input gradients and write (``=``) the parameter
gradients: the gather's scatter for ChannelSelect; dx = g * gamma, dgamma = sum g * x,
dbeta = sum g for Affine; dx_j = 2 sum_i g_i (x_j - c_ij) and dc_ij = -2 sum_n g_ni (x_nj - c_ij)
for RBF (the centres only when trainable); the winning piece for Maxout; dtheta = sum g * (x_t,
y_t, 1) for AffineGrid; and for GridSample the bilinear weights scattered back into x and the
derivative of the weights in (u, v) times du/dx_s, dv/dy_s into the grid (points whose corners all
lie outside the input, and NaN points, read zero in the forward and get no gradient); Resize
scatters each output gradient onto the inputs it read with their weights. Long sums
(over the batch, positions, channels) run in float64 locals.
"""

import math

import numpy as np
from numba import njit, prange

from archcost.errors import ArchcostError
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


@njit(parallel=True, cache=True)
def resize_nearest(x, rows, cols, out):
    """out[n, c, i, j] = x[n, c, rows[i], cols[j]]; one task per (n, c) plane."""
    n_, c_, ho_, wo_ = out.shape
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        for i in range(ho_):
            r = rows[i]
            for j in range(wo_):
                out[n, c, i, j] = x[n, c, r, cols[j]]


@njit(parallel=True, cache=True)
def resize_linear(x, row_lo, row_hi, row_frac, col_lo, col_hi, col_frac, out):
    """Bilinear: the row blend of two column blends, in float64, rounded once on the store; one
    task per (n, c) plane."""
    n_, c_, ho_, wo_ = out.shape
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        for i in range(ho_):
            r0 = row_lo[i]
            r1 = row_hi[i]
            fr = row_frac[i]
            for j in range(wo_):
                c0 = col_lo[j]
                c1 = col_hi[j]
                fc = col_frac[j]
                top = np.float64(x[n, c, r0, c0]) * (1.0 - fc) + np.float64(x[n, c, r0, c1]) * fc
                bottom = np.float64(x[n, c, r1, c0]) * (1.0 - fc) + np.float64(x[n, c, r1, c1]) * fc
                out[n, c, i, j] = top * (1.0 - fr) + bottom * fr


@njit(cache=True)
def grid_sample(x, grid, out, align_corners):
    """Bilinear sampling of x (N, C, H, W) at grid (N, Ho, Wo, 2) into out (N, C, Ho, Wo);
    corners outside the input read as zero."""
    _, c_, ho_, wo_ = out.shape
    for n in range(x.shape[0]):
        for i in range(ho_):
            _grid_sample_span(x, grid, out, n, i, 0, wo_, 0, c_, align_corners)  # a row, all channels


# --- training kernels ------------------------------------------------------------------------

@njit(parallel=True, cache=True)
def channel_select_grad(grad_out, channels, grad):
    """grad (A, C, B)[a, channels[k], b] += grad_out (A, K, B)[a, k, b]; the channels never
    repeat, so the (a, k) tasks write disjoint rows."""
    a_, k_, b_ = grad_out.shape
    for task in prange(a_ * k_):
        a = task // k_
        k = task % k_
        c = channels[k]
        for b in range(b_):
            grad[a, c, b] += grad_out[a, k, b]


@njit(parallel=True, cache=True)
def affine_data_grad(grad_out, gamma, grad):
    """grad (A, C, B) += grad_out * gamma[c]."""
    a_, c_, b_ = grad.shape
    for task in prange(a_ * c_):
        a = task // c_
        c = task % c_
        s = gamma[c]
        for b in range(b_):
            grad[a, c, b] += grad_out[a, c, b] * s


@njit(parallel=True, cache=True)
def affine_param_grad(grad_out, x, dgamma, dbeta, want_gamma, want_beta):
    """dgamma[c] = sum over (a, b) of grad_out * x, dbeta[c] = sum of grad_out (written, float64
    sums); one task per channel."""
    a_, c_, b_ = grad_out.shape
    for c in prange(c_):
        sg = 0.0
        sb = 0.0
        for a in range(a_):
            for b in range(b_):
                g = np.float64(grad_out[a, c, b])
                sb += g
                if want_gamma:
                    sg += g * np.float64(x[a, c, b])
        if want_gamma:
            dgamma[c] = sg
        if want_beta:
            dbeta[c] = sb


@njit(parallel=True, cache=True)
def rbf_data_grad(grad_out, x, centres, grad):
    """grad (N, F) += 2 sum_i grad_out[n, i] (x[n, j] - centres[i, j]); one task per sample."""
    n_, f_ = x.shape
    o_ = centres.shape[0]
    for n in prange(n_):
        for j in range(f_):
            xv = np.float64(x[n, j])
            total = 0.0
            for i in range(o_):
                total += np.float64(grad_out[n, i]) * (xv - np.float64(centres[i, j]))
            grad[n, j] += 2.0 * total


@njit(parallel=True, cache=True)
def rbf_centres_grad(grad_out, x, centres, dcentres):
    """dcentres (O, F) = -2 sum_n grad_out[n, i] (x[n, j] - centres[i, j]) (written); one task
    per unit."""
    n_, f_ = x.shape
    o_ = centres.shape[0]
    for i in prange(o_):
        for j in range(f_):
            cv = np.float64(centres[i, j])
            total = 0.0
            for n in range(n_):
                total += np.float64(grad_out[n, i]) * (np.float64(x[n, j]) - cv)
            dcentres[i, j] = -2.0 * total


@njit(parallel=True, cache=True)
def maxout_train(x, pieces, out, indices):
    """maxout, and indices[a, c, b] = the piece j that won (the first max, the scan of
    ``formulas.maxout_value``)."""
    a_, c_, b_ = out.shape
    for task in prange(a_ * c_):
        a = task // c_
        c = task % c_
        first = c * pieces
        for b in range(b_):
            top = x[a, first, b]
            best = 0
            for j in range(1, pieces):
                v = x[a, first + j, b]
                if v > top:
                    top = v
                    best = j
            out[a, c, b] = top
            indices[a, c, b] = best


@njit(parallel=True, cache=True)
def maxout_grad(grad_out, indices, pieces, grad):
    """grad (A, C * pieces, B)[a, c * pieces + indices[a, c, b], b] += grad_out[a, c, b]; the
    (a, c) tasks write disjoint groups of channels."""
    a_, c_, b_ = grad_out.shape
    for task in prange(a_ * c_):
        a = task // c_
        c = task % c_
        for b in range(b_):
            grad[a, c * pieces + indices[a, c, b], b] += grad_out[a, c, b]


@njit(parallel=True, cache=True)
def affine_grid_grad(grad_out, grad, align_corners):
    """grad (N, 6) += sum over the target points of grad_out[n, i, j, (x_s, y_s)] times
    (x_t, y_t, 1): theta's row 0 from the x_s gradients, row 1 from the y_s ones."""
    n_, h_, w_, _ = grad_out.shape
    for n in prange(n_):
        s0 = 0.0
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        s4 = 0.0
        s5 = 0.0
        for i in range(h_):
            y_t = _grid_target(i, h_, align_corners)
            for j in range(w_):
                x_t = _grid_target(j, w_, align_corners)
                gx = np.float64(grad_out[n, i, j, 0])
                gy = np.float64(grad_out[n, i, j, 1])
                s0 += gx * x_t
                s1 += gx * y_t
                s2 += gx
                s3 += gy * x_t
                s4 += gy * y_t
                s5 += gy
        grad[n, 0] += s0
        grad[n, 1] += s1
        grad[n, 2] += s2
        grad[n, 3] += s3
        grad[n, 4] += s4
        grad[n, 5] += s5


@njit(inline="always")
def _source_point(grid, n, i, j, h_, w_, align_corners):
    """(u, v, inside) of grid point (n, i, j): the unnormalised source coordinates as the forward
    (``formulas.grid_sample_span``) computes them, and whether any corner can be inside."""
    gx = float(grid[n, i, j, 0])
    gy = float(grid[n, i, j, 1])
    if align_corners:
        u = (gx + 1.0) * (w_ - 1) / 2.0
        v = (gy + 1.0) * (h_ - 1) / 2.0
    else:
        u = ((gx + 1.0) * w_ - 1.0) / 2.0
        v = ((gy + 1.0) * h_ - 1.0) / 2.0
    return u, v, (u > -1.0 and u < w_ and v > -1.0 and v < h_)


@njit(parallel=True, cache=True)
def grid_sample_data_grad(grad_out, grid, grad, align_corners):
    """grad (N, C, H, W) += each output gradient spread over its four corners with the bilinear
    weights (corners outside the input dropped). One task per (n, c) plane, summed in a float64
    plane first."""
    n_, c_, h_, w_ = grad.shape
    ho_, wo_ = grad_out.shape[2], grad_out.shape[3]
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        plane = np.zeros((h_, w_))
        for i in range(ho_):
            for j in range(wo_):
                u, v, inside = _source_point(grid, n, i, j, h_, w_, align_corners)
                if not inside:
                    continue
                fu = math.floor(u)
                fv = math.floor(v)
                p0 = int(fu)
                q0 = int(fv)
                du = u - fu
                dv = v - fv
                g = np.float64(grad_out[n, c, i, j])
                if q0 >= 0:
                    if p0 >= 0:
                        plane[q0, p0] += (1.0 - dv) * (1.0 - du) * g
                    if p0 + 1 < w_:
                        plane[q0, p0 + 1] += (1.0 - dv) * du * g
                if q0 + 1 < h_:
                    if p0 >= 0:
                        plane[q0 + 1, p0] += dv * (1.0 - du) * g
                    if p0 + 1 < w_:
                        plane[q0 + 1, p0 + 1] += dv * du * g
        for q in range(h_):
            for p in range(w_):
                grad[n, c, q, p] += plane[q, p]


@njit(parallel=True, cache=True)
def grid_sample_grid_grad(x, grad_out, grid, grad, align_corners):
    """grad (N, Ho, Wo, 2) += d out / d (x_s, y_s) . grad_out summed over the channels: the
    bilinear sample's slopes in u and v (differences of the corners, outside ones zero) times
    du/dx_s and dv/dy_s. One task per (n, output row)."""
    n_, c_, h_, w_ = x.shape
    ho_, wo_ = grad_out.shape[2], grad_out.shape[3]
    if align_corners:
        su = (w_ - 1) / 2.0
        sv = (h_ - 1) / 2.0
    else:
        su = w_ / 2.0
        sv = h_ / 2.0
    for task in prange(n_ * ho_):
        n = task // ho_
        i = task % ho_
        for j in range(wo_):
            u, v, inside = _source_point(grid, n, i, j, h_, w_, align_corners)
            if not inside:
                continue
            fu = math.floor(u)
            fv = math.floor(v)
            p0 = int(fu)
            q0 = int(fv)
            du = u - fu
            dv = v - fv
            top = q0 >= 0
            bottom = q0 + 1 < h_
            left = p0 >= 0
            right = p0 + 1 < w_
            gu = 0.0
            gv = 0.0
            for c in range(c_):
                x00 = np.float64(x[n, c, q0, p0]) if top and left else 0.0
                x01 = np.float64(x[n, c, q0, p0 + 1]) if top and right else 0.0
                x10 = np.float64(x[n, c, q0 + 1, p0]) if bottom and left else 0.0
                x11 = np.float64(x[n, c, q0 + 1, p0 + 1]) if bottom and right else 0.0
                g = np.float64(grad_out[n, c, i, j])
                gu += g * ((1.0 - dv) * (x01 - x00) + dv * (x11 - x10))
                gv += g * ((1.0 - du) * (x10 - x00) + du * (x11 - x01))
            grad[n, i, j, 0] += gu * su
            grad[n, i, j, 1] += gv * sv


@njit(parallel=True, cache=True)
def resize_grad(grad_out, row_lo, row_hi, row_frac, col_lo, col_hi, col_frac, grad):
    """grad (N, C, H, W) += each output gradient spread over the (up to) four inputs it read, with
    the bilinear weights (nearest: lo == hi, frac 0, so all of it lands on the one input). One
    task per (n, c) plane, summed in a float64 plane first."""
    n_, c_, h_, w_ = grad.shape
    ho_, wo_ = grad_out.shape[2], grad_out.shape[3]
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        plane = np.zeros((h_, w_))
        for i in range(ho_):
            r0 = row_lo[i]
            r1 = row_hi[i]
            fr = row_frac[i]
            for j in range(wo_):
                c0 = col_lo[j]
                c1 = col_hi[j]
                fc = col_frac[j]
                g = np.float64(grad_out[n, c, i, j])
                plane[r0, c0] += (1.0 - fr) * (1.0 - fc) * g
                plane[r0, c1] += (1.0 - fr) * fc * g
                plane[r1, c0] += fr * (1.0 - fc) * g
                plane[r1, c1] += fr * fc * g
        for q in range(h_):
            for p in range(w_):
                grad[n, c, q, p] += plane[q, p]


def _kept(array, what: str):
    if array is None:
        raise ArchcostError(f"{what} backward: a tensor it keeps was not given")
    return array


class ChannelSelectKernel:
    prepare = staticmethod(adapters.channel_select_state)

    @staticmethod
    def run(op, state, inputs, out):
        channel_select(axis_view(inputs[0], 1), state, axis_view(out, 1))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(ChannelSelectKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        if grad_inputs[0] is not None:
            channel_select_grad(axis_view(grad_out, 1), np.asarray(op.channels, np.int64),
                                axis_view(grad_inputs[0], 1))


class AffineKernel:
    prepare = staticmethod(adapters.affine_state)

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(axis_view(inputs[0], op.axis), *state, axis_view(out, op.axis))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(AffineKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        g = axis_view(grad_out, op.axis)
        if grad_inputs[0] is not None:
            gamma = np.ascontiguousarray(params["gamma"], np.float32)
            affine_data_grad(g, gamma, axis_view(grad_inputs[0], op.axis))
        want_gamma, want_beta = "gamma" in param_grads, "beta" in param_grads
        if want_gamma or want_beta:
            x = axis_view(_kept(inputs[0], "affine"), op.axis) if want_gamma else g
            spare = np.empty(g.shape[1], np.float32)
            affine_param_grad(g, x, param_grads["gamma"] if want_gamma else spare,
                              param_grads["beta"] if want_beta else spare, want_gamma, want_beta)


class RBFKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return params["centres"]

    @staticmethod
    def run(op, state, inputs, out):
        rbf(inputs[0], state, out)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(RBFKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """The input's gradient whenever wanted; the centres' only when they are trained
        (``trainable``; fixed centres are a buffer) and not frozen (named in param_grads)."""
        want_centres = op.trainable and "centres" in param_grads
        if grad_inputs[0] is None and not want_centres:
            return
        x = _kept(inputs[0], "rbf")
        centres = np.ascontiguousarray(params["centres"], np.float32)
        if grad_inputs[0] is not None:
            rbf_data_grad(grad_out, x, centres, grad_inputs[0])
        if want_centres:
            rbf_centres_grad(grad_out, x, centres, param_grads["centres"])


class MaxoutKernel:
    prepare = staticmethod(adapters.maxout_state)

    @staticmethod
    def run(op, state, inputs, out):
        maxout(axis_view(inputs[0], 1), state, axis_view(out, 1))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The inference maxout, and extras["indices"] (int32, output shape): the winning piece."""
        maxout_train(axis_view(inputs[0], 1), op.pieces, axis_view(out, 1), axis_view(extras["indices"], 1))

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        if grad_inputs[0] is not None:
            maxout_grad(axis_view(grad_out, 1), axis_view(extras["indices"], 1), op.pieces,
                        axis_view(grad_inputs[0], 1))


class AffineGridKernel:
    prepare = staticmethod(adapters.align_corners_state)

    @staticmethod
    def run(op, state, inputs, out):
        affine_grid(inputs[0], out, state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(AffineGridKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        if grad_inputs[0] is not None:
            affine_grid_grad(grad_out, grad_inputs[0], bool(op.align_corners))


class GridSampleKernel:
    prepare = staticmethod(adapters.align_corners_state)

    @staticmethod
    def run(op, state, inputs, out):
        grid_sample(inputs[0], inputs[1], out, state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(GridSampleKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """d x needs the grid; d grid needs x and the grid (both inputs are kept)."""
        align = bool(op.align_corners)
        grad_x, grad_grid = grad_inputs
        if grad_x is None and grad_grid is None:
            return
        grid = _kept(inputs[1], "grid sample")
        if grad_x is not None:
            grid_sample_data_grad(grad_out, grid, grad_x, align)
        if grad_grid is not None:
            grid_sample_grid_grad(_kept(inputs[0], "grid sample"), grad_out, grid, grad_grid, align)


class ResizeKernel:
    prepare = staticmethod(adapters.resize_state)

    @staticmethod
    def run(op, state, inputs, out):
        linear, row_lo, row_hi, row_frac, col_lo, col_hi, col_frac = state
        if linear:
            resize_linear(inputs[0], row_lo, row_hi, row_frac, col_lo, col_hi, col_frac, out)
        else:
            resize_nearest(inputs[0], row_lo, col_lo, out)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(ResizeKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """Keeps nothing: the index tables come again from the op and the gradients' shapes."""
        grad = grad_inputs[0]
        if grad is None:
            return
        tables = adapters.resize_state(op, (grad.shape,), grad_out.shape, params)[1:]  # less the mode flag
        resize_grad(grad_out, *tables, grad)
