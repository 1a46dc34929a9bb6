"""DenseNet (Huang, Liu, van der Maaten & Weinberger 2017, "Densely Connected Convolutional
Networks"): ImageNet models of Table 1 and the CIFAR models of Table 2.

Each layer of a dense block is H_l = BN-ReLU-Conv 3x3 producing k maps (the growth rate), fed
by the concatenation of every earlier map of the block. DenseNet-B adds a bottleneck
BN-ReLU-Conv 1x1 with 4k maps before the 3x3; DenseNet-C compresses each transition to
floor(theta * m) maps (theta = 0.5). The ImageNet models are all DenseNet-BC with k = 32.

- ``densenet121/169/201/264``: Table 1. Stem conv 7x7/2 with 2k maps, max pool 3x3/2; four
  blocks of (6, 12, 24, 16) / (6, 12, 32, 32) / (6, 12, 48, 32) / (6, 12, 64, 48) layers; transitions
  BN-ReLU-conv 1x1-avg pool 2x2/2; 7x7 global average pool and a 1000-way FC layer.
- ``densenet_40_12`` and ``densenet_bc_100_12`` (and the pattern ``densenet[_bc]_<depth>_<k>``):
  Sec. 3 "Implementation Details" for CIFAR: a 3x3 conv with 16 maps (2k for BC), three blocks of
  equal size ((depth - 4) / 3 layers, or (depth - 4) / 6 bottleneck layers), 32 -> 16 -> 8,
  global average pool, 10-way FC layer.

Choices and departures (docs/zoo/densenet.md):
- After the last block the classifier is BN-ReLU-pool-FC (torchvision's norm5, from the authors'
  LuaTorch code); the paper's Table 1 lists only the pool and FC. The BN adds 2C params.
- Transitions include the ReLU (BN-ReLU-conv), as in the authors' code and torchvision; the paper
  writes "BN and a 1x1 conv". A ReLU has no params or MACs.
- Convs have no bias (BN follows or precedes each); the FC layer has one.
- Each layer's concat writes a fresh buffer (as torch.cat does); the memory-efficient
  implementation (Pleiss et al. 2017) shares storage and is not modelled.
- Dropout (CIFAR without augmentation) is left out: it costs nothing at inference.
"""

import re

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import Activation, AvgPool2d, BatchNorm, Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool2d
from archcost.registry import register, register_pattern


def _bn_relu_conv(g: Graph, x: str, out: int, kernel: int, suffix: str = "") -> str:
    x = g.add(BatchNorm(), x, name=f"bn{suffix}")
    x = g.add(Activation("relu"), x, name=f"relu{suffix}")
    return g.add(Conv2d(out, kernel, padding=kernel // 2, bias=False), x, name=f"conv{suffix}")


def _dense_block(g: Graph, x: str, layers: int, k: int, bottleneck: bool) -> str:
    for j in (i + 1 for i in g.loop(layers, "dense layer")):
        with g.scope(f"layer{j}"):
            y = _bn_relu_conv(g, x, 4 * k, 1, "1") if bottleneck else x  # -> 4k maps
            y = _bn_relu_conv(g, y, k, 3, "2")  # -> k new maps
            x = g.concat(x, y)  # -> m + k maps
    return x


def _transition(g: Graph, x: str, compression: float) -> str:
    channels = int(g.shape(x)[1] * compression)  # floor(theta * m)
    x = _bn_relu_conv(g, x, channels, 1)
    return g.add(AvgPool2d(2, 2), x, name="pool")  # -> H/2


def _body(g: Graph, x: str, blocks, k: int, bottleneck: bool, compression: float, num_classes: int) -> Graph:
    for i, layers in enumerate(blocks, start=1):
        with g.scope(f"dense_block{i}"):
            x = _dense_block(g, x, layers, k, bottleneck)
        if i < len(blocks):
            with g.scope(f"transition{i}"):
                x = _transition(g, x, compression)
    with g.scope("classifier"):
        x = g.add(BatchNorm(), x, name="bn")  # torchvision's norm5
        # torchvision's DenseNet.forward applies F.relu and F.adaptive_avg_pool2d: functions, not modules.
        x = g.add(Activation("relu"), x, name="relu", torch="functional")
        x = g.add(GlobalAvgPool(), x, name="pool", torch="functional")  # -> 1x1
        x = g.add(Flatten(), x, name="flatten")
        g.add(Linear(num_classes), x, name="fc")
    return g


def _check(growth_rate, compression) -> None:
    if isinstance(growth_rate, bool) or not isinstance(growth_rate, int) or growth_rate < 1:
        raise ArchcostError(f"densenet: growth_rate must be a positive int, got {growth_rate!r}")
    if isinstance(compression, bool) or not isinstance(compression, (int, float)) or not 0 < compression <= 1:
        raise ArchcostError(f"densenet: compression must be in (0, 1], got {compression!r}")


def densenet(blocks: tuple = (6, 12, 24, 16), growth_rate: int = 32, bottleneck: bool = True,
             compression: float = 0.5, num_classes: int = 1000, input_shape=(3, 224, 224)) -> Graph:
    """Table 1 (ImageNet)."""
    _check(growth_rate, compression)
    g = Graph("densenet")
    x = g.input(input_shape)
    with g.scope("conv1"):
        x = g.seq(
            x, ("conv", Conv2d(2 * growth_rate, 7, stride=2, padding=3, bias=False)),  # -> 112x112x64
            ("bn", BatchNorm()), ("relu", Activation("relu")),
        )
    with g.scope("pool1"):
        x = g.add(MaxPool2d(3, 2, padding=1), x, name="pool")  # -> 56x56
    return _body(g, x, tuple(blocks), growth_rate, bottleneck, compression, num_classes)


def densenet_cifar(depth: int = 40, growth_rate: int = 12, bc: bool = False, num_classes: int = 10,
                   input_shape=(3, 32, 32)) -> Graph:
    """Sec. 3, CIFAR: three equal blocks; depth counts the convs of the blocks, the first conv,
    the two transitions and the FC layer (depth = 3 * per_block * (2 if bc else 1) + 4)."""
    _check(growth_rate, 0.5)
    per_conv = 6 if bc else 3
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 4 + per_conv or (depth - 4) % per_conv:
        kind = "DenseNet-BC" if bc else "DenseNet"
        raise ArchcostError(f"densenet_cifar: depth must be {per_conv}n + 4 (n >= 1) for {kind}, got {depth!r}")
    layers = (depth - 4) // per_conv
    g = Graph("densenet_cifar")
    x = g.input(input_shape)
    with g.scope("conv1"):
        x = g.add(Conv2d(2 * growth_rate if bc else 16, 3, padding=1, bias=False), x, name="conv")  # -> 32x32
    return _body(g, x, (layers,) * 3, growth_rate, bc, 0.5 if bc else 1.0, num_classes)


TABLE1 = "Huang et al. 2017, Table 1"
for _depth, _blocks in ((121, (6, 12, 24, 16)), (169, (6, 12, 32, 32)), (201, (6, 12, 48, 32)), (264, (6, 12, 64, 48))):
    register(f"densenet{_depth}", densenet, blocks=_blocks, description=f"DenseNet-{_depth} (BC, k=32)", source=TABLE1)
register(
    "densenet_40_12", densenet_cifar, depth=40, growth_rate=12,
    description="DenseNet (L=40, k=12) on CIFAR", source="Huang et al. 2017, Sec. 3 and Table 2",
)
register(
    "densenet_bc_100_12", densenet_cifar, depth=100, growth_rate=12, bc=True,
    description="DenseNet-BC (L=100, k=12) on CIFAR", source="Huang et al. 2017, Sec. 3 and Table 2",
)


def _parse(match: re.Match) -> dict:
    return {"bc": bool(match.group(1)), "depth": int(match.group(2)), "growth_rate": int(match.group(3))}


register_pattern(
    r"densenet(_bc)?_(\d+)_(\d+)", densenet_cifar, _parse, example="densenet_bc_250_24",
    description="CIFAR DenseNet[-BC] of a given depth and growth rate", source="Huang et al. 2017, Sec. 3 and Table 2",
)
