"""Squeeze-and-Excitation ResNets (Hu, Shen & Sun, CVPR 2018; TPAMI 2019): SE-ResNet-50/101/152.

Table 1 (SE-ResNet-50 column): ResNet-50's layout with an SE block on the residual branch of
every bottleneck, after its last conv + BN and before the addition (Fig. 3): global average pool
-> fc C/r -> ReLU -> fc C -> sigmoid -> channel-wise product with the branch, reduction r = 16.

Choices, from the authors' released Caffe models (hujie-frank/SENet; Cadene's port says so too):
- the stride of a stage's first block sits on its first 1x1 conv, as in the original ResNet
  (torchvision's v1.5 puts it on the 3x3: same params, more MACs);
- the two fcs are 1x1 convs with biases on the pooled (N, C, 1, 1) map (Linear would give the
  same counts), and the product is ``Mul`` broadcasting (N, C, 1, 1) over (N, C, H, W).
"""

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import Activation, Conv2d, GlobalAvgPool, Mul
from archcost.registry import register
from archcost.zoo.resnet import (
    IMAGENET, STAGE_WIDTHS, check_choice, classifier_head, conv_bn, imagenet_body, imagenet_stem, residual_end,
    shortcut,
)


def squeeze_excitation(g: Graph, x: str, reduction: int = 16) -> str:
    channels = g.shape(x)[1]
    with g.scope("se"):
        s = g.add(GlobalAvgPool(), x, name="squeeze")  # -> 1x1xC
        s = g.seq(s, ("fc1", Conv2d(channels // reduction, 1)), ("relu", Activation("relu")))  # -> 1x1xC/r
        s = g.seq(s, ("fc2", Conv2d(channels, 1)), ("sigmoid", Activation("sigmoid")))  # -> 1x1xC
        return g.add(Mul(), x, s, name="scale")  # excitation: x * s, broadcast over H, W


def se_bottleneck(g: Graph, x: str, width: int, stride: int = 1, reduction: int = 16,
                  stride_on: str = "1x1") -> str:
    out = 4 * width
    skip = shortcut(g, x, out, stride, "B")
    first, middle = (stride, 1) if stride_on == "1x1" else (1, stride)
    y = conv_bn(g, x, width, 1, first, index="1")
    y = conv_bn(g, y, width, 3, middle, index="2")
    y = conv_bn(g, y, out, 1, index="3", relu=False)
    y = squeeze_excitation(g, y, reduction)
    return residual_end(g, y, skip)


def se_resnet(depth: int = 50, reduction: int = 16, stride_on: str = "1x1", num_classes: int = 1000,
              input_shape=(3, 224, 224)) -> Graph:
    check_choice("se_resnet: depth", depth, (50, 101, 152))
    check_choice("stride_on", stride_on, ("1x1", "3x3"))
    if isinstance(reduction, bool) or not isinstance(reduction, int) or reduction < 1 or 64 % reduction:
        raise ArchcostError(f"se_resnet: reduction must be a positive int dividing 64, got {reduction!r}")
    _, counts = IMAGENET[depth]

    def block(g, x, index, i, stride):
        return se_bottleneck(g, x, STAGE_WIDTHS[index], stride, reduction, stride_on)

    g = Graph(f"se_resnet{depth}")
    x = imagenet_stem(g, g.input(input_shape))
    x = imagenet_body(g, x, counts, block)  # -> 7x7x2048
    classifier_head(g, x, num_classes)
    return g


SOURCE = "Hu et al. 2018 (Squeeze-and-Excitation Networks), Table 1; released Caffe models"
for _depth in (50, 101, 152):
    register(f"se_resnet{_depth}", se_resnet, depth=_depth,
             description=f"SE-ResNet-{_depth}, reduction 16", source=SOURCE)
