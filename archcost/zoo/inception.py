"""Inception-v3 (Szegedy et al. 2016, "Rethinking the Inception Architecture", Table 1),
Inception-v4 and Inception-ResNet-v2 (Szegedy et al. 2017, "Inception-v4, Inception-ResNet and
the Impact of Residual Connections on Learning", Figs. 3-9 and 15-19).

All three take 299x299 inputs. Every conv is conv (no bias) + BatchNorm (eps 1e-3) + ReLU, as
in the authors' TF-slim code and its ports (torchvision, timm), unless said otherwise. Each
module is a top-level scope named as in TF-slim / torchvision (``Conv2d_1a_3x3``, ``Mixed_5b``,
..., ``Mixed_7c``), then ``avgpool``, ``dropout``, ``fc``.

- ``inception_v3``: torchvision's Inception3 (weights ported from the authors' TF-slim model).
  Where it departs from the paper's Table 1: (1) after the 73x73x64 pool TF-slim has a 1x1
  conv to 80, a valid 3x3 conv to 192 (71x71) and a 3x3/2 max pool (-> 35x35x192), where the
  table lists three 3x3 convs (/1 -> 71x71x80, /2 -> 35x35x192, /1 -> 35x35x288); (2) so the
  first 35x35 module sees 192 channels, not 288, and the three 35x35 modules (Fig. 5) output
  256, 288, 288, each keeping one 5x5 conv (48 -> 64) beside the double 3x3 branch; (3) the
  grid reductions (Sec. 6, Fig. 10), not rows of the table, are the modules ``Mixed_6a``
  (-> 17x17x768) and ``Mixed_7a`` (-> 8x8x1280); (4) four 17x17 modules (Fig. 6, n=7), not
  five; (5) the 8x8 modules (Fig. 7) split their 3x3 branches into parallel 1x3 and 3x1 convs
  and output 2048; (6) dropout 50% before the FC.
  ``aux=True`` adds the auxiliary head on Mixed_6e (5x5/3 avg pool, 1x1 conv 128, 5x5 conv 768,
  FC 1000), with BN as in "BN-auxiliary" (Table 3's last row).
- ``inception_v4``: Fig. 9 with the stem of Fig. 3, 4 x Inception-A (Fig. 4), Reduction-A
  (Fig. 7, k=192, l=224, m=256, n=384), 7 x Inception-B (Fig. 5), Reduction-B (Fig. 8),
  3 x Inception-C (Fig. 6), average pool, dropout (keep 0.8), softmax. As in TF-slim/timm, the
  7x1/1x7 (and 3x1/1x3) pairs of Figs. 5 and 6 are applied in TF-slim's order (same params and
  MACs); the pools inside modules are 3x3/1 average pools.
- ``inception_resnet_v2``: TF-slim's (and timm's) Inception-ResNet-v2, the network of the
  released weights. The paper's Fig. 15 cannot be built as drawn: its Inception-ResNet-B output
  (1154 channels, Fig. 17) cannot be added to its own input (1152 from Reduction-A, Fig. 7 with
  k=256, l=256, m=384, n=384), nor Inception-ResNet-C's 2048 (Fig. 19) to Reduction-B's 2146
  (Fig. 18). TF-slim departs from the paper as follows: the stem is the Inception-v3 stem plus a
  35x35 Inception-A-like module ``Mixed_5b`` (-> 35x35x320) instead of Fig. 3; 10 x Block35
  (320 wide), 20 x Block17 (1088 wide), 10 x Block8 (2080 wide; the last has no ReLU) instead of
  5/10/5; the residual branches are scaled by 0.17, 0.10, 0.20 (Sec. 3.3 suggests 0.1-0.3); a
  1x1 conv to 1536 (``Conv2d_7b_1x1``) before the pool. The 1x1 convs that close each residual
  branch are linear with a bias and no BN (the paper's "1x1 Conv (... Linear)").
"""

from __future__ import annotations

from archcost.graph import Graph
from archcost.ops import (
    Activation, AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, GlobalAvgPool, Linear, MaxPool2d, Scale,
)
from archcost.registry import register

def basic_conv(g: Graph, x: str, out: int, kernel, stride=1, padding=0, *, name: str) -> str:
    """TF-slim's conv: conv without bias + BN (eps 1e-3) + ReLU, named ``name``, ``name_bn``, ``name_relu``."""
    x = g.add(Conv2d(out, kernel, stride=stride, padding=padding, bias=False), x, name=name)
    x = g.add(BatchNorm(eps=1e-3), x, name=f"{name}_bn")
    return g.add(Activation("relu"), x, name=f"{name}_relu")


def chain(g: Graph, x: str, convs) -> str:
    """A branch of ``(name, out, kernel, stride, padding)`` convs (padding 0 is TF's VALID, the
    figures' "V"), or ``(name, op)`` pools."""
    for spec in convs:
        if len(spec) == 2:
            x = g.add(spec[1], x, name=spec[0])
        else:
            name, out, kernel, stride, padding = spec
            x = basic_conv(g, x, out, kernel, stride, padding, name=name)
    return x


def mixed(g: Graph, x: str, *branches) -> str:
    """Run each branch (a list of conv specs) from ``x`` and concatenate (a module's output)."""
    ends = []
    for branch in branches:
        if callable(branch):
            ends.append(branch(g, x))
        else:
            ends.append(chain(g, x, branch))
    return g.concat(*ends)


def avg3(name="branch_pool_avgpool", count_include_pad=True):
    """The 3x3/1 average pool of a module's pool branch. torchvision's Inception-v3 averages over
    the padding too; TF-slim's 'SAME' pools (timm: count_include_pad=False) do not."""
    return (name, AvgPool2d(3, 1, padding=1, count_include_pad=count_include_pad))


def max3s2(name="branch_pool"):
    return (name, MaxPool2d(3, 2))


def split(name: str, pre, a, b):
    """``pre`` convs, then two parallel convs ``a`` and ``b`` concatenated (the 1x3 | 3x1 pair)."""

    def block(g, x):
        x = chain(g, x, pre)
        return g.concat(chain(g, x, [a]), chain(g, x, [b]), name=f"{name}_concat")

    return block


# --- Inception-v3 (torchvision Inception3) -------------------------------------------------
def inception_a(g, x, pool_features):  # Fig. 5 as built by TF-slim: 35x35
    return mixed(
        g, x,
        [("branch1x1", 64, 1, 1, 0)],
        [("branch5x5_1", 48, 1, 1, 0), ("branch5x5_2", 64, 5, 1, 2)],
        [("branch3x3dbl_1", 64, 1, 1, 0), ("branch3x3dbl_2", 96, 3, 1, 1), ("branch3x3dbl_3", 96, 3, 1, 1)],
        [avg3(), ("branch_pool", pool_features, 1, 1, 0)],
    )


def inception_b(g, x):  # grid reduction 35 -> 17 (Fig. 10)
    return mixed(
        g, x,
        [("branch3x3", 384, 3, 2, 0)],
        [("branch3x3dbl_1", 64, 1, 1, 0), ("branch3x3dbl_2", 96, 3, 1, 1), ("branch3x3dbl_3", 96, 3, 2, 0)],
        [max3s2()],
    )


def inception_c(g, x, c7):  # Fig. 6, n = 7: 17x17
    return mixed(
        g, x,
        [("branch1x1", 192, 1, 1, 0)],
        [("branch7x7_1", c7, 1, 1, 0), ("branch7x7_2", c7, (1, 7), 1, (0, 3)), ("branch7x7_3", 192, (7, 1), 1, (3, 0))],
        [("branch7x7dbl_1", c7, 1, 1, 0), ("branch7x7dbl_2", c7, (7, 1), 1, (3, 0)),
         ("branch7x7dbl_3", c7, (1, 7), 1, (0, 3)), ("branch7x7dbl_4", c7, (7, 1), 1, (3, 0)),
         ("branch7x7dbl_5", 192, (1, 7), 1, (0, 3))],
        [avg3(), ("branch_pool", 192, 1, 1, 0)],
    )


def inception_d(g, x):  # grid reduction 17 -> 8
    return mixed(
        g, x,
        [("branch3x3_1", 192, 1, 1, 0), ("branch3x3_2", 320, 3, 2, 0)],
        [("branch7x7x3_1", 192, 1, 1, 0), ("branch7x7x3_2", 192, (1, 7), 1, (0, 3)),
         ("branch7x7x3_3", 192, (7, 1), 1, (3, 0)), ("branch7x7x3_4", 192, 3, 2, 0)],
        [max3s2()],
    )


def inception_e(g, x):  # Fig. 7: 8x8, expanded filter banks
    return mixed(
        g, x,
        [("branch1x1", 320, 1, 1, 0)],
        split("branch3x3", [("branch3x3_1", 384, 1, 1, 0)],
              ("branch3x3_2a", 384, (1, 3), 1, (0, 1)), ("branch3x3_2b", 384, (3, 1), 1, (1, 0))),
        split("branch3x3dbl", [("branch3x3dbl_1", 448, 1, 1, 0), ("branch3x3dbl_2", 384, 3, 1, 1)],
              ("branch3x3dbl_3a", 384, (1, 3), 1, (0, 1)), ("branch3x3dbl_3b", 384, (3, 1), 1, (1, 0))),
        [avg3(), ("branch_pool", 192, 1, 1, 0)],
    )


def inception_v3(aux: bool = False, dropout: float = 0.5, num_classes: int = 1000, input_shape=(3, 299, 299)) -> Graph:
    g = Graph("inception_v3")
    x = g.input(input_shape)
    stem = (
        ("Conv2d_1a_3x3", 32, 3, 2, 0),  # -> 149x149x32
        ("Conv2d_2a_3x3", 32, 3, 1, 0),  # -> 147x147x32
        ("Conv2d_2b_3x3", 64, 3, 1, 1),  # -> 147x147x64
        ("maxpool1",),  # -> 73x73x64
        ("Conv2d_3b_1x1", 80, 1, 1, 0),  # -> 73x73x80
        ("Conv2d_4a_3x3", 192, 3, 1, 0),  # -> 71x71x192
        ("maxpool2",),  # -> 35x35x192
    )
    for name, *conv in stem:
        with g.scope(name):
            x = basic_conv(g, x, *conv, name="conv") if conv else g.add(MaxPool2d(3, 2), x, name="pool")
    body = (
        ("Mixed_5b", inception_a, 32),  # -> 35x35x256
        ("Mixed_5c", inception_a, 64),  # -> 35x35x288
        ("Mixed_5d", inception_a, 64),  # -> 35x35x288
        ("Mixed_6a", inception_b),  # -> 17x17x768
        ("Mixed_6b", inception_c, 128),  # -> 17x17x768
        ("Mixed_6c", inception_c, 160),
        ("Mixed_6d", inception_c, 160),
        ("Mixed_6e", inception_c, 192),  # -> 17x17x768 (AuxLogits)
        ("Mixed_7a", inception_d),  # -> 8x8x1280
        ("Mixed_7b", inception_e),  # -> 8x8x2048
        ("Mixed_7c", inception_e),  # -> 8x8x2048
    )
    for name, module, *args in body:
        with g.scope(name):
            x = module(g, x, *args)
        if aux and name == "Mixed_6e":
            with g.scope("AuxLogits"):
                a = g.add(AvgPool2d(5, 3), x, name="pool")  # -> 5x5x768
                a = basic_conv(g, a, 128, 1, name="conv0")  # -> 5x5x128
                a = basic_conv(g, a, 768, 5, name="conv1")  # -> 1x1x768
                a = g.add(Flatten(), a, name="flatten")
                g.add(Linear(num_classes), a, name="fc")
    _torchvision_functional(g)
    return _head(g, x, dropout, num_classes)


def _torchvision_functional(g: Graph) -> None:
    """Mark what torchvision's Inception3 computes with functions rather than modules:
    BasicConv2d ends in F.relu, the blocks' pool branches call F.avg_pool2d / F.max_pool2d and
    InceptionAux F.avg_pool2d; the stem's pools are nn.MaxPool2d modules."""
    for node in g.topological_order():
        op = g.op(node)
        in_block = node.startswith(("Mixed_", "AuxLogits."))
        if (isinstance(op, Activation) and node.endswith("_relu")) or (
            in_block and isinstance(op, (AvgPool2d, MaxPool2d))
        ):
            g.set_torch_form(node, "functional")


def _head(g: Graph, x: str, dropout: float, num_classes: int) -> Graph:
    with g.scope("avgpool"):
        x = g.add(GlobalAvgPool(), x, name="pool")  # 8x8 -> 1x1
        x = g.add(Flatten(), x, name="flatten")
    with g.scope("dropout"):
        x = g.add(Dropout(dropout), x, name="dropout")
    with g.scope("fc"):
        g.add(Linear(num_classes), x, name="linear")
    return g


# --- Inception-v4 ----------------------------------------------------------------------------
def v4_stem(g: Graph, x: str) -> str:  # Fig. 3
    for name, conv in (("Conv2d_1a_3x3", (32, 3, 2, 0)), ("Conv2d_2a_3x3", (32, 3, 1, 0)),
                       ("Conv2d_2b_3x3", (64, 3, 1, 1))):
        with g.scope(name):
            x = basic_conv(g, x, *conv, name="conv")  # -> 149, 147, 147x147x64
    with g.scope("Mixed_3a"):  # -> 73x73x160
        x = mixed(g, x, [max3s2("branch_0")], [("branch_1", 96, 3, 2, 0)])
    with g.scope("Mixed_4a"):  # -> 71x71x192
        x = mixed(
            g, x,
            [("branch_0a", 64, 1, 1, 0), ("branch_0b", 96, 3, 1, 0)],
            [("branch_1a", 64, 1, 1, 0), ("branch_1b", 64, (1, 7), 1, (0, 3)), ("branch_1c", 64, (7, 1), 1, (3, 0)),
             ("branch_1d", 96, 3, 1, 0)],
        )
    with g.scope("Mixed_5a"):  # -> 35x35x384
        x = mixed(g, x, [("branch_0", 192, 3, 2, 0)], [max3s2("branch_1")])
    return x


def v4_inception_a(g, x):  # Fig. 4: 35x35x384
    return mixed(
        g, x,
        [("branch_0", 96, 1, 1, 0)],
        [("branch_1a", 64, 1, 1, 0), ("branch_1b", 96, 3, 1, 1)],
        [("branch_2a", 64, 1, 1, 0), ("branch_2b", 96, 3, 1, 1), ("branch_2c", 96, 3, 1, 1)],
        [avg3("branch_3_avgpool", count_include_pad=False), ("branch_3", 96, 1, 1, 0)],
    )


def reduction_a(g, x, k, l, m, n):  # Fig. 7: 35 -> 17
    return mixed(
        g, x,
        [("branch_0", n, 3, 2, 0)],
        [("branch_1a", k, 1, 1, 0), ("branch_1b", l, 3, 1, 1), ("branch_1c", m, 3, 2, 0)],
        [max3s2("branch_2")],
    )


def v4_inception_b(g, x):  # Fig. 5: 17x17x1024
    return mixed(
        g, x,
        [("branch_0", 384, 1, 1, 0)],
        [("branch_1a", 192, 1, 1, 0), ("branch_1b", 224, (1, 7), 1, (0, 3)), ("branch_1c", 256, (7, 1), 1, (3, 0))],
        [("branch_2a", 192, 1, 1, 0), ("branch_2b", 192, (7, 1), 1, (3, 0)), ("branch_2c", 224, (1, 7), 1, (0, 3)),
         ("branch_2d", 224, (7, 1), 1, (3, 0)), ("branch_2e", 256, (1, 7), 1, (0, 3))],
        [avg3("branch_3_avgpool", count_include_pad=False), ("branch_3", 128, 1, 1, 0)],
    )


def v4_reduction_b(g, x):  # Fig. 8: 17 -> 8
    return mixed(
        g, x,
        [("branch_0a", 192, 1, 1, 0), ("branch_0b", 192, 3, 2, 0)],
        [("branch_1a", 256, 1, 1, 0), ("branch_1b", 256, (1, 7), 1, (0, 3)), ("branch_1c", 320, (7, 1), 1, (3, 0)),
         ("branch_1d", 320, 3, 2, 0)],
        [max3s2("branch_2")],
    )


def v4_inception_c(g, x):  # Fig. 6: 8x8x1536
    return mixed(
        g, x,
        [("branch_0", 256, 1, 1, 0)],
        split("branch_1", [("branch_1a", 384, 1, 1, 0)],
              ("branch_1b", 256, (1, 3), 1, (0, 1)), ("branch_1c", 256, (3, 1), 1, (1, 0))),
        split("branch_2", [("branch_2a", 384, 1, 1, 0), ("branch_2b", 448, (3, 1), 1, (1, 0)),
                           ("branch_2c", 512, (1, 3), 1, (0, 1))],
              ("branch_2d", 256, (1, 3), 1, (0, 1)), ("branch_2e", 256, (3, 1), 1, (1, 0))),
        [avg3("branch_3_avgpool", count_include_pad=False), ("branch_3", 256, 1, 1, 0)],
    )


def inception_v4(dropout: float = 0.2, num_classes: int = 1000, input_shape=(3, 299, 299)) -> Graph:
    g = Graph("inception_v4")
    x = v4_stem(g, g.input(input_shape))  # -> 35x35x384
    blocks = (
        [(f"Mixed_5{c}", v4_inception_a, ()) for c in "bcde"]  # -> 35x35x384
        + [("Mixed_6a", reduction_a, (192, 224, 256, 384))]  # -> 17x17x1024
        + [(f"Mixed_6{c}", v4_inception_b, ()) for c in "bcdefgh"]  # -> 17x17x1024
        + [("Mixed_7a", v4_reduction_b, ())]  # -> 8x8x1536
        + [(f"Mixed_7{c}", v4_inception_c, ()) for c in "bcd"]  # -> 8x8x1536
    )
    for name, block, args in blocks:
        with g.scope(name):
            x = block(g, x, *args)
    return _head(g, x, dropout, num_classes)


# --- Inception-ResNet-v2 (TF-slim) ---------------------------------------------------------
def residual_block(g: Graph, x: str, width: int, scale: float, relu: bool, *branches) -> str:
    """``relu(x + scale * conv1x1_linear(concat(branches)))`` (Fig. 16/17/19 with Sec. 3.3's scaling)."""
    mixed_out = mixed(g, x, *branches)
    up = g.add(Conv2d(width, 1, bias=True), mixed_out, name="conv2d")  # linear, no BN
    up = g.add(Scale(scale), up, name="scale")
    out = g.sum(up, x, name="add")
    return g.add(Activation("relu"), out, name="relu") if relu else out


def block35(g, x, relu=True):  # Inception-ResNet-A, 35x35x320
    return residual_block(
        g, x, 320, 0.17, relu,
        [("branch_0", 32, 1, 1, 0)],
        [("branch_1a", 32, 1, 1, 0), ("branch_1b", 32, 3, 1, 1)],
        [("branch_2a", 32, 1, 1, 0), ("branch_2b", 48, 3, 1, 1), ("branch_2c", 64, 3, 1, 1)],
    )


def block17(g, x, relu=True):  # Inception-ResNet-B, 17x17x1088
    return residual_block(
        g, x, 1088, 0.10, relu,
        [("branch_0", 192, 1, 1, 0)],
        [("branch_1a", 128, 1, 1, 0), ("branch_1b", 160, (1, 7), 1, (0, 3)), ("branch_1c", 192, (7, 1), 1, (3, 0))],
    )


def block8(g, x, relu=True):  # Inception-ResNet-C, 8x8x2080
    return residual_block(
        g, x, 2080, 0.20, relu,
        [("branch_0", 192, 1, 1, 0)],
        [("branch_1a", 192, 1, 1, 0), ("branch_1b", 224, (1, 3), 1, (0, 1)), ("branch_1c", 256, (3, 1), 1, (1, 0))],
    )


def inception_resnet_v2(blocks: tuple = (10, 20, 10), dropout: float = 0.2, num_classes: int = 1000,
                        input_shape=(3, 299, 299)) -> Graph:
    g = Graph("inception_resnet_v2")
    x = g.input(input_shape)
    stem = (
        ("Conv2d_1a_3x3", 32, 3, 2, 0),  # -> 149x149x32
        ("Conv2d_2a_3x3", 32, 3, 1, 0),  # -> 147x147x32
        ("Conv2d_2b_3x3", 64, 3, 1, 1),  # -> 147x147x64
        ("MaxPool_3a_3x3",),  # -> 73x73x64
        ("Conv2d_3b_1x1", 80, 1, 1, 0),  # -> 73x73x80
        ("Conv2d_4a_3x3", 192, 3, 1, 0),  # -> 71x71x192
        ("MaxPool_5a_3x3",),  # -> 35x35x192
    )
    for name, *conv in stem:
        with g.scope(name):
            x = basic_conv(g, x, *conv, name="conv") if conv else g.add(MaxPool2d(3, 2), x, name="pool")
    with g.scope("Mixed_5b"):  # -> 35x35x320
        x = mixed(
            g, x,
            [("branch_0", 96, 1, 1, 0)],
            [("branch_1a", 48, 1, 1, 0), ("branch_1b", 64, 5, 1, 2)],
            [("branch_2a", 64, 1, 1, 0), ("branch_2b", 96, 3, 1, 1), ("branch_2c", 96, 3, 1, 1)],
            [avg3("branch_3_avgpool", count_include_pad=False), ("branch_3", 64, 1, 1, 0)],
        )
    n35, n17, n8 = blocks
    for i in g.loop(n35, "block35 module"):
        with g.scope(f"block35_{i + 1}"):
            x = block35(g, x)  # -> 35x35x320
    with g.scope("Mixed_6a"):  # Reduction-A, k=256, l=256, m=384, n=384 -> 17x17x1088
        x = reduction_a(g, x, 256, 256, 384, 384)
    for i in g.loop(n17, "block17 module"):
        with g.scope(f"block17_{i + 1}"):
            x = block17(g, x)  # -> 17x17x1088
    with g.scope("Mixed_7a"):  # -> 8x8x2080
        x = mixed(
            g, x,
            [("branch_0a", 256, 1, 1, 0), ("branch_0b", 384, 3, 2, 0)],
            [("branch_1a", 256, 1, 1, 0), ("branch_1b", 288, 3, 2, 0)],
            [("branch_2a", 256, 1, 1, 0), ("branch_2b", 288, 3, 1, 1), ("branch_2c", 320, 3, 2, 0)],
            [max3s2("branch_3")],
        )
    for i in g.loop(n8, "block8 module"):
        with g.scope(f"block8_{i + 1}"):
            x = block8(g, x, relu=i + 1 < n8)  # -> 8x8x2080; TF-slim's last block has no ReLU
    with g.scope("Conv2d_7b_1x1"):
        x = basic_conv(g, x, 1536, 1, name="conv")  # -> 8x8x1536
    return _head(g, x, dropout, num_classes)


register(
    "inception_v3", inception_v3,
    description="Inception-v3 as torchvision builds it (TF-slim's model); aux=True adds the training head",
    source="Szegedy et al. 2016, Table 1 and Figs. 5-7; torchvision inception_v3 (Inception_V3_Weights)",
)
register(
    "inception_v4", inception_v4,
    description="Inception-v4: stem, 4xA, Reduction-A, 7xB, Reduction-B, 3xC",
    source="Szegedy et al. 2017, Figs. 3-9; TF-slim / timm inception_v4",
)
register(
    "inception_resnet_v2", inception_resnet_v2,
    description="Inception-ResNet-v2 as TF-slim/timm build it (10/20/10 residual Inception blocks)",
    source="Szegedy et al. 2017, Figs. 15-19; TF-slim / timm inception_resnet_v2",
)
