"""Spatial Transformer Networks (Jaderberg, Simonyan, Zisserman & Kavukcuoglu, NIPS 2015).

``stn_mnist`` is the published PyTorch tutorial network (Ghassen Hamrouni,
pytorch/tutorials intermediate_source/spatial_transformer_tutorial.py), an ST-CNN on 28x28 MNIST:
- localisation net: conv 7x7 8 -> 2x2 max pool -> ReLU -> conv 5x5 10 -> 2x2 max pool -> ReLU ->
  flatten (90) -> fc 32 -> ReLU -> fc 6 (theta, the 2x3 affine matrix);
- grid generator: ``AffineGrid`` over a 28x28 target grid (Eq. 1);
- sampler: bilinear ``GridSample`` of the input (Eq. 5), same size as the input;
- classifier: conv 5x5 10 -> 2x2 max pool -> ReLU -> conv 5x5 20 -> dropout -> 2x2 max pool ->
  ReLU -> flatten (320) -> fc 50 -> ReLU -> dropout -> fc 10.

Departures: the tutorial's final log_softmax is left out (as everywhere in the zoo); its
Dropout2d and dropout are identities at inference. The paper's own distorted-MNIST ST-CNN is
described only in outline (Appendix A) and is not pinned here (docs/zoo/stn.md).
"""

from archcost.graph import Graph
from archcost.ops import Activation, AffineGrid, Conv2d, Dropout, Flatten, GridSample, Linear, MaxPool2d
from archcost.registry import register


def relu():
    return Activation("relu")


def stn_mnist(out_size=None, num_classes: int = 10, input_shape=(1, 28, 28)) -> Graph:
    g = Graph("stn_mnist")
    image = g.input(input_shape)
    out_h, out_w = (input_shape[1], input_shape[2]) if out_size is None else (out_size, out_size)
    with g.scope("localisation"):
        x = g.seq(image, ("conv1", Conv2d(8, 7)), ("pool1", MaxPool2d(2, 2)), ("relu1", relu()))  # -> 11x11x8
        x = g.seq(x, ("conv2", Conv2d(10, 5)), ("pool2", MaxPool2d(2, 2)), ("relu2", relu()))  # -> 3x3x10
        x = g.seq(x, ("flatten", Flatten()), ("fc1", Linear(32)), ("relu3", relu()))
        theta = g.add(Linear(6), x, name="theta")  # -> 6 = the 2x3 matrix, row-major
    with g.scope("transformer"):
        grid = g.add(AffineGrid(out_h, out_w), theta, name="grid")  # -> 28x28x2
        x = g.add(GridSample(), image, grid, name="sampler")  # -> 28x28x1
    with g.scope("classifier"):
        x = g.seq(x, ("conv1", Conv2d(10, 5)), ("pool1", MaxPool2d(2, 2)), ("relu1", relu()))  # -> 12x12x10
        x = g.seq(x, ("conv2", Conv2d(20, 5)), ("drop1", Dropout(0.5)), ("pool2", MaxPool2d(2, 2)),
                  ("relu2", relu()))  # -> 4x4x20
        x = g.seq(x, ("flatten", Flatten()), ("fc1", Linear(50)), ("relu3", relu()), ("drop2", Dropout(0.5)))
        g.add(Linear(num_classes), x, name="fc2")
    return g


register("stn_mnist", stn_mnist, description="ST-CNN on MNIST (PyTorch spatial transformer tutorial)",
         source="Jaderberg et al. 2015; pytorch/tutorials spatial_transformer_tutorial.py")
