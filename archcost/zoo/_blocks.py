"""Block helpers shared by the family modules."""

from __future__ import annotations

from archcost.graph import Graph
from archcost.ops import Activation, BatchNorm, Conv2d, Dropout, Flatten, Linear


def conv_relu(g: Graph, x: str, out: int, kernel, *, name: str, bn: bool = False, bias: bool | None = None,
              **conv) -> str:
    """conv (+ BN) + ReLU, named ``name``, ``name_bn``, ``name_relu``. The conv has a bias unless
    BN follows it (BN's beta makes it redundant); ``bias`` overrides that."""
    x = g.add(Conv2d(out, kernel, bias=not bn if bias is None else bias, **conv), x, name=name)
    if bn:
        x = g.add(BatchNorm(), x, name=f"{name}_bn")
    return g.add(Activation("relu"), x, name=f"{name}_relu")


def classifier(g: Graph, x: str, hidden: tuple[int, ...], num_classes: int, *, dropout: float = 0.5,
               first: int = 6) -> str:
    """Flatten, then FC-ReLU-dropout for each hidden width, then the class layer (fc6, fc7, fc8)."""
    x = g.add(Flatten(), x, name="flatten")
    index = first
    for width in hidden:
        x = g.add(Linear(width), x, name=f"fc{index}")
        x = g.add(Activation("relu"), x, name=f"relu{index}")
        if dropout:
            x = g.add(Dropout(dropout), x, name=f"drop{index}")
        index += 1
    return g.add(Linear(num_classes), x, name=f"fc{index}")
