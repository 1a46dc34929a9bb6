"""Res2Net (Gao, Cheng, Zhao, Zhang, Yang & Torr, TPAMI 2021): res2net50_26w_4s.

The Res2Net bottleneck (Fig. 2): a 1x1 conv to s*w channels, split into s groups x_1..x_s of w
channels; y_1 = x_1, y_i = K_i(x_i + y_{i-1}) for 2 <= i <= s (y_2 = K_2(x_2)), K_i a 3x3 conv +
BN + ReLU; concat y_1..y_s; a 1x1 conv back to 4x the stage width; residual add and ReLU.
w = 26 * (stage width / 64), s = 4: 104, 208, 416, 832 channels at the split.

Choices, from the authors' code (Res2Net/Res2Net-PretrainedModels, res2net.py, ``Bottle2neck``):
- the first block of each stage ("stage" type) has no hierarchical adds (y_i = K_i(x_i)), its
  K_i carry the stride, and its untouched split goes through a 3x3 average pool with that
  stride (padding 1) instead of the identity; the untouched split is the last one, x_s;
- the shortcut is ResNet's option B (1x1 conv + BN where the shape changes), the stem and head
  are ResNet-50's.

archcost has no channel-split op; the first 1x1 conv + BN + ReLU is built as s parallel 1x1
convs of w channels, each with its BN and ReLU. That is the same function (a 1x1 conv's output
channels are independent, and so are BN's) with the same params, MACs, ops and activations.
"""

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import Add, AvgPool2d, Conv2d
from archcost.registry import register
from archcost.zoo.resnet import (
    IMAGENET, STAGE_WIDTHS, classifier_head, conv_bn, imagenet_body, imagenet_stem, residual_end, shortcut,
)


def res2net_bottleneck(g: Graph, x: str, planes: int, stride: int, first: bool, base_width: int = 26,
                       scale: int = 4) -> str:
    width = planes * base_width // 64
    out = 4 * planes
    skip = shortcut(g, x, out, stride, "B")
    splits = []
    for i in (j + 1 for j in g.loop(scale, "scale split")):  # the 1x1 conv to s*w channels, as s groups of w
        with g.scope(f"split{i}"):
            splits.append(conv_bn(g, x, width, 1, index="1"))
    ys, previous = [], None
    for i in range(1, scale):  # K_1 .. K_{s-1} on x_1 .. x_{s-1} (the code's order)
        with g.scope(f"split{i}"):
            h = splits[i - 1]
            if previous is not None and not first:
                h = g.add(Add(), previous, h, name="add")  # x_i + y_{i-1}
            previous = conv_bn(g, h, width, 3, stride, index="2")  # K_i
            ys.append(previous)
    with g.scope(f"split{scale}"):
        last = splits[-1]
        ys.append(g.add(AvgPool2d(3, stride, padding=1), last, name="pool") if first else last)
    y = g.concat(*ys)  # -> s*w channels
    y = conv_bn(g, y, out, 1, index="3", relu=False)
    return residual_end(g, y, skip)


def res2net(depth: int = 50, base_width: int = 26, scale: int = 4, num_classes: int = 1000,
            input_shape=(3, 224, 224)) -> Graph:
    if depth not in (50, 101):
        raise ArchcostError(f"res2net: depth must be 50 or 101, got {depth!r}")
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise ArchcostError(f"res2net: scale must be an int >= 2, got {scale!r}")
    _, counts = IMAGENET[depth]

    def block(g, x, index, i, stride):
        return res2net_bottleneck(g, x, STAGE_WIDTHS[index], stride, i == 0, base_width, scale)

    g = Graph(f"res2net{depth}_{base_width}w_{scale}s")
    x = imagenet_stem(g, g.input(input_shape))
    x = imagenet_body(g, x, counts, block)  # -> 7x7x2048
    classifier_head(g, x, num_classes)
    return g


SOURCE = "Gao et al. 2021 (Res2Net); authors' Res2Net-PretrainedModels res2net.py"
for _depth, _width, _scale in ((50, 26, 4), (50, 48, 2), (50, 14, 8), (50, 26, 6), (50, 26, 8), (101, 26, 4)):
    register(f"res2net{_depth}_{_width}w_{_scale}s", res2net, depth=_depth, base_width=_width, scale=_scale,
             description=f"Res2Net-{_depth}, {_width}w x {_scale}s", source=SOURCE)
