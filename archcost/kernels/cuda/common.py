"""Helpers shared by the CUDA kernel wrappers: launch geometry and views of device arrays."""

import math

from archcost.errors import ArchcostError
from archcost.kernels.cuda import config


def grid1d(n: int, threads: int | None = None) -> tuple[int, int]:
    """(blocks, threads) covering ``n`` elements, one thread each (at least one block)."""
    threads = threads or config.THREADS
    return max(1, -(-n // threads)), threads


def flat(array):
    """1-D view of a C-contiguous device array."""
    return array.reshape(math.prod(array.shape))


def axis_view(array, axis: int):
    """(A, C, B) view of a C-contiguous device array around ``axis`` (as the cpu kernels use)."""
    shape = tuple(array.shape)  # the simulator's shape object does not slice
    axis %= len(shape)
    return array.reshape(math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:]))


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
