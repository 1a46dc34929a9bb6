"""The CPU backend: Numba kernels on host numpy float32 arrays.

``ADAPTERS`` maps each op type to its adapter (``prepare`` once per graph, ``run`` per forward,
``count`` for conv and linear). Adding an op is one row here. Every kernel is
``@njit(cache=True)``: nothing compiles at import; the first call compiles and caches to disk.
"""

import numpy as np

from archcost import ops
from archcost.kernels.cpu.conv import Conv2dKernel
from archcost.kernels.cpu.extra import (
    AffineGridKernel, AffineKernel, ChannelSelectKernel, GridSampleKernel, MaxoutKernel, RBFKernel,
)
from archcost.kernels.cpu.linear import LinearKernel
from archcost.kernels.cpu.peak import measure_peak  # noqa: F401 (backend interface)
from archcost.kernels.cpu.pointwise import (
    ActivationKernel, BatchNormKernel, LayerNormKernel, LRNKernel, ScaleKernel, SoftmaxKernel,
)
from archcost.kernels.cpu.pool import AvgPool2dKernel, GlobalAvgPoolKernel, MaxPool2dKernel
from archcost.kernels.cpu.tensor import (
    AddKernel, ChannelPadKernel, ConcatKernel, MeanKernel, MulKernel, PermuteKernel, ViewKernel,
)

NAME = "cpu"

ADAPTERS = {
    ops.Conv2d: Conv2dKernel,
    ops.MaxPool2d: MaxPool2dKernel,
    ops.AvgPool2d: AvgPool2dKernel,
    ops.GlobalAvgPool: GlobalAvgPoolKernel,
    ops.Linear: LinearKernel,
    ops.Flatten: ViewKernel,
    ops.Activation: ActivationKernel,
    ops.BatchNorm: BatchNormKernel,
    ops.LayerNorm: LayerNormKernel,
    ops.LRN: LRNKernel,
    ops.Dropout: ViewKernel,
    ops.Concat: ConcatKernel,
    ops.Add: AddKernel,
    ops.Mean: MeanKernel,
    ops.Mul: MulKernel,
    ops.Scale: ScaleKernel,
    ops.Softmax: SoftmaxKernel,
    ops.ChannelPad: ChannelPadKernel,
    ops.Permute: PermuteKernel,
    ops.Reshape: ViewKernel,
    ops.ChannelSelect: ChannelSelectKernel,
    ops.Affine: AffineKernel,
    ops.RBF: RBFKernel,
    ops.Maxout: MaxoutKernel,
    ops.AffineGrid: AffineGridKernel,
    ops.GridSample: GridSampleKernel,
}


def empty(size: int, dtype=np.float32) -> np.ndarray:
    """A flat buffer of ``size`` elements (the arena's allocation)."""
    return np.empty(size, dtype)


def to_device(array: np.ndarray) -> np.ndarray:
    return array


def to_host(array) -> np.ndarray:
    return np.asarray(array)


def copy_into(dst, src: np.ndarray) -> None:
    """Write host array ``src`` into backend array ``dst`` (same shape)."""
    np.copyto(dst, src)


def nbytes(array) -> int:
    return array.nbytes
