"""Per-element and per-channel kernels on device arrays: activations, batch norm, layer norm,
LRN, scale, softmax.

The formulas are the shared ones (archcost/kernels/formulas.py) as inlined device functions.
Per-element kernels take flat views, one thread per element. Channel-wise kernels see the same
``(A, C, B)`` view as the cpu kernels (``adapters.axis_view``): the affine (batch norm, scale) has
one thread per element; layer norm, LRN and softmax have one thread per ``(a, b)`` column, which
loops over the ``C`` channels of its column (statistics in float64, as on the cpu).
"""

from archcost.kernels import adapters, formulas
from archcost.kernels.adapters import axis_view
from archcost.kernels.cuda._numba import cuda
from archcost.kernels.cuda.common import device_function, flat, launch, uploaded

_activation_value = device_function(formulas.activation)
_layer_norm_column = device_function(formulas.layer_norm_column)
_lrn_column = device_function(formulas.lrn_column)
_softmax_column = device_function(formulas.softmax_column)


@cuda.jit
def _activation(x, out, code, slope):
    i = cuda.grid(1)
    if i < out.size:
        out[i] = _activation_value(x[i], code, slope)


@cuda.jit
def _affine(x, scale, shift, out, inner):
    """out[a, c, b] = x[a, c, b] * scale[c] + shift[c] on flat arrays; ``inner`` = B."""
    i = cuda.grid(1)
    if i < out.size:
        c = (i // inner) % scale.size
        out[i] = x[i] * scale[c] + shift[c]


@cuda.jit
def _layer_norm(x, gamma, beta, eps, out):
    j = cuda.grid(1)  # column (a, b)
    b_ = x.shape[2]
    if j < x.shape[0] * b_:
        a = j // b_
        _layer_norm_column(x, gamma, beta, eps, out, a, j - a * b_)


@cuda.jit
def _lrn(x, out, size, alpha, beta, k):
    j = cuda.grid(1)  # column (a, b)
    b_ = x.shape[2]
    if j < x.shape[0] * b_:
        a = j // b_
        _lrn_column(x, out, size, alpha, beta, k, a, j - a * b_)


@cuda.jit
def _softmax(x, out):
    j = cuda.grid(1)  # column (a, b)
    b_ = x.shape[2]
    if j < x.shape[0] * b_:
        a = j // b_
        _softmax_column(x, out, a, j - a * b_)


def channel_affine(x, scale, shift, out, axis):
    """x, out device arrays; scale, shift device vectors over ``axis``."""
    inner = axis_view(out, axis).shape[2]
    launch(_affine, out.size, flat(x), scale, shift, flat(out), inner)


def _per_column(kernel, x3, *args):
    """Launch a one-thread-per-column ``kernel`` over the (a, b) columns of x3 (A, C, B)."""
    launch(kernel, x3.shape[0] * x3.shape[2], x3, *args)


class ActivationKernel:
    prepare = staticmethod(adapters.activation_state)

    @staticmethod
    def run(op, state, inputs, out):
        launch(_activation, out.size, flat(inputs[0]), flat(out), *state)


class BatchNormKernel:
    prepare = staticmethod(uploaded(adapters.batch_norm_state))

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(inputs[0], *state, out, 1)


class ScaleKernel:
    prepare = staticmethod(uploaded(adapters.scale_state))

    @staticmethod
    def run(op, state, inputs, out):
        channel_affine(inputs[0], *state, out, op.axis)


class LayerNormKernel:
    prepare = staticmethod(uploaded(adapters.layer_norm_state))

    @staticmethod
    def run(op, state, inputs, out):
        _per_column(_layer_norm, axis_view(inputs[0], op.axis), *state, axis_view(out, op.axis))


class LRNKernel:
    prepare = staticmethod(adapters.lrn_state)

    @staticmethod
    def run(op, state, inputs, out):
        _per_column(_lrn, axis_view(inputs[0], 1), axis_view(out, 1), *state)


class SoftmaxKernel:
    prepare = staticmethod(adapters.no_state)

    @staticmethod
    def run(op, state, inputs, out):
        _per_column(_softmax, axis_view(inputs[0], op.axis), axis_view(out, op.axis))
