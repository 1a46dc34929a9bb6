"""The lectures' worked examples as small named models.

- Inception modules on 28x28x256 (CS231n Lecture 9): the naive module (1x1 128, 3x3 192,
  5x5 96, 3x3 max pool, concat -> 28x28x672) and the same with 1x1-64 bottlenecks before the
  3x3 and 5x5 and after the pool (-> 28x28x480).
- The 5x5 conv, 32 filters, on 28x28x192, alone and after a 1x1 conv with 16 filters
  (Andrew Ng's "bottleneck" example; seed 000).
- Factorisations: one 7x7 vs three 3x3 (VGG's argument), 5x5 vs two 3x3 (Inception v2),
  3x3 vs 1x3 then 3x1 (Inception v3); C channels in and out, 'same' padding.
- A standard 3x3 conv vs its depthwise-separable form (depthwise 3x3 then pointwise 1x1), on
  14x14x512 -> 512 as in MobileNet v1's repeated layer (Howard et al. 2017, Sec. 3.1, Table 1).
- Residual blocks of ResNet Fig. 5 (He et al. 2015): the basic block on 56x56x64 (3x3,64; 3x3,64)
  and the bottleneck on 56x56x256 (1x1,64; 3x3,64; 1x1,256), each with an identity shortcut.
- ResNeXt Fig. 1 (Xie et al. 2017): the same 256-d bottleneck against the 32x4d block
  (1x1,128; 3x3,128 in 32 groups; 1x1,256), "at roughly the same complexity".
Convs here have no ReLU and no bias unless ``bias=True``: the slides count multiplies only.
The residual blocks keep their ReLUs (they are part of the figures) but no BatchNorm: the papers'
complexity claims count conv multiply-adds only.

``DESIGNS`` lists the lectures' design comparisons as (title, baseline model, alternative model,
source) for ``archcost designs``; the ratios are computed from the two models, never stated here.
"""

from archcost.graph import Graph
from archcost.ops import Activation, Conv2d, MaxPool2d
from archcost.registry import register


def inception_module(bottleneck: bool = False, widths=(128, 192, 96), reduce: int = 64, bias: bool = False,
                     input_shape=(256, 28, 28)) -> Graph:
    g = Graph("inception_module")
    x = g.input(input_shape)
    c1, c3, c5 = widths
    if bottleneck:
        paths = (
            [("conv1x1", Conv2d(c1, 1, bias=bias))],
            [("reduce", Conv2d(reduce, 1, bias=bias)), ("conv3x3", Conv2d(c3, 3, padding=1, bias=bias))],
            [("reduce", Conv2d(reduce, 1, bias=bias)), ("conv5x5", Conv2d(c5, 5, padding=2, bias=bias))],
            [("pool", MaxPool2d(3, 1, padding=1)), ("proj", Conv2d(reduce, 1, bias=bias))],
        )
    else:
        paths = (
            [("conv1x1", Conv2d(c1, 1, bias=bias))],
            [("conv3x3", Conv2d(c3, 3, padding=1, bias=bias))],
            [("conv5x5", Conv2d(c5, 5, padding=2, bias=bias))],
            [("pool", MaxPool2d(3, 1, padding=1))],
        )
    g.concat(*g.branches(x, *paths, names=("b1x1", "b3x3", "b5x5", "bpool")))
    return g


def conv5x5(bottleneck: int = 0, out_channels: int = 32, bias: bool = False, input_shape=(192, 28, 28)) -> Graph:
    g = Graph("conv5x5")
    x = g.input(input_shape)
    if bottleneck:
        x = g.add(Conv2d(bottleneck, 1, bias=bias), x, name="conv1x1")
    g.add(Conv2d(out_channels, 5, padding=2, bias=bias), x, name="conv5x5")
    return g


def factorised(kernels=((7, 7),), bias: bool = False, input_shape=(64, 56, 56)) -> Graph:
    """A stack of convs with C -> C channels and 'same' padding, one per kernel in ``kernels``."""
    g = Graph("factorised")
    x = g.input(input_shape)
    channels = input_shape[0]
    for i, kernel in enumerate(kernels, start=1):
        x = g.add(Conv2d(channels, tuple(kernel), padding="same", bias=bias), x, name=f"conv{i}")
    return g


def separable_conv(depthwise: bool = False, out_channels: int = 512, kernel: int = 3, bias: bool = False,
                   input_shape=(512, 14, 14)) -> Graph:
    """A standard KxK conv, or the depthwise KxK (one filter per channel) + pointwise 1x1 pair."""
    g = Graph("separable_conv")
    x = g.input(input_shape)
    if depthwise:
        x = g.add(Conv2d(input_shape[0], kernel, padding="same", groups=input_shape[0], bias=bias), x, name="dw")
        g.add(Conv2d(out_channels, 1, bias=bias), x, name="pw")  # -> 14x14x512
    else:
        g.add(Conv2d(out_channels, kernel, padding="same", bias=bias), x, name="conv")  # -> 14x14x512
    return g


def residual_block(widths=((3, 64), (3, 64)), groups: int = 1, bias: bool = False, input_shape=(64, 56, 56)) -> Graph:
    """One residual block with an identity shortcut: a (kernel, width) conv per entry of ``widths``,
    ReLU after each but the last, then add and ReLU. ``groups`` applies to the 3x3 convs (ResNeXt)."""
    g = Graph("residual_block")
    x = g.input(input_shape)

    def body(g, x):
        for i, (kernel, width) in enumerate(widths, start=1):
            conv_groups = groups if kernel > 1 else 1
            x = g.add(Conv2d(width, kernel, padding="same", groups=conv_groups, bias=bias), x, name=f"conv{i}")
            if i < len(widths):
                x = g.add(Activation("relu"), x, name=f"relu{i}")
        return x

    g.residual(x, body, post=[("relu", Activation("relu"))])
    return g


SLIDES = "CS231n Lecture 9 (seed 001)"
register("inception_naive", inception_module, description="naive inception module on 28x28x256", source=SLIDES)
register(
    "inception_bottleneck", inception_module, bottleneck=True,
    description="inception module with 1x1-64 bottlenecks on 28x28x256", source=SLIDES,
)
register("conv5x5_28x28x192", conv5x5, description="5x5 conv, 32 filters, on 28x28x192", source="seed 000 (Ng)")
register(
    "conv5x5_bottleneck", conv5x5, bottleneck=16,
    description="1x1 conv 16 then 5x5 conv 32 on 28x28x192", source="seed 000 (Ng)",
)
register("conv7x7", factorised, kernels=((7, 7),), description="one 7x7 conv, C -> C", source=SLIDES)
register(
    "conv3x3_x3", factorised, kernels=((3, 3),) * 3,
    description="three 3x3 convs, C -> C (same receptive field as 7x7)", source=SLIDES,
)
register(
    "conv5x5", factorised, kernels=((5, 5),),
    description="one 5x5 conv, C -> C", source="Szegedy et al. 2016 (Inception v3), Sec. 3.1; seed 004",
)
register(
    "conv3x3_x2", factorised, kernels=((3, 3),) * 2,
    description="two 3x3 convs, C -> C (factorised 5x5)", source="Szegedy et al. 2016 (Inception v3), Sec. 3.1; seed 004",
)
register("conv3x3", factorised, kernels=((3, 3),), description="one 3x3 conv, C -> C", source="seed 004")
register(
    "conv1x3_3x1", factorised, kernels=((1, 3), (3, 1)),
    description="1x3 then 3x1 conv, C -> C (asymmetric factorisation of 3x3)",
    source="Szegedy et al. 2016 (Inception v3), Sec. 3.2; seed 004",
)

MOBILENET = "Howard et al. 2017 (MobileNet v1), Sec. 3.1; seed 003"
register(
    "conv3x3_standard", separable_conv,
    description="standard 3x3 conv on 14x14x512 -> 512", source=MOBILENET,
)
register(
    "conv3x3_separable", separable_conv, depthwise=True,
    description="depthwise 3x3 + pointwise 1x1 on 14x14x512 -> 512", source=MOBILENET,
)
RESNET_FIG5 = "He et al. 2015 (ResNet), Fig. 5"
register(
    "resblock_basic", residual_block,
    description="ResNet basic block on 56x56x64: 3x3,64; 3x3,64; identity", source=RESNET_FIG5,
)
register(
    "resblock_bottleneck", residual_block, widths=((1, 64), (3, 64), (1, 256)), input_shape=(256, 56, 56),
    description="ResNet bottleneck block on 56x56x256: 1x1,64; 3x3,64; 1x1,256; identity", source=RESNET_FIG5,
)
register(
    "resnext_block_32x4d", residual_block, widths=((1, 128), (3, 128), (1, 256)), groups=32,
    input_shape=(256, 56, 56),
    description="ResNeXt block on 56x56x256: 1x1,128; 3x3,128 in 32 groups; 1x1,256; identity",
    source="Xie et al. 2017 (ResNeXt), Fig. 1 and Fig. 3(c)",
)

# (title, baseline, alternative, source): the design comparisons the lectures make.
DESIGNS = (
    ("naive vs bottleneck inception module", "inception_naive", "inception_bottleneck", SLIDES),
    ("5x5 conv alone vs after a 1x1-16 bottleneck", "conv5x5_28x28x192", "conv5x5_bottleneck", "seed 000 (Ng)"),
    ("one 5x5 vs two 3x3", "conv5x5", "conv3x3_x2", "Szegedy et al. 2016 (Inception v3), Sec. 3.1"),
    ("3x3 vs 1x3 then 3x1", "conv3x3", "conv1x3_3x1", "Szegedy et al. 2016 (Inception v3), Sec. 3.2"),
    ("one 7x7 vs three 3x3", "conv7x7", "conv3x3_x3", "Simonyan & Zisserman 2015, Sec. 2.3; " + SLIDES),
    ("standard vs depthwise-separable 3x3 conv", "conv3x3_standard", "conv3x3_separable", MOBILENET),
    ("basic (64-d) vs bottleneck (256-d) residual block", "resblock_basic", "resblock_bottleneck", RESNET_FIG5),
    ("ResNet bottleneck vs ResNeXt 32x4d block", "resblock_bottleneck", "resnext_block_32x4d",
     "Xie et al. 2017 (ResNeXt), Fig. 1"),
)
