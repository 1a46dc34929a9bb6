"""ResNet (He, Zhang, Ren & Sun 2015, "Deep Residual Learning for Image Recognition").

ImageNet models follow Table 1: conv1 7x7/2 64, then conv2_x (3x3/2 max pool + blocks) at 56x56,
conv3_x at 28x28, conv4_x at 14x14, conv5_x at 7x7, global average pool, 1000-d fc. Every conv is
followed by BN (Sec. 3.4), so convs carry no bias. Graph scopes are the table's rows: ``conv1``,
``conv2_x`` ... ``conv5_x``, ``fc``; blocks inside are ``conv3_x.0``, ``conv3_x.1`` ... with
``conv1``/``bn1``/``relu1`` ... ``add``, ``relu`` and, when there is one, ``shortcut.conv``/``shortcut.bn``
(torchvision's ``downsample.0``/``.1``) or ``shortcut.pad`` (option A).

Choices and departures (see docs/zoo/resnet.md):
- ``resnet18`` ... ``resnet152`` are the paper's form: shortcut option B (identity, 1x1/2 projection
  where dimensions change) and, in bottlenecks, the stride on the first 1x1 conv (the released
  Caffe models). ``resnet*_tv`` is torchvision's "v1.5" (from fb.resnet.torch): the stride sits on
  the 3x3, so the first 1x1 of each stage's first block runs at the input's resolution (more
  MACs: ResNet-50 4.09 G instead of 3.86 G) and no 1x1/2 conv skips three quarters of its
  input. Basic blocks have their stride on the first 3x3 either way, so resnet18/34 equal
  resnet18_tv/34_tv.
- Table 1's FLOPs for ResNet-34 (3.6) and ResNet-50 (3.8) cannot be met by this form (3.66 and
  3.86 G); tests/zoo/cited/resnet.json records why.
- Pre-activation nets (He et al. 2016) follow the authors' code; see ``preresnet_cifar`` and
  ``preresnet`` for the one departure.
- The softmax of Table 1 is left out (no params, no MACs), as in every zoo model.
- CIFAR ResNets (Sec. 4.2): 3x3 conv 16, then 3 stages of n basic blocks with 16/32/64 filters at
  32/16/8, global average pool, 10-way fc; depth 6n+2; option A shortcuts (zero padding, a
  strided subsample of the identity). The paper names no stages; the scopes reuse ImageNet's
  names (``conv1``, ``conv2_x``, ``conv3_x``, ``conv4_x``, ``fc``).
- Plain nets (``plain18``, ``plain34``) are the same stacks without shortcuts (Fig. 3 middle).
"""

from __future__ import annotations

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import (
    Activation, BatchNorm, ChannelPad, Conv2d, Dropout, Flatten, GlobalAvgPool, Linear, MaxPool2d, Scale,
)
from archcost.registry import register, register_pattern

SHORTCUTS = ("A", "B", "C")
STRIDE_ON = ("1x1", "3x3")


# --- building blocks (public: the zoo's variants build on them) ---------------------------------
def conv_bn(g: Graph, x: str, out: int, kernel: int, stride: int = 1, *, groups: int = 1, index: str = "",
            relu: bool = True) -> str:
    """conv (no bias) -> BN (-> ReLU), named ``conv{index}``, ``bn{index}``, ``relu{index}``."""
    x = g.add(Conv2d(out, kernel, stride, padding=kernel // 2, groups=groups, bias=False), x, name=f"conv{index}")
    x = g.add(BatchNorm(), x, name=f"bn{index}")
    return g.add(Activation("relu"), x, name=f"relu{index}") if relu else x


def check_choice(field: str, value, allowed) -> None:
    if value not in allowed:
        raise ArchcostError(f"{field}: expected one of {', '.join(map(str, allowed))}, got {value!r}")


def shortcut(g: Graph, x: str, out: int, stride: int = 1, option: str = "B", *, bn: bool = True) -> str:
    """The shortcut of a residual block, in scope ``shortcut`` when it is not the identity.

    Option A: identity; where the shape changes, subsample by ``stride`` and zero-pad the new
    channels (no params). B: identity, or a 1x1 projection (+ BN) where the shape changes.
    C: a 1x1 projection (+ BN) always. ``bn=False`` leaves the BN out (pre-activation nets)."""
    check_choice("shortcut", option, SHORTCUTS)
    channels = g.shape(x)[1]
    changes = stride != 1 or channels != out
    if option == "A" and changes:
        with g.scope("shortcut"):
            return g.add(ChannelPad(out, stride), x, name="pad")
    if option == "C" or (option == "B" and changes):
        with g.scope("shortcut"):
            x = g.add(Conv2d(out, 1, stride, bias=False), x, name="conv")
            return g.add(BatchNorm(), x, name="bn") if bn else x
    return x


def residual_end(g: Graph, branch: str, skip: str, survival: float | None = None, post_relu: bool = True) -> str:
    """Close a residual block: (scale the branch by its survival probability,) add the
    shortcut, (ReLU). ``survival`` is stochastic depth's test-time rule (Huang et al. 2016, Eq. 5)."""
    if survival is not None:
        branch = g.add(Scale(survival), branch, name="scale")
    y = g.sum(branch, skip, name="add")
    return g.add(Activation("relu"), y, name="relu") if post_relu else y


def basic_block(g: Graph, x: str, width: int, stride: int = 1, shortcut_option: str = "B",
                survival: float | None = None) -> str:
    """[3x3, width; 3x3, width] (Fig. 2 / Fig. 5 left), stride on the first conv, ReLU after the add."""
    skip = shortcut(g, x, width, stride, shortcut_option)
    y = conv_bn(g, x, width, 3, stride, index="1")
    y = conv_bn(g, y, width, 3, index="2", relu=False)
    return residual_end(g, y, skip, survival)


def bottleneck_block(g: Graph, x: str, width: int, out: int | None = None, stride: int = 1,
                     shortcut_option: str = "B", stride_on: str = "1x1", groups: int = 1,
                     survival: float | None = None) -> str:
    """[1x1, width; 3x3, width; 1x1, out] (Fig. 5 right); ``out`` defaults to 4 x width.

    ``stride_on="1x1"`` strides the first 1x1 (the paper's Caffe models), ``"3x3"`` the 3x3
    (fb.resnet.torch / torchvision v1.5, ResNeXt). ``groups`` > 1 makes the 3x3 a grouped conv
    (ResNeXt's form (c) of Fig. 3)."""
    check_choice("stride_on", stride_on, STRIDE_ON)
    out = 4 * width if out is None else out
    skip = shortcut(g, x, out, stride, shortcut_option)
    first, middle = (stride, 1) if stride_on == "1x1" else (1, stride)
    y = conv_bn(g, x, width, 1, first, index="1")
    y = conv_bn(g, y, width, 3, middle, groups=groups, index="2")
    y = conv_bn(g, y, out, 1, index="3", relu=False)
    return residual_end(g, y, skip, survival)


# --- pre-activation blocks (He et al. 2016, "Identity Mappings", Fig. 4(e)) -----------------
def bn_relu(g: Graph, x: str, index: str = "") -> str:
    x = g.add(BatchNorm(), x, name=f"bn{index}")
    return g.add(Activation("relu"), x, name=f"relu{index}")


def preact_shortcut(g: Graph, x: str, activated: str, out: int, stride: int, option: str = "B",
                    project_from: str = "preact") -> str:
    """The shortcut of a pre-activation block. The identity reads the block input ``x``; a
    projection reads the pre-activated input (``project_from="preact"``: the Identity Mappings
    CIFAR code and WRN's code, a bare 1x1 conv) or the raw input (``"input"``: fb.resnet.torch's
    preresnet.lua, 1x1 conv + BN)."""
    check_choice("project_from", project_from, ("preact", "input"))
    if project_from == "preact":
        changes = stride != 1 or g.shape(x)[1] != out
        return shortcut(g, activated if changes or option == "C" else x, out, stride, option, bn=False)
    return shortcut(g, x, out, stride, option)


def preact_basic_block(g: Graph, x: str, width: int, stride: int = 1, shortcut_option: str = "B",
                       preact: bool = True, project_from: str = "preact", dropout: float = 0.0) -> str:
    """BN-ReLU-conv3x3-BN-ReLU-(dropout)-conv3x3 + shortcut, no ReLU after the add (WRN's B(3,3)
    block; ``dropout`` > 0 is WRN's dropout between the convs). ``preact=False`` leaves out the
    first BN-ReLU (the block right after a stem that already ends in BN-ReLU)."""
    activated = bn_relu(g, x, "1") if preact else x
    skip = preact_shortcut(g, x, activated, width, stride, shortcut_option, project_from)
    y = g.add(Conv2d(width, 3, stride, padding=1, bias=False), activated, name="conv1")
    y = bn_relu(g, y, "2")
    if dropout:
        y = g.add(Dropout(dropout), y, name="dropout")
    y = g.add(Conv2d(width, 3, padding=1, bias=False), y, name="conv2")
    return residual_end(g, y, skip, post_relu=False)


def preact_bottleneck_block(g: Graph, x: str, width: int, out: int | None = None, stride: int = 1,
                            shortcut_option: str = "B", stride_on: str = "3x3", groups: int = 1,
                            preact: bool = True, project_from: str = "preact") -> str:
    """BN-ReLU-conv1x1-BN-ReLU-conv3x3-BN-ReLU-conv1x1 + shortcut, no ReLU after the add."""
    check_choice("stride_on", stride_on, STRIDE_ON)
    out = 4 * width if out is None else out
    activated = bn_relu(g, x, "1") if preact else x
    skip = preact_shortcut(g, x, activated, out, stride, shortcut_option, project_from)
    first, middle = (stride, 1) if stride_on == "1x1" else (1, stride)
    y = g.add(Conv2d(width, 1, first, bias=False), activated, name="conv1")
    y = bn_relu(g, y, "2")
    y = g.add(Conv2d(width, 3, middle, padding=1, groups=groups, bias=False), y, name="conv2")
    y = bn_relu(g, y, "3")
    y = g.add(Conv2d(out, 1, bias=False), y, name="conv3")
    return residual_end(g, y, skip, post_relu=False)


def plain_block(g: Graph, x: str, width: int, stride: int = 1) -> str:
    """A basic block without its shortcut (the plain nets of Fig. 3, middle)."""
    y = conv_bn(g, x, width, 3, stride, index="1")
    return conv_bn(g, y, width, 3, index="2")


def imagenet_stem(g: Graph, x: str, width: int = 64) -> str:
    """Table 1's conv1 (7x7/2, BN, ReLU) and the 3x3/2 max pool that opens conv2_x."""
    with g.scope("conv1"):
        x = conv_bn(g, x, width, 7, 2)  # -> 112x112x64
    with g.scope("conv2_x"):
        return g.add(MaxPool2d(3, 2, padding=1), x, name="pool")  # -> 56x56x64


def classifier_head(g: Graph, x: str, num_classes: int) -> str:
    """Global average pool, flatten, fc (Table 1's last row), in scope ``fc``."""
    with g.scope("fc"):
        x = g.add(GlobalAvgPool(), x, name="pool")  # -> 1x1xC
        x = g.add(Flatten(), x, name="flatten")
        return g.add(Linear(num_classes), x, name="fc")


def stage(g: Graph, x: str, name: str, count: int, block) -> str:
    """``count`` blocks in scope ``name`` (``name.0`` ... ); ``block(g, x, i)`` builds block i."""
    with g.scope(name):
        return g.repeat(x, count, block)


# --- ImageNet ResNets, Table 1 --------------------------------------------------------------
# (block kind, blocks per stage conv2_x..conv5_x)
IMAGENET = {
    18: ("basic", (2, 2, 2, 2)),
    34: ("basic", (3, 4, 6, 3)),
    50: ("bottleneck", (3, 4, 6, 3)),
    101: ("bottleneck", (3, 4, 23, 3)),
    152: ("bottleneck", (3, 8, 36, 3)),
    200: ("bottleneck", (3, 24, 36, 3)),  # He et al. 2016 (Identity Mappings), Sec. 5 / fb.resnet.torch
}
STAGE_NAMES = ("conv2_x", "conv3_x", "conv4_x", "conv5_x")
STAGE_WIDTHS = (64, 128, 256, 512)  # the 3x3 width of each stage; bottleneck outputs are 4x


def imagenet_body(g: Graph, x: str, counts, block) -> str:
    """conv2_x .. conv5_x with ``counts`` blocks each; ``block(g, x, stage, i, stride)`` builds
    block i of stage 0..3 (the first block of conv3_x .. conv5_x halves the map)."""
    for index, (name, count) in enumerate(zip(STAGE_NAMES, counts)):
        first_stride = 1 if index == 0 else 2

        def build(g, x, i, index=index, first_stride=first_stride):
            return block(g, x, index, i, first_stride if i == 0 else 1)

        x = stage(g, x, name, count, build)  # -> 56x56, 28x28, 14x14, 7x7
    return x


def resnet(depth: int = 50, shortcut: str = "B", stride_on: str = "1x1", plain: bool = False,
           num_classes: int = 1000, input_shape=(3, 224, 224)) -> Graph:
    if depth not in IMAGENET or depth == 200:
        known = ", ".join(str(d) for d in IMAGENET if d != 200)
        raise ArchcostError(f"resnet: depth {depth!r} is not in Table 1; known depths: {known}")
    check_choice("shortcut", shortcut, SHORTCUTS)
    check_choice("stride_on", stride_on, STRIDE_ON)
    kind, counts = IMAGENET[depth]
    if plain and kind != "basic":
        raise ArchcostError(f"resnet: plain=True needs a basic-block depth (18 or 34), got {depth}")

    def block(g, x, index, i, stride):
        width = STAGE_WIDTHS[index]
        if plain:
            return plain_block(g, x, width, stride)
        if kind == "basic":
            return basic_block(g, x, width, stride, shortcut)  # -> 56x56x64 ... 7x7x512
        return bottleneck_block(g, x, width, 4 * width, stride, shortcut, stride_on)  # -> ... 7x7x2048

    g = Graph(f"resnet{depth}")
    x = imagenet_stem(g, g.input(input_shape))
    x = imagenet_body(g, x, counts, block)
    classifier_head(g, x, num_classes)
    return g


# --- CIFAR-10 ResNets, Sec. 4.2 -------------------------------------------------------------
CIFAR_WIDTHS = (16, 32, 64)


def cifar_body(g: Graph, x: str, n: int, block) -> str:
    """Three stages of ``n`` blocks at 32x32, 16x16, 8x8 (scopes conv2_x .. conv4_x);
    ``block(g, x, stage, i, stride)`` builds block i of stage 0..2."""
    for index, name in enumerate(STAGE_NAMES[:3]):
        first_stride = 1 if index == 0 else 2

        def build(g, x, i, index=index, first_stride=first_stride):
            return block(g, x, index, i, first_stride if i == 0 else 1)

        x = stage(g, x, name, n, build)  # -> 32x32, 16x16, 8x8
    return x


def resnet_cifar(depth: int = 20, shortcut: str = "A", num_classes: int = 10, input_shape=(3, 32, 32)) -> Graph:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ArchcostError(f"resnet_cifar: depth {depth!r} must be 6n+2 with n >= 1 (20, 32, 44, 56, 110, ...)")
    check_choice("shortcut", shortcut, SHORTCUTS)
    g = Graph(f"resnet{depth}")
    x = g.input(input_shape)
    with g.scope("conv1"):
        x = conv_bn(g, x, CIFAR_WIDTHS[0], 3)  # -> 32x32x16

    def block(g, x, index, i, stride):
        return basic_block(g, x, CIFAR_WIDTHS[index], stride, shortcut)  # -> 32x32x16, 16x16x32, 8x8x64

    x = cifar_body(g, x, (depth - 2) // 6, block)
    classifier_head(g, x, num_classes)
    return g


# --- pre-activation ResNets (He et al. 2016, "Identity Mappings in Deep Residual Networks") --
def final_bn_relu(g: Graph, x: str, scope: str) -> str:
    """The BN-ReLU after the last pre-activation unit (the paper's "extra activation")."""
    with g.scope(scope):
        return bn_relu(g, x)


def preresnet_cifar(depth: int = 164, num_classes: int = 10, input_shape=(3, 32, 32)) -> Graph:
    """ResNet-164 / ResNet-1001 of Table 2 / 3, as in the authors' resnet-pre-act.lua: conv1 3x3 16
    with no BN-ReLU of its own (the first unit's shared BN-ReLU follows it), three stages of n
    bottlenecks with outputs 64/128/256 (depth 9n+2). Where the shape changes, the BN-ReLU is
    shared by both paths and the shortcut is a bare 1x1 conv (stride on the first 1x1 there)."""
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 11 or (depth - 2) % 9:
        raise ArchcostError(f"preresnet_cifar: depth {depth!r} must be 9n+2 with n >= 1 (164, 1001, ...)")
    g = Graph(f"preresnet{depth}")
    x = g.input(input_shape)
    with g.scope("conv1"):
        x = g.add(Conv2d(CIFAR_WIDTHS[0], 3, padding=1, bias=False), x, name="conv")  # -> 32x32x16

    def block(g, x, index, i, stride):
        width = CIFAR_WIDTHS[index]  # -> 32x32x64, 16x16x128, 8x8x256
        return preact_bottleneck_block(g, x, width, 4 * width, stride, "B", stride_on="1x1")

    x = cifar_body(g, x, (depth - 2) // 9, block)
    x = final_bn_relu(g, x, "conv4_x")
    classifier_head(g, x, num_classes)
    return g


def preresnet(depth: int = 200, num_classes: int = 1000, input_shape=(3, 224, 224)) -> Graph:
    """Pre-activation ImageNet ResNet as in fb.resnet.torch's preresnet.lua (the code of the
    paper's ResNet-200): Table 1's stem (conv1, BN, ReLU, max pool), pre-activation bottlenecks
    with the stride on the 3x3, option B shortcuts (1x1 conv + BN reading the raw block input),
    BN-ReLU after the last unit. Departure: preresnet.lua drops the leading BN-ReLU from every
    unit of conv2_x; here only from the first (the stem's BN-ReLU precedes it), as the paper
    describes (Appendix: "the first activation right after conv1")."""
    if depth not in IMAGENET or IMAGENET[depth][0] != "bottleneck":
        raise ArchcostError(f"preresnet: depth {depth!r} must be one of 50, 101, 152, 200")

    def block(g, x, index, i, stride):
        width = STAGE_WIDTHS[index]
        return preact_bottleneck_block(g, x, width, 4 * width, stride, "B", "3x3",
                                       preact=(index, i) != (0, 0), project_from="input")

    g = Graph(f"preresnet{depth}")
    x = imagenet_stem(g, g.input(input_shape))
    x = imagenet_body(g, x, IMAGENET[depth][1], block)  # -> 7x7x2048
    x = final_bn_relu(g, x, "conv5_x")
    classifier_head(g, x, num_classes)
    return g


SOURCE = "He et al. 2015, Deep Residual Learning for Image Recognition"
for _depth in (18, 34, 50, 101, 152):
    register(f"resnet{_depth}", resnet, depth=_depth,
             description=f"ResNet-{_depth} (Table 1; option B, bottleneck stride on the 1x1 as in the paper)",
             source=f"{SOURCE}, Table 1")
    register(f"resnet{_depth}_tv", resnet, depth=_depth, stride_on="3x3",
             description=f"ResNet-{_depth} as torchvision's resnet{_depth} (v1.5: stride on the 3x3)",
             source=f"{SOURCE}, Table 1; torchvision.models.resnet{_depth}")
for _depth in (18, 34):
    register(f"plain{_depth}", resnet, depth=_depth, plain=True,
             description=f"Plain-{_depth}: ResNet-{_depth} without shortcuts (Fig. 3 middle)",
             source=f"{SOURCE}, Table 1")
for _depth in (20, 32, 44, 56, 110, 1202):
    register(f"resnet{_depth}", resnet_cifar, depth=_depth,
             description=f"CIFAR-10 ResNet-{_depth} (6n+2, n={(_depth - 2) // 6}, option A)",
             source=f"{SOURCE}, Sec. 4.2, Table 6")
register_pattern(
    r"resnet_cifar-(\d+)", resnet_cifar, lambda m: {"depth": int(m.group(1))}, example="resnet_cifar-N",
    description="CIFAR-10 ResNet of any depth 6n+2 (option A)", source=f"{SOURCE}, Sec. 4.2",
)

PREACT = "He et al. 2016, Identity Mappings in Deep Residual Networks"
for _depth in (164, 1001):
    register(f"preresnet{_depth}", preresnet_cifar, depth=_depth,
             description=f"Pre-activation ResNet-{_depth}, CIFAR-10 (bottleneck, 9n+2, n={(_depth - 2) // 9})",
             source=f"{PREACT}, Table 4; KaimingHe/resnet-1k-layers resnet-pre-act.lua")
register("preresnet200", preresnet, depth=200, description="Pre-activation ResNet-200, ImageNet",
         source=f"{PREACT}, Table 5; fb.resnet.torch models/preresnet.lua")
register_pattern(
    r"preresnet_cifar-(\d+)", preresnet_cifar, lambda m: {"depth": int(m.group(1))}, example="preresnet_cifar-N",
    description="Pre-activation CIFAR ResNet of any depth 9n+2 (bottleneck)", source=f"{PREACT}, Sec. 4",
)
