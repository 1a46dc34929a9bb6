"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, "Gradient-Based Learning Applied to Document
Recognition", Sec. II-B and Fig. 2), on a 32x32x1 input.

- ``lenet5``: the lecture's modern reading (CS231n Lecture 9: [CONV-POOL-CONV-POOL-FC-FC]):
  average pooling, a dense C3, tanh and a plain linear output.
- ``lenet5_paper``: the network as published, layer for layer:
  C1 6@28x28 conv 5x5 (156 params); S2 trainable subsampling: the four inputs are summed,
  multiplied by a learned coefficient and shifted by a learned bias per map (12 params), here
  AvgPool2d(2, 2) + Affine (the 1/4 of the average is absorbed into the coefficient); C3 16@10x10
  with the partial connection table of Table I (1,516 params), one ChannelSelect + conv per map;
  S4 as S2 (32 params); C5 120 conv 5x5 (48,120 params); F6 84 units (10,164 params); the output
  layer: 10 Euclidean RBF units over F6's 84 outputs.
  Total trainable: 60,000, the paper's "60,000 trainable free parameters".

Departures and choices (see docs/zoo/lenet.md):
- The RBF centres (84 x 10 = 840 numbers) were drawn by hand as 7x12 bitmaps of -1/+1 and "kept
  fixed" (Sec. II-B): they are counted as buffers, not params, which is what makes 60,000 exact.
- The squashing function is A*tanh(S*a) with A = 1.7159, S = 2/3 (Appendix A); archcost models it
  as tanh (one op per element): the constants are fixed and not parameters.
- C5 is a 5x5 conv on a 5x5 map (1x1 output), as in the paper, not a Linear after a flatten.
"""

from archcost.graph import Graph
from archcost.ops import Activation, Affine, AvgPool2d, ChannelSelect, Conv2d, Flatten, Linear, RBF
from archcost.registry import register


def lenet5(num_classes: int = 10, input_shape=(1, 32, 32)) -> Graph:
    g = Graph("lenet5")
    x = g.input(input_shape)
    x = g.seq(x, ("c1", Conv2d(6, 5)), ("c1_act", Activation("tanh")), ("s2", AvgPool2d(2, 2)))  # -> 14x14x6
    x = g.seq(x, ("c3", Conv2d(16, 5)), ("c3_act", Activation("tanh")), ("s4", AvgPool2d(2, 2)))  # -> 5x5x16
    x = g.seq(x, ("c5", Conv2d(120, 5)), ("c5_act", Activation("tanh")), ("flatten", Flatten()))  # -> 120
    g.seq(x, ("f6", Linear(84)), ("f6_act", Activation("tanh")), ("output", Linear(num_classes)))
    return g


# Table I: the S2 maps each C3 map reads. Maps 0-5 see three contiguous S2 maps, 6-11 four
# contiguous ones, 12-14 four non-contiguous ones, and map 15 all six.
C3_TABLE = (
    (0, 1, 2), (1, 2, 3), (2, 3, 4), (3, 4, 5), (0, 4, 5), (0, 1, 5),
    (0, 1, 2, 3), (1, 2, 3, 4), (2, 3, 4, 5), (0, 3, 4, 5), (0, 1, 4, 5), (0, 1, 2, 5),
    (0, 1, 3, 4), (1, 2, 4, 5), (0, 2, 3, 5),
    (0, 1, 2, 3, 4, 5),
)


def _subsample(g: Graph, x: str) -> str:
    """S2/S4: sum of each 2x2 block times a learned coefficient plus a learned bias, squashed."""
    x = g.add(AvgPool2d(2, 2), x, name="pool")
    x = g.add(Affine(), x, name="affine")
    return g.add(Activation("tanh"), x, name="act")


def lenet5_paper(table: tuple = C3_TABLE, num_classes: int = 10, input_shape=(1, 32, 32)) -> Graph:
    g = Graph("lenet5_paper")
    x = g.input(input_shape)
    with g.scope("c1"):
        x = g.seq(x, ("conv", Conv2d(6, 5)), ("act", Activation("tanh")))  # -> 28x28x6
    with g.scope("s2"):
        x = _subsample(g, x)  # -> 14x14x6
    with g.scope("c3"):
        maps = []
        for j, inputs in enumerate(table):
            with g.scope(f"map{j}"):
                maps.append(g.seq(x, ("select", ChannelSelect(inputs)), ("conv", Conv2d(1, 5))))  # -> 10x10x1
        x = g.seq(g.concat(*maps), ("act", Activation("tanh")))  # -> 10x10x16
    with g.scope("s4"):
        x = _subsample(g, x)  # -> 5x5x16
    with g.scope("c5"):
        x = g.seq(x, ("conv", Conv2d(120, 5)), ("act", Activation("tanh")), ("flatten", Flatten()))  # -> 120
    with g.scope("f6"):
        x = g.seq(x, ("fc", Linear(84)), ("act", Activation("tanh")))  # -> 84
    with g.scope("output"):
        g.add(RBF(num_classes), x, name="rbf")  # -> 10, fixed centres
    return g


register(
    "lenet5", lenet5, description="LeNet-5: CONV-POOL-CONV-POOL-FC-FC on 32x32x1", source="LeCun et al. 1998, Fig. 2"
)
register(
    "lenet5_paper", lenet5_paper,
    description="LeNet-5 as published: trainable subsampling, C3 connection table, fixed RBF output",
    source="LeCun et al. 1998, Sec. II-B, Fig. 2 and Table I",
)
