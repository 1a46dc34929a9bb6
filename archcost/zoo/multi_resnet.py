"""Multi-Residual Networks (Abdi & Nahavandi 2016, arXiv:1609.05672): CIFAR Multi-ResNet-200 and
-398 with k = 5 residual functions per block.

A multi-residual block is ``x + f_1(x) + ... + f_k(x)``: k independent residual functions on the
same input. Layer for layer from the authors' Torch code (masabdi/multi-resnet,
models/multi-resnet.lua), built on the pre-activation bottleneck ResNet for CIFAR
(ResNet-164/1001 of He et al. 2016, "Identity Mappings"):
- conv 3x3 16 at 32x32; three stages of n = (depth - 2) / 9 blocks with 64, 128, 256 output
  channels (bottleneck width a quarter of that) at 32x32, 16x16, 8x8; final BN, ReLU, 8x8
  average pool, fc 10;
- a block whose width is unchanged: each of the k functions is its own
  BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1 (each function has its own first BN), and the
  shortcut is the identity;
- the first block of a stage (width grows; stride 2 in stages 2 and 3): one shared BN-ReLU, then
  the k functions conv1x1(stride)-BN-ReLU-conv3x3-BN-ReLU-conv1x1, and a 1x1 (stride) projection
  shortcut from the pre-activated input.
Convs have no bias (the code removes them under cuDNN >= 4); the fc has one.
Graph scopes reuse the CIFAR ResNets' names: conv1, conv2_x, conv3_x, conv4_x, fc.
"""

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import Activation, Add, AvgPool2d, BatchNorm, Conv2d, Flatten, Linear
from archcost.registry import register
from archcost.zoo.resnet import bn_relu, cifar_body

STAGE_OUT = (64, 128, 256)


def residual_function(g: Graph, x: str, out: int, stride: int, preact: bool) -> str:
    width = out // 4
    if preact:
        x = bn_relu(g, x, "1")
    y = g.add(Conv2d(width, 1, stride, bias=False), x, name="conv1")
    y = bn_relu(g, y, "2")
    y = g.add(Conv2d(width, 3, padding=1, bias=False), y, name="conv2")
    y = bn_relu(g, y, "3")
    return g.add(Conv2d(out, 1, bias=False), y, name="conv3")


def multi_residual_block(g: Graph, x: str, out: int, stride: int, k: int) -> str:
    grows = stride != 1 or g.shape(x)[1] != out
    if grows:
        x = bn_relu(g, x)  # shared by the k functions and the projection
        with g.scope("shortcut"):
            skip = g.add(Conv2d(out, 1, stride, bias=False), x, name="conv")
    else:
        skip = x
    ends = []
    for i in g.loop(k, "residual function"):
        with g.scope(f"f{i + 1}"):
            ends.append(residual_function(g, x, out, stride, preact=not grows))
    return g.add(Add(), *ends, skip, name="add")  # x + f_1(x) + ... + f_k(x)


def multi_resnet(depth: int = 200, k: int = 5, num_classes: int = 10, input_shape=(3, 32, 32)) -> Graph:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 11 or (depth - 2) % 9:
        raise ArchcostError(f"multi_resnet: depth {depth!r} must be 9n+2 with n >= 1 (200, 398, ...)")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ArchcostError(f"multi_resnet: k must be a positive int, got {k!r}")
    n = (depth - 2) // 9
    g = Graph(f"multi_resnet{depth}_k{k}")
    x = g.input(input_shape)
    with g.scope("conv1"):
        x = g.add(Conv2d(16, 3, padding=1, bias=False), x, name="conv")  # -> 32x32x16
    x = cifar_body(g, x, n, lambda g, x, index, i, stride: multi_residual_block(g, x, STAGE_OUT[index], stride, k))
    with g.scope("fc"):
        x = g.seq(x, ("bn", BatchNorm()), ("relu", Activation("relu")), ("pool", AvgPool2d(8, 1)))  # -> 1x1x256
        x = g.add(Flatten(), x, name="flatten")
        g.add(Linear(num_classes), x, name="fc")
    return g


SOURCE = "Abdi & Nahavandi 2016 (Multi-Residual Networks); authors' models/multi-resnet.lua"
register("multi_resnet200_k5", multi_resnet, depth=200, k=5,
         description="Multi-ResNet-200, k=5 bottleneck functions per block, CIFAR-10", source=SOURCE)
register("multi_resnet398_k5", multi_resnet, depth=398, k=5,
         description="Multi-ResNet-398, k=5 bottleneck functions per block, CIFAR-10", source=SOURCE)
