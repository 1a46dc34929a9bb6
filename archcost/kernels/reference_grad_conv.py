"""Float64 numpy references of the backward of Conv2d, ConvTranspose2d, Linear, MaxPool2d, AvgPool2d and
GlobalAvgPool, written independently of the kernels (archcost/kernels/cpu/conv.py, linear.py,
pool.py), which loop over input planes or weight rows and clip their ranges.

Here every window is an explicit index grid into a padded copy of the input: ``_window_index``
gives, per output position and tap, the row and column the tap reads in the padded map. The
forward of a window op reads ``padded[..., rows, cols]`` (a gather); its adjoint is the scatter
``np.add.at(grad_padded, (..., rows, cols), grad_windows)``, cropped back to the input (what
lands on the padding is dropped). Convolution's window gradients are the transposed tensordot
of grad_out with the weight; its weight gradient the tensordot of grad_out with the gathered
windows. Max pooling picks each window's first maximum by ``argmax`` over the flattened window
(row-major, so the first cell in scan order); average pooling's divisor is the window sum of a
mask (ones over the padded map with ``count_include_pad``, over the input without).

``backward(op, params, inputs, out, grad_out, want_inputs, want_params)`` takes float64 arrays
(params as the kernels get them, cast here) and returns ``(input grads, param grads)``: a list
with one entry per input (an array, or None where not wanted) and a dict name -> array of the
wanted params.
"""

from __future__ import annotations

import numpy as np

from archcost import ops
from archcost.errors import ArchcostError


def _window_index(out_hw, kernel, stride, dilation):
    """(rows, cols) broadcasting to (OH, OW, KH, KW): the padded-map row and column that tap
    (ky, kx) of output (oh, ow) reads, oh*sh + ky*dh and ow*sw + kx*dw."""
    (oh, ow), (kh, kw), (sh, sw), (dh, dw) = out_hw, kernel, stride, dilation
    rows = np.arange(oh)[:, None, None, None] * sh + np.arange(kh)[None, None, :, None] * dh
    cols = np.arange(ow)[None, :, None, None] * sw + np.arange(kw)[None, None, None, :] * dw
    return rows, cols


def _scatter(grad_windows, rows, cols, padded_hw, top, left, hw):
    """The adjoint of gathering ``padded[:, :, rows, cols]``: add ``grad_windows`` (N, C, OH, OW,
    KH, KW) into a zero padded map, then crop to the (H, W) input at (top, left)."""
    n, c = grad_windows.shape[:2]
    grad = np.zeros((n, c, *padded_hw))
    np.add.at(grad, (slice(None), slice(None), rows, cols), grad_windows)
    return grad[:, :, top:top + hw[0], left:left + hw[1]]


def _wants(want_inputs, count):
    if isinstance(want_inputs, (bool, np.bool_)):
        return [bool(want_inputs)] * count
    return [bool(w) for w in want_inputs]


def _param_names(want_params, trainable):
    if want_params is True:
        return set(trainable)
    if not want_params:
        return set()
    return set(want_params) & set(trainable)


# --- Conv2d ----------------------------------------------------------------------------------

def conv2d_backward(op: ops.Conv2d, params, x, grad_out, want_x=True, want=("weight", "bias")):
    """(dx or None, {name: grad}) of a conv whose input is x (N, C, H, W) for grad_out (N, K, OH, OW)."""
    n, c, h, w = x.shape
    top, bottom, left, right = op.pads(h, w)
    weight = np.asarray(params["weight"], np.float64)
    k = weight.shape[0]
    g = op.groups
    cg, kg = c // g, k // g
    rows, cols = _window_index(grad_out.shape[2:], op.kernel, op.stride, op.dilation)
    padded_hw = (h + top + bottom, w + left + right)
    dx = None
    if want_x:
        # window gradient of group i: sum over its kg output channels of grad_out * weight
        parts = [np.tensordot(grad_out[:, i * kg:(i + 1) * kg], weight[i * kg:(i + 1) * kg], axes=([1], [0]))
                 for i in range(g)]  # each (N, OH, OW, cg, KH, KW)
        grad_windows = np.concatenate(parts, axis=3).transpose(0, 3, 1, 2, 4, 5)
        dx = _scatter(grad_windows, rows, cols, padded_hw, top, left, (h, w))
    grads = {}
    if "weight" in want:
        padded = np.zeros((n, c, *padded_hw))
        padded[:, :, top:top + h, left:left + w] = x
        windows = padded[:, :, rows, cols]  # (N, C, OH, OW, KH, KW)
        grads["weight"] = np.concatenate([
            np.tensordot(grad_out[:, i * kg:(i + 1) * kg], windows[:, i * cg:(i + 1) * cg], axes=([0, 2, 3], [0, 2, 3]))
            for i in range(g)], axis=0)  # (K, cg, KH, KW)
    if "bias" in want and op.bias:
        grads["bias"] = grad_out.sum(axis=(0, 2, 3))
    return dx, grads


# --- ConvTranspose2d -------------------------------------------------------------------------

def conv_transpose2d_backward(op: ops.ConvTranspose2d, params, x, grad_out, want_x=True, want=("weight", "bias")):
    """(dx or None, {name: grad}) of a transposed conv whose input is x (N, C, H, W) for grad_out
    (N, K, OH, OW). The forward adds x[n, c, ih, iw] * w[c, k, ky, kx] into output row
    ih*sh - top + ky*dh (and alike for columns), so both gradients gather grad_out on that index
    grid (``_window_index`` over the input positions), in a copy of grad_out zero-padded by
    (top, left) before and as far as the last tap reaches after: dx contracts the gathered
    windows with the weight, dW with x; db sums grad_out."""
    n, c, h, w = x.shape
    top, _, left, _ = op.padding
    _, k, oh, ow = grad_out.shape
    weight = np.asarray(params["weight"], np.float64)  # (C, Kg, KH, KW)
    g = op.groups
    cg, kg = c // g, k // g
    rows, cols = _window_index((h, w), op.kernel, op.stride, op.dilation)  # (H, W, KH, KW)
    padded_h = max(int(rows.max()) + 1, top + oh)
    padded_w = max(int(cols.max()) + 1, left + ow)
    padded = np.zeros((n, k, padded_h, padded_w))
    padded[:, :, top:top + oh, left:left + ow] = grad_out
    windows = padded[:, :, rows, cols]  # (N, K, H, W, KH, KW)
    dx = None
    if want_x:
        dx = np.concatenate([
            np.einsum("nkhwyx,ckyx->nchw", windows[:, i * kg:(i + 1) * kg], weight[i * cg:(i + 1) * cg])
            for i in range(g)], axis=1)
    grads = {}
    if "weight" in want:
        grads["weight"] = np.concatenate([
            np.einsum("nkhwyx,nchw->ckyx", windows[:, i * kg:(i + 1) * kg], x[:, i * cg:(i + 1) * cg])
            for i in range(g)], axis=0)  # (C, Kg, KH, KW)
    if "bias" in want and op.bias:
        grads["bias"] = grad_out.sum(axis=(0, 2, 3))
    return dx, grads


# --- Linear ----------------------------------------------------------------------------------

def linear_backward(op: ops.Linear, params, x, grad_out, want_x=True, want=("weight", "bias")):
    """On the last axis of x (..., F) with grad_out (..., O): dx = grad_out @ W, dW = the
    contraction of grad_out with x over every leading axis, db = grad_out summed over them."""
    weight = np.asarray(params["weight"], np.float64)
    lead = tuple(range(x.ndim - 1))
    dx = np.einsum("...o,of->...f", grad_out, weight) if want_x else None
    grads = {}
    if "weight" in want:
        grads["weight"] = np.tensordot(grad_out, x, axes=(lead, lead))
    if "bias" in want and op.bias:
        grads["bias"] = grad_out.sum(axis=lead)
    return dx, grads


# --- pooling ---------------------------------------------------------------------------------

def _pool_padding(op, hw, out_hw):
    """(top, left, padded H, padded W) of a pooling's padded map: the declared padding before,
    and after as far as the last window reaches (a ceil-mode window may hang past the declared
    padding) or the declared padding, whichever is more."""
    top, bottom, left, right = op.padding
    (kh, kw), (sh, sw) = op.kernel, op.stride
    hp = max(top + hw[0] + bottom, (out_hw[0] - 1) * sh + kh)
    wp = max(left + hw[1] + right, (out_hw[1] - 1) * sw + kw)
    return top, left, hp, wp


def max_pool_indices(op: ops.MaxPool2d, x, out_hw):
    """Flat index ih * W + iw of each window's first maximum (row-major over the window):
    an int64 array (N, C, OH, OW). Padding holds -inf, so it never wins on finite inputs."""
    n, c, h, w = x.shape
    top, left, hp, wp = _pool_padding(op, (h, w), out_hw)
    padded = np.full((n, c, hp, wp), -np.inf)
    padded[:, :, top:top + h, left:left + w] = x
    rows, cols = _window_index(out_hw, op.kernel, op.stride, (1, 1))
    windows = padded[:, :, rows, cols]  # (N, C, OH, OW, KH, KW)
    kh, kw = op.kernel
    best = windows.reshape(*windows.shape[:4], kh * kw).argmax(axis=4)
    ky, kx = best // kw, best % kw
    oh = np.arange(out_hw[0])[:, None]
    ow = np.arange(out_hw[1])[None, :]
    ih = oh * op.stride[0] + ky - top
    iw = ow * op.stride[1] + kx - left
    return ih * w + iw


def max_pool_backward(op: ops.MaxPool2d, x, grad_out):
    n, c, h, w = x.shape
    index = max_pool_indices(op, x, grad_out.shape[2:])
    dx = np.zeros((n, c, h * w))
    planes = np.arange(n * c)[:, None]
    np.add.at(dx.reshape(n * c, h * w), (planes, index.reshape(n * c, -1)), grad_out.reshape(n * c, -1))
    return dx.reshape(n, c, h, w)


def avg_pool_divisor(op: ops.AvgPool2d, hw, out_hw):
    """(OH, OW) divisors: the window sum of ones over the declared padded map
    (``count_include_pad``) or over the input alone; cells past the declared padding never count."""
    h, w = hw
    top, bottom, left, right = op.padding
    ptop, pleft, hp, wp = _pool_padding(op, hw, out_hw)
    mask = np.zeros((hp, wp))
    if op.count_include_pad:
        mask[:top + h + bottom, :left + w + right] = 1.0
    else:
        mask[ptop:ptop + h, pleft:pleft + w] = 1.0
    rows, cols = _window_index(out_hw, op.kernel, op.stride, (1, 1))
    return mask[rows, cols].sum(axis=(2, 3))


def avg_pool_backward(op: ops.AvgPool2d, x_shape, grad_out):
    n, c, h, w = x_shape
    out_hw = grad_out.shape[2:]
    top, left, hp, wp = _pool_padding(op, (h, w), out_hw)
    per_cell = grad_out / avg_pool_divisor(op, (h, w), out_hw)
    grad_windows = np.broadcast_to(per_cell[..., None, None], (n, c, *out_hw, *op.kernel))
    rows, cols = _window_index(out_hw, op.kernel, op.stride, (1, 1))
    return _scatter(grad_windows, rows, cols, (hp, wp), top, left, (h, w))


def global_avg_pool_backward(x_shape, grad_out):
    n, c, h, w = x_shape
    return np.broadcast_to(grad_out / (h * w), (n, c, h, w)).copy()


# --- dispatch --------------------------------------------------------------------------------

def backward(op, params, inputs, out, grad_out, want_inputs, want_params):
    """Float64 gradients of ``op`` for ``grad_out``.

    ``inputs``: the forward's float64 inputs (all of them: the reference may read what the kernels
    do not keep). ``want_inputs``: a bool per input (or one bool for all). ``want_params``: the
    names of the trained params (or True for all of the op's trainable params, False/None for
    none). Returns ``(list of input grads, None where not wanted; dict name -> grad)``."""
    x = np.asarray(inputs[0], np.float64)
    gy = np.asarray(grad_out, np.float64)
    want_x = _wants(want_inputs, len(inputs))[0]
    if isinstance(op, ops.Conv2d):
        dx, grads = conv2d_backward(op, params, x, gy, want_x, _param_names(want_params, ("weight", "bias")))
        return [dx], grads
    if isinstance(op, ops.ConvTranspose2d):
        dx, grads = conv_transpose2d_backward(op, params, x, gy, want_x, _param_names(want_params, ("weight", "bias")))
        return [dx], grads
    if isinstance(op, ops.Linear):
        dx, grads = linear_backward(op, params, x, gy, want_x, _param_names(want_params, ("weight", "bias")))
        return [dx], grads
    if isinstance(op, ops.MaxPool2d):
        return [max_pool_backward(op, x, gy) if want_x else None], {}
    if isinstance(op, ops.AvgPool2d):
        return [avg_pool_backward(op, x.shape, gy) if want_x else None], {}
    if isinstance(op, ops.GlobalAvgPool):
        return [global_avg_pool_backward(x.shape, gy) if want_x else None], {}
    raise ArchcostError(f"reference_grad_conv: no backward reference for op {type(op).__name__}")
