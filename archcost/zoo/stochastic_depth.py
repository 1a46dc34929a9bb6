"""Stochastic depth (Huang, Sun, Liu, Sedra & Weinberger 2016, "Deep Networks with Stochastic Depth").

During training, residual block l survives with probability p_l and is otherwise skipped (only
its shortcut runs); at test time every block runs and its residual branch is scaled by p_l
(Eq. 5). The survival rule is the linear decay of Eq. 4, p_l = 1 - l/L (1 - p_L), with p_L = 0.5.

The zoo holds the test-time graphs (the branch output goes through ``Scale(p_l)``, named
``<block>.scale``, before the add), so every count of the deterministic net is unchanged: Scale
has no params and no MACs. ``expected_training_macs`` computes the expected MACs of one training
forward pass from the graph's own per-layer MACs.

- ``resnet110_sd``: the CIFAR ResNet-110 of the authors' code (Stochastic_Depth main.lua /
  ResidualDrop.lua): He et al.'s 6n+2 net with n = 18 (L = 54 blocks); the residual convs keep
  their bias (cudnn's default, which that code initialises to 0 rather than removing) and the
  shortcut of a downsampling block is a 2x2/2 average pool plus zero channels (option A, averaged
  instead of subsampled).
- ``resnet152_sd``: ImageNet ResNet-152 (L = 50 blocks) as trained in the paper's ImageNet
  experiment with fb.resnet.torch: stride on the 3x3, option B (the form of ``resnet152_tv``).
"""

from __future__ import annotations

from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import Activation, AvgPool2d, BatchNorm, ChannelPad, Conv2d, Scale
from archcost.registry import register
from archcost.zoo.resnet import (
    CIFAR_WIDTHS, IMAGENET, STAGE_WIDTHS, bottleneck_block, cifar_body, classifier_head, imagenet_body,
    imagenet_stem, residual_end,
)


def survival_probabilities(blocks: int, p_last: float = 0.5) -> list[float]:
    """Eq. 4's linear decay: p_l = 1 - l/L (1 - p_L) for l = 1..L."""
    if isinstance(blocks, bool) or not isinstance(blocks, int) or blocks < 1:
        raise ArchcostError(f"stochastic depth: number of blocks must be a positive integer, got {blocks!r}")
    if not 0 <= p_last <= 1:
        raise ArchcostError(f"stochastic depth: p_last must be in [0, 1], got {p_last!r}")
    return [1 - l / blocks * (1 - p_last) for l in range(1, blocks + 1)]


def _check_p_last(p_last) -> None:
    if isinstance(p_last, bool) or not isinstance(p_last, (int, float)) or not 0 < p_last <= 1:
        raise ArchcostError(f"stochastic depth: p_last must be in (0, 1], got {p_last!r}")


def residual_branches(graph: Graph) -> list[list[str]]:
    """The layers of each stochastic residual branch, in block order.

    A branch ends at a constant ``Scale`` node ``<block>.scale``; it is every layer of scope
    ``<block>`` (outside ``<block>.shortcut``) reached walking back from that node."""
    branches = []
    for node in graph.topological_order():
        op = graph.op(node)
        if not isinstance(op, Scale) or op.factor is None:
            continue
        block = node.rsplit(".", 1)[0] + "."
        seen, stack = [], [node]
        while stack:
            current = stack.pop()
            if current in seen or not current.startswith(block) or current.startswith(block + "shortcut."):
                continue
            seen.append(current)
            stack.extend(graph.inputs(current))
        branches.append(seen)
    return branches


def expected_training_macs(graph: Graph, p_last: float = 0.5) -> float:
    """Expected MACs of one training forward pass under linear decay (Eq. 4).

    A layer in residual branch l runs with probability p_l; every other layer (stem, shortcuts,
    classifier) always runs: E = sum over layers of MACs x P(layer runs)."""
    macs = {record.name: record.macs for record in analyze(graph).records}
    branches = residual_branches(graph)
    if not branches:
        raise ArchcostError(f"graph {graph.name!r}: no stochastic residual branch (no constant Scale layer)")
    total = sum(macs.values())
    for survival, branch in zip(survival_probabilities(len(branches), p_last), branches):
        total -= (1 - survival) * sum(macs[name] for name in branch)
    return total


# --- the paper's networks, test-time form ---------------------------------------------------
def _cifar_sd_block(g: Graph, x: str, width: int, stride: int, survival: float) -> str:
    """ResidualDrop.lua: conv3x3 (+bias) -> BN -> ReLU -> conv3x3 (+bias) -> BN, x p_l, + shortcut, ReLU."""
    channels = g.shape(x)[1]
    skip = x
    if stride != 1 or channels != width:
        with g.scope("shortcut"):
            if stride != 1:
                skip = g.add(AvgPool2d(stride, stride), skip, name="pool")
            if channels != width:
                skip = g.add(ChannelPad(width), skip, name="pad")
    y = g.add(Conv2d(width, 3, stride, padding=1), x, name="conv1")
    y = g.add(BatchNorm(), y, name="bn1")
    y = g.add(Activation("relu"), y, name="relu1")
    y = g.add(Conv2d(width, 3, padding=1), y, name="conv2")
    y = g.add(BatchNorm(), y, name="bn2")
    return residual_end(g, y, skip, survival)


def stochastic_resnet_cifar(depth: int = 110, p_last: float = 0.5, num_classes: int = 10,
                            input_shape=(3, 32, 32)) -> Graph:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ArchcostError(f"stochastic depth: depth {depth!r} must be 6n+2 with n >= 1 (110, 1202, ...)")
    _check_p_last(p_last)
    n = (depth - 2) // 6
    survival = survival_probabilities(3 * n, p_last)
    g = Graph(f"resnet{depth}_sd")
    x = g.input(input_shape)
    with g.scope("conv1"):
        x = g.add(Conv2d(CIFAR_WIDTHS[0], 3, padding=1), x, name="conv")  # -> 32x32x16 (with bias, as the code)
        x = g.add(BatchNorm(), x, name="bn")
        x = g.add(Activation("relu"), x, name="relu")

    def block(g, x, index, i, stride):
        return _cifar_sd_block(g, x, CIFAR_WIDTHS[index], stride, survival[index * n + i])

    x = cifar_body(g, x, n, block)  # -> 8x8x64
    classifier_head(g, x, num_classes)
    return g


def stochastic_resnet(depth: int = 152, p_last: float = 0.5, num_classes: int = 1000,
                      input_shape=(3, 224, 224)) -> Graph:
    if depth not in IMAGENET or IMAGENET[depth][0] != "bottleneck" or depth == 200:
        raise ArchcostError(f"stochastic depth: ImageNet depth {depth!r} must be one of 50, 101, 152")
    _check_p_last(p_last)
    counts = IMAGENET[depth][1]
    survival = survival_probabilities(sum(counts), p_last)
    starts = [sum(counts[:k]) for k in range(len(counts))]

    def block(g, x, index, i, stride):
        width = STAGE_WIDTHS[index]
        return bottleneck_block(g, x, width, 4 * width, stride, "B", "3x3", survival=survival[starts[index] + i])

    g = Graph(f"resnet{depth}_sd")
    x = imagenet_stem(g, g.input(input_shape))
    x = imagenet_body(g, x, counts, block)  # -> 7x7x2048
    classifier_head(g, x, num_classes)
    return g


SOURCE = "Huang et al. 2016, Deep Networks with Stochastic Depth"
register("resnet110_sd", stochastic_resnet_cifar, depth=110,
         description="CIFAR ResNet-110 with stochastic depth, test-time graph (linear decay, p_L = 0.5)",
         source=f"{SOURCE}, Sec. 4; yueatsprograms/Stochastic_Depth")
register("resnet152_sd", stochastic_resnet, depth=152,
         description="ImageNet ResNet-152 with stochastic depth, test-time graph (linear decay, p_L = 0.5)",
         source=f"{SOURCE}, Sec. 4 (ImageNet)")

