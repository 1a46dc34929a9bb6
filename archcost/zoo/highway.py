"""Highway networks (Srivastava, Greff & Schmidhuber, "Training Very Deep Networks", NIPS 2015):
the 19-layer convolutional highway network for CIFAR-10 (2.3M params, 7.54% error as the ResNet
paper's Table 6 quotes it).

Layer for layer from the authors' Caffe file
examples/highways/cifar10-19layers/cifar10_network.prototxt (flukeskywalker/highway-networks),
a FitNet-like layout: dropout 0.2 on the input; per stage a plain 3x3 conv + ReLU that sets the
width, then highway conv layers (32: 4, 80: 5, 128: 5), with 2x2/2 max pool + dropout 0.2 between
stages; then a 1x1 conv to 100 + ReLU, 8x8 average pool, dropout 0.2, the linear classifier.
18 conv layers + 1 linear = 19.

A highway conv layer (Eq. 2) is ``y = H(x) * T(x) + x * (1 - T(x))`` with H a 3x3 conv + ReLU
and T a 3x3 conv + sigmoid of the same width (the transform gate), written here as
``y = x + T * (H - x)``: the same value and the same 4 ops per element.

Departure: the prototxt's classifier has 100 outputs (copied from its CIFAR-100 twin); for
CIFAR-10 it has 10 here (``num_classes``). The 32-layer highway network of Table 6 (1.25M) is
not built: its layout is not in the paper or the authors' examples (docs/zoo/highway.md).
"""

from archcost.graph import Graph
from archcost.ops import Activation, Add, AvgPool2d, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Mul, Scale
from archcost.registry import register

# (width, highway layers after the plain conv that sets the width)
HIGHWAY19 = ((32, 4), (80, 5), (128, 5))


def highway_conv(g: Graph, x: str, width: int, name: str) -> str:
    with g.scope(name):
        h = g.seq(x, ("h", Conv2d(width, 3, padding=1)), ("h_relu", Activation("relu")))
        t = g.seq(x, ("t", Conv2d(width, 3, padding=1)), ("t_sigmoid", Activation("sigmoid")))
        minus_x = g.add(Scale(-1.0), x, name="neg_x")
        delta = g.add(Add(), h, minus_x, name="h_minus_x")
        gated = g.add(Mul(), t, delta, name="gate")
        return g.add(Add(), x, gated, name="out")  # x + T (H - x) = H T + x (1 - T)


def highway(stages=HIGHWAY19, head_channels: int = 100, num_classes: int = 10, input_shape=(3, 32, 32)) -> Graph:
    g = Graph("highway")
    x = g.add(Dropout(0.2), g.input(input_shape), name="drop1")
    layer = 1
    for s, (width, highways) in enumerate(stages, start=1):
        with g.scope(f"stage{s}"):
            if s > 1:
                x = g.seq(x, (f"pool{s - 1}", MaxPool2d(2, 2)), (f"drop{s}", Dropout(0.2)))  # -> H/2
            x = g.seq(x, (f"conv{layer}", Conv2d(width, 3, padding=1)), (f"relu{layer}", Activation("relu")))
            layer += 1
            for _ in g.loop(highways, "highway layer"):
                x = highway_conv(g, x, width, f"conv{layer}")
                layer += 1
    with g.scope("head"):
        x = g.seq(x, (f"conv{layer}", Conv2d(head_channels, 1)), ("relu", Activation("relu")))  # -> 8x8x100
        x = g.seq(x, ("pool3", AvgPool2d(8, 8)), ("drop4", Dropout(0.2)), ("flatten", Flatten()))
        g.add(Linear(num_classes), x, name="ip2")
    return g


register("highway19", highway, description="19-layer convolutional highway network for CIFAR-10",
         source="Srivastava et al. 2015; authors' cifar10-19layers/cifar10_network.prototxt")
