"""Helpers shared by the CUDA kernel wrappers: launch geometry, device views, the upload of
prepared states, and the device functions of the shared formulas."""

import functools
import math

import numpy as np

from archcost.errors import ArchcostError
from archcost.kernels.cuda import config
from archcost.kernels.cuda._numba import cuda


def device_function(fn):
    """``fn`` (a shared formula of archcost/kernels/formulas.py, or a helper here) as a CUDA device
    function, inlined into each calling kernel at Numba IR level, as the cpu kernels inline it."""
    return cuda.jit(device=True, inline="always")(fn)


@device_function
def coords3(i, d1, d2):
    """Flat index -> 3-D coordinates of a C-contiguous (d0, d1, d2) array."""
    c = i % d2
    b = (i // d2) % d1
    return i // (d2 * d1), b, c


@device_function
def coords4(i, d1, d2, d3):
    """Flat index -> 4-D coordinates of a C-contiguous (d0, d1, d2, d3) array."""
    d = i % d3
    c = (i // d3) % d2
    b = (i // (d3 * d2)) % d1
    a = i // (d3 * d2 * d1)
    return a, b, c, d


@device_function
def coords6(i, d1, d2, d3, d4, d5):
    """Flat index -> 6-D coordinates of a C-contiguous (d0, ..., d5) array (the 6-axis permute)."""
    f = i % d5
    i //= d5
    e = i % d4
    i //= d4
    d = i % d3
    i //= d3
    c = i % d2
    i //= d2
    b = i % d1
    return i // d1, b, c, d, e, f


def grid1d(n: int, threads: int | None = None) -> tuple[int, int]:
    """(blocks, threads) covering ``n`` elements, one thread each (at least one block)."""
    threads = threads or config.THREADS
    return max(1, -(-n // threads)), threads


def launch(kernel, n: int, *args) -> None:
    """Launch a one-thread-per-element ``kernel`` over ``n`` elements."""
    blocks, threads = grid1d(n)
    kernel[blocks, threads](*args)


def flat(array):
    """1-D view of a C-contiguous device array."""
    return array.reshape(math.prod(array.shape))


def uploaded(prepare):
    """A ``prepare`` (e.g. a shared ``adapters.*_state``) whose state goes to the device: numpy
    arrays, alone or in a tuple, are uploaded; scalars stay as they are."""

    def upload(value):
        return cuda.to_device(np.ascontiguousarray(value)) if isinstance(value, np.ndarray) else value

    @functools.wraps(prepare)
    def prepare_on_device(op, in_shapes, out_shape, params):
        state = prepare(op, in_shapes, out_shape, params)
        return tuple(upload(v) for v in state) if isinstance(state, tuple) else upload(state)

    return prepare_on_device


def shape4(shape, what: str) -> tuple:
    if len(shape) > 4:
        raise ArchcostError(f"{what}: the cuda kernels handle up to 4 axes, got {len(shape)}")
    return tuple(shape) + (1,) * (4 - len(shape))


def strides4(shape) -> tuple:
    """Element strides of a C-contiguous 4-D shape."""
    s3 = 1
    s2 = shape[3]
    s1 = shape[2] * s2
    s0 = shape[1] * s1
    return (s0, s1, s2, s3)


def padded_shape(shape, rank: int) -> tuple:
    """``shape`` with size-1 axes appended up to ``rank`` (the permute's 4 or 6)."""
    return tuple(shape) + (1,) * (rank - len(shape))


def c_strides(shape) -> tuple:
    """Element strides of a C-contiguous shape of any rank."""
    strides = [1] * len(shape)
    for k in range(len(shape) - 2, -1, -1):
        strides[k] = strides[k + 1] * shape[k + 1]
    return tuple(strides)


# --- training: what the backward adapters share ------------------------------------------------

def param_to_device(value):
    """A host param (the float32 dict of ``archcost.execute.init_params``) as a contiguous float32
    device array: the training adapters upload what they read on every call (params change every
    step, so there is nothing to prepare once)."""
    return cuda.to_device(np.ascontiguousarray(value, np.float32))


def dummy(dtype=np.float32, ndim: int = 1):
    """A one-element device array standing in for a gradient nobody wants (its kernel gets a false
    flag and never touches it), so each kernel keeps one signature."""
    return cuda.device_array((1,) * ndim, dtype)


def contiguous(array, what: str):
    """``array`` itself, checked C-contiguous: the kernels reach it through reshaped views, which a
    GPU refuses on a strided device array (and the simulator would silently copy, losing the
    writes)."""
    if not array.is_c_contiguous():
        raise ArchcostError(f"{what}: the cuda kernels need a C-contiguous device array")
    return array


def input_grad(grad_inputs, i: int = 0):
    """The gradient to accumulate into for input ``i`` (checked C-contiguous: most kernels write it
    through a reshaped view), or None when it is not wanted."""
    if not grad_inputs or grad_inputs[i] is None:
        return None
    return contiguous(grad_inputs[i], "backward: an input gradient")


def kept(array, op, what: str):
    """A tensor the op keeps for its backward (the saving policy): an error when it is missing."""
    if array is None:
        raise ArchcostError(f"{type(op).__name__} backward: the kept {what} is missing")
    return array
