"""Integer shape formulas shared by every spatial op.

Shapes are plain tuples of ints, batch first: ``(N, C, H, W)`` for feature maps,
``(N, F)`` for vectors, ``(N, H, W, C)`` for channels-last maps.
"""

from __future__ import annotations

import math

from archcost.errors import ShapeError


def pair(value, name: str) -> tuple[int, int]:
    """``3 -> (3, 3)``; ``(1, 7) -> (1, 7)``; anything else is an error naming ``name``."""
    if isinstance(value, bool):
        raise ShapeError(f"{name} must be an int or a pair of ints, got {value!r}")
    if isinstance(value, int):
        return (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        return (int(value[0]), int(value[1]))
    raise ShapeError(f"{name} must be an int or a pair of ints, got {value!r}")


def padding4(value) -> tuple[int, int, int, int] | str:
    """Normalise a padding argument to ``(top, bottom, left, right)`` or ``"same"``.

    ``1 -> (1, 1, 1, 1)``; ``(1, 2) -> (1, 1, 2, 2)`` (height, width);
    ``(0, 1, 0, 1)`` stays (top, bottom, left, right); ``"valid" -> (0, 0, 0, 0)``.
    """
    if value == "valid":
        return (0, 0, 0, 0)
    if value == "same":
        return "same"
    if isinstance(value, (tuple, list)) and len(value) == 4 and all(
        isinstance(v, int) and not isinstance(v, bool) for v in value
    ):
        pads = tuple(int(v) for v in value)
    else:
        try:
            ph, pw = pair(value, "padding")
        except ShapeError:
            raise ShapeError(
                f"padding must be an int, (h, w), (top, bottom, left, right), 'same' or 'valid'; got {value!r}"
            ) from None
        pads = (ph, ph, pw, pw)
    if min(pads) < 0:
        raise ShapeError(f"padding must be >= 0, got {value!r}")
    return pads


def same_padding(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow's "same" padding: output = ceil(size / stride); the odd pixel goes after.

    Example: size 224, kernel 7, stride 2 -> output 112, total pad 5 -> (2, 3).
    """
    out = -(-size // stride)
    effective = dilation * (kernel - 1) + 1
    total = max((out - 1) * stride + effective - size, 0)
    return (total // 2, total - total // 2)


def conv_out_size(
    size: int,
    kernel: int,
    stride: int = 1,
    pad_before: int = 0,
    pad_after: int = 0,
    dilation: int = 1,
    ceil_mode: bool = False,
) -> int:
    """Output length of a convolution or pooling window sliding along one axis.

    ``out = floor_or_ceil((size + pad_before + pad_after - dilation*(kernel-1) - 1) / stride) + 1``

    Worked examples: ``224, k=7, s=2, p=3 -> 112`` (ResNet conv1);
    ``227, k=11, s=4, p=0 -> 55`` (AlexNet CONV1); ``55, k=3, s=2 -> 27`` (POOL1).

    In ceil mode the last window must start inside the input or its leading padding
    (as in PyTorch and ONNX): ``112, k=3, s=2, ceil -> 56`` (GoogLeNet), and a window that
    would start in the trailing padding is dropped: ``6, k=2, s=2, p=1, ceil -> 4``; a window
    larger than the input is kept when it starts inside: ``2, k=3, s=2, ceil -> 1``.
    """
    effective = dilation * (kernel - 1) + 1
    span = size + pad_before + pad_after - effective
    # Integer ceiling division: math.ceil(span / stride) goes through a float and is off by one
    # (or by 10^13) once span passes 2^53.
    out = (-(-span // stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_before:
        out -= 1
    # Ceil mode keeps a window that overhangs the end (PyTorch: a 3x3/2 pool on a 2x2 map gives
    # 1x1), as long as one window starts inside; floor mode needs every window inside.
    if span < 0 and (not ceil_mode or out < 1):
        raise ShapeError(
            f"kernel {effective} (dilated) is larger than the padded input {size + pad_before + pad_after}"
        )
    return out
