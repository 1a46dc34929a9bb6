"""RoR, Residual networks of Residual networks (Zhang, Sun, Han, Yuan, Guo & Liu, IEEE TCSVT 2017,
arXiv:1608.02908): RoR-3 on the CIFAR ResNets of He et al. (6n+2 layers; ``ror3_110``: n = 18).

RoR-3 adds two levels of shortcuts above the blocks' own (level 3):
- level 1: one shortcut from the output of conv1 (32x32x16) to the end of the last stage
  (8x8x64): a 1x1 conv with stride 4 + BN (projection);
- level 2: one shortcut per stage, from the stage's input to its end: the identity for the first
  stage (16 -> 16 at 32x32) and a 1x1 stride-2 conv + BN for the other two (16 -> 32, 32 -> 64);
- level 3: the original blocks with their option-A shortcuts (zero padding).
The higher-level shortcuts join the last block of their stage: it adds its residual branch, its
own shortcut and the level-2 (and, in the last stage, level-1) shortcut, then applies the ReLU.

Choices (docs/zoo/ror.md): the paper's Sec. III / Fig. 2 as we read it: projections (type B)
for levels 1 and 2 and zero padding (type A) for the final level; no reference code could be
checked. The level shortcuts add 3,904 params to ResNet-110 (projections 3,584, their BN 320).
"""

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import Activation, Add, BatchNorm, Conv2d
from archcost.registry import register
from archcost.zoo.resnet import (
    CIFAR_WIDTHS, STAGE_NAMES, basic_block, classifier_head, conv_bn, shortcut,
)


def projection(g: Graph, x: str, out: int, stride: int, name: str) -> str:
    """Identity where the shape is kept, else 1x1 conv (stride) + BN, in scope ``name``."""
    if stride == 1 and g.shape(x)[1] == out:
        return x
    with g.scope(name):
        x = g.add(Conv2d(out, 1, stride, bias=False), x, name="conv")
        return g.add(BatchNorm(), x, name="bn")


def ror3(depth: int = 110, num_classes: int = 10, input_shape=(3, 32, 32)) -> Graph:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ArchcostError(f"ror3: depth {depth!r} must be 6n+2 with n >= 1 (56, 110, ...)")
    n = (depth - 2) // 6
    g = Graph(f"ror3_{depth}")
    x = g.input(input_shape)
    with g.scope("conv1"):
        x = conv_bn(g, x, CIFAR_WIDTHS[0], 3)  # -> 32x32x16
    with g.scope("level1"):
        level1 = projection(g, x, CIFAR_WIDTHS[-1], 4, "shortcut")  # -> 8x8x64
    for index, name in enumerate(STAGE_NAMES[:3]):
        width, stride = CIFAR_WIDTHS[index], 1 if index == 0 else 2
        with g.scope(name):
            level2 = projection(g, x, width, stride, "level2")  # stage input -> stage output shape
            for i in g.loop(max(n - 1, 0), "block"):
                with g.scope(str(i)):
                    x = basic_block(g, x, width, stride if i == 0 else 1, "A")
            with g.scope(str(n - 1)):  # the last block also takes the level-2 (and level-1) shortcut
                skip = shortcut(g, x, width, stride if n == 1 else 1, "A")
                y = conv_bn(g, x, width, 3, stride if n == 1 else 1, index="1")
                y = conv_bn(g, y, width, 3, index="2", relu=False)
                extra = (level2, level1) if index == 2 else (level2,)
                y = g.add(Add(), y, skip, *extra, name="add")
                x = g.add(Activation("relu"), y, name="relu")  # -> 32x32x16, 16x16x32, 8x8x64
    classifier_head(g, x, num_classes)
    return g


register("ror3_110", ror3, depth=110, description="RoR-3 on the 110-layer CIFAR ResNet",
         source="Zhang et al. 2017 (RoR), Sec. III, Fig. 2")
