"""Per-element and per-channel kernels: activations, batch norm, layer norm, LRN, scale, softmax.

The formulas are the shared ones (archcost/kernels/formulas.py), inlined here by Numba.
Channel-wise kernels see a 3-D view ``(A, C, B)`` of a contiguous array (``adapters.axis_view``):
``A`` the axes before the channel axis, ``B`` those after, so one kernel serves NCHW maps, (N, F)
vectors and channels-last maps alike; layer norm, LRN and softmax loop over its ``(a, b)``
columns.
"""

from numba import njit

from archcost.kernels import adapters, formulas
from archcost.kernels.adapters import axis_view

_activation = njit(inline="always")(formulas.activation)
_layer_norm_column = njit(inline="always")(formulas.layer_norm_column)
_lrn_column = njit(inline="always")(formulas.lrn_column)
_softmax_column = njit(inline="always")(formulas.softmax_column)


@njit(cache=True)
def activation(x, out, code, slope):
    """x, out: 1-D (may be the same array: the op runs in place)."""
    for i in range(x.size):
        out[i] = _activation(x[i], code, slope)


@njit(fastmath=True, cache=True)
def channel_affine(x, scale, shift, out):
    """out[a, c, b] = x[a, c, b] * scale[c] + shift[c] (BN at inference, learned scale)."""
    a_, c_, b_ = x.shape
    for a in range(a_):
        for c in range(c_):
            s, t = scale[c], shift[c]
            for b in range(b_):
                out[a, c, b] = x[a, c, b] * s + t


@njit(cache=True)
def layer_norm(x, gamma, beta, eps, out):
    """Normalise over axis 1 of (A, C, B), in float64 statistics."""
    for a in range(x.shape[0]):
        for b in range(x.shape[2]):
            _layer_norm_column(x, gamma, beta, eps, out, a, b)


@njit(cache=True)
def lrn(x, out, size, alpha, beta, k):
    """PyTorch's LocalResponseNorm over axis 1 of (A, C, B)."""
    for a in range(x.shape[0]):
        for b in range(x.shape[2]):
            _lrn_column(x, out, size, alpha, beta, k, a, b)


@njit(cache=True)
def softmax(x, out):
    """Softmax over axis 1 of (A, C, B)."""
    for a in range(x.shape[0]):
        for b in range(x.shape[2]):
            _softmax_column(x, out, a, b)


class ActivationKernel:
    prepare = staticmethod(adapters.activation_state)

    @staticmethod
    def run(op, state, inputs, out):
        activation(inputs[0].reshape(-1), out.reshape(-1), *state)


class BatchNormKernel:
    prepare = staticmethod(adapters.batch_norm_state)

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(axis_view(inputs[0], 1), *state, axis_view(out, 1))


class LayerNormKernel:
    prepare = staticmethod(adapters.layer_norm_state)

    @staticmethod
    def run(op, state, inputs, out):
        layer_norm(axis_view(inputs[0], op.axis), *state, axis_view(out, op.axis))


class LRNKernel:
    prepare = staticmethod(adapters.lrn_state)

    @staticmethod
    def run(op, state, inputs, out):
        lrn(axis_view(inputs[0], 1), axis_view(out, 1), *state)


class ScaleKernel:
    prepare = staticmethod(adapters.scale_state)

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(axis_view(inputs[0], op.axis), *state, axis_view(out, op.axis))


class SoftmaxKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        softmax(axis_view(inputs[0], op.axis), axis_view(out, op.axis))
