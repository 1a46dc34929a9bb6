"""SqueezeNet (Iandola et al. 2016, "SqueezeNet: AlexNet-level accuracy with 50x fewer parameters
and <0.5MB model size", Table 1 and Fig. 2).

A Fire module squeezes with s1x1 1x1 convs, then expands with e1x1 1x1 convs and e3x3 3x3 convs
(padding 1) side by side and concatenates them; each conv has a bias and a ReLU.

- ``squeezenet1_0``: Table 1: conv1 7x7/2, 96 -> maxpool1 3x3/2 -> fire2-4 -> maxpool4 ->
  fire5-8 -> maxpool8 -> fire9 -> dropout 50% -> conv10 1x1, 1000 -> 13x13 global avg pool.
- ``squeezenet1_1``: the authors' SqueezeNet v1.1 (github.com/DeepScale/SqueezeNet): conv1 3x3/2
  with 64 filters, pools after conv1, fire3 and fire5; same Fire modules; 2.4x less computation.
- ``squeezenet1_0_bypass``: Fig. 2 (middle), "simple bypass": an identity shortcut added around
  fire3, fire5, fire7 and fire9, the modules whose input and output widths match. No params.

Choices and departures (docs/zoo/squeezenet.md):
- Input 227x227: Table 1 writes 224x224x3 but its own conv1 output, 111x111, needs 227
  ((227 - 7) / 2 + 1 = 111), which is also the crop of the released Caffe model. torchvision
  uses 224 (conv1 gives 109x109; the ceil-mode pools still end at 13x13): ``--input 3x224x224``.
  ``squeezenet1_1`` has no paper table; it defaults to torchvision's 224 (at 227 its ceil-mode
  pools would end at 14x14 instead of 13x13).
- Max pools are 3x3/2 in ceil mode (Caffe's rounding, kept by torchvision).
"""

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import Activation, Conv2d, Dropout, Flatten, GlobalAvgPool, MaxPool2d
from archcost.registry import register

# Table 1's Fire modules: (name, s1x1, e1x1, e3x3). Pools: after conv1 and these fires.
FIRES = (
    ("fire2", 16, 64, 64),  # -> 55x55x128
    ("fire3", 16, 64, 64),  # -> 55x55x128
    ("fire4", 32, 128, 128),  # -> 55x55x256
    ("fire5", 32, 128, 128),  # -> 27x27x256
    ("fire6", 48, 192, 192),  # -> 27x27x384
    ("fire7", 48, 192, 192),  # -> 27x27x384
    ("fire8", 64, 256, 256),  # -> 27x27x512
    ("fire9", 64, 256, 256),  # -> 13x13x512
)
VERSIONS = {
    # conv1 (filters, kernel), fires after which a 3x3/2 max pool follows
    "1_0": ((96, 7), ("fire4", "fire8")),
    "1_1": ((64, 3), ("fire3", "fire5")),
}


def _conv_relu(g: Graph, x: str, out: int, kernel: int, name: str, stride: int = 1, padding: int | None = None) -> str:
    padding = kernel // 2 if padding is None else padding  # "same" for the expand 3x3
    x = g.add(Conv2d(out, kernel, stride=stride, padding=padding), x, name=name)
    return g.add(Activation("relu"), x, name=f"{name}_relu")


def fire(g: Graph, x: str, squeeze: int, expand1x1: int, expand3x3: int) -> str:
    s = _conv_relu(g, x, squeeze, 1, "squeeze1x1")
    e1 = _conv_relu(g, s, expand1x1, 1, "expand1x1")
    e3 = _conv_relu(g, s, expand3x3, 3, "expand3x3")
    return g.concat(e1, e3)


def squeezenet(version: str = "1_0", bypass: bool = False, num_classes: int = 1000, input_shape=None) -> Graph:
    if version not in VERSIONS:
        raise ArchcostError(f"squeezenet: version must be one of {', '.join(VERSIONS)}, got {version!r}")
    (filters, kernel), pool_after = VERSIONS[version]
    if input_shape is None:  # v1.0: Table 1's sizes need 227; v1.1 has no table: torchvision's 224
        input_shape = (3, 227, 227) if version == "1_0" else (3, 224, 224)
    g = Graph(f"squeezenet{version}")
    x = g.input(input_shape)
    with g.scope("conv1"):
        x = _conv_relu(g, x, filters, kernel, "conv", stride=2, padding=0)  # -> 111x111x96
    with g.scope("maxpool1"):
        x = g.add(MaxPool2d(3, 2, ceil_mode=True), x, name="pool")  # -> 55x55
    for name, squeeze, e1, e3 in FIRES:
        with g.scope(name):
            y = fire(g, x, squeeze, e1, e3)
            # Simple bypass (Fig. 2): around the fires whose input and output widths agree.
            x = g.sum(x, y, name="bypass") if bypass and g.shape(x) == g.shape(y) else y
        if name in pool_after:
            with g.scope(f"maxpool{name[-1]}"):
                x = g.add(MaxPool2d(3, 2, ceil_mode=True), x, name="pool")
    with g.scope("conv10"):
        x = g.add(Dropout(0.5), x, name="dropout")
        x = _conv_relu(g, x, num_classes, 1, "conv")  # -> 13x13x1000
    with g.scope("avgpool10"):
        x = g.add(GlobalAvgPool(), x, name="pool")  # -> 1x1x1000
        g.add(Flatten(), x, name="flatten")
    return g


SOURCE = "Iandola et al. 2016, Table 1"
register("squeezenet1_0", squeezenet, version="1_0", description="SqueezeNet (v1.0), 8 Fire modules", source=SOURCE)
register(
    "squeezenet1_1", squeezenet, version="1_1", description="SqueezeNet v1.1: conv1 3x3 64, earlier pools",
    source="github.com/DeepScale/SqueezeNet, SqueezeNet_v1.1; torchvision squeezenet1_1",
)
register(
    "squeezenet1_0_bypass", squeezenet, version="1_0", bypass=True,
    description="SqueezeNet with simple bypass around fire3/5/7/9",
    source="Iandola et al. 2016, Fig. 2 (middle), Sec. 6",
)
