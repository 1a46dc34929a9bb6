"""Data-movement and multi-input kernels: add (broadcast too), sub, mean, the sum over an axis,
broadcast mul, concat, channel padding, spatial padding (Pad, every mode, through the host's index
maps), permute, and the copy behind flatten/reshape/dropout (which are free views when they run in
place on their input's buffer, as the memory plan arranges whenever it can).

Training (see the adapters' ``train_forward``/``backward``): the forward in training mode is the
inference forward for all of these (dropout's, which is not, lives in
``pointwise.DropoutTrain``); the backward kernels accumulate (``+=``) into the input gradients:
a copy back for flatten/reshape, the concat's channel slice, the (scaled) output gradient for
add/mean (for sub, dy and -dy; a broadcast input of add or sub gets it summed over the axes it
was stretched along), the output gradient to every summand for the sum over an axis, the product with the
other input reduced over the broadcast axes for mul, the kept positions and channels for the
channel pad, each output gradient added into the input element it copied for the spatial pad
(reflect, edge and wrap copy some twice or more; constant mode's padding gets nothing), the
inverse permutation for permute (4 axes, or 6 where a permute merges to 5 or 6). None of these
ops keeps a tensor for its backward except mul (both inputs): the shapes come from the gradient
buffers.
"""

import numpy as np
from numba import njit, prange

from archcost import ops
from archcost.errors import ArchcostError
from archcost.kernels import adapters


@njit(fastmath=True, cache=True)
def add2(a, b, out):
    for i in range(out.size):
        out[i] = a[i] + b[i]


@njit(fastmath=True, cache=True)
def scale_inplace(out, factor):
    for i in range(out.size):
        out[i] = out[i] * factor


@njit(cache=True)
def copy1d(x, out):
    for i in range(out.size):
        out[i] = x[i]


@njit(cache=True)
def copy4d(x, out):
    """out[...] = x[...] for any strides of x (permuted or broadcast views)."""
    a_, b_, c_, d_ = out.shape
    for a in range(a_):
        for b in range(b_):
            for c in range(c_):
                for d in range(d_):
                    out[a, b, c, d] = x[a, b, c, d]


@njit(fastmath=True, cache=True)
def mul4d(x, y, out):
    a_, b_, c_, d_ = out.shape
    for a in range(a_):
        for b in range(b_):
            for c in range(c_):
                for d in range(d_):
                    out[a, b, c, d] = x[a, b, c, d] * y[a, b, c, d]


@njit(fastmath=True, cache=True)
def add4d(x, y, out, sign):
    """out = x + sign * y on 4-D views (x, y may be broadcast views): broadcast add (sign 1), sub (-1)."""
    a_, b_, c_, d_ = out.shape
    for a in range(a_):
        for b in range(b_):
            for c in range(c_):
                for d in range(d_):
                    out[a, b, c, d] = x[a, b, c, d] + sign * y[a, b, c, d]


@njit(cache=True)
def copy_channels(x, out, c0):
    """x (A, Ci, B) into out (A, C, B) at channel offset c0."""
    a_, ci_, b_ = x.shape
    for a in range(a_):
        for c in range(ci_):
            for b in range(b_):
                out[a, c0 + c, b] = x[a, c, b]


@njit(cache=True)
def channel_pad(x, out, stride):
    n_, c_, h_, w_ = x.shape
    k_, oh_, ow_ = out.shape[1], out.shape[2], out.shape[3]
    for n in range(n_):
        for k in range(k_):
            for oh in range(oh_):
                for ow in range(ow_):
                    out[n, k, oh, ow] = x[n, k, oh * stride, ow * stride] if k < c_ else 0.0


@njit(parallel=True, cache=True)
def pad(x, rows, cols, value, out):
    """out (N, C, Ho, Wo)[n, c, i, j] = x[n, c, rows[i], cols[j]], or ``value`` where either
    source is -1 (constant padding): one prange task per plane."""
    n_, c_ = out.shape[0], out.shape[1]
    ho_, wo_ = out.shape[2], out.shape[3]
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        for i in range(ho_):
            r = rows[i]
            for j in range(wo_):
                k = cols[j]
                out[n, c, i, j] = x[n, c, r, k] if r >= 0 and k >= 0 else value


# --- backward kernels ------------------------------------------------------------------------

BLOCK = 4096  # elements per prange task of the 1-D accumulation


@njit(parallel=True, cache=True)
def accumulate_scaled(grad, src, factor):
    """grad[i] += src[i] * factor (1-D; factor 1 for add and the views: exact)."""
    size = grad.size
    for task in prange((size + BLOCK - 1) // BLOCK):
        for i in range(task * BLOCK, min((task + 1) * BLOCK, size)):
            grad[i] += src[i] * factor


@njit(parallel=True, cache=True)
def accumulate_channels(grad_out, grad_part, c0):
    """grad_part (A, Ci, B) += grad_out (A, C, B) at channels c0 .. c0 + Ci (one concat input)."""
    a_, ci_, b_ = grad_part.shape
    for task in prange(a_ * ci_):
        a = task // ci_
        c = task % ci_
        for b in range(b_):
            grad_part[a, c, b] += grad_out[a, c0 + c, b]


@njit(parallel=True, cache=True)
def mul_grad(grad_out, other, grad):
    """grad (the input's 4-D shape, 1 on its broadcast axes) += the sum, over the output positions
    each of its elements broadcast to, of grad_out * other (both the output's 4-D shape; other may
    be a broadcast view). Float64 sums; one prange task per (axis 0, axis 1) element of grad."""
    o0, o1, o2, o3 = grad_out.shape
    s0, s1, s2, s3 = grad.shape
    for task in prange(s0 * s1):
        i0 = task // s1
        i1 = task % s1
        lo0, hi0 = (i0, i0 + 1) if s0 == o0 else (0, o0)
        lo1, hi1 = (i1, i1 + 1) if s1 == o1 else (0, o1)
        for i2 in range(s2):
            lo2, hi2 = (i2, i2 + 1) if s2 == o2 else (0, o2)
            for i3 in range(s3):
                lo3, hi3 = (i3, i3 + 1) if s3 == o3 else (0, o3)
                total = 0.0
                for j0 in range(lo0, hi0):
                    for j1 in range(lo1, hi1):
                        for j2 in range(lo2, hi2):
                            for j3 in range(lo3, hi3):
                                total += np.float64(grad_out[j0, j1, j2, j3]) * np.float64(other[j0, j1, j2, j3])
                grad[i0, i1, i2, i3] += total


@njit(parallel=True, cache=True)
def channel_pad_grad(grad_out, grad, stride):
    """grad (N, C, H, W) += grad_out (N, K, OH, OW) at the kept positions (oh * stride, ow * stride)
    of the first C channels; the padded channels and the skipped positions get nothing."""
    n_, c_ = grad.shape[0], grad.shape[1]
    oh_, ow_ = grad_out.shape[2], grad_out.shape[3]
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        for oh in range(oh_):
            for ow in range(ow_):
                grad[n, c, oh * stride, ow * stride] += grad_out[n, c, oh, ow]


@njit(parallel=True, cache=True)
def pad_grad(grad_out, rows, cols, grad):
    """grad (N, C, H, W)[n, c, rows[i], cols[j]] += grad_out[n, c, i, j] wherever both sources are
    read (not -1): an input element copied k times (reflect, edge, wrap) sums k gradients. One
    prange task per plane, its only writer."""
    n_, c_ = grad.shape[0], grad.shape[1]
    ho_, wo_ = grad_out.shape[2], grad_out.shape[3]
    for task in prange(n_ * c_):
        n = task // c_
        c = task % c_
        for i in range(ho_):
            r = rows[i]
            if r < 0:
                continue
            for j in range(wo_):
                k = cols[j]
                if k >= 0:
                    grad[n, c, r, k] += grad_out[n, c, i, j]


@njit(parallel=True, cache=True)
def accumulate4d(grad, src):
    """grad[...] += src[...] for any strides of src (the output gradient's inverse permutation)."""
    a_, b_, c_, d_ = grad.shape
    for task in prange(a_ * b_):
        a = task // b_
        b = task % b_
        for c in range(c_):
            for d in range(d_):
                grad[a, b, c, d] += src[a, b, c, d]


@njit(cache=True)
def copy6d(x, out):
    """out[...] = x[...] for any strides of x: permutes that merge to 5 or 6 axes (space-to-depth)."""
    a_, b_, c_, d_, e_, f_ = out.shape
    for a in range(a_):
        for b in range(b_):
            for c in range(c_):
                for d in range(d_):
                    for e in range(e_):
                        for f in range(f_):
                            out[a, b, c, d, e, f] = x[a, b, c, d, e, f]


@njit(parallel=True, cache=True)
def accumulate6d(grad, src):
    """grad[...] += src[...] for any strides of src: the 6-axis permute's backward."""
    a_, b_, c_, d_, e_, f_ = grad.shape
    for task in prange(a_ * b_):
        a = task // b_
        b = task % b_
        for c in range(c_):
            for d in range(d_):
                for e in range(e_):
                    for f in range(f_):
                        grad[a, b, c, d, e, f] += src[a, b, c, d, e, f]


@njit(parallel=True, cache=True)
def sum_axis(x, out):
    """out (A, B) = the sum over K of x (A, K, B), in float64 (ReduceSum)."""
    a_, k_, b_ = x.shape
    for task in prange(a_ * b_):
        a = task // b_
        b = task % b_
        total = 0.0
        for k in range(k_):
            total += np.float64(x[a, k, b])
        out[a, b] = total


@njit(parallel=True, cache=True)
def sum_axis_grad(grad_out, grad):
    """grad (A, K, B) += grad_out (A, B) for every k: each summand's gradient is dy."""
    a_, k_, b_ = grad.shape
    for task in prange(a_ * k_):
        a = task // k_
        k = task % k_
        for b in range(b_):
            grad[a, k, b] += grad_out[a, b]


def _as4d(a: np.ndarray, what: str) -> np.ndarray:
    if a.ndim > 4:
        raise ArchcostError(f"{what}: the cpu kernels handle up to 4 axes, got {a.ndim}")
    return a.reshape(a.shape + (1,) * (4 - a.ndim))


def _padded(a: np.ndarray, rank: int) -> np.ndarray:
    """``a`` with size-1 axes appended up to ``rank`` (the permute's 4 or 6)."""
    return a.reshape(a.shape + (1,) * (rank - a.ndim))


def _accumulate(grad, src, factor=1.0) -> None:
    accumulate_scaled(grad.reshape(-1), src.reshape(-1), np.float32(factor))


def _broadcast_run(op, inputs, out, sign) -> None:
    """out = x + sign * y on 4-D views at the output's shape (broadcast axes of stride 0), 5-axis
    broadcasts merged to 4 axes as mul's are."""
    shapes = adapters.collapse_broadcast(out.shape, *(a.shape for a in inputs))
    out4 = _as4d(out.reshape(shapes[0]), op.kind)
    x, y = (np.broadcast_to(_as4d(a.reshape(s), op.kind), out4.shape) for a, s in zip(inputs, shapes[1:]))
    add4d(x, y, out4, np.float32(sign))


def _broadcast_backward(op, grad_out, grad_inputs, signs) -> None:
    """Each wanted input's gradient += sign * grad_out, summed over the axes the input was broadcast
    along: mul's gradient kernel with the other factor the constant sign (a stride-0 view of one
    value; a product by +-1 is exact). A full-size input takes the flat accumulation."""
    for grad, sign in zip(grad_inputs, signs):
        if grad is None:
            continue
        if grad.size == grad_out.size:
            _accumulate(grad, grad_out, sign)
            continue
        out_s, grad_s = adapters.collapse_broadcast(grad_out.shape, grad.shape, grad.shape)[:2]
        g4 = _as4d(grad_out.reshape(out_s), op.kind)
        signs = np.broadcast_to(np.full((1, 1, 1, 1), sign, np.float32), g4.shape)
        mul_grad(g4, signs, _as4d(grad.reshape(grad_s), op.kind))


class AddKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        if any(x.size != out.size for x in inputs):  # a broadcast; residual adds stay flat
            _broadcast_run(op, inputs, out, 1.0)
            return
        flat = out.reshape(-1)
        add2(inputs[0].reshape(-1), inputs[1].reshape(-1), flat)
        for x in inputs[2:]:
            add2(flat, x.reshape(-1), flat)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(AddKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
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
        _broadcast_backward(op, grad_out, grad_inputs, (1.0, -1.0))


class MeanKernel(AddKernel):
    @staticmethod
    def run(op, state, inputs, out):
        AddKernel.run(op, state, inputs, out)
        scale_inplace(out.reshape(-1), np.float32(1.0 / len(inputs)))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(MeanKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        for grad in grad_inputs:
            if grad is not None:
                _accumulate(grad, grad_out, 1.0 / len(grad_inputs))


class ReduceSumKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        x = adapters.axis_view(inputs[0], op.axis)
        sum_axis(x, out.reshape(x.shape[0], x.shape[2]))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(ReduceSumKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        grad = grad_inputs[0]
        if grad is None:
            return
        g = adapters.axis_view(grad, op.axis)
        sum_axis_grad(grad_out.reshape(g.shape[0], g.shape[2]), g)


class MulKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        shapes = adapters.collapse_broadcast(out.shape, *(a.shape for a in inputs))
        out4 = _as4d(out.reshape(shapes[0]), "mul")
        x, y = (np.broadcast_to(_as4d(a.reshape(s), "mul"), out4.shape) for a, s in zip(inputs, shapes[1:]))
        mul4d(x, y, out4)

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
            other = inputs[1 - i]
            if other is None:
                raise ArchcostError("mul backward: the other input was not kept")
            out_s, grad_s, other_s = adapters.collapse_broadcast(grad_out.shape, grad.shape, other.shape)
            g4 = _as4d(grad_out.reshape(out_s), "mul")
            mul_grad(g4, np.broadcast_to(_as4d(other.reshape(other_s), "mul"), g4.shape),
                     _as4d(grad.reshape(grad_s), "mul"))


class ConcatKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        for part, target, offset in adapters.concat_parts(op, inputs, out):
            copy_channels(part, target, offset)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(ConcatKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """Each input's gradient is its slice of grad_out along the axis (offsets:
        ``adapters.concat_grad_offsets``)."""
        axis = op.axis % grad_out.ndim
        target = adapters.axis_view(grad_out, axis)
        for i, offset in adapters.concat_grad_offsets(op, grad_out.shape, grad_inputs, inputs):
            accumulate_channels(target, adapters.axis_view(grad_inputs[i], axis), offset)


class ChannelPadKernel:
    prepare = staticmethod(adapters.channel_pad_state)

    @staticmethod
    def run(op, state, inputs, out):
        channel_pad(inputs[0], out, state)

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(ChannelPadKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        if grad_inputs[0] is not None:
            channel_pad_grad(grad_out, grad_inputs[0], op.stride)


class PadKernel:
    prepare = staticmethod(adapters.pad_state)

    @staticmethod
    def run(op, state, inputs, out):
        rows, cols, value = state
        pad(inputs[0].reshape(adapters.pad_view(inputs[0].shape)), rows, cols, value,
            out.reshape(adapters.pad_view(out.shape)))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(PadKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """Keeps nothing: the index maps come again from the op and the gradients' shapes."""
        grad = grad_inputs[0]
        if grad is None:
            return
        rows, cols, _ = adapters.pad_state(op, (grad.shape,), grad_out.shape, params)
        pad_grad(grad_out.reshape(adapters.pad_view(grad_out.shape)), rows, cols,
                 grad.reshape(adapters.pad_view(grad.shape)))


class PermuteKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        """(merged input shape, merged dims padded to 4 axes -- to 6 where 5 or 6 are left --,
        merged output shape); more than 6 merged axes are refused in one line."""
        merged_in, dims, merged_out = adapters.collapse_permute(op.dims, in_shapes[0])
        rank = adapters.permute_axes(dims, "cpu")
        return merged_in, dims + tuple(range(len(dims), rank)), merged_out

    @staticmethod
    def run(op, state, inputs, out):
        merged_in, dims, merged_out = state
        x = _padded(inputs[0].reshape(merged_in), len(dims))
        (copy4d if len(dims) == 4 else copy6d)(x.transpose(dims), _padded(out.reshape(merged_out), len(dims)))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        adapters.inference_forward(PermuteKernel, op, params, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """grad_in += grad_out under the inverse permutation (out axis k is input axis dims[k])."""
        grad = grad_inputs[0]
        if grad is None:
            return
        merged_in, dims, merged_out = PermuteKernel.prepare(op, (tuple(grad.shape),), tuple(grad_out.shape), {})
        inverse = tuple(int(k) for k in np.argsort(dims))
        (accumulate4d if len(dims) == 4 else accumulate6d)(
            _padded(grad.reshape(merged_in), len(dims)),
            _padded(grad_out.reshape(merged_out), len(dims)).transpose(inverse))


class ViewKernel(adapters.ViewAdapter):
    same_buffer = staticmethod(np.shares_memory)

    @staticmethod
    def copy(x, out) -> None:
        copy1d(x.reshape(-1), out.reshape(-1))

    @staticmethod
    def train_forward(op, params, inputs, out, extras):
        if isinstance(op, ops.Dropout):  # not the identity in training: pointwise's own kernel
            from archcost.kernels.cpu.pointwise import DropoutTrain
            DropoutTrain.train_forward(op, params, inputs, out, extras)
            return
        ViewKernel.run(op, None, inputs, out)

    @staticmethod
    def backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads):
        """Flatten/reshape: grad_in += grad_out read in the input's shape (same element order).
        Where the executor made the gradient a free view too (grad_out is grad_in's own buffer,
        as the forward's output may be its input's), it is already in place: nothing to add
        (adding would double it)."""
        if isinstance(op, ops.Dropout):
            from archcost.kernels.cpu.pointwise import DropoutTrain
            DropoutTrain.backward(op, params, inputs, out, extras, grad_out, grad_inputs, param_grads)
            return
        grad = grad_inputs[0]
        if grad is not None and not ViewKernel.same_buffer(grad, grad_out):
            _accumulate(grad, grad_out)
