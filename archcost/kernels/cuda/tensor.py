"""Data-movement and multi-input kernels on device arrays: add (broadcast too), sub, mean, the sum
over an axis, broadcast mul, concat, channel padding, spatial padding (Pad), permute, and the copy behind
flatten/reshape/dropout (free views when they run in place on their input's buffer, as the
memory plan arranges whenever it can).

All are one thread per output element over flat arrays. Mul, broadcast add, sub and permute address their inputs
through element strides computed on the host for a 4-D view of the output (``common.shape4``;
6-D for a permute left with 5 or 6 axes after merging):
a broadcast axis has stride 0, a permuted input has its strides permuted.

Training: the forward in training mode is the inference forward for all of these (dropout's,
which is not, lives in ``pointwise.DropoutTrain``, to which ``ViewKernel`` hands it). The backward
kernels accumulate (``+=``) into the input gradients, one thread per element of each, the only
writer of it: the (scaled) output gradient for add, mean and the views (dy and -dy for sub; a
broadcast input of add or sub sums it over the output positions it reached, mul's gather with
the constant sign as the other factor); the concat's channel
slice; for mul the product with the other input summed over the output positions the element was
broadcast to (a gather over the broadcast axes); the kept positions of the first channels for the
channel pad; for the spatial pad (every mode, through the host's index maps) the sum of the
outputs that copied the element (the maps inverted on the host: reflect, edge and wrap copy some
elements twice or more); the inverse permutation for permute (``_gather_add``, the forward's
gather with the output's strides permuted back; ``_gather6``/``_gather_add6`` where a permute
merges to 5 or 6 axes). None of these ops keeps a tensor for its
backward except mul (both inputs): the shapes come from the gradient buffers.
"""

import math

import numpy as np

from archcost import ops
from archcost.errors import ArchcostError
from archcost.kernels import adapters
from archcost.kernels.cuda._numba import cuda, device_address
from archcost.kernels.cuda.common import (c_strides, coords3, coords4, coords6, contiguous, flat, input_grad, launch,
                                          padded_shape, shape4, strides4, uploaded)


@cuda.jit
def _add(a, b, out, factor):
    """out = (a + b) * factor."""
    i = cuda.grid(1)
    if i < out.size:
        out[i] = (a[i] + b[i]) * factor


@cuda.jit
def _scale(out, factor):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = out[i] * factor


@cuda.jit
def _copy(x, out):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = x[i]


@cuda.jit
def _gather(x, out, d1, d2, d3, s0, s1, s2, s3):
    """out[a, b, c, d] = x[a*s0 + b*s1 + c*s2 + d*s3] (flat x, flat out of shape (., d1, d2, d3))."""
    i = cuda.grid(1)
    if i < out.size:
        a, b, c, d = coords4(i, d1, d2, d3)
        out[i] = x[a * s0 + b * s1 + c * s2 + d * s3]


@cuda.jit
def _gather6(x, out, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5):
    """out[a, b, c, d, e, f] = x[a*s0 + ... + f*s5] (flat x, flat out of shape (., d1, ..., d5))."""
    i = cuda.grid(1)
    if i < out.size:
        a, b, c, d, e, f = coords6(i, d1, d2, d3, d4, d5)
        out[i] = x[a * s0 + b * s1 + c * s2 + d * s3 + e * s4 + f * s5]


@cuda.jit
def _gather_add6(x, out, d1, d2, d3, d4, d5, s0, s1, s2, s3, s4, s5):
    """out[a, b, c, d, e, f] += x[a*s0 + ... + f*s5] (the 6-axis permute's backward)."""
    i = cuda.grid(1)
    if i < out.size:
        a, b, c, d, e, f = coords6(i, d1, d2, d3, d4, d5)
        out[i] += x[a * s0 + b * s1 + c * s2 + d * s3 + e * s4 + f * s5]


@cuda.jit
def _mul(x, y, out, d1, d2, d3, xs0, xs1, xs2, xs3, ys0, ys1, ys2, ys3):
    i = cuda.grid(1)
    if i < out.size:
        a, b, c, d = coords4(i, d1, d2, d3)
        out[i] = x[a * xs0 + b * xs1 + c * xs2 + d * xs3] * y[a * ys0 + b * ys1 + c * ys2 + d * ys3]


@cuda.jit
def _add_bcast(x, y, out, d1, d2, d3, xs0, xs1, xs2, xs3, ys0, ys1, ys2, ys3, sign):
    """out = x + sign * y through broadcast strides: add (sign 1) of unequal shapes, sub (-1)."""
    i = cuda.grid(1)
    if i < out.size:
        a, b, c, d = coords4(i, d1, d2, d3)
        out[i] = x[a * xs0 + b * xs1 + c * xs2 + d * xs3] + sign * y[a * ys0 + b * ys1 + c * ys2 + d * ys3]


@cuda.jit
def _copy_channels(x, out, c0):
    """x (A, Ci, B) into out (A, C, B) at channel offset c0; one thread per element of x."""
    i = cuda.grid(1)
    a_, ci_, b_ = x.shape
    if i < a_ * ci_ * b_:
        a, c, b = coords3(i, ci_, b_)
        out[a, c0 + c, b] = x[a, c, b]


@cuda.jit
def _channel_pad(x, out, stride):
    i = cuda.grid(1)
    n_, k_, oh_, ow_ = out.shape
    if i < n_ * k_ * oh_ * ow_:
        n, k, oh, ow = coords4(i, k_, oh_, ow_)
        v = 0.0
        if k < x.shape[1]:
            v = x[n, k, oh * stride, ow * stride]
        out[n, k, oh, ow] = v


@cuda.jit
def _pad(x, rows, cols, value, out):
    """out (N, C, Ho, Wo)[n, c, i, j] = x[n, c, rows[i], cols[j]], or ``value`` where either
    source is -1 (constant padding); one thread per output element."""
    t = cuda.grid(1)
    n_, c_, ho_, wo_ = out.shape
    if t < n_ * c_ * ho_ * wo_:
        n, c, i, j = coords4(t, c_, ho_, wo_)
        r = rows[i]
        k = cols[j]
        if r >= 0 and k >= 0:
            out[n, c, i, j] = x[n, c, r, k]
        else:
            out[n, c, i, j] = value


# --- backward kernels ------------------------------------------------------------------------


@cuda.jit
def _accumulate(grad, src, factor):
    """grad[i] += src[i] * factor (flat; factor 1 for add and the views: exact)."""
    i = cuda.grid(1)
    if i < grad.size:
        grad[i] += src[i] * factor


@cuda.jit
def _gather_add(x, out, d1, d2, d3, s0, s1, s2, s3):
    """out[a, b, c, d] += x[a*s0 + b*s1 + c*s2 + d*s3] (flat x, flat out of shape (., d1, d2, d3))."""
    i = cuda.grid(1)
    if i < out.size:
        a, b, c, d = coords4(i, d1, d2, d3)
        out[i] += x[a * s0 + b * s1 + c * s2 + d * s3]


@cuda.jit
def _mul_grad(gy, other, grad, o0, o1, o2, o3, t0, t1, t2, t3):
    """grad (4-D, 1 on the axes its input was broadcast along) += sum, over the output positions
    (o0, o1, o2, o3) its element reaches, of gy (flat, the output's shape) * other (flat, read
    through its broadcast strides t0..t3). One thread per element of grad, float64 sums."""
    i = cuda.grid(1)
    s0, s1, s2, s3 = grad.shape
    if i < s0 * s1 * s2 * s3:
        i0, i1, i2, i3 = coords4(i, s1, s2, s3)
        # an axis the input has at full size: the element's own index; a broadcast one: all of it
        lo0, hi0 = (i0, i0 + 1) if s0 == o0 else (0, o0)
        lo1, hi1 = (i1, i1 + 1) if s1 == o1 else (0, o1)
        lo2, hi2 = (i2, i2 + 1) if s2 == o2 else (0, o2)
        lo3, hi3 = (i3, i3 + 1) if s3 == o3 else (0, o3)
        total = 0.0
        for j0 in range(lo0, hi0):
            for j1 in range(lo1, hi1):
                for j2 in range(lo2, hi2):
                    for j3 in range(lo3, hi3):
                        g = gy[((j0 * o1 + j1) * o2 + j2) * o3 + j3]
                        total += float(g) * float(other[j0 * t0 + j1 * t1 + j2 * t2 + j3 * t3])
        grad[i0, i1, i2, i3] += total


@cuda.jit
def _accumulate_channels(gy, grad, c0):
    """grad (A, Ci, B) += gy (A, C, B) at channels c0 .. c0 + Ci; one thread per element of grad."""
    i = cuda.grid(1)
    a_, ci_, b_ = grad.shape
    if i < a_ * ci_ * b_:
        a, c, b = coords3(i, ci_, b_)
        grad[a, c, b] += gy[a, c0 + c, b]


@cuda.jit
def _channel_pad_grad(gy, grad, stride):
    """grad (N, C, H, W) += gy (N, K, OH, OW) at the kept positions (oh * stride, ow * stride) of
    the first C channels; one thread per element of grad (the skipped positions get nothing)."""
    i = cuda.grid(1)
    n_, c_, h_, w_ = grad.shape
    if i < n_ * c_ * h_ * w_:
        n, c, ih, iw = coords4(i, c_, h_, w_)
        if ih % stride == 0 and iw % stride == 0:
            grad[n, c, ih, iw] += gy[n, c, ih // stride, iw // stride]


@cuda.jit
def _pad_grad(gy, row_start, row_outputs, col_start, col_outputs, grad):
    """grad (N, C, H, W) += the sum of gy (N, C, Ho, Wo) over the outputs that copied each input
    element: rows row_outputs[row_start[ih]:row_start[ih + 1]] times the columns likewise (the
    host's inverse maps, ``adapters.pad_inverse``); one thread per input element, float64 sum."""
    t = cuda.grid(1)
    n_, c_, h_, w_ = grad.shape
    if t < n_ * c_ * h_ * w_:
        n, c, ih, iw = coords4(t, c_, h_, w_)
        total = 0.0
        for a in range(row_start[ih], row_start[ih + 1]):
            i = row_outputs[a]
            for b in range(col_start[iw], col_start[iw + 1]):
                total += float(gy[n, c, i, col_outputs[b]])
        grad[n, c, ih, iw] += total


def _accumulate_flat(grad, src, factor=1.0) -> None:
    g = flat(contiguous(grad, "input gradient"))
    launch(_accumulate, g.size, g, flat(src), np.float32(factor))


def _broadcast_run(op, inputs, out, sign) -> None:
    out_s, x_s, y_s = adapters.collapse_broadcast(tuple(out.shape), *(tuple(a.shape) for a in inputs))
    out4 = shape4(out_s, op.kind)
    o = flat(out)
    launch(_add_bcast, o.size, flat(inputs[0]), flat(inputs[1]), o, *out4[1:], *_broadcast_strides(x_s, out4),
           *_broadcast_strides(y_s, out4), np.float32(sign))


def _broadcast_backward(op, grad_out, grad_inputs, signs) -> None:
    """Each wanted input's gradient += sign * grad_out, summed over the output positions each of its
    elements reached when broadcast: mul's gradient kernel with the other factor one value, the
    sign, read at stride 0 (a product by +-1 is exact). A full-size input accumulates flat."""
    for grad, sign in zip(grad_inputs, signs):
        if grad is None:
            continue
        if grad.size == grad_out.size:
            _accumulate_flat(grad, grad_out, sign)
            continue
        grad = contiguous(grad, f"{op.kind} input gradient")
        out_s, grad_s = adapters.collapse_broadcast(tuple(grad_out.shape), tuple(grad.shape), tuple(grad.shape))[:2]
        grad4 = grad.reshape(shape4(grad_s, op.kind))
        launch(_mul_grad, grad4.size, flat(grad_out), cuda.to_device(np.full(1, sign, np.float32)), grad4,
               *shape4(out_s, op.kind), 0, 0, 0, 0)


class AddKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out, factor=1.0):
        if any(x.size != out.size for x in inputs):  # a broadcast (two inputs); residual adds stay flat
            _broadcast_run(op, inputs, out, 1.0)
            return
        o = flat(out)
        last = len(inputs) - 2
        launch(_add, o.size, flat(inputs[0]), flat(inputs[1]), o, factor if last == 0 else 1.0)
        for j, x in enumerate(inputs[2:], start=1):
            launch(_add, o.size, o, flat(x), o, factor if j == last else 1.0)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(AddKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """Each wanted input's gradient += grad_out (one buffer given twice gets it twice), summed
        over its broadcast axes for the smaller input of a broadcast add."""
        _broadcast_backward(op, grad_out, grad_inputs, [1.0] * len(grad_inputs))


class SubKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        _broadcast_run(op, inputs, out, -1.0)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(SubKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """a's gradient += grad_out, b's -= grad_out, each summed over its broadcast axes."""
        _broadcast_backward(op, grad_out, grad_inputs, (1.0, -1.0))


class MeanKernel(AddKernel):
    @staticmethod
    def run(op, state, inputs, out, factor=None):
        AddKernel.run(op, state, inputs, out, 1.0 / len(inputs))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(MeanKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """Each wanted input's gradient += grad_out / the number of inputs."""
        for grad in grad_inputs:
            if grad is not None:
                _accumulate_flat(grad, grad_out, 1.0 / len(grad_inputs))


@cuda.jit
def _sum_axis(x, out):
    """out (A, B) = the sum over K of x (A, K, B), float64 sums; one thread per element of out."""
    i = cuda.grid(1)
    a_, k_, b_ = x.shape
    if i < a_ * b_:
        a = i // b_
        b = i % b_
        total = 0.0
        for k in range(k_):
            total += float(x[a, k, b])
        out[a, b] = total


@cuda.jit
def _sum_axis_grad(gy, grad):
    """grad (A, K, B) += gy (A, B) for every k; one thread per element of grad."""
    i = cuda.grid(1)
    a_, k_, b_ = grad.shape
    if i < a_ * k_ * b_:
        a, k, b = coords3(i, k_, b_)
        grad[a, k, b] += gy[a, b]


class ReduceSumKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        x = adapters.axis_view(contiguous(inputs[0], "reducesum input"), op.axis)
        launch(_sum_axis, x.shape[0] * x.shape[2], x, out.reshape(x.shape[0], x.shape[2]))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(ReduceSumKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        grad = input_grad(grad_inputs)
        if grad is None:
            return
        g = adapters.axis_view(grad, op.axis)
        launch(_sum_axis_grad, math.prod(g.shape), contiguous(grad_out, "reducesum output gradient").reshape(
            g.shape[0], g.shape[2]), g)


def _broadcast_strides(shape, out4):
    """Element strides of a C-contiguous input viewed at the output's 4-D shape (0 where broadcast)."""
    in4 = shape4(shape, "mul")
    return tuple(0 if d == 1 and o != 1 else s for d, o, s in zip(in4, out4, strides4(in4)))


class MulKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        out_s, x_s, y_s = adapters.collapse_broadcast(out_shape, *in_shapes)
        out4 = shape4(out_s, "mul")
        return out4[1:], _broadcast_strides(x_s, out4), _broadcast_strides(y_s, out4)

    @staticmethod
    def run(op, state, inputs, out):
        dims, xs, ys = state
        o = flat(out)
        launch(_mul, o.size, flat(inputs[0]), flat(inputs[1]), o, *dims, *xs, *ys)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(MulKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """d x = grad_out * y, d y = grad_out * x, each summed over the axes its input was
        broadcast along (SE gating: the (N, C, 1, 1) gate's gradient sums over H x W)."""
        for i, grad in enumerate(grad_inputs):
            if grad is None:
                continue
            other = inputs[1 - i] if inputs else None
            if other is None:
                raise ArchcostError("mul backward: the other input was not kept")
            grad = contiguous(grad, "mul input gradient")
            out_s, grad_s, other_s = adapters.collapse_broadcast(tuple(grad_out.shape), tuple(grad.shape),
                                                                 tuple(other.shape))
            out4 = shape4(out_s, "mul")
            grad4 = grad.reshape(shape4(grad_s, "mul"))
            launch(_mul_grad, grad4.size, flat(grad_out), flat(other), grad4, *out4,
                   *_broadcast_strides(other_s, out4))


class ConcatKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        for part, target, offset in adapters.concat_parts(op, inputs, out):
            launch(_copy_channels, part.size, part, target, offset)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(ConcatKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """Each input's gradient is its slice of grad_out along the axis (offsets:
        ``adapters.concat_grad_offsets``)."""
        axis = op.axis % len(tuple(grad_out.shape))
        target = adapters.axis_view(grad_out, axis)
        for i, offset in adapters.concat_grad_offsets(op, grad_out.shape, grad_inputs, inputs):
            part = adapters.axis_view(contiguous(grad_inputs[i], "concat input gradient"), axis)
            launch(_accumulate_channels, part.size, target, part, offset)


class ChannelPadKernel:
    prepare = staticmethod(adapters.channel_pad_state)

    @staticmethod
    def run(op, state, inputs, out):
        launch(_channel_pad, math.prod(out.shape), inputs[0], out, state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(ChannelPadKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        grad = input_grad(grad_inputs)
        if grad is not None:
            launch(_channel_pad_grad, math.prod(grad.shape), grad_out, grad, op.stride)


class PadKernel:
    prepare = staticmethod(uploaded(adapters.pad_state))

    @staticmethod
    def run(op, state, inputs, out):
        rows, cols, value = state
        x = contiguous(inputs[0], "pad input").reshape(adapters.pad_view(inputs[0].shape))
        launch(_pad, math.prod(out.shape), x, rows, cols, value,
               contiguous(out, "pad output").reshape(adapters.pad_view(out.shape)))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(PadKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """Keeps nothing: the maps come again from the op and the gradients' shapes, inverted on
        the host so that each input element gathers its outputs (no two threads write one)."""
        grad = input_grad(grad_inputs)
        if grad is None:
            return
        shape = adapters.pad_view(grad.shape)
        rows, cols, _ = adapters.pad_state(op, (shape,), adapters.pad_view(grad_out.shape), params)
        tables = (*adapters.pad_inverse(rows, shape[2]), *adapters.pad_inverse(cols, shape[3]))
        gy = contiguous(grad_out, "pad output gradient").reshape(adapters.pad_view(grad_out.shape))
        launch(_pad_grad, math.prod(shape), gy, *(cuda.to_device(t) for t in tables), grad.reshape(shape))


class PermuteKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        # Runs of axes that stay together are merged first (adapters.collapse_permute): the
        # channel shuffle's 5-axis permute is a 4-axis one; what is left of 5 or 6 axes (a
        # space-to-depth's) takes the 6-axis gather, more is refused in one line.
        merged_in, dims, merged_out = adapters.collapse_permute(op.dims, in_shapes[0])
        rank = adapters.permute_axes(dims, "cuda")
        dims = dims + tuple(range(len(dims), rank))
        in_strides = c_strides(padded_shape(merged_in, rank))
        return padded_shape(merged_out, rank)[1:], tuple(in_strides[d] for d in dims)

    @staticmethod
    def run(op, state, inputs, out):
        dims, strides = state
        o = flat(out)
        launch(_gather if len(strides) == 4 else _gather6, o.size, flat(inputs[0]), o, *dims, *strides)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(PermuteKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_in += grad_out under the inverse permutation: output axis k is input axis dims[k],
        so input axis j steps through grad_out with the output's stride of axis argsort(dims)[j]."""
        grad = input_grad(grad_inputs)
        if grad is None:
            return
        merged_in, dims, merged_out = adapters.collapse_permute(op.dims, tuple(grad.shape))
        rank = adapters.permute_axes(dims, "cuda")
        dims = dims + tuple(range(len(dims), rank))
        out_strides = c_strides(padded_shape(merged_out, rank))
        inverse = np.argsort(dims)
        g = flat(grad)
        launch(_gather_add if rank == 4 else _gather_add6, g.size, flat(grad_out), g,
               *padded_shape(merged_in, rank)[1:], *(int(out_strides[k]) for k in inverse))


class ViewKernel(adapters.ViewAdapter):
    @staticmethod
    def same_buffer(x, out) -> bool:
        return device_address(x) == device_address(out)

    @staticmethod
    def copy(x, out) -> None:
        o = flat(out)
        launch(_copy, o.size, flat(x), o)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        if isinstance(op, ops.Dropout) and op.p:  # not the identity in training: pointwise's own kernel
            from archcost.kernels.cuda.pointwise import DropoutTrain
            DropoutTrain.train_forward(op, params, inputs, out, extras)
            return
        ViewKernel.run(op, None, inputs, out)  # p = 0: the identity, which keeps no mask

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """Flatten/reshape (and dropout with p = 0): grad_in += grad_out read in the input's shape
        (same element order).
        Where the executor made the gradient a free view too (grad_out is grad_in's own buffer,
        as the forward's output may be its input's), it is already in place: nothing to add
        (adding would double it)."""
        if isinstance(op, ops.Dropout) and op.p:
            from archcost.kernels.cuda.pointwise import DropoutTrain
            DropoutTrain.backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads)
            return
        grad = input_grad(grad_inputs)
        if grad is not None and not ViewKernel.same_buffer(grad, grad_out):
            _accumulate_flat(grad, grad_out)
