"""PolyNet (Zhang, Li, Loy & Lin, "PolyNet: A Pursuit of Structural Diversity in Very Deep
Networks", CVPR 2017).

PolyInception modules (Sec. 3, Fig. 3/4) on an Inception-ResNet unit F (G, H: units of the same
form with their own weights):
  poly-2  I + F + F.F          mpoly-2  I + F + G.F          2-way  I + F + G
  poly-3  I + F + F.F + F.F.F  mpoly-3  I + F + G.F + H.G.F  3-way  I + F + G + H
As in the authors' released model (the Caffe model ported in Cadene/pretrained-models.pytorch,
``polynet.py``), every path is scaled by the module's residual scale before the sum, the input of
a higher order is ReLU of the previous order's output, and the sum is followed by a ReLU.
In a poly-N module the convs of F are shared by its N applications while each application keeps
its own BatchNorms and its own closing 1x1 conv + BN.

archcost's graphs have no weight sharing: each application is its own layers, so the graph's
``params`` counts F's shared convs N times. ``shared_conv_weights`` gives the excess and
``params_with_sharing`` the true count; MACs, activations and memory are right as built.

``polynet`` is the Very Deep PolyNet as released (Sec. 5): the Inception-v4-style stem on a
331x331 input (-> 39x39x384), stage A: 10 2-way modules (Inception-ResNet-A, 384), reduction A
(-> 19x19x1152), stage B: 20 modules alternating poly-3 and 2-way (Inception-ResNet-B), reduction B
(-> 9x9x2048), stage C: 10 modules alternating poly-3 and 2-way (Inception-ResNet-C), 9x9 average
pool, dropout 0.2, fc 1000. Residual scales fall linearly from 1 to 0.7 over the 40 modules.
The ``polyinception_*`` models are single modules on an Inception-ResNet-B input (17x17x1152).
"""

from __future__ import annotations

import re

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import Activation, Add, AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, Linear, MaxPool2d, Scale
from archcost.registry import register


def basic_conv(g: Graph, x: str, out: int, kernel, stride: int = 1, padding=0, *, name: str, relu: bool = True) -> str:
    """conv (no bias) -> BN (-> ReLU) in scope ``name`` (the released model's BasicConv2d)."""
    with g.scope(name):
        x = g.add(Conv2d(out, kernel, stride, padding, bias=False), x, name="conv")
        x = g.add(BatchNorm(), x, name="bn")
        return g.add(Activation("relu"), x, name="relu") if relu else x


# Inception-ResNet units: paths of (name, out, kernel, padding), concatenated, then a 1x1 conv
# back to the input width (the released model's BlockA/B/C).
UNITS = {
    "A": (384, (
        (("path0_1x1", 32, 1, 0), ("path0_3x3a", 48, 3, 1), ("path0_3x3b", 64, 3, 1)),
        (("path1_1x1", 32, 1, 0), ("path1_3x3", 32, 3, 1)),
        (("path2_1x1", 32, 1, 0),),
    )),
    "B": (1152, (
        (("path0_1x1", 128, 1, 0), ("path0_1x7", 160, (1, 7), (0, 3)), ("path0_7x1", 192, (7, 1), (3, 0))),
        (("path1_1x1", 192, 1, 0),),
    )),
    "C": (2048, (
        (("path0_1x1", 192, 1, 0), ("path0_1x3", 224, (1, 3), (0, 1)), ("path0_3x1", 256, (3, 1), (1, 0))),
        (("path1_1x1", 192, 1, 0),),
    )),
}
KINDS = ("poly", "mpoly", "way")


def inception_resnet_unit(g: Graph, x: str, unit: str) -> str:
    width, paths = UNITS[unit]
    ends = []
    for path in paths:
        y = x
        for name, out, kernel, padding in path:
            y = basic_conv(g, y, out, kernel, padding=padding, name=name)
        ends.append(y)
    y = g.concat(*ends)
    return basic_conv(g, y, width, 1, name="conv2d", relu=False)


def poly_module(g: Graph, x: str, unit: str, kind: str, order: int, scale: float = 1.0) -> str:
    """One PolyInception module in scope ``{kind}{order}`` with applications ``apply1..N``."""
    if kind not in KINDS:
        raise ArchcostError(f"polyinception: kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if isinstance(order, bool) or not isinstance(order, int) or order < 1:
        raise ArchcostError(f"polyinception: order must be a positive int, got {order!r}")
    with g.scope(f"{kind}{order}"):
        terms, h = [x], x
        for k in (i + 1 for i in g.loop(order, "poly order")):
            with g.scope(f"apply{k}"):
                # n-way: every path reads the module input; (m)poly: order k reads order k-1
                y = inception_resnet_unit(g, x if kind == "way" else h, unit)
                terms.append(g.add(Scale(scale), y, name="scale") if scale != 1.0 else y)
                if kind != "way" and k < order:
                    h = g.add(Activation("relu"), y, name="relu_out")
        y = g.add(Add(), *terms, name="add")
        return g.add(Activation("relu"), y, name="relu")


_SHARED = re.compile(r"(^|\.)poly\d+\.apply([2-9]|\d\d+)\.(path\w+)\.conv$")


def shared_conv_weights(graph: Graph) -> int:
    """Weights the graph counts more than once: in a poly-N module, the convs of applications
    2..N repeat those of application 1 (the closing ``conv2d`` and all BNs are not shared)."""
    from archcost.analysis import analyze

    return sum(r.weights for r in analyze(graph).records if _SHARED.search(r.name))


def params_with_sharing(graph: Graph) -> int:
    from archcost.analysis import analyze

    return analyze(graph).totals["params"] - shared_conv_weights(graph)


def polyinception(unit: str = "B", kind: str = "poly", order: int = 2, input_shape=(1152, 17, 17)) -> Graph:
    if unit not in UNITS:
        raise ArchcostError(f"polyinception: unit must be one of {', '.join(UNITS)}, got {unit!r}")
    g = Graph(f"polyinception-{unit}-{kind}{order}")
    poly_module(g, g.input(input_shape), unit, kind, order)
    return g


def _stem(g: Graph, x: str) -> str:
    with g.scope("stem"):
        x = basic_conv(g, x, 32, 3, 2, name="conv1a")  # -> 165x165x32
        x = basic_conv(g, x, 32, 3, name="conv1b")  # -> 163x163x32
        x = basic_conv(g, x, 64, 3, padding=1, name="conv1c")  # -> 163x163x64
        pool = g.add(MaxPool2d(3, 2), x, name="pool1")
        conv = basic_conv(g, x, 96, 3, 2, name="conv1_branch")
        x = g.concat(pool, conv, name="concat1")  # -> 81x81x160
        with g.scope("short"):
            short = basic_conv(g, basic_conv(g, x, 64, 1, name="1x1"), 96, 3, name="3x3")
        with g.scope("long"):
            y = basic_conv(g, x, 64, 1, name="1x1")
            y = basic_conv(g, y, 64, (7, 1), padding=(3, 0), name="7x1")
            y = basic_conv(g, y, 64, (1, 7), padding=(0, 3), name="1x7")
            long = basic_conv(g, y, 96, 3, name="3x3")
        x = g.concat(short, long, name="concat2")  # -> 79x79x192
        pool = g.add(MaxPool2d(3, 2), x, name="pool2")
        conv = basic_conv(g, x, 192, 3, 2, name="conv2_branch")
        return g.concat(pool, conv, name="concat3")  # -> 39x39x384


def _reduction(g: Graph, x: str, paths) -> str:
    ends = []
    for p, path in enumerate(paths):
        y = x
        for i, (out, kernel, stride, padding) in enumerate(path):
            y = basic_conv(g, y, out, kernel, stride, padding, name=f"path{p}_{i}")
        ends.append(y)
    ends.append(g.add(MaxPool2d(3, 2), x, name="pool"))
    return g.concat(*ends)


def polynet(num_classes: int = 1000, input_shape=(3, 331, 331)) -> Graph:
    g = Graph("polynet")
    x = _stem(g, g.input(input_shape))
    modules = 40
    scales = [1 - 0.3 * i / (modules - 1) for i in range(modules)]  # 1 -> 0.7, as released
    with g.scope("stage_a"):
        for i in range(10):
            with g.scope(str(i)):
                x = poly_module(g, x, "A", "way", 2, scales[i])  # -> 39x39x384
    with g.scope("reduction_a"):
        x = _reduction(g, x, (((256, 1, 1, 0), (256, 3, 1, 1), (384, 3, 2, 0)), ((384, 3, 2, 0),)))  # -> 19x19x1152
    for name, unit, count, first in (("stage_b", "B", 20, 10), ("stage_c", "C", 10, 30)):
        with g.scope(name):
            for i in range(count):
                with g.scope(str(i)):
                    kind, order = ("poly", 3) if i % 2 == 0 else ("way", 2)
                    x = poly_module(g, x, unit, kind, order, scales[first + i])
        if name == "stage_b":
            with g.scope("reduction_b"):
                x = _reduction(g, x, (
                    ((256, 1, 1, 0), (256, 3, 1, 1), (256, 3, 2, 0)),
                    ((256, 1, 1, 0), (256, 3, 2, 0)),
                    ((256, 1, 1, 0), (384, 3, 2, 0)),
                ))  # -> 9x9x2048
    with g.scope("head"):
        x = g.seq(x, ("avgpool", AvgPool2d(9, 1)), ("dropout", Dropout(0.2)), ("flatten", Flatten()))
        g.add(Linear(num_classes), x, name="fc")
    return g


SOURCE = "Zhang et al. 2017 (PolyNet), Sec. 3-5; released model as ported in Cadene/pretrained-models.pytorch"
register("polynet", polynet, description="Very Deep PolyNet (released model), 331x331", source=SOURCE)
for _kind, _order, _text in (
    ("poly", 2, "I + F + F.F (F shared)"), ("mpoly", 2, "I + F + G.F"), ("way", 2, "2-way: I + F + G"),
    ("poly", 3, "I + F + F.F + F.F.F (F shared)"), ("mpoly", 3, "I + F + G.F + H.G.F"),
    ("way", 3, "3-way: I + F + G + H"),
):
    _name = f"polyinception_{_order}way" if _kind == "way" else f"polyinception_{_kind}{_order}"
    register(_name, polyinception, kind=_kind, order=_order,
             description=f"PolyInception {_text} on Inception-ResNet-B, 17x17x1152", source=SOURCE)
