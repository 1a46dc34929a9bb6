"""MobileNet v1 (Howard et al. 2017, "MobileNets: Efficient Convolutional Neural Networks for
Mobile Vision Applications", Table 1), on 224x224x3.

A 3x3/2 conv, then 13 depthwise separable blocks (3x3 depthwise conv, BN, ReLU; 1x1 pointwise
conv, BN, ReLU), global average pooling, one FC layer and softmax. Every conv is followed by BN
and ReLU (Fig. 3), so convs have no bias; the FC layer has one.

Options: ``alpha`` (width multiplier, Sec. 3.3: every layer's channel count times alpha) and
``resolution`` (the resolution multiplier rho of Sec. 3.4, given as the input side: 224, 192,
160, 128; ``--input 3xRxR`` does the same). Names: ``mobilenet_v1`` and the pattern
``mobilenet_v1_<alpha>_<resolution>``, e.g. ``mobilenet_v1_0.75_192``.

Choices and departures (docs/zoo/mobilenet.md):
- The last depthwise conv: Table 1 prints "Conv dw / s2" for it, on a 7x7x1024 input, yet its
  output row is still 7x7x1024 and the avg pool is 7x7. A stride of 2 would give 4x4. Stride 1
  is the only reading consistent with the table's sizes, and with the authors' TF-slim release
  (mobilenet_v1.py, conv 13 stride 1); it also reproduces 569M mult-adds. Parameters do not
  depend on it.
- Padding is TensorFlow's "same" (the released model's), so a stride-2 layer halves the side
  rounding up; at 224/192/160/128 this gives the same sizes as symmetric padding of 1.
- The final pool is global (Table 1's "Avg Pool / s1 Pool 7x7" at 224), so other resolutions
  work unchanged.
- Channel counts under alpha are ``int(c * alpha)`` (0.75 x 32 = 24), as in the paper's
  "alpha M input channels"; the FC layer takes int(1024 * alpha) inputs.
"""

import re

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import Activation, BatchNorm, Conv2d, Flatten, GlobalAvgPool, Linear, Softmax
from archcost.registry import register, register_pattern

# Table 1 after the first conv: (stride of the depthwise conv, output channels of the pointwise
# conv), one row pair per block.
BLOCKS = (
    (1, 64),  # -> 112x112x64
    (2, 128),  # -> 56x56x128
    (1, 128),
    (2, 256),  # -> 28x28x256
    (1, 256),
    (2, 512),  # -> 14x14x512
    (1, 512), (1, 512), (1, 512), (1, 512), (1, 512),  # 5x
    (2, 1024),  # -> 7x7x1024
    (1, 1024),  # Table 1 prints s2; see the module docstring
)


def _conv_bn_relu(g: Graph, x: str, out: int, kernel: int, stride: int, groups: int = 1) -> str:
    x = g.add(Conv2d(out, kernel, stride=stride, padding="same", groups=groups, bias=False), x, name="conv")
    x = g.add(BatchNorm(), x, name="bn")
    return g.add(Activation("relu"), x, name="relu")


def mobilenet_v1(alpha: float = 1.0, resolution: int | None = None, num_classes: int = 1000,
                 input_shape=(3, 224, 224)) -> Graph:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha:
        raise ArchcostError(f"mobilenet_v1: alpha must be a number > 0, got {alpha!r}")
    if resolution is not None:
        if isinstance(resolution, bool) or not isinstance(resolution, int) or resolution < 1:
            raise ArchcostError(f"mobilenet_v1: resolution must be a positive int, got {resolution!r}")
        input_shape = (input_shape[0], resolution, resolution)

    def width(c: int) -> int:
        w = int(c * alpha)
        if w < 1:
            raise ArchcostError(f"mobilenet_v1: alpha {alpha} leaves {c} channels with none")
        return w

    g = Graph("mobilenet_v1")
    x = g.input(input_shape)
    with g.scope("conv1"):
        x = _conv_bn_relu(g, x, width(32), 3, 2)  # -> 112x112x32
    channels = width(32)
    for i, (stride, out) in enumerate(BLOCKS, start=1):
        with g.scope(f"conv_dw_{i}"):
            x = _conv_bn_relu(g, x, channels, 3, stride, groups=channels)
        with g.scope(f"conv_pw_{i}"):
            x = _conv_bn_relu(g, x, width(out), 1, 1)
        channels = width(out)
    with g.scope("pool"):
        x = g.add(GlobalAvgPool(), x, name="avg")  # -> 1x1x1024
        x = g.add(Flatten(), x, name="flatten")
    with g.scope("fc"):
        x = g.add(Linear(num_classes), x, name="fc")
        g.add(Softmax(), x, name="softmax")
    return g


SOURCE = "Howard et al. 2017, Table 1"
register("mobilenet_v1", mobilenet_v1, description="MobileNet v1 1.0-224 (depthwise separable convs)", source=SOURCE)


def _parse(match: re.Match) -> dict:
    return {"alpha": float(match.group(1)), "resolution": int(match.group(2))}


register_pattern(
    r"mobilenet_v1_(\d+(?:\.\d+)?)_(\d+)", mobilenet_v1, _parse, example="mobilenet_v1_0.75_192",
    description="MobileNet v1 with width multiplier alpha and input side (resolution multiplier)",
    source="Howard et al. 2017, Sec. 3.3-3.4, Tables 6-7",
)
