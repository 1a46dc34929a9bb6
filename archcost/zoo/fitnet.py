"""FitNet (Romero et al., "FitNets: Hints for Thin Deep Nets", ICLR 2015): the 19-layer CIFAR-10
student ("FitNet 4", 2.5M params, 8.39% error as the ResNet paper's Table 6 quotes it).

Layer for layer from the authors' pylearn2 file yaml/cifar10_fitnet19_all.yaml
(adri-romsor/FitNets): 17 maxout conv layers (3x3, pad 1, 2 pieces) in three stages of
32-32-32-48-48 | 80 x 6 | 128 x 6 channels, a 2x2/2 max pool closing the first two stages and an
8x8/1 max pool (-> 1x1) closing the third; a maxout FC layer of 500 units with 5 pieces; softmax.

A maxout conv with C units and k pieces is a conv to k*C channels followed by ``Maxout(k)``
(max over k consecutive channels). pylearn2's ``tied_b`` gives one bias per conv channel.
"""

from archcost.graph import Graph
from archcost.ops import Conv2d, Flatten, Linear, MaxPool2d, Maxout, Softmax
from archcost.registry import register

# (units per maxout conv layer, pool (kernel, stride) closing the stage)
FITNET4 = (
    ((32, 32, 32, 48, 48), (2, 2)),  # -> 16x16x48
    ((80,) * 6, (2, 2)),  # -> 8x8x80
    ((128,) * 6, (8, 1)),  # -> 1x1x128
)


def fitnet(stages=FITNET4, pieces: int = 2, fc_units: int = 500, fc_pieces: int = 5, num_classes: int = 10,
           input_shape=(3, 32, 32)) -> Graph:
    g = Graph("fitnet")
    x = g.input(input_shape)
    layer = 0
    for s, (units, (pool, stride)) in enumerate(stages, start=1):
        with g.scope(f"stage{s}"):
            for width in units:
                x = g.add(Conv2d(pieces * width, 3, padding=1), x, name=f"h{layer}")
                x = g.add(Maxout(pieces), x, name=f"h{layer}_maxout")
                layer += 1
            x = g.add(MaxPool2d(pool, stride), x, name="pool")
    with g.scope("classifier"):
        x = g.add(Flatten(), x, name="flatten")
        x = g.seq(x, ("fc1", Linear(fc_pieces * fc_units)), ("fc1_maxout", Maxout(fc_pieces)))
        g.seq(x, ("y", Linear(num_classes)), ("softmax", Softmax()))
    return g


register("fitnet19", fitnet, description="FitNet 4: 19-layer maxout student for CIFAR-10",
         source="Romero et al. 2015, FitNet 4; authors' yaml/cifar10_fitnet19_all.yaml")
