"""ConvNeXt (Liu et al., "A ConvNet for the 2020s", CVPR 2022), ConvNeXt-T of Table 9.

Stem: 4x4/4 conv, 96 -> LayerNorm (channels-first). Four stages of (3, 3, 9, 3) blocks at
96, 192, 384, 768 channels (56, 28, 14, 7 at 224x224); each later stage opens with a
LayerNorm + 2x2/2 conv downsampling layer. Block (Fig. 4): 7x7 depthwise conv -> to
channels-last (N, H, W, C) -> LayerNorm -> Linear 4C (a 1x1 conv acting per position) -> GELU ->
Linear C -> layer scale (a learned per-channel gamma on the last axis) -> back to (N, C, H, W) ->
+ input. Head: global average pool -> LayerNorm -> Linear 1000.

Departures and choices:
- Layer scale sits before the permute back, as in the authors' code (facebookresearch/ConvNeXt);
  torchvision applies its (C, 1, 1) gamma after it. Same params, same cost.
- Stochastic depth (drop path 0.1 for T) is an identity at inference and is left out.
- The stage's downsampling layer is named inside the stage it opens (``stage2.downsample``),
  as the paper's Table 9 puts it; torchvision lists it as a separate ``features`` entry.
"""

from archcost.graph import Graph
from archcost.ops import Activation, Conv2d, Flatten, GlobalAvgPool, LayerNorm, Linear, Permute, Scale
from archcost.registry import register

CONVNEXT_T = ((3, 96), (3, 192), (9, 384), (3, 768))  # (blocks, channels) per stage, Table 9
EPS = 1e-6
TO_CHANNELS_LAST, TO_CHANNELS_FIRST = (0, 2, 3, 1), (0, 3, 1, 2)


def convnext_block(g: Graph, x: str, dim: int) -> str:
    body = (
        ("dwconv", Conv2d(dim, 7, padding=3, groups=dim)),  # 7x7 depthwise
        ("to_nhwc", Permute(TO_CHANNELS_LAST)),  # -> H x W x C
        ("norm", LayerNorm(-1, EPS)),
        ("pwconv1", Linear(4 * dim)),  # per position: MACs = H*W * C * 4C
        ("gelu", Activation("gelu")),
        ("pwconv2", Linear(dim)),
        ("layer_scale", Scale(None, axis=-1)),
        ("to_nchw", Permute(TO_CHANNELS_FIRST)),  # -> C x H x W
    )
    return g.residual(x, body)


def convnext(stages=CONVNEXT_T, num_classes: int = 1000, input_shape=(3, 224, 224)) -> Graph:
    g = Graph("convnext")
    x = g.input(input_shape)
    with g.scope("stem"):
        first = stages[0][1]
        x = g.seq(x, ("conv", Conv2d(first, 4, stride=4)), ("norm", LayerNorm(1, EPS)))  # -> 56x56x96
    for s, (blocks, dim) in enumerate(stages, start=1):
        with g.scope(f"stage{s}"):
            if s > 1:
                with g.scope("downsample"):
                    x = g.seq(x, ("norm", LayerNorm(1, EPS)), ("conv", Conv2d(dim, 2, stride=2)))  # -> H/2
            x = g.repeat(x, blocks, lambda g, x, i: convnext_block(g, x, dim), prefix="block")
    with g.scope("head"):
        x = g.seq(x, ("avgpool", GlobalAvgPool()), ("norm", LayerNorm(1, EPS)))
        x = g.add(Flatten(), x, name="flatten", torch="module")  # torchvision: nn.Flatten(1)
        g.add(Linear(num_classes), x, name="fc")
    return g


register("convnext_t", convnext, description="ConvNeXt-T (torchvision convnext_tiny)",
         source="Liu et al. 2022, Table 9; torchvision ConvNeXt_Tiny_Weights")
