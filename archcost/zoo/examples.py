"""The lectures' worked examples as small named models.

- Inception modules on 28x28x256 (CS231n Lecture 9): the naive module (1x1 128, 3x3 192,
  5x5 96, 3x3 max pool, concat -> 28x28x672) and the same with 1x1-64 bottlenecks before the
  3x3 and 5x5 and after the pool (-> 28x28x480).
- The 5x5 conv, 32 filters, on 28x28x192, alone and after a 1x1 conv with 16 filters
  (Andrew Ng's "bottleneck" example; seed 000).
- Factorisations: one 7x7 vs three 3x3 (VGG's argument), 5x5 vs two 3x3 (Inception v2),
  3x3 vs 1x3 then 3x1 (Inception v3); C channels in and out, 'same' padding.
Convs here have no ReLU and no bias unless ``bias=True``: the slides count multiplies only.
"""

from archcost.graph import Graph
from archcost.ops import Conv2d, MaxPool2d
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
