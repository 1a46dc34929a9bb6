"""What the cpu and CUDA backends share on the host: the op -> adapter table and the host half of
the adapters.

- ``KERNELS``: one row per op type naming the kernel module and adapter class that serve it.
  Both backends have modules of these names (``conv``, ``linear``, ``pool``, ``pointwise``,
  ``tensor``, ``extra``) holding classes of these names, so ``adapter_table(package)`` builds
  either backend's ``ADAPTERS`` from this one list. Adding an op is one row here and one adapter
  class in each backend.
- ``*_state``: the ``prepare`` of the adapters whose prepared state is the same on both backends,
  as host values (the cpu uses them as they are; the cuda backend uploads their arrays, see
  ``cuda.common.uploaded``). Each has the signature of ``prepare``.
- ``axis_view``, ``group_view`` and ``concat_parts``: views both backends' kernels take (numpy arrays and
  numba-cuda device arrays alike); ``ViewAdapter``: flatten, reshape and dropout, less the copy.

Importing this module imports no numba.
"""

import importlib
import math

import numpy as np

from archcost import ops
from archcost.errors import ArchcostError
from archcost.kernels.formulas import ACTIVATION_CODES

KERNELS = {  # op type: (kernel module, adapter class)
    ops.Conv2d: ("conv", "Conv2dKernel"),
    ops.ConvTranspose2d: ("conv", "ConvTranspose2dKernel"),
    ops.MaxPool2d: ("pool", "MaxPool2dKernel"),
    ops.AvgPool2d: ("pool", "AvgPool2dKernel"),
    ops.GlobalAvgPool: ("pool", "GlobalAvgPoolKernel"),
    ops.Linear: ("linear", "LinearKernel"),
    ops.Flatten: ("tensor", "ViewKernel"),
    ops.Activation: ("pointwise", "ActivationKernel"),
    ops.BatchNorm: ("pointwise", "BatchNormKernel"),
    ops.LayerNorm: ("pointwise", "LayerNormKernel"),
    ops.GroupNorm: ("pointwise", "GroupNormKernel"),
    ops.LRN: ("pointwise", "LRNKernel"),
    ops.Dropout: ("tensor", "ViewKernel"),
    ops.Concat: ("tensor", "ConcatKernel"),
    ops.Add: ("tensor", "AddKernel"),
    ops.Sub: ("tensor", "SubKernel"),
    ops.Mean: ("tensor", "MeanKernel"),
    ops.ReduceSum: ("tensor", "ReduceSumKernel"),
    ops.Mul: ("tensor", "MulKernel"),
    ops.Scale: ("pointwise", "ScaleKernel"),
    ops.Softmax: ("pointwise", "SoftmaxKernel"),
    ops.ChannelPad: ("tensor", "ChannelPadKernel"),
    ops.Pad: ("tensor", "PadKernel"),
    ops.Permute: ("tensor", "PermuteKernel"),
    ops.Reshape: ("tensor", "ViewKernel"),
    ops.ChannelSelect: ("extra", "ChannelSelectKernel"),
    ops.Affine: ("extra", "AffineKernel"),
    ops.RBF: ("extra", "RBFKernel"),
    ops.Maxout: ("extra", "MaxoutKernel"),
    ops.AffineGrid: ("extra", "AffineGridKernel"),
    ops.GridSample: ("extra", "GridSampleKernel"),
    ops.Resize: ("extra", "ResizeKernel"),
}


def adapter_table(package: str) -> dict:
    """``ADAPTERS`` of the backend whose kernel modules live in ``package``
    (e.g. ``"archcost.kernels.cpu"``): op type -> adapter class."""
    return {op: getattr(importlib.import_module(f"{package}.{module}"), name)
            for op, (module, name) in KERNELS.items()}


def axis_view(array, axis: int):
    """(A, C, B) view of a C-contiguous array around ``axis``: A the axes before it, B those after,
    so one channel-wise kernel serves NCHW maps, (N, F) vectors and channels-last maps alike."""
    shape = tuple(array.shape)  # numba-cuda's simulator arrays have a shape that does not slice
    axis %= len(shape)
    return array.reshape(math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1:]))


def group_view(array):
    """(N, C, S) view of a C-contiguous (N, C, *spatial) array, S the positions (1 for (N, C)):
    the view group norm's kernels take on both backends."""
    shape = tuple(array.shape)  # as in axis_view: the simulator's shape does not slice
    return array.reshape(shape[0], shape[1], math.prod(shape[2:]))


def concat_parts(op, inputs, out):
    """(part, target, offset) per input of a Concat: its (A, Ci, B) view, the output's (A, C, B)
    view, and the channel at which it starts there."""
    target = axis_view(out, op.axis)
    offset = 0
    for x in inputs:
        part = axis_view(x, op.axis)
        yield part, target, offset
        offset += part.shape[1]


def bias_or_zeros(op, size: int, params) -> np.ndarray:
    """A conv's or linear layer's bias as contiguous float32; zeros when it has none."""
    return np.ascontiguousarray(params["bias"] if op.bias else np.zeros(size, np.float32), np.float32)


def conv_geometry(op, in_shape) -> tuple:
    """(stride h, stride w, top pad, left pad, dilation h, dilation w) of a conv on ``in_shape``."""
    top, _, left, _ = op.pads(in_shape[2], in_shape[3])
    return op.stride[0], op.stride[1], top, left, op.dilation[0], op.dilation[1]


def inference_forward(adapter, op, params, inputs, out) -> None:
    """The training forward of an op whose training forward is its inference forward: the
    adapter's own prepare and run (both backends; simulator arrays' shapes are made tuples)."""
    state = adapter.prepare(op, tuple(tuple(x.shape) for x in inputs), tuple(out.shape), params)
    adapter.run(op, state, inputs, out)


def concat_grad_offsets(op, grad_out_shape, grad_inputs, inputs):
    """(input index, offset on the axis) of each wanted input gradient of a Concat, the backward
    of both backends. Concat keeps nothing: an input's size on the axis comes from its gradient
    buffer (or from ``inputs[i]`` where the executor passes an array of that input's shape); a
    wanted input's offset is the sum of the sizes before it, or the output's size less those
    from it on, whichever are all known (a single input of unknown size is the rest)."""
    from archcost.errors import ArchcostError

    shape = tuple(grad_out_shape)
    axis = op.axis % len(shape)
    total = shape[axis]
    known = [g if g is not None else x for g, x in zip(grad_inputs, inputs or [None] * len(grad_inputs))]
    sizes = [None if k is None else tuple(k.shape)[axis] for k in known]
    if sizes.count(None) == 1:
        sizes[sizes.index(None)] = total - sum(s for s in sizes if s is not None)
    offsets = []
    for i, grad in enumerate(grad_inputs):
        if grad is None:
            continue
        if None not in sizes[:i]:
            offsets.append((i, sum(sizes[:i])))
        elif None not in sizes[i:]:
            offsets.append((i, total - sum(sizes[i:])))
        else:
            raise ArchcostError(f"concat backward: the offset of input {i} is unknown: the sizes of the "
                                "inputs on both sides of it are not all known (no gradient, no array)")
    return offsets


# --- prepared states shared by both backends ------------------------------------------------

def no_state(op, in_shapes, out_shape, params):
    return None


class ViewAdapter:
    """Flatten, reshape, dropout (identity at inference): nothing to do when the op runs in place
    on its input's buffer; a copy when the plan gave it a fresh buffer (its input has other
    readers). A backend's ``ViewKernel`` says how to tell the two apart and how to copy."""

    prepare = staticmethod(no_state)

    @staticmethod
    def same_buffer(x, out) -> bool:
        raise NotImplementedError

    @staticmethod
    def copy(x, out) -> None:
        raise NotImplementedError

    @classmethod
    def run(cls, op, state, inputs, out):
        if not cls.same_buffer(inputs[0], out):
            cls.copy(inputs[0], out)


def activation_state(op, in_shapes, out_shape, params):
    return ACTIVATION_CODES[op.fn], np.float32(op.slope)


def batch_norm_state(op, in_shapes, out_shape, params):
    """(scale, shift) per channel, folded once in float64:
    y = x * gamma / sqrt(var + eps) + (beta - mean * gamma / sqrt(var + eps))."""
    inv = 1.0 / np.sqrt(params["var"].astype(np.float64) + op.eps)
    gamma = params["gamma"].astype(np.float64) if op.affine else 1.0
    beta = params["beta"].astype(np.float64) if op.affine else 0.0
    scale = gamma * inv
    shift = beta - params["mean"].astype(np.float64) * scale
    return scale.astype(np.float32), shift.astype(np.float32)


def scale_state(op, in_shapes, out_shape, params):
    """(scale, zero shift) per channel of ``op.axis``: the learned gamma, or the fixed factor."""
    if op.factor is None:
        gamma = params["gamma"]
    else:
        gamma = np.full(out_shape[op.axis], op.factor, np.float32)
    gamma = np.ascontiguousarray(gamma, np.float32)
    return gamma, np.zeros_like(gamma)


def layer_norm_state(op, in_shapes, out_shape, params):
    return params["gamma"], params["beta"], float(op.eps)


def group_norm_state(op, in_shapes, out_shape, params):
    """(gamma, beta, eps): the per-channel float32 gamma and beta, or ones and zeros (C of
    ``in_shapes[0]``) when not affine, so one kernel serves both."""
    if op.affine:
        return params["gamma"], params["beta"], float(op.eps)
    c = in_shapes[0][1]
    return np.ones(c, np.float32), np.zeros(c, np.float32), float(op.eps)


def lrn_state(op, in_shapes, out_shape, params):
    return op.size, float(op.alpha), float(op.beta), float(op.k)


def max_pool_state(op, in_shapes, out_shape, params):
    """(kh, kw, sh, sw, top pad, left pad)."""
    return (*op.kernel, *op.stride, op.padding[0], op.padding[2])


def avg_pool_state(op, in_shapes, out_shape, params):
    """(kh, kw, sh, sw, top, bottom, left, right pads, count_include_pad)."""
    return (*op.kernel, *op.stride, *op.padding, int(op.count_include_pad))


def collapse_permute(dims, in_shape) -> tuple[tuple, tuple, tuple]:
    """(input shape, dims, output shape) of the same permutation with every run of input axes
    that stays together, in order, merged into one: ShuffleNet's channel shuffle (0, 2, 1, 3, 4)
    on (N, g, C/g, H, W) is (0, 2, 1, 3) on (N, g, C/g, H*W). Both backends' fast kernels take 4
    axes; this brings most permutes exporters write down to that. A permute of 4 axes or fewer is
    returned as it is: merging NCHW -> NHWC's H and W leaves the 4-axis copy a size-1 innermost
    axis, which measured 2x slower (8 x 96 x 56 x 56). What is left of 5 or 6 axes takes both
    backends' 6-axis permute kernels (``permute_axes``): a space-to-depth's (0, 3, 5, 1, 2, 4)
    merges only its axes 1 and 2, leaving 5."""
    if len(dims) <= 4:
        return tuple(in_shape), tuple(dims), tuple(in_shape[d] for d in dims)
    runs: list[list[int]] = []
    for d in dims:
        if runs and d == runs[-1][-1] + 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    by_input = sorted(range(len(runs)), key=lambda r: runs[r][0])  # run index in input order
    position = {r: k for k, r in enumerate(by_input)}
    merged_in = tuple(math.prod(in_shape[a] for a in runs[r]) for r in by_input)
    merged_dims = tuple(position[r] for r in range(len(runs)))
    merged_out = tuple(merged_in[d] for d in merged_dims)
    return merged_in, merged_dims, merged_out


PERMUTE_AXES = 6  # the most axes a merged permute may keep (both backends' 6-axis kernels)


def permute_axes(dims, backend: str) -> int:
    """How many axes a merged permute's kernels take: 4 for 4 or fewer (the other ops' fast
    4-axis loops), 6 for 5 or 6; more is refused in one line."""
    if len(dims) > PERMUTE_AXES:
        raise ArchcostError(f"permute: the {backend} kernels handle up to {PERMUTE_AXES} axes, got {len(dims)}")
    return 4 if len(dims) <= 4 else PERMUTE_AXES


def collapse_broadcast(out_shape, *in_shapes) -> tuple[tuple, ...]:
    """(output shape, each input's shape) of the same broadcast product with adjacent axes merged
    wherever every input is full on both or broadcast (size 1) on both, and axes of size 1 in the
    output dropped: SKNet's (N, k, C, H, W) * (N, k, C, 1, 1) is (N, k*C, H*W) * (N, k*C, 1).
    Both backends' mul kernels take 4 axes; this brings 5-axis products down to that. A product
    of 4 axes or fewer is returned as it is (the lesson of ``collapse_permute``: a merged axis can
    leave the 4-axis loops a size-1 innermost axis)."""
    shapes = (tuple(out_shape), *(tuple(s) for s in in_shapes))
    if len(out_shape) <= 4:
        return shapes
    keep = [a for a, d in enumerate(out_shape) if d != 1] or [0]
    groups: list[list[int]] = []
    for a in keep:
        full = tuple(s[a] == out_shape[a] for s in in_shapes)
        if groups and tuple(s[groups[-1][-1]] == out_shape[groups[-1][-1]] for s in in_shapes) == full:
            groups[-1].append(a)
        else:
            groups.append([a])
    return tuple(tuple(math.prod(s[a] for a in g) for g in groups) for s in shapes)


def channel_pad_state(op, in_shapes, out_shape, params):
    return op.stride


def pad_view(shape) -> tuple:
    """The (N, C, H, W) a Pad's kernels see: an (N, C, L) map is (N, C, 1, L)."""
    shape = tuple(shape)
    return shape if len(shape) == 4 else (shape[0], shape[1], 1, shape[2])


def pad_axis(op, size: int, before: int, out_size: int) -> np.ndarray:
    """The input index each output index of one axis reads (int64, -1 for the constant), from the
    op's own map (``ops.Pad.source_index``), so both backends' kernels only gather."""
    return np.array([op.source_index(size, before, o) for o in range(out_size)], np.int64)


def pad_state(op, in_shapes, out_shape, params):
    """(row sources, column sources, value as float32) of a Pad on its (N, C, H, W) view."""
    _, _, h, w = pad_view(in_shapes[0])
    _, _, ho, wo = pad_view(out_shape)
    top, _, left, _ = op.pads  # an (N, C, L) map has top 0 (its rule): its one row reads row 0
    return pad_axis(op, h, top, ho), pad_axis(op, w, left, wo), np.float32(op.value)


def pad_inverse(sources: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """(start, outputs) of the inverse of one axis's map: the output indices that read input
    index i are outputs[start[i]:start[i + 1]] (ascending), for the backward's gather."""
    valid = np.nonzero(sources >= 0)[0]
    order = valid[np.argsort(sources[valid], kind="stable")]
    counts = np.bincount(sources[valid], minlength=size)
    start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return start, order.astype(np.int64)


def channel_select_state(op, in_shapes, out_shape, params):
    return np.asarray(op.channels, np.int64)


def affine_state(op, in_shapes, out_shape, params):
    """(gamma, beta) per channel of ``op.axis``."""
    return (np.ascontiguousarray(params["gamma"], np.float32),
            np.ascontiguousarray(params["beta"], np.float32))


def maxout_state(op, in_shapes, out_shape, params):
    return op.pieces


def align_corners_state(op, in_shapes, out_shape, params):
    """AffineGrid and GridSample."""
    return bool(op.align_corners)


def resize_axis(op, axis: int, in_size: int, out_size: int) -> tuple:
    """(lo, hi, frac) per output index along ``axis`` (0: H, 1: W) of a Resize: int64, int64,
    float64 arrays from the op's exact map (``ops.Resize.source_index``), so the kernels of both
    backends read the same indices and only blend. Nearest: hi == lo, frac 0."""
    rows = [op.source_index(axis, in_size, out_size, x) for x in range(out_size)]
    lo = np.array([r[0] for r in rows], np.int64)
    hi = np.array([r[1] for r in rows], np.int64)
    frac = np.array([float(r[2]) for r in rows], np.float64)
    return lo, hi, frac


def resize_state(op, in_shapes, out_shape, params):
    """(linear, row lo, row hi, row frac, column lo, column hi, column frac) of a Resize."""
    _, _, h, w = in_shapes[0]
    return (op.mode == "linear", *resize_axis(op, 0, h, out_shape[2]), *resize_axis(op, 1, w, out_shape[3]))
