"""The closed set of layer specs: each op's fields, shape rule and cost rule side by side.

An op is a small frozen dataclass. ``infer(inputs)`` maps input shapes (batch first) to the
output shape and raises ``ShapeError`` on impossible inputs; ``cost(inputs, output)`` returns a
``Cost`` (see archcost/cost.py for the counting convention); ``window(inputs)`` describes the
spatial window for the receptive-field pass (``None`` for pointwise ops).

Adding an op: write its class here, list it in ``OPS`` at the bottom, give it a kernel row per
backend, and test its rules in tests/test_ops.py.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import ClassVar, NamedTuple

from archcost.cost import BackwardCost, Cost, Saved
from archcost.errors import ShapeError, quote
from archcost.shapes import conv_out_size, pair, padding4, same_padding

Shape = tuple


class Window(NamedTuple):
    """A spatial window: what the receptive-field pass needs to know about an op."""

    kh: int
    kw: int
    sh: int
    sw: int
    pad_top: int
    pad_left: int
    dh: int = 1
    dw: int = 1


def _numel(shape: Shape) -> int:
    return math.prod(shape)


def _positive(op: str, name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ShapeError(f"{op}: {name} must be a positive int, got {value!r}")


def _one_input(op: "Op", inputs) -> Shape:
    if len(inputs) != 1:
        raise ShapeError(f"{op.kind} takes one input, got {len(inputs)}")
    return inputs[0]


def _map4(op: "Op", x: Shape) -> Shape:
    if len(x) != 4:
        raise ShapeError(f"{op.kind} needs an (N, C, H, W) input, got {_fmt(x)}")
    return x


def _fmt(shape: Shape) -> str:
    return "x".join(_dim(d) for d in shape)


def _dim(d) -> str:
    # str() of an int past 4,300 digits raises ValueError (Python's int_max_str_digits); a
    # Flatten of a 4,096-axis input of 1,024-bit sizes has millions of digits. The message
    # naming such a shape must still be a ShapeError, so the size is named by its bits.
    try:
        return str(d)
    except ValueError:
        return f"<{d.bit_length():,}-bit int>"


def _finite_number(v) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return False
    try:
        return math.isfinite(v)
    except OverflowError:  # an int past float's range (10**400) is not a usable float: no crash
        return False


# What each word of a field's annotation admits. bool is not an int here: `kernel: true` is a typo.
_FIELD_TYPES = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": _finite_number,
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "tuple": lambda v: isinstance(v, (tuple, list)),
    "None": lambda v: v is None,
}
# Tuples in an op are short (a kernel pair, four pads, a permutation): a longer one is a mistake
# or a bomb, refused before any rule walks it.
MAX_TUPLE_FIELD = 4096
# The most axes one input sample may have (batch not counted).
MAX_INPUT_RANK = 8
# The largest integer in a field, in bits (as a spec expression's MAX_EXPR_INT_BITS): past it a
# value is a bomb, and one past 4,300 digits cannot even be printed in an error message
# (str() raises ValueError), so it is refused here with its size.
MAX_FIELD_INT_BITS = 1024


def _too_big(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v.bit_length() > MAX_FIELD_INT_BITS


def check_field_types(op: "Op") -> None:
    """Check every field of ``op`` against its annotation (``int | tuple``, ``float | None``...),
    so a wrong type is one ShapeError naming the op and the field, never a TypeError later in a
    shape rule or a kernel. Floats must be finite; tuples must hold ints or floats; no int (alone
    or in a tuple) may have more than ``MAX_FIELD_INT_BITS`` bits."""
    name = type(op).__name__
    for f in dataclasses.fields(op):
        if not f.init:
            continue
        value = getattr(op, f.name)
        kinds = [k.strip() for k in str(f.type).split("|")]
        if any(k not in _FIELD_TYPES for k in kinds):
            continue
        if _too_big(value) or (
            isinstance(value, (tuple, list)) and len(value) <= MAX_TUPLE_FIELD and any(_too_big(v) for v in value)
        ):
            raise ShapeError(f"{name}: field {f.name!r} holds an integer of more than {MAX_FIELD_INT_BITS:,} bits")
        if not any(_FIELD_TYPES[k](value) for k in kinds):
            if isinstance(value, float) and not math.isfinite(value) and "float" in kinds:
                raise ShapeError(f"{name}: field {f.name!r} must be a finite number, got {value!r}")
            raise ShapeError(f"{name}: field {f.name!r} must be {' or '.join(kinds)}, got {quote(value)}")
        if isinstance(value, (tuple, list)) and not isinstance(value, str):
            if len(value) > MAX_TUPLE_FIELD:
                raise ShapeError(f"{name}: field {f.name!r} has {len(value):,} entries (at most {MAX_TUPLE_FIELD:,})")
            for v in value:
                if not (_FIELD_TYPES["int"](v) or _FIELD_TYPES["float"](v)):
                    raise ShapeError(f"{name}: field {f.name!r} must hold numbers, got {quote(value)}")


# The saving policies a training analysis can follow (see archcost/training.py and
# docs/training.md): ``archcost`` keeps what archcost's own training executor keeps;
# ``pytorch`` what PyTorch's autograd keeps for the equivalent torch.nn modules (the rules cite
# the ATen functions whose derivative formulas, tools/autograd/derivatives.yaml, read them).
POLICIES = ("archcost", "pytorch")


def _saved_for(policy: str, archcost: Saved, pytorch: Saved) -> Saved:
    return pytorch if policy == "pytorch" else archcost


def check_axis(op: "Op", axis: int, x: Shape) -> int:
    """``axis`` as a non-negative index of a non-batch axis of ``x``, or a ShapeError."""
    rank = len(x)
    if not -rank <= axis < rank or axis % rank == 0:
        raise ShapeError(f"{type(op).__name__}: axis {axis} is not a non-batch axis of a {rank}-d input {_fmt(x)}")
    return axis % rank


@dataclass(frozen=True)
class Op:
    """Base of all layer specs. Subclasses set ``kind`` and override the rules."""

    kind: ClassVar[str] = "op"
    # True where the lectures (and PyTorch) run the op in place: its output reuses its input's
    # buffer, so it adds no activation memory (when its input has no other consumer).
    inplace: ClassVar[bool] = False

    def __post_init__(self):
        check_field_types(self)

    def __init_subclass__(cls, **kwargs):
        # Every op's own __post_init__ runs after the field-type check, so its rules may assume
        # the types its annotations promise.
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("__post_init__")
        if own is not None and not getattr(own, "_checks_types", False):
            def __post_init__(self, _own=own):
                check_field_types(self)
                _own(self)

            __post_init__._checks_types = True
            cls.__post_init__ = __post_init__

    # True where the output is the input's storage seen at another shape (flatten, reshape):
    # in training too, no copy and nothing to compute. In-place ops that are not views
    # (activations, dropout) overwrite their input, which training allows only when no layer
    # keeps that input for its backward (archcost/training.py decides).
    view: ClassVar[bool] = False

    def infer(self, inputs: tuple[Shape, ...]) -> Shape:
        return _one_input(self, inputs)

    def cost(self, inputs: tuple[Shape, ...], output: Shape) -> Cost:
        return Cost()

    def backward(self, inputs: tuple[Shape, ...], output: Shape, grad_inputs: tuple[bool, ...],
                 grad_params: bool) -> BackwardCost:
        """The backward pass's cost. ``grad_inputs[i]``: input i needs a gradient;
        ``grad_params``: the layer's params are trained (not frozen)."""
        return BackwardCost()

    def train_forward_other(self, inputs: tuple[Shape, ...], output: Shape) -> int:
        """Ops the training-mode forward does beyond ``cost().other`` (BN's batch statistics,
        applying a dropout mask)."""
        return 0

    def saves(self, inputs: tuple[Shape, ...], output: Shape, policy: str, grad_inputs: tuple[bool, ...],
              grad_params: bool) -> Saved:
        """What the layer keeps for its backward under ``policy`` (one of ``POLICIES``), given
        which gradients are wanted. The default: nothing (shapes only)."""
        return Saved()

    def window(self, inputs: tuple[Shape, ...]) -> Window | None:
        return None

    def resample(self, inputs: tuple[Shape, ...]) -> tuple[Resample, Resample] | None:
        """A resize's map per axis (H, W) for the receptive-field pass (``Resize``); None else."""
        return None

    def label(self) -> str:
        return self.kind

    def layout(self, in_layouts: tuple[str, ...], output: Shape) -> str:
        """Axis letters of the output, e.g. "NCHW" or "NHWC": follows the first input when the rank
        is kept, else the default for the rank. Only reports read it (to print HxWxC)."""
        if in_layouts and len(in_layouts[0]) == len(output):
            return in_layouts[0]
        return default_layout(len(output))


def default_layout(rank: int) -> str:
    return {1: "N", 2: "NC", 3: "NCL", 4: "NCHW"}.get(rank, "N" + "C" + "".join(f"D{i}" for i in range(rank - 2)))


@dataclass(frozen=True)
class Input(Op):
    """The network input; ``shape`` is per sample, e.g. ``(3, 224, 224)``."""

    kind: ClassVar[str] = "input"
    shape: tuple = (3, 224, 224)

    def __post_init__(self):
        shape = tuple(self.shape)
        # CxHxW, F, or a few more axes from an ONNX file; a 4,096-axis input of 1,024-bit sizes
        # passes the field checks but takes seconds to multiply out in every rule.
        if not 1 <= len(shape) <= MAX_INPUT_RANK:
            raise ShapeError(f"Input: shape must have 1 to {MAX_INPUT_RANK} axes per sample, got {len(shape):,}")
        for d in shape:
            _positive("Input", "shape", d)
        object.__setattr__(self, "shape", shape)

    def batched(self, batch: int) -> Shape:
        return (batch, *self.shape)

    def infer(self, inputs):
        raise ShapeError("Input has no inputs; use batched()")

    def label(self) -> str:
        return "input"


@dataclass(frozen=True)
class Conv2d(Op):
    """2-D convolution over (N, C, H, W).

    ``kernel``/``stride``/``dilation``: int or (h, w). ``padding``: int, (h, w),
    (top, bottom, left, right), ``"same"`` (TensorFlow's rule) or ``"valid"``.
    ``groups``: 1 = dense, C_in = depthwise.
    """

    kind: ClassVar[str] = "conv"
    out_channels: int
    kernel: int | tuple = 3
    stride: int | tuple = 1
    padding: int | tuple | str = 0
    dilation: int | tuple = 1
    groups: int = 1
    bias: bool = True

    def __post_init__(self):
        _positive("Conv2d", "out_channels", self.out_channels)
        _positive("Conv2d", "groups", self.groups)
        for name in ("kernel", "stride", "dilation"):
            value = pair(getattr(self, name), name)
            _positive("Conv2d", name, min(value))
            object.__setattr__(self, name, value)
        object.__setattr__(self, "padding", padding4(self.padding))
        if self.out_channels % self.groups:
            raise ShapeError(f"Conv2d: out_channels {self.out_channels} is not divisible by groups {self.groups}")

    def pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) for an input of this size."""
        if self.padding == "same":
            return same_padding(height, self.kernel[0], self.stride[0], self.dilation[0]) + same_padding(
                width, self.kernel[1], self.stride[1], self.dilation[1]
            )
        return self.padding

    def infer(self, inputs):
        n, c, h, w = _map4(self, _one_input(self, inputs))
        if c % self.groups:
            raise ShapeError(f"input channels {c} are not divisible by groups {self.groups}")
        top, bottom, left, right = self.pads(h, w)
        oh = conv_out_size(h, self.kernel[0], self.stride[0], top, bottom, self.dilation[0])
        ow = conv_out_size(w, self.kernel[1], self.stride[1], left, right, self.dilation[1])
        return (n, self.out_channels, oh, ow)

    def cost(self, inputs, output):
        c_in = inputs[0][1]
        per_output = (c_in // self.groups) * self.kernel[0] * self.kernel[1]
        biases = self.out_channels if self.bias else 0
        return Cost(
            weights=self.out_channels * per_output,
            biases=biases,
            macs=_numel(output) * per_output,
            other=_numel(output) if self.bias else 0,
        )

    def backward(self, inputs, output, grad_inputs, grad_params):
        # Direct form: the data gradient meets each forward (input, weight) pair once, and so does
        # the weight gradient; the bias gradient sums grad_out over (N, H, W).
        macs = self.cost(inputs, output).macs
        return BackwardCost(
            data_macs=macs if grad_inputs[0] else 0,
            weight_macs=macs if grad_params else 0,
            other=_numel(output) if self.bias and grad_params else 0,
        )

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # archcost: the input only feeds the weight gradient (the data gradient reads the weight).
        # PyTorch: convolution's formula reads input and weight for either gradient, so autograd
        # keeps the input whenever the layer is in the graph (derivatives.yaml: convolution).
        return _saved_for(policy, Saved(inputs=(0,) if grad_params else ()), Saved(inputs=(0,)))

    def window(self, inputs):
        top, _, left, _ = self.pads(inputs[0][2], inputs[0][3])
        return Window(*self.kernel, *self.stride, top, left, *self.dilation)

    def label(self):
        kh, kw = self.kernel
        text = f"conv {kh}x{kw}/{self.stride[0] if self.stride[0] == self.stride[1] else self.stride}, {self.out_channels}"
        if self.groups > 1:
            text += f", g{self.groups}"
        return text


@dataclass(frozen=True)
class ConvTranspose2d(Op):
    """2-D transposed convolution over (N, C, H, W), as PyTorch's ``nn.ConvTranspose2d`` and
    ONNX ``ConvTranspose`` define it: the adjoint (data gradient) of the Conv2d with the same
    kernel, stride, padding, dilation and groups whose input has ``out_channels`` channels.

    Input pixel (ih, iw) times tap (ky, kx) lands on output (ih*sh - top + ky*dh,
    iw*sw - left + kx*dw); what lands outside the output (on the cropped padding) is dropped.
    ``kernel``/``stride``/``dilation``/``output_padding``: int or (h, w). ``padding``: int, (h, w)
    or (top, bottom, left, right), as Conv2d's ("same" is not taken: PyTorch refuses it for a
    transposed conv). ``output_padding`` adds rows and columns at the bottom and right (PyTorch:
    each must be less than the stride or the dilation of its axis). Output size per axis:
    ``(H - 1) * stride - top - bottom + dilation * (kernel - 1) + output_padding + 1``.
    Weight (C_in, out_channels / groups, kh, kw), as PyTorch and ONNX store it."""

    kind: ClassVar[str] = "convtranspose"
    out_channels: int
    kernel: int | tuple = 3
    stride: int | tuple = 1
    padding: int | tuple = 0
    output_padding: int | tuple = 0
    dilation: int | tuple = 1
    groups: int = 1
    bias: bool = True

    def __post_init__(self):
        _positive("ConvTranspose2d", "out_channels", self.out_channels)
        _positive("ConvTranspose2d", "groups", self.groups)
        for name in ("kernel", "stride", "dilation"):
            value = pair(getattr(self, name), f"ConvTranspose2d: {name}")
            _positive("ConvTranspose2d", name, min(value))
            object.__setattr__(self, name, value)
        try:
            pads = padding4(self.padding)
        except ShapeError as e:
            raise ShapeError(f"ConvTranspose2d: {e}") from None
        object.__setattr__(self, "padding", pads)
        extra = pair(self.output_padding, "ConvTranspose2d: output_padding")
        for axis, (p, s, d) in enumerate(zip(extra, self.stride, self.dilation)):
            if p < 0 or p >= max(s, d):
                raise ShapeError(f"ConvTranspose2d: output_padding {extra} must be >= 0 and less than the stride "
                                 f"{self.stride} or the dilation {self.dilation} of its axis ({'HW'[axis]}: {p})")
        object.__setattr__(self, "output_padding", extra)
        if self.out_channels % self.groups:
            raise ShapeError(f"ConvTranspose2d: out_channels {self.out_channels} is not divisible by groups "
                             f"{self.groups}")

    def pads(self, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, bottom, left, right): the same for every input size (what conv_geometry reads)."""
        return self.padding

    def infer(self, inputs):
        n, c, h, w = _map4(self, _one_input(self, inputs))
        if c % self.groups:
            raise ShapeError(f"ConvTranspose2d: input channels {c} are not divisible by groups {self.groups}")
        top, bottom, left, right = self.padding
        out = []
        for size, k, s, d, before, after, extra in zip(
            (h, w), self.kernel, self.stride, self.dilation, (top, left), (bottom, right), self.output_padding
        ):
            o = (size - 1) * s - before - after + d * (k - 1) + extra + 1
            if o < 1:
                raise ShapeError(f"ConvTranspose2d: padding {self.padding} crops the {h}x{w} input's "
                                 f"{(size - 1) * s + d * (k - 1) + extra + 1}-pixel output to {o}")
            out.append(o)
        return (n, self.out_channels, *out)

    def cost(self, inputs, output):
        # Every input element times every tap of its group's out_channels / groups kernels: the
        # MACs of the conv this is the transpose of (whose output is this op's input). Taps that
        # land on the cropped padding are counted, as Conv2d counts taps on its padding.
        c_in = inputs[0][1]
        per_input = (self.out_channels // self.groups) * self.kernel[0] * self.kernel[1]
        return Cost(
            weights=c_in * per_input,
            biases=self.out_channels if self.bias else 0,
            macs=_numel(inputs[0]) * per_input,
            other=_numel(output) if self.bias else 0,
        )

    # Conv2d's rules, read through this op's own cost: the data gradient is the conv forward of
    # grad_out and the weight gradient a conv weight gradient, each meeting every forward (input,
    # weight) pair once; PyTorch runs it through convolution (transposed=True), which keeps the
    # input for either gradient (derivatives.yaml: convolution).
    backward = Conv2d.backward
    saves = Conv2d.saves

    def resample(self, inputs):
        return tuple(_transposed_resample(k, s, d, before)
                     for k, s, d, before in zip(self.kernel, self.stride, self.dilation, self.padding[::2]))

    def label(self):
        kh, kw = self.kernel
        stride = self.stride[0] if self.stride[0] == self.stride[1] else self.stride
        text = f"convT {kh}x{kw}/{stride}, {self.out_channels}"
        if self.groups > 1:
            text += f", g{self.groups}"
        return text


def _transposed_resample(k: int, s: int, d: int, before: int) -> Resample:
    """A transposed conv along one axis as a resample, in closed form (a kernel or stride of
    10^30 is a valid field, so nothing here loops over taps or phases).

    Output o reads input i through tap t when o + before - i*s = t*d, 0 <= t < k (the input's
    bounds ignored, as the receptive-field pass ignores padding). With g = gcd(s, d), the taps
    reaching one output are t0, t0 + s/g, ... (i stepping down by d/g), so an output reads
    1 + (n - 1) * d/g units apart at most, n = ceil(k / (s/g)) taps: that is ``taps``, met by the
    phase with t0 = 0. ``ratio`` 1/s (output o + s reads what o reads, one input unit on).
    ``first`` is placed so that first + (taps - 1) / 2 is the centre of output 0's span, exact
    (a half unit where that span is shorter than taps by an odd count). An output 0 that no tap
    reaches takes the centre of the continuous map, (before - (k - 1) * d / 2) / s."""
    g = math.gcd(s, d)
    step = s // g  # taps between two that reach the same output
    taps = 1 + (-(-k // step) - 1) * (d // g)
    centre = (before - Fraction((k - 1) * d, 2)) / s
    if before % g == 0:
        # the first tap t0 with t0 * d = before (mod s): t0 = (before/g) * (d/g)^-1 mod s/g
        t0 = (before // g) * pow(d // g, -1, step) % step if step > 1 else 0
        if t0 < k:
            last = t0 + (k - 1 - t0) // step * step
            centre = Fraction((before - t0 * d) // s + (before - last * d) // s, 2)
    return Resample(taps, Fraction(1, s), centre - Fraction(taps - 1, 2))


@dataclass(frozen=True)
class _Pool2d(Op):
    kernel: int | tuple = 2
    stride: int | tuple | None = None  # None: equal to the kernel, as in PyTorch
    padding: int | tuple = 0
    ceil_mode: bool = False

    def __post_init__(self):
        name = type(self).__name__
        kernel = pair(self.kernel, "kernel")
        stride = kernel if self.stride is None else pair(self.stride, "stride")
        _positive(name, "kernel", min(kernel))
        _positive(name, "stride", min(stride))
        pads = padding4(self.padding)
        if pads == "same":
            raise ShapeError(f"{name}: padding 'same' is not supported for pooling; give explicit padding")
        # PyTorch's rule: a window may never lie wholly in the padding.
        if max(pads[0], pads[1]) * 2 > kernel[0] or max(pads[2], pads[3]) * 2 > kernel[1]:
            raise ShapeError(f"{name}: padding {self.padding!r} exceeds half the kernel {kernel}")
        object.__setattr__(self, "kernel", kernel)
        object.__setattr__(self, "stride", stride)
        object.__setattr__(self, "padding", pads)

    def infer(self, inputs):
        n, c, h, w = _map4(self, _one_input(self, inputs))
        top, bottom, left, right = self.padding
        oh = conv_out_size(h, self.kernel[0], self.stride[0], top, bottom, 1, self.ceil_mode)
        ow = conv_out_size(w, self.kernel[1], self.stride[1], left, right, 1, self.ceil_mode)
        return (n, c, oh, ow)

    def window(self, inputs):
        return Window(*self.kernel, *self.stride, self.padding[0], self.padding[2])

    def label(self):
        kh, kw = self.kernel
        return f"{self.kind} {kh}x{kw}/{self.stride[0] if self.stride[0] == self.stride[1] else self.stride}"


@dataclass(frozen=True)
class MaxPool2d(_Pool2d):
    """Max pooling: kh*kw - 1 comparisons per output element."""

    kind: ClassVar[str] = "maxpool"

    def cost(self, inputs, output):
        return Cost(other=_numel(output) * (self.kernel[0] * self.kernel[1] - 1))

    def backward(self, inputs, output, grad_inputs, grad_params):
        return BackwardCost(other=_numel(output) if grad_inputs[0] else 0)  # one scatter-add per output

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # archcost: the argmax as an int32 index into the input plane. PyTorch:
        # max_pool2d_with_indices keeps its input and int64 indices.
        return _saved_for(policy, Saved(extras=(("indices", output, "int32"),)),
                          Saved(inputs=(0,), extras=(("indices", output, "int64"),)))


@dataclass(frozen=True)
class AvgPool2d(_Pool2d):
    """Average pooling: kh*kw - 1 adds and one divide per output element."""

    kind: ClassVar[str] = "avgpool"
    count_include_pad: bool = True

    def cost(self, inputs, output):
        return Cost(other=_numel(output) * self.kernel[0] * self.kernel[1])

    def backward(self, inputs, output, grad_inputs, grad_params):
        # Per output: one divide, then one add into each of the kh*kw inputs of its window.
        return BackwardCost(other=_numel(output) * (self.kernel[0] * self.kernel[1] + 1) if grad_inputs[0] else 0)

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # PyTorch's avg_pool2d_backward reads its input (self); archcost needs only the shape.
        return _saved_for(policy, Saved(), Saved(inputs=(0,)))


@dataclass(frozen=True)
class GlobalAvgPool(Op):
    """Mean over H and W: (N, C, H, W) -> (N, C, 1, 1); H*W - 1 adds and a divide per output."""

    kind: ClassVar[str] = "gap"

    def infer(self, inputs):
        n, c, _, _ = _map4(self, _one_input(self, inputs))
        return (n, c, 1, 1)

    def cost(self, inputs, output):
        return Cost(other=_numel(inputs[0]))

    def backward(self, inputs, output, grad_inputs, grad_params):
        # A divide per output, an add into each input element.
        return BackwardCost(other=_numel(inputs[0]) + _numel(output) if grad_inputs[0] else 0)

    # Nothing kept under either policy: PyTorch's adaptive_avg_pool2d to 1x1 is a mean over
    # (H, W), whose backward reads only the input's sizes.

    def window(self, inputs):
        _, _, h, w = inputs[0]
        return Window(h, w, 1, 1, 0, 0)


@dataclass(frozen=True)
class Linear(Op):
    """Fully connected layer on the last axis.

    On (N, F) it is the classic FC layer; on a channels-last map (N, H, W, C) it applies per
    position, so MACs = N*H*W * C_in * C_out.
    """

    kind: ClassVar[str] = "fc"
    out_features: int
    bias: bool = True

    def __post_init__(self):
        _positive("Linear", "out_features", self.out_features)

    def infer(self, inputs):
        x = _one_input(self, inputs)
        if len(x) < 2:
            raise ShapeError(f"Linear needs at least (N, F), got {_fmt(x)}")
        return (*x[:-1], self.out_features)

    def cost(self, inputs, output):
        in_features = inputs[0][-1]
        return Cost(
            weights=in_features * self.out_features,
            biases=self.out_features if self.bias else 0,
            macs=_numel(output) * in_features,
            other=_numel(output) if self.bias else 0,
        )

    def backward(self, inputs, output, grad_inputs, grad_params):
        macs = self.cost(inputs, output).macs
        return BackwardCost(
            data_macs=macs if grad_inputs[0] else 0,
            weight_macs=macs if grad_params else 0,
            other=_numel(output) if self.bias and grad_params else 0,
        )

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # PyTorch: addmm/matmul keep mat1 (the input) for the weight gradient and the weight
        # for the data gradient (derivatives.yaml: addmm, mm).
        return _saved_for(policy, Saved(inputs=(0,) if grad_params else ()),
                          Saved(inputs=(0,) if grad_params else ()))

    def label(self):
        return f"fc {self.out_features}"


@dataclass(frozen=True)
class Flatten(Op):
    """(N, ...) -> (N, prod(...)). A view: in place, no memory. Its receptive field is the whole map."""

    kind: ClassVar[str] = "flatten"
    inplace: ClassVar[bool] = True
    view: ClassVar[bool] = True

    def infer(self, inputs):
        x = _one_input(self, inputs)
        return (x[0], _numel(x[1:]))

    def window(self, inputs):
        x = inputs[0]
        if len(x) == 4:
            return Window(x[2], x[3], 1, 1, 0, 0)
        return None


ACTIVATIONS = ("relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh", "gelu", "silu", "hardswish", "hardsigmoid")

# Ops per element of each activation's derivative times the incoming gradient: relu-like ones
# select (1); elu: (y + alpha) * dy (2); sigmoid: y * (1 - y) * dy (3); tanh: (1 - y*y) * dy (3);
# gelu: (Phi(x) + x * phi(x)) * dy with Phi from erf and phi from exp (8); silu: s = sigmoid(x)
# (3), s * (1 + x * (1 - s)) * dy (5); hardswish: compare, x/3 + 1/2, * dy (3); hardsigmoid:
# compare, * dy/6 (2).
ACTIVATION_BACKWARD_OPS = {"relu": 1, "relu6": 1, "leaky_relu": 1, "elu": 2, "sigmoid": 3, "tanh": 3,
                           "gelu": 8, "silu": 8, "hardswish": 3, "hardsigmoid": 2}
# The activations whose derivative follows from the output alone, so the output is what is kept
# (a leaky ReLU only when its slope keeps the sign: then y > 0 exactly where x > 0).
_FROM_OUTPUT = ("relu", "relu6", "sigmoid", "tanh", "elu")


@dataclass(frozen=True)
class Activation(Op):
    """Elementwise nonlinearity, in place (no extra memory) as in the lectures; 1 op per element."""

    kind: ClassVar[str] = "act"
    inplace: ClassVar[bool] = True
    fn: str = "relu"
    slope: float = 0.01  # leaky_relu's negative slope, elu's alpha

    def __post_init__(self):
        if self.fn not in ACTIVATIONS:
            raise ShapeError(f"Activation: unknown fn {self.fn!r}; known: {', '.join(ACTIVATIONS)}")

    def cost(self, inputs, output):
        return Cost(other=_numel(output))

    def backward(self, inputs, output, grad_inputs, grad_params):
        return BackwardCost(other=ACTIVATION_BACKWARD_OPS[self.fn] * _numel(output) if grad_inputs[0] else 0)

    def keeps_output(self) -> bool:
        return self.fn in _FROM_OUTPUT or (self.fn == "leaky_relu" and self.slope >= 0)

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # PyTorch keeps the result for relu, sigmoid, tanh and, run in place (as torchvision
        # builds them), hardtanh (relu6), leaky_relu and elu; self for gelu, silu, hardswish,
        # hardsigmoid (derivatives.yaml). archcost keeps the same tensor: it runs an activation
        # in place only when it keeps its output, as PyTorch allows.
        if not grad_inputs[0]:
            return Saved()
        return Saved(output=True) if self.keeps_output() else Saved(inputs=(0,))

    def label(self):
        return self.fn


def ReLU() -> Activation:
    return Activation("relu")


@dataclass(frozen=True)
class BatchNorm(Op):
    """Inference-mode batch norm over axis 1: gamma (weights) and beta (biases) per channel,
    running mean and variance as buffers (not params); 2 ops per element (scale and shift)."""

    kind: ClassVar[str] = "bn"
    eps: float = 1e-5
    affine: bool = True

    def infer(self, inputs):
        x = _one_input(self, inputs)
        if len(x) < 2:
            raise ShapeError(f"BatchNorm needs (N, C, ...), got {_fmt(x)}")
        return x

    def cost(self, inputs, output):
        c = output[1]
        return Cost(
            weights=c if self.affine else 0, biases=c if self.affine else 0, buffers=2 * c, other=2 * _numel(output)
        )

    def train_forward_other(self, inputs, output):
        # Batch statistics before the per-channel scale and shift: accumulate x, subtract the
        # mean, square, accumulate: 4 per element.
        return 4 * _numel(output)

    def backward(self, inputs, output, grad_inputs, grad_params):
        # x_hat (subtract, multiply), dy * x_hat, and the two sums that are dbeta and dgamma:
        # 5 per element; the data gradient k * (dy - mean(dy) - x_hat * mean(dy * x_hat)) needs
        # both sums and 4 more per element.
        n = _numel(output)
        if grad_inputs[0]:
            return BackwardCost(other=9 * n)
        return BackwardCost(other=5 * n if grad_params and self.affine else 0)

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # Both: the input and the batch mean and inverse standard deviation per channel
        # (PyTorch: native_batch_norm's save_mean and save_invstd, float32).
        if not (grad_inputs[0] or (grad_params and self.affine)):
            return Saved()
        c = (output[1],)
        return Saved(inputs=(0,), extras=(("mean", c, "float32"), ("invstd", c, "float32")))


@dataclass(frozen=True)
class LayerNorm(Op):
    """Normalisation over one axis (``-1``: channels-last; ``1``: channels-first maps).
    gamma and beta per channel; 5 ops per element (mean, centre, variance, normalise, affine)."""

    kind: ClassVar[str] = "ln"
    axis: int = -1
    eps: float = 1e-6

    def infer(self, inputs):
        x = _one_input(self, inputs)
        if not -len(x) <= self.axis < len(x) or self.axis in (0, -len(x)):
            raise ShapeError(f"LayerNorm axis {self.axis} is not a non-batch axis of {_fmt(x)}")
        return x

    def cost(self, inputs, output):
        c = output[self.axis]
        return Cost(weights=c, biases=c, other=5 * _numel(output))

    def backward(self, inputs, output, grad_inputs, grad_params):
        n = _numel(output)  # as BatchNorm, over the normalised axis
        if grad_inputs[0]:
            return BackwardCost(other=9 * n)
        return BackwardCost(other=5 * n if grad_params else 0)

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # Both: the input and a mean and inverse standard deviation per normalised vector
        # (PyTorch: native_layer_norm's mean and rstd, float32).
        if not (grad_inputs[0] or grad_params):
            return Saved()
        stats = tuple(d for i, d in enumerate(output) if i != self.axis % len(output))
        return Saved(inputs=(0,), extras=(("mean", stats, "float32"), ("invstd", stats, "float32")))


@dataclass(frozen=True)
class GroupNorm(Op):
    """Group normalisation (PyTorch nn.GroupNorm, ONNX GroupNormalization-21) of an input
    (N, C, *spatial), rank >= 2, channels on axis 1: per sample, the C channels are split into
    ``groups`` groups of C / groups consecutive channels, each normalised over its channels and
    all spatial positions together (biased variance, ``eps`` inside the square root); then, when
    ``affine``, scaled and shifted per CHANNEL (gamma and beta, C each). ``groups == C`` is
    InstanceNorm; ``groups == 1`` is a LayerNorm over (C, *spatial).

    Cost, as LayerNorm's: per element 1 op each for the mean's sum, centring, the variance's
    square-and-sum, normalising, and (when affine) the scale-and-shift: 5 per element (4 without
    affine); the per-group divisions and square roots are not counted. Receptive field: a
    pointwise op (window None), as LayerNorm and BatchNorm, although its statistics mix every
    spatial position of a sample, as BN's mix the batch: the pass follows windows, not statistics."""

    kind: ClassVar[str] = "gn"
    groups: int
    eps: float = 1e-5
    affine: bool = True

    def __post_init__(self):
        _positive("GroupNorm", "groups", self.groups)

    def infer(self, inputs):
        x = _one_input(self, inputs)
        if len(x) < 2:
            raise ShapeError(f"GroupNorm needs (N, C, ...), got {_fmt(x)}")
        if x[1] % self.groups:
            raise ShapeError(f"GroupNorm: groups {self.groups} does not divide the {x[1]} channels of {_fmt(x)}")
        return x

    def cost(self, inputs, output):
        c = output[1] if self.affine else 0
        return Cost(weights=c, biases=c, other=(5 if self.affine else 4) * _numel(output))

    def backward(self, inputs, output, grad_inputs, grad_params):
        # As LayerNorm's (and BN's): x_hat, dy * x_hat and the two sums (dgamma, dbeta) are 5 per
        # element; the data gradient rstd * (g - mean(g) - x_hat * mean(g x_hat)) 4 more.
        n = _numel(output)
        if grad_inputs[0]:
            return BackwardCost(other=9 * n)
        return BackwardCost(other=5 * n if grad_params and self.affine else 0)

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # Both policies: the input and a mean and inverse standard deviation per (sample, group)
        # (PyTorch: native_group_norm's mean and rstd, float32, (N, groups)).
        if not (grad_inputs[0] or (grad_params and self.affine)):
            return Saved()
        stats = (output[0], self.groups)
        return Saved(inputs=(0,), extras=(("mean", stats, "float32"), ("invstd", stats, "float32")))


@dataclass(frozen=True)
class LRN(Op):
    """Local response normalisation across channels (AlexNet):
    ``b = a / (k + alpha/size * sum_{size channels} a^2) ** beta``.
    Per element: ``size`` squares and ``size - 1`` adds, then scale, add k, power, divide:
    2*size + 3 ops."""

    kind: ClassVar[str] = "lrn"
    size: int = 5
    alpha: float = 1e-4
    beta: float = 0.75
    k: float = 2.0

    def __post_init__(self):
        _positive("LRN", "size", self.size)

    def infer(self, inputs):
        return _map4(self, _one_input(self, inputs))

    def cost(self, inputs, output):
        return Cost(other=_numel(output) * (2 * self.size + 3))

    def backward(self, inputs, output, grad_inputs, grad_params):
        # da = dy * s^-beta - (2 alpha beta / size) * a * sum_window(dy * b / s): dy * b / s (2),
        # the window sum (size), the power, two products, the constant and the subtraction (5).
        return BackwardCost(other=_numel(output) * (self.size + 7) if grad_inputs[0] else 0)

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # archcost: the input and the scale s = k + alpha/size * sum of squares (as Caffe keeps
        # it). PyTorch's LocalResponseNorm is a chain of functions; see docs/training.md.
        if not grad_inputs[0]:
            return Saved()
        return _saved_for(policy, Saved(inputs=(0,), extras=(("scale", inputs[0], "float32"),)),
                          _torch_lrn_saves(self, inputs[0]))


@dataclass(frozen=True)
class Dropout(Op):
    """Identity at inference; in place, no memory, no ops."""

    kind: ClassVar[str] = "dropout"
    inplace: ClassVar[bool] = True
    p: float = 0.5

    def __post_init__(self):
        if not 0.0 <= self.p < 1.0:
            raise ShapeError(f"Dropout: p must be in [0, 1), got {self.p!r}")

    def train_forward_other(self, inputs, output):
        return _numel(output) if self.p else 0  # x * mask / (1 - p), the scale folded into the mask

    def backward(self, inputs, output, grad_inputs, grad_params):
        return BackwardCost(other=_numel(output) if grad_inputs[0] and self.p else 0)

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # archcost: a uint8 mask. PyTorch on the CPU (measured, torch 2.14.1): dropout is
        # input * noise with a float32 noise tensor (0 or 1/(1-p)), and mul keeps the noise: 4 bytes
        # per element. (On CUDA, native_dropout keeps a 1-byte bool mask instead.)
        if not grad_inputs[0] or not self.p:
            return Saved()
        return _saved_for(policy, Saved(extras=(("mask", output, "uint8"),)),
                          Saved(extras=(("noise", output, "float32"),)))


@dataclass(frozen=True)
class Concat(Op):
    """Concatenate along ``axis`` (channels by default); the other dims must agree."""

    kind: ClassVar[str] = "concat"
    axis: int = 1

    def infer(self, inputs):
        if len(inputs) < 1:
            raise ShapeError("Concat needs at least one input")
        first = inputs[0]
        # Concatenating along the batch axis would change the batch: no network does that.
        axis = check_axis(self, self.axis, first)
        for x in inputs:
            if len(x) != len(first) or any(a != b for i, (a, b) in enumerate(zip(x, first)) if i != axis):
                what = "spatial size" if axis == 1 and len(first) == 4 else "shape"
                raise ShapeError(
                    f"Concat needs equal {what} apart from axis {self.axis}; received {', '.join(_fmt(s) for s in inputs)}"
                )
        return tuple(sum(x[axis] for x in inputs) if i == axis else d for i, d in enumerate(first))


def _same_shapes(op: Op, inputs) -> Shape:
    if len(inputs) < 2:
        raise ShapeError(f"{op.kind} needs at least two inputs, got {len(inputs)}")
    first = inputs[0]
    for x in inputs[1:]:
        if x != first:
            if len(x) == len(first) and len(x) > 1 and x[1] != first[1]:
                problem = "channel mismatch"
            else:
                problem = "shape mismatch"
            raise ShapeError(f"{problem}: inputs are {', '.join(_fmt(s) for s in inputs)}")
    return first


def _broadcastable(a: Shape, b: Shape) -> bool:
    """numpy's rule on equal ranks: each axis equal, or 1 on one side."""
    return len(a) == len(b) and all(x == y or 1 in (x, y) for x, y in zip(a, b))


def _broadcast_grad_other(inputs, output, grad_inputs, negated=()) -> int:
    """The elementary ops of the input gradients of a broadcasting sum or difference: dy as it is
    for a full-size input (no arithmetic), the sum over the axes it was broadcast along for a
    smaller one (one add per output element, as Mul counts it), and a negation of dy (one per
    output element) for each input in ``negated``."""
    other = 0
    for k, (x, wanted) in enumerate(zip(inputs, grad_inputs)):
        if wanted:
            other += _numel(output) * ((tuple(x) != tuple(output)) + (k in negated))
    return other


@dataclass(frozen=True)
class Add(Op):
    """Elementwise sum: k inputs of equal shape (residual add; k - 1 adds per element), or two
    inputs that broadcast numpy-style on equal ranks, as Mul's do (a global-context term
    (N, C, 1, 1) or a per-position map (N, 1, H, W) added to (N, C, H, W): one add per output
    element). Broadcasting over more than two inputs is refused. The gradient of a broadcast
    input sums dy over the axes it was stretched along; nothing is kept for the backward."""

    kind: ClassVar[str] = "add"

    def infer(self, inputs):
        if len(inputs) == 2 and inputs[0] != inputs[1] and _broadcastable(*inputs):
            return tuple(max(x, y) for x, y in zip(*inputs))
        if len(inputs) > 2 and any(x != inputs[0] for x in inputs) and all(
                _broadcastable(inputs[0], x) for x in inputs):
            raise ShapeError(f"add broadcasts two inputs only; its {len(inputs)} inputs must have equal shapes, "
                             f"received {', '.join(_fmt(s) for s in inputs)}")
        return _same_shapes(self, inputs)

    def cost(self, inputs, output):
        return Cost(other=_numel(output) * (len(inputs) - 1))

    def backward(self, inputs, output, grad_inputs, grad_params):
        return BackwardCost(other=_broadcast_grad_other(inputs, output, grad_inputs))


@dataclass(frozen=True)
class Sub(Op):
    """Elementwise difference ``a - b`` of two activations that broadcast numpy-style on equal
    ranks (ONNX Sub; an expanded LayerNorm's x - mean): one subtraction per output element. The
    backward gives ``a`` dy and ``b`` -dy (one negation per output element), each summed over the
    axes its input was broadcast along; nothing is kept."""

    kind: ClassVar[str] = "sub"

    def infer(self, inputs):
        if len(inputs) != 2:
            raise ShapeError(f"Sub takes two inputs, got {len(inputs)}")
        a, b = inputs
        if not _broadcastable(a, b):
            raise ShapeError(f"Sub cannot broadcast {_fmt(a)} with {_fmt(b)}")
        return tuple(max(x, y) for x, y in zip(a, b))

    def cost(self, inputs, output):
        return Cost(other=_numel(output))

    def backward(self, inputs, output, grad_inputs, grad_params):
        return BackwardCost(other=_broadcast_grad_other(inputs, output, grad_inputs, negated=(1,)))


@dataclass(frozen=True)
class Mean(Op):
    """Elementwise mean of equal shapes (FractalNet's join); k-1 adds and a divide per element."""

    kind: ClassVar[str] = "mean"

    def infer(self, inputs):
        return _same_shapes(self, inputs)

    def cost(self, inputs, output):
        return Cost(other=_numel(output) * len(inputs))

    def backward(self, inputs, output, grad_inputs, grad_params):
        return BackwardCost(other=_numel(output) if any(grad_inputs) else 0)  # dy / k, shared by all inputs


@dataclass(frozen=True)
class ReduceSum(Op):
    """Sum over one ``axis`` (ONNX ReduceSum): SKNet's and ResNeSt's split attention sum their k
    branches, stacked as (N, k, C, H, W), over axis 1. k - 1 adds per output element;
    ``keepdims`` keeps the axis at size 1. Its backward copies dy to every summand: no arithmetic.

    The spatial axes of a map (H, W: the last two of 4 or more axes, the last of 3) are refused:
    each output would see a whole row or column of its input, which the receptive-field pass,
    built on windows, would not say. A mean over H and W is GlobalAvgPool."""

    kind: ClassVar[str] = "reducesum"
    axis: int = 1
    keepdims: bool = False

    def infer(self, inputs):
        x = _one_input(self, inputs)
        axis = check_axis(self, self.axis, x)
        spatial = 2 if len(x) >= 4 else 1 if len(x) == 3 else 0
        if axis >= len(x) - spatial:
            raise ShapeError(f"ReduceSum: axis {self.axis} of {_fmt(x)} is a spatial axis; archcost sums only over "
                             f"channel-like axes (GlobalAvgPool averages a map)")
        return x[:axis] + ((1,) if self.keepdims else ()) + x[axis + 1:]

    def cost(self, inputs, output):
        return Cost(other=_numel(output) * (inputs[0][check_axis(self, self.axis, inputs[0])] - 1))


@dataclass(frozen=True)
class Mul(Op):
    """Elementwise product with numpy broadcasting (e.g. SE gating: (N,C,H,W) * (N,C,1,1))."""

    kind: ClassVar[str] = "mul"

    def infer(self, inputs):
        if len(inputs) != 2:
            raise ShapeError(f"Mul takes two inputs, got {len(inputs)}")
        a, b = inputs
        if not _broadcastable(a, b):
            raise ShapeError(f"Mul cannot broadcast {_fmt(a)} with {_fmt(b)}")
        return tuple(max(x, y) for x, y in zip(a, b))

    def cost(self, inputs, output):
        return Cost(other=_numel(output))

    def backward(self, inputs, output, grad_inputs, grad_params):
        # Per input wanted: dy * other (one per output element), plus the sum over broadcast
        # axes when that input is smaller than the output (one add per output element).
        other = 0
        for x, wanted in zip(inputs, grad_inputs):
            if wanted:
                other += _numel(output) * (1 if tuple(x) == tuple(output) else 2)
        return BackwardCost(other=other)

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # Each input's gradient reads the other input (PyTorch: mul keeps self for other's
        # gradient and other for self's).
        keep = tuple(1 - i for i, wanted in enumerate(grad_inputs) if wanted)
        return Saved(inputs=tuple(sorted(keep)))


@dataclass(frozen=True)
class Scale(Op):
    """Multiply by a constant ``factor`` (stochastic depth at test time), or, with
    ``factor=None``, by a learned per-channel gamma on ``axis`` (ConvNeXt's layer scale)."""

    kind: ClassVar[str] = "scale"
    factor: float | None = None
    axis: int = 1

    def infer(self, inputs):
        x = _one_input(self, inputs)
        check_axis(self, self.axis, x)
        return x

    def cost(self, inputs, output):
        weights = output[self.axis] if self.factor is None else 0
        return Cost(weights=weights, other=_numel(output))

    def backward(self, inputs, output, grad_inputs, grad_params):
        n = _numel(output)
        learned = self.factor is None and grad_params
        return BackwardCost(other=(n if grad_inputs[0] else 0) + (2 * n if learned else 0))

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # A learned gamma's gradient sums dy * x: the input is kept (PyTorch: mul keeps self).
        return Saved(inputs=(0,) if self.factor is None and grad_params else ())


@dataclass(frozen=True)
class Softmax(Op):
    """Softmax over ``axis``: exp, sum and divide, 3 ops per element."""

    kind: ClassVar[str] = "softmax"
    axis: int = -1

    def infer(self, inputs):
        x = _one_input(self, inputs)
        check_axis(self, self.axis, x)
        return x

    def cost(self, inputs, output):
        return Cost(other=3 * _numel(output))

    def backward(self, inputs, output, grad_inputs, grad_params):
        # dx = y * (dy - sum(dy * y)): product, sum, subtract, product.
        return BackwardCost(other=4 * _numel(output) if grad_inputs[0] else 0)

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        return Saved(output=bool(grad_inputs[0]))  # PyTorch: _softmax keeps its result


@dataclass(frozen=True)
class ChannelPad(Op):
    """ResNet's shortcut option A: subsample by ``stride`` and zero-pad channels up to
    ``out_channels`` (no params, no arithmetic)."""

    kind: ClassVar[str] = "chpad"
    out_channels: int
    stride: int = 1

    def __post_init__(self):
        _positive("ChannelPad", "out_channels", self.out_channels)
        _positive("ChannelPad", "stride", self.stride)

    def infer(self, inputs):
        n, c, h, w = _map4(self, _one_input(self, inputs))
        if c > self.out_channels:
            raise ShapeError(f"ChannelPad cannot shrink {c} channels to {self.out_channels}")
        return (n, self.out_channels, -(-h // self.stride), -(-w // self.stride))

    def window(self, inputs):
        return Window(1, 1, self.stride, self.stride, 0, 0)


PAD_MODES = ("constant", "reflect", "edge", "wrap")
_FLOAT32_MAX = 3.4028234663852886e38  # numpy.finfo(numpy.float32).max


@dataclass(frozen=True)
class Pad(Op):
    """Spatial padding of an (N, C, H, W) map, or of an (N, C, L) map along L, as ONNX ``Pad``
    (opsets 2 to 21) and PyTorch's ``F.pad`` / ``nn.ZeroPad2d``, ``ConstantPad2d``,
    ``ReflectionPad2d``, ``ReplicationPad2d`` and ``CircularPad2d`` define it.

    ``pads``: int p (p on every side), (h, w) (h rows above and below, w columns left and right)
    or (top, bottom, left, right); an (N, C, L) map takes (0, 0, left, right). Per axis of size n
    padded by ``before`` and ``after``, output index o reads input index j = o - before when
    0 <= j < n, and otherwise, by ``mode``:

    - "constant": ``value`` (the only mode that takes one). Negative amounts crop that side
      (ONNX and PyTorch allow it); the output must keep at least one row and column.
    - "reflect": the mirror about the border element, not repeating it (numpy's and ONNX's
      "reflect", PyTorch's ReflectionPad): j = -j before the start, 2 (n - 1) - j past the end.
      Each amount must be less than n, as PyTorch and onnxruntime require (numpy, onnx.reference,
      reflects again past that; onnxruntime refuses: no one answer, so refused here).
    - "edge": the nearest border element (PyTorch's ReplicationPad): j clamped to [0, n - 1].
    - "wrap": the input repeated (PyTorch's CircularPad): j mod n, any amount (numpy, onnx.reference
      and onnxruntime agree past n).

    Negative amounts with "reflect", "edge" or "wrap" are refused: onnx.reference (numpy.pad)
    refuses them, and onnxruntime crops before it pads, so what a crop on one side leaves for the
    other side's border to copy is not settled.

    Cost: a copy, no arithmetic, no params (as ChannelPad and Permute). Backward: constant mode
    crops the output gradient (no arithmetic); in the other modes an input element that is copied
    k times gets the sum of k output gradients, k - 1 adds: over the map, one add per output
    element beyond the input's (every input element is read at least once: the amounts are not
    negative). Saving: archcost keeps nothing (the index maps come from the shapes); PyTorch's
    reflection_pad2d and replication_pad2d backward read ``self`` (derivatives.yaml), so autograd
    keeps the input; constant_pad_nd's reads only the pads, and circular padding is a composite
    of narrow and cat (shapes only).

    Receptive field: a window of 1 x 1, stride 1, padded by (top, left): each output unit reads
    one input unit, j = o - before, as a zero-padded 1 x 1 window does. Near the borders, where
    reflect, edge and wrap copy a unit from elsewhere in the map (a wrap from the far side), the
    field's centre and size are those of the unit at j, as the pass places every padded window
    (it ignores padding); the unit actually read lies within the map, its field is 1 x 1 too."""

    kind: ClassVar[str] = "pad"
    pads: int | tuple = 0
    mode: str = "constant"
    value: float = 0.0

    def __post_init__(self):
        pads = self.pads
        if isinstance(pads, int):
            pads = (pads,) * 4
        elif len(pads) == 2:
            pads = (pads[0], pads[0], pads[1], pads[1])
        if len(pads) != 4 or not all(isinstance(p, int) and not isinstance(p, bool) for p in pads):
            raise ShapeError(f"Pad: pads must be an int, (h, w) or (top, bottom, left, right) ints, got "
                             f"{quote(self.pads)}")
        object.__setattr__(self, "pads", tuple(int(p) for p in pads))
        if self.mode not in PAD_MODES:
            raise ShapeError(f"Pad: mode must be one of {', '.join(map(repr, PAD_MODES))}, got {quote(self.mode)}")
        if self.mode != "constant":
            if self.value != 0:
                raise ShapeError(f"Pad: value {self.value!r} is read only in mode 'constant', not {self.mode!r}")
            if min(self.pads) < 0:
                raise ShapeError(f"Pad: pads {self.pads} crop (negative) in mode {self.mode!r}; only mode 'constant' "
                                 "takes negative pads")
        if abs(self.value) > _FLOAT32_MAX:
            raise ShapeError(f"Pad: value {self.value!r} is past float32's range (the kernels pad float32 maps)")
        object.__setattr__(self, "value", float(self.value))

    def infer(self, inputs):
        x = _one_input(self, inputs)
        top, bottom, left, right = self.pads
        if len(x) == 3:
            if top or bottom:
                raise ShapeError(f"Pad: pads {self.pads} pad rows (top, bottom) of the (N, C, L) input {_fmt(x)}, "
                                 "which has none")
            sizes = (x[2],)
        elif len(x) == 4:
            sizes = (x[2], x[3])
        else:
            raise ShapeError(f"Pad needs an (N, C, H, W) or (N, C, L) input, got {_fmt(x)}")
        amounts = (((top, bottom),) if len(x) == 4 else ()) + ((left, right),)
        out = []
        for axis, (n, (before, after)) in enumerate(zip(sizes, amounts)):
            name = "HW"[axis] if len(x) == 4 else "L"
            if self.mode == "reflect" and max(before, after) >= n:
                raise ShapeError(f"Pad: reflect pads ({before}, {after}) of axis {name} must be less than its size "
                                 f"{n} (PyTorch's and onnxruntime's rule; numpy reflects again)")
            o = n + before + after
            if o < 1:
                raise ShapeError(f"Pad: pads ({before}, {after}) crop axis {name} of {_fmt(x)} to {o}")
            out.append(o)
        return (*x[:2], *out)

    def amounts(self, rank: int) -> tuple[tuple[int, int], ...]:
        """(before, after) per spatial axis of a ``rank``-d input: (H, W) or (L,)."""
        top, bottom, left, right = self.pads
        return ((top, bottom), (left, right)) if rank == 4 else ((left, right),)

    def source_index(self, size: int, before: int, o: int) -> int:
        """The input index that output index ``o`` of an axis of ``size`` padded by ``before``
        reads, or -1 where it is the constant."""
        j = o - before
        if 0 <= j < size:
            return j
        if self.mode == "constant":
            return -1
        if self.mode == "edge":
            return min(max(j, 0), size - 1)
        if self.mode == "wrap":
            return j % size
        return -j if j < 0 else 2 * (size - 1) - j  # reflect: amounts < size, one mirror suffices

    def backward(self, inputs, output, grad_inputs, grad_params):
        if not grad_inputs[0] or self.mode == "constant":
            return BackwardCost()
        return BackwardCost(other=_numel(output) - _numel(inputs[0]))

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        torch_keeps = self.mode in ("reflect", "edge") and grad_inputs[0]
        return _saved_for(policy, Saved(), Saved(inputs=(0,) if torch_keeps else ()))

    def window(self, inputs):
        top, _, left, _ = self.pads
        return Window(1, 1, 1, 1, top if len(inputs[0]) == 4 else 0, left)

    def label(self):
        top, bottom, left, right = self.pads
        text = f"pad {self.mode} {top},{bottom},{left},{right}"
        return text + (f" ={self.value:g}" if self.value else "")


@dataclass(frozen=True)
class Permute(Op):
    """Reorder axes; ``dims`` includes the batch axis, which must stay first.
    ``(0, 2, 3, 1)``: NCHW -> NHWC. Costs nothing but a copy."""

    kind: ClassVar[str] = "permute"
    dims: tuple = (0, 2, 3, 1)

    def __post_init__(self):
        object.__setattr__(self, "dims", tuple(self.dims))
        if not all(isinstance(d, int) and not isinstance(d, bool) for d in self.dims):
            raise ShapeError(f"Permute: dims must be ints, got {self.dims!r}")
        # not self.dims: () is sorted like range(0), and dims[0] would raise IndexError.
        if not self.dims or sorted(self.dims) != list(range(len(self.dims))) or self.dims[0] != 0:
            raise ShapeError(f"Permute: dims {self.dims} must be a permutation keeping axis 0 first")

    def infer(self, inputs):
        x = _one_input(self, inputs)
        if len(x) != len(self.dims):
            raise ShapeError(f"Permute dims {self.dims} do not fit a {len(x)}-d input {_fmt(x)}")
        return tuple(x[d] for d in self.dims)

    def layout(self, in_layouts, output):
        return "".join(in_layouts[0][d] for d in self.dims)


@dataclass(frozen=True)
class Reshape(Op):
    """Reshape each sample to ``shape`` (one entry may be -1). A view: in place, no memory."""

    kind: ClassVar[str] = "reshape"
    inplace: ClassVar[bool] = True
    view: ClassVar[bool] = True
    shape: tuple = field(default=(-1,))

    def __post_init__(self):
        shape = tuple(self.shape)
        if not shape:
            raise ShapeError("Reshape: shape must not be empty")
        for d in shape:
            if isinstance(d, bool) or not isinstance(d, int) or (d < 1 and d != -1):
                raise ShapeError(f"Reshape: shape entries must be positive ints or one -1, got {shape!r}")
        if shape.count(-1) > 1:
            raise ShapeError(f"Reshape: at most one -1 in shape, got {shape!r}")
        object.__setattr__(self, "shape", shape)

    def infer(self, inputs):
        x = _one_input(self, inputs)
        total = _numel(x[1:])
        known = _numel(d for d in self.shape if d != -1)
        if -1 in self.shape:
            if total % known:
                raise ShapeError(f"Reshape cannot fit {_fmt(x)} into {self.shape}")
            return (x[0], *(total // known if d == -1 else d for d in self.shape))
        if known != total:
            raise ShapeError(f"Reshape cannot fit {_fmt(x)} into {self.shape}")
        return (x[0], *self.shape)


# --- zoo-misc: ops for LeNet-5 as published (LeCun et al. 1998) ------------------------------


@dataclass(frozen=True)
class ChannelSelect(Op):
    """Pick input channels (axis 1) by index, in the order given: ``(0, 1, 3, 4)`` keeps four
    maps. LeNet-5's C3 connection table is one ChannelSelect + one conv per output map.
    A gather, not a view (the indices need not be contiguous): a fresh buffer, no arithmetic."""

    kind: ClassVar[str] = "select"
    channels: tuple = (0,)

    def __post_init__(self):
        channels = tuple(self.channels)
        if not channels:
            raise ShapeError("ChannelSelect: channels must not be empty")
        for c in channels:
            if isinstance(c, bool) or not isinstance(c, int) or c < 0:
                raise ShapeError(f"ChannelSelect: channels must be ints >= 0, got {self.channels!r}")
        if len(set(channels)) != len(channels):
            raise ShapeError(f"ChannelSelect: channels {channels} repeat an index")
        object.__setattr__(self, "channels", channels)

    def infer(self, inputs):
        x = _one_input(self, inputs)
        if len(x) < 2:
            raise ShapeError(f"ChannelSelect needs (N, C, ...), got {_fmt(x)}")
        if max(self.channels) >= x[1]:
            raise ShapeError(f"ChannelSelect: channel {max(self.channels)} is out of range for {x[1]} channels")
        return (x[0], len(self.channels), *x[2:])

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # PyTorch's index_select keeps its int64 index; archcost reads the op's own field.
        if policy == "pytorch" and grad_inputs[0]:
            return Saved(extras=(("index", (len(self.channels),), "int64"),))
        return Saved()

    def label(self):
        # Runs of consecutive channels as ranges: a Split's half of 512 channels is "256-511",
        # not 256 numbers that widen the table's column to a thousand characters.
        runs: list[list[int]] = []
        for c in self.channels:
            if runs and c == runs[-1][1] + 1:
                runs[-1][1] = c
            else:
                runs.append([c, c])
        parts = [f"{a}-{b}" if b - a >= 2 else ",".join(map(str, range(a, b + 1))) for a, b in runs]
        return "select " + ",".join(parts)


@dataclass(frozen=True)
class Affine(Op):
    """A learned scale and bias per channel on ``axis``: ``y = a_c * x + b_c`` (LeNet-5's
    trainable subsampling coefficient and bias). Like BatchNorm's affine part without running
    statistics: C weights, C biases, 2 ops per element."""

    kind: ClassVar[str] = "affine"
    axis: int = 1

    def infer(self, inputs):
        x = _one_input(self, inputs)
        if not -len(x) <= self.axis < len(x) or self.axis in (0, -len(x)):
            raise ShapeError(f"Affine axis {self.axis} is not a non-batch axis of {_fmt(x)}")
        return x

    def cost(self, inputs, output):
        c = output[self.axis]
        return Cost(weights=c, biases=c, other=2 * _numel(output))

    def backward(self, inputs, output, grad_inputs, grad_params):
        # dx = a * dy (1); da = sum dy * x (2), db = sum dy (1).
        n = _numel(output)
        return BackwardCost(other=(n if grad_inputs[0] else 0) + (3 * n if grad_params else 0))

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        return Saved(inputs=(0,) if grad_params else ())


@dataclass(frozen=True)
class RBF(Op):
    """Euclidean radial basis units on (N, F): ``y_i = sum_j (x_j - w_ij)^2`` (LeNet-5's output).
    ``trainable=False``: the F x out centres are fixed, not learned (LeNet-5 drew them by hand),
    so they count as buffers, not params. No MACs in archcost's sense (those are conv/linear
    only): each of the F x out terms costs a subtract, a square and an add, in ``other``."""

    kind: ClassVar[str] = "rbf"
    out_features: int
    trainable: bool = False

    def __post_init__(self):
        _positive("RBF", "out_features", self.out_features)

    def infer(self, inputs):
        x = _one_input(self, inputs)
        if len(x) != 2:
            raise ShapeError(f"RBF needs an (N, F) input, got {_fmt(x)}")
        return (x[0], self.out_features)

    def cost(self, inputs, output):
        centres = inputs[0][-1] * self.out_features
        return Cost(
            weights=centres if self.trainable else 0,
            buffers=0 if self.trainable else centres,
            other=3 * _numel(output) * inputs[0][-1],
        )

    def backward(self, inputs, output, grad_inputs, grad_params):
        # Each (sample, unit, feature) term: 2 (x - w) dy is a subtract, a product and an add
        # into dx, and the same into dw when the centres are trained.
        terms = _numel(output) * inputs[0][-1]
        trained = self.trainable and grad_params
        return BackwardCost(other=(3 * terms if grad_inputs[0] else 0) + (3 * terms if trained else 0))

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # No PyTorch module: both policies keep the input, from which x - w is recomputed.
        return Saved(inputs=(0,) if grad_inputs[0] or (self.trainable and grad_params) else ())

    def label(self):
        return f"rbf {self.out_features}"


# --- zoo-variants: Maxout (FitNets), AffineGrid and GridSample (Spatial Transformer) --------------


@dataclass(frozen=True)
class Maxout(Op):
    """Maxout over groups of ``pieces`` consecutive channels on axis 1 (Goodfellow et al. 2013):
    ``out[:, c] = max_j in[:, c * pieces + j]``, so (N, k*C, ...) -> (N, C, ...). Works on maps
    (N, C, H, W) (pylearn2's MaxoutConvC01B) and vectors (N, F) (pylearn2's Maxout).
    ``pieces - 1`` comparisons per output element; no params (they live in the conv/linear
    before it, which produces the k*C pieces)."""

    kind: ClassVar[str] = "maxout"
    pieces: int = 2

    def __post_init__(self):
        _positive("Maxout", "pieces", self.pieces)

    def infer(self, inputs):
        x = _one_input(self, inputs)
        if len(x) < 2:
            raise ShapeError(f"Maxout needs (N, C, ...), got {_fmt(x)}")
        if x[1] % self.pieces:
            raise ShapeError(f"Maxout: {x[1]} channels are not divisible by pieces {self.pieces}")
        return (x[0], x[1] // self.pieces, *x[2:])

    def cost(self, inputs, output):
        return Cost(other=_numel(output) * (self.pieces - 1))

    def backward(self, inputs, output, grad_inputs, grad_params):
        return BackwardCost(other=_numel(output) if grad_inputs[0] else 0)  # one scatter per output

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # The winning piece per output: archcost int32; PyTorch (a view then max over the pieces
        # axis) keeps max's int64 indices.
        if not grad_inputs[0]:
            return Saved()
        return Saved(extras=(("indices", output, "int64" if policy == "pytorch" else "int32"),))

    def label(self):
        return f"maxout {self.pieces}"


@dataclass(frozen=True)
class AffineGrid(Op):
    """Spatial Transformer grid generator (Jaderberg et al. 2015, Eq. 1), as PyTorch's
    ``affine_grid(theta.view(-1, 2, 3), (N, C, out_h, out_w), align_corners)``.

    Input: theta (N, 6), read row-major as the 2x3 matrix [[a, b, c], [d, e, f]]. Output: the
    sampling grid (N, out_h, out_w, 2), channels-last, whose last axis is (x_s, y_s) in normalised
    source coordinates [-1, 1]: ``x_s = a*x_t + b*y_t + c``, ``y_s = d*x_t + e*y_t + f`` for every
    target point (x_t, y_t) of a regular out_h x out_w grid over [-1, 1] (pixel centres when
    ``align_corners`` is False, corner pixels on +-1 when True). The target coordinates are
    constants; per output element (one coordinate of one point): 2 multiplies and 2 adds, so
    4 ops per output element (8 per grid point)."""

    kind: ClassVar[str] = "affinegrid"
    out_h: int = 28
    out_w: int = 28
    align_corners: bool = False

    def __post_init__(self):
        _positive("AffineGrid", "out_h", self.out_h)
        _positive("AffineGrid", "out_w", self.out_w)

    def infer(self, inputs):
        theta = _one_input(self, inputs)
        if len(theta) != 2 or theta[1] != 6:
            raise ShapeError(f"AffineGrid needs theta of shape (N, 6), got {_fmt(theta)}")
        return (theta[0], self.out_h, self.out_w, 2)

    def cost(self, inputs, output):
        return Cost(other=4 * _numel(output))

    def backward(self, inputs, output, grad_inputs, grad_params):
        # dtheta[r, k] = sum over points of dgrid[r] * base[k]: 3 products and 3 adds per output
        # element (base = (x_t, y_t, 1)).
        return BackwardCost(other=6 * _numel(output) if grad_inputs[0] else 0)

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # archcost recomputes the target grid; PyTorch's affine_grid_generator keeps its base grid
        # (N, out_h, out_w, 3).
        if policy == "pytorch" and grad_inputs[0]:
            return Saved(extras=(("base_grid", (inputs[0][0], self.out_h, self.out_w, 3), "float32"),))
        return Saved()

    def layout(self, in_layouts, output):
        return "NHWC"  # (x_s, y_s) pairs last, as torch.nn.functional.affine_grid

    def label(self):
        return f"affine grid {self.out_h}x{self.out_w}"


# Ops of one bilinear sample, shared by all channels: unnormalise x and y (multiply, add: 4),
# floor (2), fractions (2 subtracts), one-minus-fractions (2), the four corner weights (4 multiplies).
_GRID_POINT_OPS = 14
# Ops per output element: four weighted corners, 4 multiplies and 3 adds.
_BILINEAR_OPS = 7


@dataclass(frozen=True)
class GridSample(Op):
    """Spatial Transformer sampler with the bilinear kernel (Jaderberg et al. 2015, Eq. 5), as
    PyTorch's ``grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners)``.

    Inputs: x (N, C, H, W) and grid (N, Ho, Wo, 2) whose last axis is (x_s, y_s) in [-1, 1]
    (-1 is the left/top edge of the input). Output (N, C, Ho, Wo):
    ``out[n, c, i, j] = sum over the 4 pixels (q, p) around (u, v) of
    x[n, c, q, p] * max(0, 1 - |u - p|) * max(0, 1 - |v - q|)``, where u, v are the unnormalised
    source coordinates (``u = ((x_s + 1) * W - 1) / 2`` without ``align_corners``,
    ``(x_s + 1) * (W - 1) / 2`` with it) and pixels outside the input read as zero.
    Cost: 7 ops per output element (4 multiplies, 3 adds) plus 14 per grid point for the
    coordinates and the four weights, which all channels share.
    Its receptive field is the whole input: where it samples depends on the data."""

    kind: ClassVar[str] = "gridsample"
    mode: str = "bilinear"
    align_corners: bool = False

    def __post_init__(self):
        if self.mode != "bilinear":
            raise ShapeError(f"GridSample: mode must be 'bilinear', got {self.mode!r}")

    def infer(self, inputs):
        if len(inputs) != 2:
            raise ShapeError(f"GridSample takes two inputs (x, grid), got {len(inputs)}")
        x, grid = inputs
        n, c, _, _ = _map4(self, x)
        if len(grid) != 4 or grid[3] != 2:
            raise ShapeError(f"GridSample needs a grid of shape (N, Ho, Wo, 2), got {_fmt(grid)}")
        if grid[0] != n:
            raise ShapeError(f"GridSample: batch of x ({n}) and grid ({grid[0]}) differ")
        return (n, c, grid[1], grid[2])

    def cost(self, inputs, output):
        grid_points = _numel(inputs[1][:3])
        return Cost(other=_BILINEAR_OPS * _numel(output) + _GRID_POINT_OPS * grid_points)

    def backward(self, inputs, output, grad_inputs, grad_params):
        # dx: the four corner weights times dy, added in (8 per output element); dgrid: per output
        # element the two corner differences times dy, in x and y (12), plus the point's
        # coordinates and weights again (14 per grid point).
        n, points = _numel(output), _numel(inputs[1][:3])
        other = (8 * n if grad_inputs[0] else 0)
        if grad_inputs[1]:
            other += 12 * n + _GRID_POINT_OPS * points
        return BackwardCost(other=other)

    def saves(self, inputs, output, policy, grad_inputs, grad_params):
        # Both policies: the input (for dgrid) and the grid (for both gradients).
        if not any(grad_inputs):
            return Saved()
        return Saved(inputs=(0, 1))

    def window(self, inputs):
        _, _, h, w = inputs[0]
        return Window(h, w, 1, 1, 0, 0)

    def label(self):
        return "grid sample bilinear"


# --- Resize (ONNX Resize, PyTorch F.interpolate): nearest and bilinear, 2-D -------------------

# The coordinate modes each resize mode accepts (ONNX's coordinate_transformation_mode; nearest
# uses nearest_mode "floor"). asymmetric + floor is PyTorch's mode="nearest"; torch.onnx writes
# "bilinear" with align_corners=False as pytorch_half_pixel (half_pixel but for a 1-pixel output)
# and align_corners=True as align_corners.
RESIZE_COORDS = {"nearest": ("asymmetric",), "linear": ("half_pixel", "pytorch_half_pixel", "align_corners")}
# What ``coord`` is when not given: PyTorch's default for the mode (align_corners=False).
_RESIZE_DEFAULT_COORD = {"nearest": "asymmetric", "linear": "half_pixel"}
# The multiplies of a position's four corner weights (1-fh)(1-fw), (1-fh)fw, fh(1-fw), fh fw.
_CORNER_WEIGHT_OPS = 4


def _positions(output: Shape) -> int:
    """Output positions (N * Ho * Wo) of an (N, C, Ho, Wo) map: what its channels share."""
    return output[0] * output[2] * output[3]


class Resample(NamedTuple):
    """What the receptive-field pass needs to know about a resize along one axis, exactly.

    ``taps``: input units each output unit reads (1 nearest, 2 linear); ``ratio``: input units
    per output unit (the slope of the coordinate map, so jump' = jump * ratio); ``first``: the
    index of the first input unit read by output unit 0 (a transposed conv's may be a half-integer
    Fraction, see ``_transposed_resample``)."""

    taps: int
    ratio: Fraction
    first: int | Fraction


@dataclass(frozen=True)
class Resize(Op):
    """2-D spatial resize of (N, C, H, W) to (N, C, Ho, Wo), as ONNX ``Resize`` (opset 11+) and
    PyTorch's ``F.interpolate`` define it.

    Give exactly one of ``size`` (Ho, Wo) and ``scale`` (scale_h, scale_w: Ho = floor(H * scale_h),
    Wo = floor(W * scale_w)). ``mode``: "nearest" (with ``coord`` "asymmetric" and ONNX's
    nearest_mode "floor": PyTorch's mode="nearest") or "linear" (bilinear; ``coord`` "half_pixel"
    (the default), "pytorch_half_pixel" (what torch.onnx writes for F.interpolate's
    align_corners=False; it differs from half_pixel only for a 1-pixel output) or "align_corners").

    Per axis, output index x reads the input at x_orig = f(x), ONNX's formulas, with s the scale
    given, or out/in when ``size`` is given: asymmetric x / s; half_pixel (x + 0.5) / s - 0.5;
    pytorch_half_pixel the same when out > 1, else 0; align_corners x * (in - 1) / (out - 1)
    (0 when out == 1; with ``scale`` only where in * scale is whole: past that onnx.reference
    divides by in * scale - 1, onnxruntime and PyTorch by out - 1, so it is refused).
    Nearest reads in[min(floor(x_orig), in - 1)]; linear clamps x_orig to [0, in - 1] and blends
    in[lo] and in[min(lo + 1, in - 1)], lo = floor, with weights 1 - frac and frac. The maps are
    computed exactly (rationals), so a ratio such as 3 -> 7 never loses an index to rounding.

    Cost: nearest is a copy, 0 ops. Linear: 7 ops per output element (the four weighted corners:
    4 multiplies, 3 adds) plus 4 multiplies per output position of each sample (N * Ho * Wo: the
    corner weights, shared by the channels; per sample, as GridSample's, so that costs scale with
    the batch); the per-row and per-column coordinates and fractions (Ho + Wo of them, computed
    once) are not counted. No MACs (no weights are multiplied), no params."""

    kind: ClassVar[str] = "resize"
    size: int | tuple | None = None  # an int n is (n, n)
    scale: tuple | None = None
    mode: str = "nearest"
    coord: str | None = None  # None: the mode's default (asymmetric / half_pixel)

    def __post_init__(self):
        if (self.size is None) == (self.scale is None):
            raise ShapeError("Resize: give exactly one of size and scale")
        if self.size is not None:
            size = pair(self.size, "Resize: size")
            for d in size:
                _positive("Resize", "size", d)
            object.__setattr__(self, "size", size)
        else:
            scale = tuple(self.scale)
            if len(scale) != 2 or not all(_finite_number(v) and v > 0 for v in scale):
                raise ShapeError(f"Resize: scale must be two positive numbers (h, w), got {quote(self.scale)}")
            object.__setattr__(self, "scale", tuple(float(v) for v in scale))
        if self.mode not in RESIZE_COORDS:
            raise ShapeError(f"Resize: mode must be one of {', '.join(map(repr, RESIZE_COORDS))}, got {self.mode!r}")
        coord = _RESIZE_DEFAULT_COORD[self.mode] if self.coord is None else self.coord
        if coord not in RESIZE_COORDS[self.mode]:
            raise ShapeError(f"Resize: coord must be one of {', '.join(map(repr, RESIZE_COORDS[self.mode]))} "
                             f"for mode {self.mode!r}, got {self.coord!r}")
        object.__setattr__(self, "coord", coord)

    def out_size(self, h: int, w: int) -> tuple[int, int]:
        if self.size is not None:
            return self.size
        # floor(in * scale) of the scale as given (its exact binary value): ONNX's output size.
        return tuple(math.floor(d * Fraction(s)) for d, s in zip((h, w), self.scale))

    def infer(self, inputs):
        n, c, h, w = _map4(self, _one_input(self, inputs))
        ho, wo = self.out_size(h, w)
        if ho < 1 or wo < 1:
            raise ShapeError(f"Resize: scale {self.scale} takes the {h}x{w} map to {ho}x{wo}: an empty output")
        if self.scale is not None and self.coord == "align_corners" and any(
            d * Fraction(s) != o for d, s, o in zip((h, w), self.scale, (ho, wo))
        ):
            # onnx.reference divides by in * scale - 1, onnxruntime and PyTorch by out - 1: no one answer.
            raise ShapeError(f"Resize: scale {self.scale} with coord 'align_corners' on a {h}x{w} map is not a whole "
                             "output size (ONNX implementations disagree there); give size instead")
        return (n, c, ho, wo)

    def axis_map(self, axis: int, in_size: int, out_size: int) -> tuple[Fraction, Fraction]:
        """(slope, offset) of x_orig = slope * x + offset along ``axis`` (0: H, 1: W), exact, before
        the clamp and floor; pytorch_half_pixel and align_corners with out == 1 are (0, 0)."""
        scale = Fraction(out_size, in_size) if self.size is not None else Fraction(self.scale[axis])
        if self.coord == "asymmetric":
            return 1 / scale, Fraction(0)
        if self.coord == "align_corners":
            return (Fraction(0) if out_size == 1 else Fraction(in_size - 1, out_size - 1)), Fraction(0)
        if self.coord == "pytorch_half_pixel" and out_size == 1:
            return Fraction(0), Fraction(0)
        return 1 / scale, Fraction(1, 2) / scale - Fraction(1, 2)  # half_pixel

    def source_index(self, axis: int, in_size: int, out_size: int, x: int) -> tuple[int, int, Fraction]:
        """(lo, hi, frac) of output index ``x``: nearest reads ``lo`` (hi == lo, frac 0); linear
        blends in[lo] * (1 - frac) + in[hi] * frac. Exact."""
        slope, offset = self.axis_map(axis, in_size, out_size)
        orig = slope * x + offset
        if self.mode == "nearest":
            lo = min(math.floor(orig), in_size - 1)
            return lo, lo, Fraction(0)
        orig = min(max(orig, Fraction(0)), Fraction(in_size - 1))
        lo = math.floor(orig)
        return lo, min(lo + 1, in_size - 1), orig - lo

    def cost(self, inputs, output):
        if self.mode == "nearest":
            return Cost()
        return Cost(other=_BILINEAR_OPS * _numel(output) + _CORNER_WEIGHT_OPS * _positions(output))

    def backward(self, inputs, output, grad_inputs, grad_params):
        # Nearest: each output gradient added into the input it copied (1 per output element).
        # Linear: the four corner weights times dy, added in (8 per output element), and the corner
        # weights again (4 per output position of each sample).
        if not grad_inputs[0]:
            return BackwardCost()
        if self.mode == "nearest":
            return BackwardCost(other=_numel(output))
        return BackwardCost(other=8 * _numel(output) + _CORNER_WEIGHT_OPS * _positions(output))

    # Nothing kept under either policy: the backward needs only the shapes (PyTorch's
    # upsample_nearest2d_backward / upsample_bilinear2d_backward read input_size, output_size and
    # the scales, no tensor).

    def resample(self, inputs):
        _, _, h, w = inputs[0]
        ho, wo = self.out_size(h, w)
        taps = (1 if self.mode == "nearest" or h == 1 else 2, 1 if self.mode == "nearest" or w == 1 else 2)
        return tuple(
            Resample(t, self.axis_map(axis, d, o)[0] if o > 1 else Fraction(d, o), self.source_index(axis, d, o, 0)[0])
            for axis, (t, d, o) in enumerate(zip(taps, (h, w), (ho, wo)))
        )

    def label(self):
        if self.size is not None:
            target = f"{self.size[0]}x{self.size[1]}"
        else:  # "x2", or "x1.5,0.75" per axis
            target = "x" + ",".join(f"{s:g}" for s in dict.fromkeys(self.scale))
        return f"resize {self.mode} {target}"


def _torch_lrn_saves(op: LRN, x: Shape) -> Saved:
    """What PyTorch's functional local_response_norm keeps (torch/nn/functional.py): div =
    x * x (mul keeps both operands: x), padded by size // 2 channels and average-pooled over
    ``size`` channels (avg_pool3d keeps its padded input, (N, 1, C + size - 1, H, W)), then
    div * alpha + k (no storage kept) and .pow(beta) (keeps its base and its result), and
    x / div (keeps both: x and the powered div)."""
    n, c = x[0], x[1]
    padded = (n, 1, c + op.size - 1, *x[2:])
    return Saved(inputs=(0,), extras=(("padded_squares", padded, "float32"), ("base", x, "float32"),
                                      ("div", x, "float32")))


# The closed set of ops. Kernels, exporters and conventions map from these types.
OPS = (
    Input,
    Conv2d,
    ConvTranspose2d,
    MaxPool2d,
    AvgPool2d,
    GlobalAvgPool,
    Linear,
    Flatten,
    Activation,
    BatchNorm,
    LayerNorm,
    GroupNorm,
    LRN,
    Dropout,
    Concat,
    Add,
    Sub,
    Mean,
    ReduceSum,
    Mul,
    Scale,
    Softmax,
    ChannelPad,
    Pad,
    Permute,
    Reshape,
    ChannelSelect,
    Affine,
    RBF,
    Maxout,
    AffineGrid,
    GridSample,
    Resize,
)
