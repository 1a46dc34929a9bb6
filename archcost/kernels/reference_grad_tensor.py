"""Float64 numpy references of the backward of the data-movement, multi-input and zoo-variant
ops: Flatten, Reshape, Concat, Add, Sub, Mean, ReduceSum, Mul, ChannelPad, Pad, Permute
(archcost/kernels/cpu/tensor.py) and ChannelSelect, Affine, RBF, Maxout, AffineGrid, GridSample,
Resize (archcost/kernels/cpu/extra.py).

Written independently of the kernels, which loop, index and scatter: here the views reshape
back; concat splits at the cumulative sizes; the axis sum repeats dy along the axis; add, sub (dy,
-dy) and mul "unbroadcast" with a keepdims sum over the
axes an input was stretched along; the channel pad builds its input gradient as the adjoint of a
0/1 selection (a zero array whose strided slice takes the kept channels); the spatial pad
multiplies by the transposes of its per-axis 0/1 matrices (numpy.pad of the identity's rows);
permute transposes by the argsort; the channel select scatters with ``np.add.at``; affine reduces with ``sum``; RBF uses
the expanded form ``sum_i g_i (x - c_i) = x sum_i g_i - g @ c`` (matrix products); maxout builds a
one-hot mask of ``argmax`` over a (groups, pieces) reshape; the affine grid contracts the
homogeneous base grid with einsum; grid sampling differentiates the tent weights
``max(0, 1 - |u - p|)`` (slope ``-sign(u - p)`` inside the tent) over the zero-ringed copy of the
forward reference, scattering into the ring with ``np.add.at``; a resize multiplies by the
transposes of the forward reference's interpolation matrices.

``backward(op, params, inputs, out, grad_out, want_inputs, want_params)``: float64 ``inputs``
(all of them, kept or not), ``out`` (unused: no op here needs its output), ``grad_out``;
``want_inputs`` one bool per input, ``want_params`` the names of the params to differentiate.
Returns (a list with one float64 gradient per input, None where not wanted; a dict name ->
float64 gradient). RBF's centres get a gradient only when the op is ``trainable``.
"""

from __future__ import annotations

import numpy as np

from archcost import ops
from archcost.errors import ArchcostError
from archcost.kernels.reference import _targets, resize_matrix


def _f64(a):
    return np.asarray(a, np.float64)


def _channel_shape(ndim, axis):
    shape = [1] * ndim
    shape[axis % ndim] = -1
    return shape


def view(op, inputs, g):
    return [g.reshape(inputs[0].shape)], {}


def concat(op, inputs, g):
    axis = op.axis % g.ndim
    cuts = np.cumsum([x.shape[axis] for x in inputs])[:-1]
    return list(np.split(g, cuts, axis=axis)), {}


def add(op, inputs, g):
    return [_unbroadcast(g, x.shape).copy() for x in inputs], {}


def sub(op, inputs, g):
    a, b = inputs
    return [_unbroadcast(g, a.shape).copy(), -_unbroadcast(g, b.shape)], {}


def mean(op, inputs, g):
    return [g / len(inputs) for _ in inputs], {}


def reduce_sum(op, inputs, g):
    # The sum's adjoint: dy repeated along the summed axis (np.repeat of dy with the axis kept).
    x = inputs[0]
    axis = op.axis % x.ndim
    return [np.repeat(g.reshape(x.shape[:axis] + (1,) + x.shape[axis + 1:]), x.shape[axis], axis=axis)], {}


def _unbroadcast(grad, shape):
    """Sum ``grad`` (the output's shape) down to ``shape`` (same rank, 1 where broadcast)."""
    axes = tuple(k for k, (s, o) in enumerate(zip(shape, grad.shape)) if s == 1 and o != 1)
    return grad.sum(axis=axes, keepdims=True) if axes else grad


def mul(op, inputs, g):
    a, b = inputs
    return [_unbroadcast(g * b, a.shape), _unbroadcast(g * a, b.shape)], {}


def channel_pad(op, inputs, g):
    x = inputs[0]
    n, c, h, w = x.shape
    # The forward is out = S x for the 0/1 selection S (keep channel k < c at (oh*s, ow*s)):
    # its adjoint puts the kept output gradients back on the positions S picked.
    grad = np.zeros_like(x)
    grad[:, :, ::op.stride, ::op.stride] = g[:, :c]
    return [grad], {}


def permute(op, inputs, g):
    return [np.transpose(g, np.argsort(op.dims))], {}


def channel_select(op, inputs, g):
    grad = np.zeros_like(inputs[0])
    np.add.at(grad, (slice(None), list(op.channels)), g)
    return [grad], {}


def affine(op, inputs, g, p):
    x = inputs[0]
    axis = op.axis % x.ndim
    others = tuple(k for k in range(x.ndim) if k != axis)
    gamma = _f64(p["gamma"]).reshape(_channel_shape(x.ndim, axis))
    grads = {"gamma": (g * x).sum(axis=others), "beta": g.sum(axis=others)}
    return [g * gamma], grads


def rbf(op, inputs, g, p):
    x = inputs[0]  # (N, F)
    c = _f64(p["centres"])  # (O, F)
    # y_ni = |x_n|^2 - 2 x_n . c_i + |c_i|^2  =>  dy/dx_n = 2 (x_n - c_i), dy/dc_i = 2 (c_i - x_n)
    dx = 2.0 * (g.sum(axis=1)[:, None] * x - g @ c)
    dc = 2.0 * (g.sum(axis=0)[:, None] * c - g.T @ x)
    return [dx], ({"centres": dc} if op.trainable else {})


def maxout(op, inputs, g):
    x = inputs[0]
    n, c = x.shape[:2]
    groups = x.reshape(n, c // op.pieces, op.pieces, *x.shape[2:])
    winner = np.argmax(groups, axis=2)  # the first max on ties
    onehot = np.arange(op.pieces).reshape(1, 1, -1, *([1] * (x.ndim - 2))) == winner[:, :, None]
    return [(onehot * g[:, :, None]).reshape(x.shape)], {}


def affine_grid(op, inputs, g):
    ys, xs = np.meshgrid(_targets(op.out_h, op.align_corners), _targets(op.out_w, op.align_corners), indexing="ij")
    base = np.stack([xs, ys, np.ones_like(xs)], axis=-1)  # (H, W, 3)
    # out[n, h, w, r] = sum_k theta[n, r, k] base[h, w, k]  =>  dtheta[n, r, k] = sum_hw g base
    return [np.einsum("nhwr,hwk->nrk", g, base).reshape(-1, 6)], {}


def grid_sample(op, inputs, g):
    x, grid = inputs
    n, c, h, w = x.shape
    gx, gy = grid[..., 0], grid[..., 1]
    if op.align_corners:
        u, v = (gx + 1.0) / 2.0 * (w - 1), (gy + 1.0) / 2.0 * (h - 1)
        du_dgx, dv_dgy = (w - 1) / 2.0, (h - 1) / 2.0
    else:
        u, v = ((gx + 1.0) * w - 1.0) / 2.0, ((gy + 1.0) * h - 1.0) / 2.0
        du_dgx, dv_dgy = w / 2.0, h / 2.0
    u, v = np.clip(u, -2.0, w + 1.0), np.clip(v, -2.0, h + 1.0)  # beyond, only zeros are read
    ring = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    ring_grad = np.zeros_like(ring)
    batch = np.arange(n)[:, None, None]
    go = g.transpose(0, 2, 3, 1)  # (N, Ho, Wo, C)
    du = np.zeros(grid.shape[:3])
    dv = np.zeros(grid.shape[:3])
    for q in (np.floor(v), np.floor(v) + 1):
        tq = np.maximum(0.0, 1.0 - np.abs(v - q))
        sq = np.where(np.abs(v - q) < 1.0, -np.sign(v - q), 0.0)  # d tq / dv
        rows = np.clip(q, -1, h).astype(np.int64) + 1
        for p in (np.floor(u), np.floor(u) + 1):
            tp = np.maximum(0.0, 1.0 - np.abs(u - p))
            sp = np.where(np.abs(u - p) < 1.0, -np.sign(u - p), 0.0)
            cols = np.clip(p, -1, w).astype(np.int64) + 1
            values = ring[batch, :, rows, cols]  # (N, Ho, Wo, C)
            dot = (values * go).sum(axis=-1)
            du += dot * tq * sp
            dv += dot * sq * tp
            # x's gradient: the output gradient times the tent weight, added at (rows, cols).
            idx = np.broadcast_to(batch, rows.shape)
            np.add.at(ring_grad.transpose(0, 2, 3, 1), (idx, rows, cols), go * (tq * tp)[..., None])
    dgrid = np.stack([du * du_dgx, dv * dv_dgy], axis=-1)
    return [ring_grad[:, :, 1:-1, 1:-1].copy(), dgrid], {}


def pad_matrix(op, size: int, before: int, after: int):
    """The (out, in) 0/1 matrix of a Pad along one axis: the forward reference (numpy.pad, its
    mode) applied to the rows of the identity, so row o is one-hot at the input index output o
    copies (all zero on constant padding)."""
    eye = np.eye(size)[max(0, -before):size - max(0, -after)]
    width = ((max(0, before), max(0, after)), (0, 0))
    return np.pad(eye, width, mode="constant") if op.mode == "constant" else np.pad(eye, width, mode=op.mode)


def pad(op, inputs, g):
    # out = M_h x M_w^T per plane, so dx = M_h^T g M_w: an input element copied k times (reflect,
    # edge, wrap) sums its k output gradients; constant padding and cropped elements get none.
    x = inputs[0]
    mats = [pad_matrix(op, size, before, after) for size, (before, after) in zip(x.shape[2:], op.amounts(x.ndim))]
    if x.ndim == 3:
        return [np.einsum("jw,ncj->ncw", mats[0], g)], {}
    return [np.einsum("ih,ncij,jw->nchw", mats[0], g, mats[1])], {}


def resize(op, inputs, g):
    # out = R_h x R_w^T per plane, so dx = R_h^T g R_w: the transposed interpolation matrices.
    _, _, h, w = inputs[0].shape
    rows = resize_matrix(op, 0, h, g.shape[2])
    cols = resize_matrix(op, 1, w, g.shape[3])
    return [np.einsum("ih,ncij,jw->nchw", rows, g, cols)], {}


_NO_PARAMS = {
    ops.Flatten: view, ops.Reshape: view, ops.Concat: concat, ops.Add: add, ops.Sub: sub, ops.Mean: mean, ops.Mul: mul,
    ops.ReduceSum: reduce_sum,
    ops.ChannelPad: channel_pad, ops.Pad: pad, ops.Permute: permute, ops.ChannelSelect: channel_select,
    ops.Maxout: maxout,
    ops.AffineGrid: affine_grid, ops.GridSample: grid_sample, ops.Resize: resize,
}
_WITH_PARAMS = {ops.Affine: affine, ops.RBF: rbf}


def backward(op, params, inputs, out, grad_out, want_inputs, want_params):
    """(input gradients, None where not wanted; param gradients of the wanted names) of ``op``."""
    inputs = [_f64(x) for x in inputs]
    g = _f64(grad_out)
    if type(op) in _NO_PARAMS:
        grads, pgrads = _NO_PARAMS[type(op)](op, inputs, g)
    elif type(op) in _WITH_PARAMS:
        grads, pgrads = _WITH_PARAMS[type(op)](op, inputs, g, params)
    else:
        raise ArchcostError(f"reference_grad_tensor: no backward reference for op {type(op).__name__}")
    grads = [np.ascontiguousarray(gr) if want else None for gr, want in zip(grads, want_inputs)]
    return grads, {k: v for k, v in pgrads.items() if k in set(want_params)}
