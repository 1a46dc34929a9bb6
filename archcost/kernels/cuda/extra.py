"""Kernels of the zoo's variant ops on device arrays: ChannelSelect and RBF (LeNet-5 as
published), Maxout (FitNets), AffineGrid and GridSample (Spatial Transformer), and Resize (ONNX
Resize, nearest and bilinear, through the host's exact index and weight tables,
``adapters.resize_state``). Affine (LeNet-5's trainable coefficient and bias per channel) reuses
``pointwise.channel_affine``.

Each is one thread per output element (one per grid point for AffineGrid, which writes both
coordinates of its point), index arithmetic behind a bounds guard, blocks of ``config.THREADS``.
As on the cpu (archcost/kernels/cpu/extra.py): RBF accumulates in float64, and AffineGrid and
GridSample compute coordinates and weights in float64 from the float32 inputs, rounding once, on
the store; both follow ``torch.nn.functional.affine_grid`` / ``grid_sample`` (bilinear, zero
padding) for both settings of ``align_corners``. Maxout's max, the grid's target points and the
bilinear sample are the shared formulas (archcost/kernels/formulas.py) as device functions.

Training: the forward in training mode is the inference forward except Maxout's, which also
writes the winning piece (``extras["indices"]``, int32, the first max as in the inference scan).
The backward kernels accumulate (``+=``) the input gradients and write (``=``) the parameter
gradients, one thread per element of each, its only writer (float64 sums): ChannelSelect gathers
through the inverse of its channel list (channels never repeat); Affine is dx = g * gamma and
per channel dgamma = sum g * x, dbeta = sum g (``pointwise.channel_grad_sums``); RBF dx_nj =
2 sum_i g_ni (x_nj - c_ij) and, for trainable centres, dc_ij = -2 sum_n g_ni (x_nj - c_ij); Maxout
passes each output gradient to the piece that won; AffineGrid's theta entry (n, r) sums g times
(x_t, y_t, 1) over the target points. GridSample's grid gradient has one thread per grid point
(the bilinear weights' slopes in u and v, times du/dx_s and dv/dy_s, summed over the channels);
its data gradient is the one scatter: one thread per input plane (n, c), the only writer of that
plane, spreads each output gradient over its four corners with the bilinear weights (a sampling
grid has no inverse to gather through). Points whose corners all lie outside the input, and NaN
points, read zero in the forward and get no gradient. Resize's data gradient gathers instead: its
maps rise monotonically, so the outputs that read one input are a run per axis (found on the host),
and one thread per input element sums them.
"""

import math

import numpy as np

from archcost.kernels import adapters, formulas
from archcost.kernels.adapters import axis_view
from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import (contiguous, coords3, coords4, device_function, dummy, input_grad, kept,
                                          launch, param_to_device, uploaded)
from archcost.kernels.cuda.pointwise import channel_affine, channel_grad_sums, channel_scale_accumulate

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


@cuda.jit
def _resize(x, linear, row_lo, row_hi, row_frac, col_lo, col_hi, col_frac, out):
    """Resize of x (N, C, H, W) into out (N, C, Ho, Wo) through the host's exact tables, one
    thread per output element: nearest reads x[lo_row, lo_col]; linear blends two columns then
    two rows in float64."""
    t = cuda.grid(1)
    n_, c_, ho_, wo_ = out.shape
    if t < n_ * c_ * ho_ * wo_:
        n, c, i, j = coords4(t, c_, ho_, wo_)
        r0 = row_lo[i]
        c0 = col_lo[j]
        if not linear:
            out[n, c, i, j] = x[n, c, r0, c0]
            return
        r1 = row_hi[i]
        c1 = col_hi[j]
        fr = row_frac[i]
        fc = col_frac[j]
        top = float(x[n, c, r0, c0]) * (1.0 - fc) + float(x[n, c, r0, c1]) * fc
        bottom = float(x[n, c, r1, c0]) * (1.0 - fc) + float(x[n, c, r1, c1]) * fc
        out[n, c, i, j] = top * (1.0 - fr) + bottom * fr


# --- training kernels ----------------------------------------------------------------------


@cuda.jit
def _channel_select_grad(gy, inverse, grad):
    """grad (A, C, B)[a, c, b] += gy (A, K, B)[a, inverse[c], b] for the selected channels
    (inverse[c]: the k that selected c, or -1)."""
    i = cuda.grid(1)
    a_, c_, b_ = grad.shape
    if i < a_ * c_ * b_:
        a, c, b = coords3(i, c_, b_)
        k = inverse[c]
        if k >= 0:
            grad[a, c, b] += gy[a, k, b]


@cuda.jit
def _rbf_data_grad(gy, x, centres, grad):
    """grad (N, F) += 2 sum_i gy[n, i] (x[n, j] - centres[i, j]); one thread per (n, j)."""
    t = cuda.grid(1)
    n_, f_ = x.shape
    if t < n_ * f_:
        n = t // f_
        j = t - n * f_
        xv = float(x[n, j])
        total = 0.0
        for i in range(centres.shape[0]):
            total += float(gy[n, i]) * (xv - float(centres[i, j]))
        grad[n, j] += 2.0 * total


@cuda.jit
def _rbf_centres_grad(gy, x, centres, dcentres):
    """dcentres (O, F) = -2 sum_n gy[n, i] (x[n, j] - centres[i, j]); one thread per (i, j)."""
    t = cuda.grid(1)
    o_, f_ = dcentres.shape
    if t < o_ * f_:
        i = t // f_
        j = t - i * f_
        cv = float(centres[i, j])
        total = 0.0
        for n in range(x.shape[0]):
            total += float(gy[n, i]) * (float(x[n, j]) - cv)
        dcentres[i, j] = -2.0 * total


@cuda.jit
def _maxout_train(x, out, indices, pieces):
    """``_maxout``, and indices[a, c, b] = the piece j that won (the first max, the scan of
    ``formulas.maxout_value``)."""
    i = cuda.grid(1)
    a_, c_, b_ = out.shape
    if i < a_ * c_ * b_:
        a, c, b = coords3(i, c_, b_)
        first = c * pieces
        top = x[a, first, b]
        best = 0
        for j in range(1, pieces):
            v = x[a, first + j, b]
            if v > top:
                top = v
                best = j
        out[a, c, b] = top
        indices[a, c, b] = best


@cuda.jit
def _maxout_grad(gy, indices, pieces, grad):
    """grad (A, C * pieces, B)[a, ch, b] += gy[a, c, b] where piece ch - c * pieces of c = ch // pieces won."""
    i = cuda.grid(1)
    a_, ch_, b_ = grad.shape
    if i < a_ * ch_ * b_:
        a, ch, b = coords3(i, ch_, b_)
        c = ch // pieces
        if indices[a, c, b] == ch - c * pieces:
            grad[a, ch, b] += gy[a, c, b]


@cuda.jit
def _affine_grid_grad(gy, grad, align_corners):
    """grad (N, 6) += dtheta: entry (n, r) of theta row r // 3 (the x_s or y_s gradients) and
    column r % 3 (x_t, y_t or 1) sums gy[n, i, j, r // 3] times that coordinate over the target
    points; one thread per entry."""
    t = cuda.grid(1)
    if t < grad.shape[0] * 6:
        n = t // 6
        r = t - n * 6
        row = r // 3
        col = r - row * 3
        h_, w_ = gy.shape[1], gy.shape[2]
        total = 0.0
        for i in range(h_):
            y_t = _grid_target(i, h_, align_corners)
            for j in range(w_):
                if col == 0:
                    base = _grid_target(j, w_, align_corners)
                elif col == 1:
                    base = y_t
                else:
                    base = 1.0
                total += float(gy[n, i, j, row]) * base
        grad[n, r] += total


@device_function
def _source_point(grid, n, i, j, h_, w_, align_corners):
    """(u, v, inside) of grid point (n, i, j): the unnormalised source coordinates as the forward
    (``formulas.grid_sample_span``) computes them, and whether any corner can be inside (False for
    a NaN point)."""
    gx = float(grid[n, i, j, 0])
    gy = float(grid[n, i, j, 1])
    if align_corners:
        u = (gx + 1.0) * (w_ - 1) / 2.0
        v = (gy + 1.0) * (h_ - 1) / 2.0
    else:
        u = ((gx + 1.0) * w_ - 1.0) / 2.0
        v = ((gy + 1.0) * h_ - 1.0) / 2.0
    return u, v, (u > -1.0 and u < w_ and v > -1.0 and v < h_)


@cuda.jit
def _grid_sample_data_grad(gy, grid, grad, align_corners):
    """grad (N, C, H, W) += each output gradient spread over its four corners with the bilinear
    weights (corners outside the input dropped); one thread per input plane (n, c), the only
    writer of it."""
    t = cuda.grid(1)
    n_, c_, h_, w_ = grad.shape
    if t < n_ * c_:
        n = t // c_
        c = t - n * c_
        for i in range(gy.shape[2]):
            for j in range(gy.shape[3]):
                u, v, inside = _source_point(grid, n, i, j, h_, w_, align_corners)
                if not inside:
                    continue
                fu = math.floor(u)
                fv = math.floor(v)
                p0 = int(fu)
                q0 = int(fv)
                du = u - fu
                dv = v - fv
                g = float(gy[n, c, i, j])
                if q0 >= 0:
                    if p0 >= 0:
                        grad[n, c, q0, p0] += (1.0 - dv) * (1.0 - du) * g
                    if p0 + 1 < w_:
                        grad[n, c, q0, p0 + 1] += (1.0 - dv) * du * g
                if q0 + 1 < h_:
                    if p0 >= 0:
                        grad[n, c, q0 + 1, p0] += dv * (1.0 - du) * g
                    if p0 + 1 < w_:
                        grad[n, c, q0 + 1, p0 + 1] += dv * du * g


@cuda.jit
def _grid_sample_grid_grad(x, gy, grid, grad, align_corners):
    """grad (N, Ho, Wo, 2) += d out / d (x_s, y_s) . gy summed over the channels: the bilinear
    sample's slopes in u and v (differences of the corners, outside ones zero) times du/dx_s and
    dv/dy_s; one thread per grid point (n, i, j), writing both of its coordinates."""
    t = cuda.grid(1)
    n_, c_, h_, w_ = x.shape
    ho_, wo_ = gy.shape[2], gy.shape[3]
    if t < n_ * ho_ * wo_:
        n, i, j = coords3(t, ho_, wo_)
        u, v, inside = _source_point(grid, n, i, j, h_, w_, align_corners)
        if inside:
            if align_corners:
                su = (w_ - 1) / 2.0
                sv = (h_ - 1) / 2.0
            else:
                su = w_ / 2.0
                sv = h_ / 2.0
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
                x00 = float(x[n, c, q0, p0]) if top and left else 0.0
                x01 = float(x[n, c, q0, p0 + 1]) if top and right else 0.0
                x10 = float(x[n, c, q0 + 1, p0]) if bottom and left else 0.0
                x11 = float(x[n, c, q0 + 1, p0 + 1]) if bottom and right else 0.0
                g = float(gy[n, c, i, j])
                gu += g * ((1.0 - dv) * (x01 - x00) + dv * (x11 - x10))
                gv += g * ((1.0 - du) * (x10 - x00) + du * (x11 - x01))
            grad[n, i, j, 0] += gu * su
            grad[n, i, j, 1] += gv * sv


@cuda.jit
def _resize_grad(gy, sides, row_ranges, row_frac, col_ranges, col_frac, grad):
    """grad (N, C, H, W) += the output gradients of the outputs that read each input, times their
    weights; one thread per input element, its only writer (float64 sum). ``row_ranges`` (H, 4):
    per input row q, the output rows whose lo is q ([0], [1]) and whose hi is q ([2], [3]); a
    lo read weighs 1 - frac, a hi read frac; ``sides`` is 1 for nearest (lo only, weight 1)
    and 2 for linear. Columns likewise."""
    t = cuda.grid(1)
    n_, c_, h_, w_ = grad.shape
    if t < n_ * c_ * h_ * w_:
        n, c, q, p = coords4(t, c_, h_, w_)
        total = 0.0
        for side_r in range(sides):
            for i in range(row_ranges[q, 2 * side_r], row_ranges[q, 2 * side_r + 1]):
                wr = row_frac[i] if side_r else 1.0 - row_frac[i]
                for side_c in range(sides):
                    for j in range(col_ranges[p, 2 * side_c], col_ranges[p, 2 * side_c + 1]):
                        wc = col_frac[j] if side_c else 1.0 - col_frac[j]
                        total += wr * wc * float(gy[n, c, i, j])
        grad[n, c, q, p] += total


def _resize_ranges(lo, hi, in_size: int) -> np.ndarray:
    """(in_size, 4) int64: per input index, [start, end) of the outputs whose lo is it, then of
    those whose hi is it. lo and hi never decrease along the output (the coordinate map rises),
    so each set is one run, found by binary search."""
    index = np.arange(in_size)
    return np.stack([np.searchsorted(lo, index, "left"), np.searchsorted(lo, index, "right"),
                     np.searchsorted(hi, index, "left"), np.searchsorted(hi, index, "right")], axis=1).astype(np.int64)


class ChannelSelectKernel:
    prepare = staticmethod(uploaded(adapters.channel_select_state))

    @staticmethod
    def run(op, state, inputs, out):
        out3 = axis_view(out, 1)
        launch(_channel_select, out3.size, axis_view(inputs[0], 1), state, out3)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(ChannelSelectKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        grad = input_grad(grad_inputs)
        if grad is None:
            return
        grad3 = axis_view(grad, 1)
        inverse = np.full(grad3.shape[1], -1, np.int64)
        inverse[list(op.channels)] = np.arange(len(op.channels))
        launch(_channel_select_grad, grad3.size, axis_view(grad_out, 1), cuda.to_device(inverse), grad3)


class AffineKernel:
    prepare = staticmethod(uploaded(adapters.affine_state))

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(inputs[0], *state, out, op.axis)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(AffineKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_inputs[0] += g * gamma; param_grads "gamma" = sum g * x (the kept input), "beta" =
        sum g, per channel of ``op.axis`` (where named)."""
        param_grads = param_grads or {}
        grad = input_grad(grad_inputs)
        if grad is not None:
            channel_scale_accumulate(grad_out, param_to_device(params["gamma"]), grad, op.axis)
        want_gamma, want_beta = "gamma" in param_grads, "beta" in param_grads
        if want_gamma or want_beta:
            g = axis_view(grad_out, op.axis)
            x = axis_view(kept(inputs[0] if inputs else None, op, "input"), op.axis) if want_gamma else g
            none = dummy(ndim=2)
            channel_grad_sums(x, g, none, none, False, param_grads.get("gamma"), param_grads.get("beta"))


class RBFKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return cuda.to_device(np.ascontiguousarray(np.asarray(params["centres"], np.float32).T))

    @staticmethod
    def run(op, state, inputs, out):
        launch(_rbf, out.size, inputs[0], state, out)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(RBFKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """The input's gradient whenever wanted; the centres' only when they are trained
        (``trainable``; fixed centres are a buffer) and not frozen (named in param_grads)."""
        param_grads = param_grads or {}
        grad = input_grad(grad_inputs)
        want_centres = op.trainable and "centres" in param_grads
        if grad is None and not want_centres:
            return
        x = kept(inputs[0] if inputs else None, op, "input")
        centres = param_to_device(params["centres"])
        if grad is not None:
            launch(_rbf_data_grad, grad.size, grad_out, x, centres, grad)
        if want_centres:
            dcentres = param_grads["centres"]
            launch(_rbf_centres_grad, dcentres.size, grad_out, x, centres, dcentres)


class MaxoutKernel:
    prepare = staticmethod(adapters.maxout_state)

    @staticmethod
    def run(op, state, inputs, out):
        out3 = axis_view(out, 1)
        launch(_maxout, out3.size, axis_view(inputs[0], 1), out3, state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        """The inference maxout, and extras["indices"] (int32, output shape): the winning piece."""
        out3 = axis_view(out, 1)
        launch(_maxout_train, out3.size, axis_view(inputs[0], 1), out3,
               axis_view(contiguous(extras["indices"], "Maxout indices"), 1), op.pieces)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        grad = input_grad(grad_inputs)
        if grad is not None:
            grad3 = axis_view(grad, 1)
            launch(_maxout_grad, grad3.size, axis_view(grad_out, 1), axis_view(extras["indices"], 1), op.pieces,
                   grad3)


class AffineGridKernel:
    prepare = staticmethod(adapters.align_corners_state)

    @staticmethod
    def run(op, state, inputs, out):
        n, h, w, _ = out.shape
        launch(_affine_grid, n * h * w, inputs[0], out, state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(AffineGridKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        grad = input_grad(grad_inputs)
        if grad is not None:
            launch(_affine_grid_grad, grad.size, grad_out, grad, bool(op.align_corners))


class GridSampleKernel:
    prepare = staticmethod(adapters.align_corners_state)

    @staticmethod
    def run(op, state, inputs, out):
        launch(_grid_sample, out.size, inputs[0], inputs[1], out, state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(GridSampleKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """d x needs the grid; d grid needs x and the grid (both inputs are kept)."""
        align = bool(op.align_corners)
        grad_x, grad_grid = input_grad(grad_inputs, 0), input_grad(grad_inputs, 1)
        if grad_x is None and grad_grid is None:
            return
        grid = kept(inputs[1] if inputs else None, op, "grid (input 1)")
        if grad_x is not None:
            launch(_grid_sample_data_grad, grad_x.shape[0] * grad_x.shape[1], grad_out, grid, grad_x, align)
        if grad_grid is not None:
            x = kept(inputs[0], op, "input 0")
            launch(_grid_sample_grid_grad, grad_grid.shape[0] * grad_grid.shape[1] * grad_grid.shape[2],
                   x, grad_out, grid, grad_grid, align)


class ResizeKernel:
    prepare = staticmethod(uploaded(adapters.resize_state))

    @staticmethod
    def run(op, state, inputs, out):
        launch(_resize, out.size, inputs[0], *state, out)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(ResizeKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """Keeps nothing: the tables come again from the op and the gradients' shapes."""
        grad = input_grad(grad_inputs)
        if grad is None:
            return
        n, c, h, w = grad.shape
        ho, wo = grad_out.shape[2], grad_out.shape[3]
        row_lo, row_hi, row_frac = adapters.resize_axis(op, 0, h, ho)
        col_lo, col_hi, col_frac = adapters.resize_axis(op, 1, w, wo)
        launch(_resize_grad, grad.size, grad_out, 2 if op.mode == "linear" else 1,
               cuda.to_device(_resize_ranges(row_lo, row_hi, h)), cuda.to_device(row_frac),
               cuda.to_device(_resize_ranges(col_lo, col_hi, w)), cuda.to_device(col_frac), grad)
