"""Block helpers shared by the family modules."""

from __future__ import annotations

from archcost.graph import Graph
from archcost.ops import Activation, AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, Linear


def conv_relu(g: Graph, x: str, out: int, kernel, *, name: str, bn: bool = False, bias: bool | None = None,
              **conv) -> str:
    """conv (+ BN) + ReLU, named ``name``, ``name_bn``, ``name_relu``. The conv has a bias unless
    BN follows it (BN's beta makes it redundant); ``bias`` overrides that."""
    x = g.add(Conv2d(out, kernel, bias=not bn if bias is None else bias, **conv), x, name=name)
    if bn:
        x = g.add(BatchNorm(), x, name=f"{name}_bn")
    return g.add(Activation("relu"), x, name=f"{name}_relu")


def classifier(g: Graph, x: str, hidden: tuple[int, ...], num_classes: int, *, dropout: float = 0.5,
               first: int = 6, dropout_first: bool = False) -> str:
    """Flatten, then FC-ReLU-dropout for each hidden width, then the class layer (fc6, fc7, fc8).
    ``dropout_first``: dropout-FC-ReLU instead (torchvision's AlexNet)."""
    x = g.add(Flatten(), x, name="flatten")
    index = first
    for width in hidden:
        if dropout and dropout_first:
            x = g.add(Dropout(dropout), x, name=f"drop{index}")
        x = g.add(Linear(width), x, name=f"fc{index}")
        x = g.add(Activation("relu"), x, name=f"relu{index}")
        if dropout and not dropout_first:
            x = g.add(Dropout(dropout), x, name=f"drop{index}")
        index += 1
    return g.add(Linear(num_classes), x, name=f"fc{index}")


def adaptive_avg_pool(g: Graph, x: str, size: int, name: str = "avgpool") -> str:
    """torchvision's ``AdaptiveAvgPool2d(size)`` before a classifier, as the fixed average pool its
    windows are at this input size (kernel = stride = map // size; at 224x224 VGG's and AlexNet's
    are 1x1, an identity that still writes its output). Where the map is not a multiple of
    ``size`` the windows are uneven or overlap, no fixed pool has them, and the layer is left
    out; torchvision's classifier then has size*size inputs per channel where this one has the
    map's, so the graph is no longer its twin at that size (its params say so)."""
    _, _, h, w = g.shape(x)
    if h % size or w % size:
        return x
    k = (h // size, w // size)
    return g.add(AvgPool2d(k, k), x, name=name, torch="adaptive")
