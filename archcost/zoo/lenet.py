"""LeNet-5 (LeCun, Bottou, Bengio & Haffner 1998, Fig. 2), as the lecture summarises it:
[CONV-POOL-CONV-POOL-FC-FC], 5x5 convs at stride 1, 2x2 subsampling at stride 2, on 32x32x1.

This modern reading uses average pooling, dense C3 and tanh; the paper-exact form (sparse C3
connection table, trainable subsampling, RBF output) is in docs/zoo.md.
"""

from archcost.graph import Graph
from archcost.ops import Activation, AvgPool2d, Conv2d, Flatten, Linear
from archcost.registry import register


def lenet5(num_classes: int = 10, input_shape=(1, 32, 32)) -> Graph:
    g = Graph("lenet5")
    x = g.input(input_shape)
    x = g.seq(x, ("c1", Conv2d(6, 5)), ("c1_act", Activation("tanh")), ("s2", AvgPool2d(2, 2)))  # -> 14x14x6
    x = g.seq(x, ("c3", Conv2d(16, 5)), ("c3_act", Activation("tanh")), ("s4", AvgPool2d(2, 2)))  # -> 5x5x16
    x = g.seq(x, ("c5", Conv2d(120, 5)), ("c5_act", Activation("tanh")), ("flatten", Flatten()))  # -> 120
    g.seq(x, ("f6", Linear(84)), ("f6_act", Activation("tanh")), ("output", Linear(num_classes)))
    return g


register("lenet5", lenet5, description="LeNet-5: CONV-POOL-CONV-POOL-FC-FC on 32x32x1", source="LeCun et al. 1998, Fig. 2")
