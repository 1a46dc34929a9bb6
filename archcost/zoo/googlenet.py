"""GoogLeNet / Inception v1 (Szegedy et al. 2014, "Going Deeper with Convolutions", Table 1)
and BN-Inception (Ioffe & Szegedy 2015, "Batch Normalization", Fig. 5).

Every row of the paper's table is a top-level scope named like the row (``conv1``, ``pool1``,
``conv2``, ``pool2``, ``inception_3a`` ... ``inception_5b``, ``avgpool``, ``dropout``, ``fc``), so
a report can group layers by row; inside an Inception module the branches are ``b1x1``,
``b3x3`` (``reduce``, ``conv``), ``b5x5`` (``reduce``, ``conv``) and ``pool_proj`` (``pool``,
``proj``), e.g. ``inception_3a.b3x3.reduce``.

- ``googlenet``: Table 1, with what the table leaves out taken from the paper's Fig. 3 and the
  Caffe replication (BVLC models/bvlc_googlenet/train_val.prototxt, made with the authors' help):
  LRN (size 5, alpha 1e-4, beta 0.75, k 1, Caffe's defaults) after the first max pool and after
  the 3x3 conv of ``conv2``; max pools in ceil mode (Caffe's only rounding: 112 -> 56 -> 28 ...);
  conv biases; ReLU after every conv; 7x7/1 average pool, 40% dropout, linear 1000. The
  auxiliary classifiers on 4a and 4d (5x5/3 avg pool, 1x1 conv 128, FC 1024, 70% dropout,
  linear 1000) are training-only: left out unless ``aux=True``. Table 1 names a 7x7/2 conv for
  conv1 but its params and ops (2.7K, 34M) are those of a depthwise-separable 7x7 (see
  ``DEPTHWISE_7X7``); the default builds the conv the table names, as Caffe and torchvision do,
  and ``separable_conv1=True`` builds the one the row was counted for.
- ``googlenet_tv``: torchvision's GoogLeNet (its weights are ported from TensorFlow). It departs
  from the paper: (1) the "5x5" branch uses a 3x3 conv, a bug torchvision keeps for its weights
  (pytorch/vision issue #906); (2) every conv is conv (no bias) + BatchNorm (eps 1e-3) + ReLU, and
  there is no LRN; (3) the pool between 4e and 5a is 2x2/2 (ceil), not 3x3/2: both give 7x7;
  (4) an adaptive average pool to 1x1 replaces the 7x7 pool (the same at 224x224); (5) dropout
  is 20%; (6) its auxiliary heads pool adaptively to 4x4, here a 5x5/3 average pool, which gives
  the same 4x4 at 14x14 (params are equal; the pool's few additions differ).
- ``bn_inception``: Fig. 5 of the BN paper: the 5x5 convs become two stacked 3x3 convs ("double
  3x3"), 3c and 4e reduce the grid with stride-2 convs beside a max pool that passes its input
  through, the pools inside modules are average pools (max in 5b), BN after every conv (no
  conv bias), no LRN, no dropout. The first layer is separable with depth multiplier 8, as the
  paper says its model's was (``separable_conv1=False``: a full 7x7 conv, as in the Caffe
  replication). The figure's branch widths are followed; they sum to 608
  channels after 4c and 4d and 1056 after 4e, where the figure's output-size column prints 576
  and 1024 (the Caffe replication of BN-Inception builds the same 608/1056 widths). The
  stride-2 modules' max pools round up (Caffe) so that 28 -> 14 and 14 -> 7.
"""

from __future__ import annotations

from archcost.graph import Graph
from archcost.ops import LRN, AvgPool2d, BatchNorm, Conv2d, Dropout, Flatten, GlobalAvgPool, Linear, MaxPool2d, ReLU
from archcost.registry import register
from archcost.zoo._blocks import conv_relu

# Table 1: (row, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj); "pool" rows are the
# 3x3/2 max pools between stages.
GOOGLENET = (
    ("inception_3a", 64, 96, 128, 16, 32, 32),  # -> 28x28x256
    ("inception_3b", 128, 128, 192, 32, 96, 64),  # -> 28x28x480
    ("pool3",),  # -> 14x14x480
    ("inception_4a", 192, 96, 208, 16, 48, 64),  # -> 14x14x512 (aux1)
    ("inception_4b", 160, 112, 224, 24, 64, 64),  # -> 14x14x512
    ("inception_4c", 128, 128, 256, 24, 64, 64),  # -> 14x14x512
    ("inception_4d", 112, 144, 288, 32, 64, 64),  # -> 14x14x528 (aux2)
    ("inception_4e", 256, 160, 320, 32, 128, 128),  # -> 14x14x832
    ("pool4",),  # -> 7x7x832
    ("inception_5a", 256, 160, 320, 32, 128, 128),  # -> 7x7x832
    ("inception_5b", 384, 192, 384, 48, 128, 128),  # -> 7x7x1024
)
AUX_AFTER = {"inception_4a": "aux1", "inception_4d": "aux2"}

# Fig. 5 of the BN paper: (row, #1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3,
# pool, pool proj); #1x1 = 0 and proj = 0 mark the stride-2 modules (max pool + pass through).
BN_INCEPTION = (
    ("inception_3a", 64, 64, 64, 64, 96, "avg", 32),  # -> 28x28x256
    ("inception_3b", 64, 64, 96, 64, 96, "avg", 64),  # -> 28x28x320
    ("inception_3c", 0, 128, 160, 64, 96, "max", 0),  # stride 2 -> 14x14x576
    ("inception_4a", 224, 64, 96, 96, 128, "avg", 128),  # -> 14x14x576
    ("inception_4b", 192, 96, 128, 96, 128, "avg", 128),  # -> 14x14x576
    ("inception_4c", 160, 128, 160, 128, 160, "avg", 128),  # -> 14x14x608
    ("inception_4d", 96, 128, 192, 160, 192, "avg", 128),  # -> 14x14x608
    ("inception_4e", 0, 128, 192, 192, 256, "max", 0),  # stride 2 -> 7x7x1056
    ("inception_5a", 352, 192, 320, 160, 224, "avg", 128),  # -> 7x7x1024
    ("inception_5b", 352, 192, 320, 192, 224, "max", 128),  # -> 7x7x1024
)

LRN_CAFFE = LRN(size=5, alpha=1e-4, beta=0.75, k=1.0)

# The BN paper (appendix, under Fig. 5): "Our model employed separable convolution with depth
# multiplier 8 on the first convolutional layer": a 7x7/2 depthwise conv giving 8 maps per RGB
# channel (no bias, no activation, as TF-slim's separable_conv2d), then a 1x1 conv to 64.
# 7x7x3x8 + 24x64 = 2,712 weights and 34,019,328 MACs at 112x112: exactly Table 1's conv1 row
# of GoogLeNet (2.7K, 34M), which the full 7x7 conv (9,408 weights, 118M MACs) does not match.
DEPTHWISE_7X7 = Conv2d(24, 7, stride=2, padding=3, groups=3, bias=False)


def unit(g: Graph, x: str, out: int, kernel: int, *, bn: bool, name: str, **conv) -> str:
    """Conv + ReLU with a bias (the paper), or torchvision's BasicConv2d when ``bn``: conv
    without bias + BatchNorm (eps 1e-3) + ReLU. Named ``name``, ``name_bn``, ``name_relu``."""
    x = g.add(Conv2d(out, kernel, bias=not bn, **conv), x, name=name)
    if bn:
        x = g.add(BatchNorm(eps=1e-3), x, name=f"{name}_bn")
    # BasicConv2d.forward ends in F.relu(x, inplace=True), a function call, not an nn.ReLU.
    return g.add(ReLU(), x, name=f"{name}_relu", torch="functional" if bn else "default")


def inception(g: Graph, x: str, n1x1: int, n3x3red: int, n3x3: int, n5x5red: int, n5x5: int, pool_proj: int,
              *, bn: bool = False, k5: int = 5) -> str:
    """The Inception module with dimension reductions (Fig. 2b), arguments in Table 1's column
    order. ``k5`` is the "5x5" branch's kernel (torchvision's 3); ``bn`` puts BN after each conv."""

    def conv(out, kernel, name):
        return lambda g, x: unit(g, x, out, kernel, padding=kernel // 2, bn=bn, name=name)

    paths = (
        [conv(n1x1, 1, "conv")],
        [conv(n3x3red, 1, "reduce"), conv(n3x3, 3, "conv")],
        [conv(n5x5red, 1, "reduce"), conv(n5x5, k5, "conv")],
        # torchvision pools in ceil mode here too; with stride 1 and pad 1 it changes nothing.
        [("pool", MaxPool2d(3, 1, padding=1, ceil_mode=True)), conv(pool_proj, 1, "proj")],
    )
    return g.concat(*g.branches(x, *paths, names=("b1x1", "b3x3", "b5x5", "pool_proj")))


def aux_classifier(g: Graph, x: str, num_classes: int, *, bn: bool = False) -> str:
    """Training-only side head (Sec. 5): 5x5/3 avg pool, 1x1 conv 128, FC 1024, 70% dropout, linear."""
    x = g.add(AvgPool2d(5, 3), x, name="pool")  # 14x14 -> 4x4
    x = unit(g, x, 128, 1, bn=bn, name="conv")  # -> 4x4x128
    x = g.add(Flatten(), x, name="flatten")  # -> 2048
    x = g.add(Linear(1024), x, name="fc")
    x = g.add(ReLU(), x, name="fc_relu", torch="functional" if bn else "default")  # torchvision: F.relu
    x = g.add(Dropout(0.7), x, name="dropout")
    return g.add(Linear(num_classes), x, name="classifier")


def googlenet(
    aux: bool = False,
    bn: bool = False,
    lrn: bool = True,
    k5: int = 5,
    pool4_kernel: int = 3,
    global_pool: bool = False,
    separable_conv1: bool = False,
    dropout: float = 0.4,
    num_classes: int = 1000,
    input_shape=(3, 224, 224),
) -> Graph:
    """Table 1. ``bn``: torchvision's conv + BN (no bias) units; ``lrn``: the two LRN layers;
    ``k5``: the "5x5" branch's kernel; ``pool4_kernel``: the pool before 5a; ``global_pool``:
    an adaptive average pool instead of the 7x7 one; ``aux``: the two training-only heads;
    ``separable_conv1``: the separable first layer that Table 1's conv1 row was counted for."""
    g = Graph("googlenet")
    x = g.input(input_shape)
    with g.scope("conv1"):
        if separable_conv1:
            x = g.add(DEPTHWISE_7X7, x, name="depthwise")  # -> 112x112x24
            x = unit(g, x, 64, 1, bn=bn, name="conv")  # -> 112x112x64
        else:
            x = unit(g, x, 64, 7, stride=2, padding=3, bn=bn, name="conv")  # -> 112x112x64
    with g.scope("pool1"):
        x = g.add(MaxPool2d(3, 2, ceil_mode=True), x, name="pool")  # -> 56x56x64
        if lrn:
            x = g.add(LRN_CAFFE, x, name="norm")
    with g.scope("conv2"):
        x = unit(g, x, 64, 1, bn=bn, name="reduce")  # -> 56x56x64
        x = unit(g, x, 192, 3, padding=1, bn=bn, name="conv")  # -> 56x56x192
        if lrn:
            x = g.add(LRN_CAFFE, x, name="norm")
    with g.scope("pool2"):
        x = g.add(MaxPool2d(3, 2, ceil_mode=True), x, name="pool")  # -> 28x28x192
    for row, *widths in GOOGLENET:
        with g.scope(row):
            if not widths:
                kernel = pool4_kernel if row == "pool4" else 3
                x = g.add(MaxPool2d(kernel, 2, ceil_mode=True), x, name="pool")
                continue
            x = inception(g, x, *widths, bn=bn, k5=k5)
        if aux and row in AUX_AFTER:
            with g.scope(AUX_AFTER[row]):
                aux_classifier(g, x, num_classes, bn=bn)
    with g.scope("avgpool"):
        if global_pool:  # torchvision: AdaptiveAvgPool2d((1, 1))
            x = g.add(GlobalAvgPool(), x, name="pool")
        else:
            x = g.add(AvgPool2d(7, 1), x, name="pool")  # -> 1x1x1024
        x = g.add(Flatten(), x, name="flatten")
    with g.scope("dropout"):
        x = g.add(Dropout(dropout), x, name="dropout")
    with g.scope("fc"):
        g.add(Linear(num_classes), x, name="linear")
    return g


def bn_inception_module(g: Graph, x: str, n1x1: int, n3x3red: int, n3x3: int, n_dbl_red: int, n_dbl: int,
                        pool: str, pool_proj: int) -> str:
    """Fig. 5's module, arguments in the figure's column order. ``n1x1 == 0`` marks a stride-2
    module: no 1x1 branch, the last conv of each 3x3 branch has stride 2 and the max pool's
    output passes through unprojected."""
    stride = 1 if n1x1 else 2

    def conv(out, kernel, name, s=1):
        return lambda g, x: conv_relu(g, x, out, kernel, stride=s, padding=kernel // 2, bn=True, name=name)

    Pool = MaxPool2d if pool == "max" else AvgPool2d
    pool_op = Pool(3, stride, padding=1 if stride == 1 else 0, ceil_mode=True)
    paths = [
        [conv(n3x3red, 1, "reduce"), conv(n3x3, 3, "conv", stride)],
        [conv(n_dbl_red, 1, "reduce"), conv(n_dbl, 3, "conv1"), conv(n_dbl, 3, "conv2", stride)],
        [("pool", pool_op)] + ([conv(pool_proj, 1, "proj")] if pool_proj else []),
    ]
    names = ["b3x3", "b3x3dbl", "pool_proj"]
    if n1x1:
        paths.insert(0, [conv(n1x1, 1, "conv")])
        names.insert(0, "b1x1")
    return g.concat(*g.branches(x, *paths, names=names))


def bn_inception(separable_conv1: bool = True, num_classes: int = 1000, input_shape=(3, 224, 224)) -> Graph:
    """Fig. 5; ``separable_conv1=False`` gives the full 7x7 first conv of the Caffe replication."""
    g = Graph("bn_inception")
    x = g.input(input_shape)
    with g.scope("conv1"):
        if separable_conv1:
            x = g.add(DEPTHWISE_7X7, x, name="depthwise")  # -> 112x112x24
            x = conv_relu(g, x, 64, 1, bn=True, name="conv")  # -> 112x112x64
        else:
            x = conv_relu(g, x, 64, 7, stride=2, padding=3, bn=True, name="conv")  # -> 112x112x64
    with g.scope("pool1"):
        x = g.add(MaxPool2d(3, 2, ceil_mode=True), x, name="pool")  # -> 56x56x64
    with g.scope("conv2"):
        x = conv_relu(g, x, 64, 1, bn=True, name="reduce")
        x = conv_relu(g, x, 192, 3, padding=1, bn=True, name="conv")  # -> 56x56x192
    with g.scope("pool2"):
        x = g.add(MaxPool2d(3, 2, ceil_mode=True), x, name="pool")  # -> 28x28x192
    for row, *widths in BN_INCEPTION:
        with g.scope(row):
            x = bn_inception_module(g, x, *widths)
    with g.scope("avgpool"):
        x = g.add(AvgPool2d(7, 1), x, name="pool")  # -> 1x1x1024
        x = g.add(Flatten(), x, name="flatten")
    with g.scope("fc"):
        g.add(Linear(num_classes), x, name="linear")
    return g


register(
    "googlenet", googlenet,
    description="GoogLeNet / Inception v1 as in Table 1 (LRN, ceil-mode pools; aux=True adds the training heads)",
    source="Szegedy et al. 2014, Table 1 and Fig. 3; BVLC Caffe bvlc_googlenet prototxt",
)
register(
    "googlenet_tv", googlenet, bn=True, lrn=False, k5=3, pool4_kernel=2, global_pool=True, dropout=0.2,
    description="torchvision's GoogLeNet: BN after every conv, no LRN, 3x3 in the '5x5' branch (issue #906)",
    source="torchvision googlenet, GoogLeNet_Weights.IMAGENET1K_V1",
)
register(
    "bn_inception", bn_inception,
    description="BN-Inception: BN everywhere, 5x5 -> two 3x3, stride-2 modules 3c and 4e",
    source="Ioffe & Szegedy 2015, Fig. 5",
)
