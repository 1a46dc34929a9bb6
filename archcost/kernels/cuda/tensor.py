"""Data-movement and multi-input kernels on device arrays: add, mean, broadcast mul, concat,
channel padding, permute, and the copy behind flatten/reshape/dropout (free views when they run in
place on their input's buffer, as the memory plan arranges whenever it can).

All are one thread per output element over flat arrays. Mul and permute address their inputs
through element strides computed on the host for a 4-D view of the output (``common.shape4``):
a broadcast axis has stride 0, a permuted input has its strides permuted.
"""

import math

from archcost.kernels import adapters
from archcost.kernels.cuda._numba import cuda, device_address
from archcost.kernels.cuda.common import coords3, coords4, flat, launch, shape4, strides4


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
def _mul(x, y, out, d1, d2, d3, xs0, xs1, xs2, xs3, ys0, ys1, ys2, ys3):
    i = cuda.grid(1)
    if i < out.size:
        a, b, c, d = coords4(i, d1, d2, d3)
        out[i] = x[a * xs0 + b * xs1 + c * xs2 + d * xs3] * y[a * ys0 + b * ys1 + c * ys2 + d * ys3]


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


class AddKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out, factor=1.0):
        o = flat(out)
        last = len(inputs) - 2
        launch(_add, o.size, flat(inputs[0]), flat(inputs[1]), o, factor if last == 0 else 1.0)
        for j, x in enumerate(inputs[2:], start=1):
            launch(_add, o.size, o, flat(x), o, factor if j == last else 1.0)


class MeanKernel(AddKernel):
    @staticmethod
    def run(op, state, inputs, out, factor=None):
        AddKernel.run(op, state, inputs, out, 1.0 / len(inputs))


def _broadcast_strides(shape, out4):
    """Element strides of a C-contiguous input viewed at the output's 4-D shape (0 where broadcast)."""
    in4 = shape4(shape, "mul")
    return tuple(0 if d == 1 and o != 1 else s for d, o, s in zip(in4, out4, strides4(in4)))


class MulKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        out4 = shape4(out_shape, "mul")
        return out4[1:], _broadcast_strides(in_shapes[0], out4), _broadcast_strides(in_shapes[1], out4)

    @staticmethod
    def run(op, state, inputs, out):
        dims, xs, ys = state
        o = flat(out)
        launch(_mul, o.size, flat(inputs[0]), flat(inputs[1]), o, *dims, *xs, *ys)


class ConcatKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        for part, target, offset in adapters.concat_parts(op, inputs, out):
            launch(_copy_channels, part.size, part, target, offset)


class ChannelPadKernel:
    prepare = staticmethod(adapters.channel_pad_state)

    @staticmethod
    def run(op, state, inputs, out):
        launch(_channel_pad, math.prod(out.shape), inputs[0], out, state)


class PermuteKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        dims = tuple(op.dims) + tuple(range(len(op.dims), 4))
        in_strides = strides4(shape4(in_shapes[0], "permute"))
        return shape4(out_shape, "permute")[1:], tuple(in_strides[d] for d in dims)

    @staticmethod
    def run(op, state, inputs, out):
        dims, strides = state
        o = flat(out)
        launch(_gather, o.size, flat(inputs[0]), o, *dims, *strides)


class ViewKernel(adapters.ViewAdapter):
    @staticmethod
    def same_buffer(x, out) -> bool:
        return device_address(x) == device_address(out)

    @staticmethod
    def copy(x, out) -> None:
        o = flat(out)
        launch(_copy, o.size, flat(x), o)
