"""Data-movement and multi-input kernels: add, mean, broadcast mul, concat, channel padding,
permute, and the copy behind flatten/reshape/dropout (which are free views when they run in
place on their input's buffer, as the memory plan arranges whenever it can)."""

import numpy as np
from numba import njit

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


def _as4d(a: np.ndarray, what: str) -> np.ndarray:
    if a.ndim > 4:
        raise ArchcostError(f"{what}: the cpu kernels handle up to 4 axes, got {a.ndim}")
    return a.reshape(a.shape + (1,) * (4 - a.ndim))


class AddKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        flat = out.reshape(-1)
        add2(inputs[0].reshape(-1), inputs[1].reshape(-1), flat)
        for x in inputs[2:]:
            add2(flat, x.reshape(-1), flat)


class MeanKernel(AddKernel):
    @staticmethod
    def run(op, state, inputs, out):
        AddKernel.run(op, state, inputs, out)
        scale_inplace(out.reshape(-1), np.float32(1.0 / len(inputs)))


class MulKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        out4 = _as4d(out, "mul")
        x, y = (np.broadcast_to(_as4d(a, "mul"), out4.shape) for a in inputs)
        mul4d(x, y, out4)


class ConcatKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        for part, target, offset in adapters.concat_parts(op, inputs, out):
            copy_channels(part, target, offset)


class ChannelPadKernel:
    prepare = staticmethod(adapters.channel_pad_state)

    @staticmethod
    def run(op, state, inputs, out):
        channel_pad(inputs[0], out, state)


class PermuteKernel:
    @staticmethod
    def prepare(op, in_shapes, out_shape, params):
        return tuple(op.dims) + tuple(range(len(op.dims), 4))

    @staticmethod
    def run(op, state, inputs, out):
        copy4d(_as4d(inputs[0], "permute").transpose(state), _as4d(out, "permute"))


class ViewKernel(adapters.ViewAdapter):
    same_buffer = staticmethod(np.shares_memory)

    @staticmethod
    def copy(x, out) -> None:
        copy1d(x.reshape(-1), out.reshape(-1))
