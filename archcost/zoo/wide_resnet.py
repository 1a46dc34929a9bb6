"""Wide Residual Networks (Zagoruyko & Komodakis 2016).

CIFAR WRN-d-k (Table 1): conv1 3x3 16 at 32x32; conv2 [3x3, 16k; 3x3, 16k] x N at 32x32; conv3
[3x3, 32k] x2 x N at 16x16; conv4 [3x3, 64k] x2 x N at 8x8; BN-ReLU, 8x8 average pool, fc;
N = (d - 4) / 6. Blocks are pre-activation B(3,3) (BN-ReLU-conv3x3-BN-ReLU-conv3x3); where the
shape changes the shortcut is a bare 1x1 conv reading the block's pre-activated input, as in the
authors' code (conv2's first block projects too when k > 1: 16 -> 16k). conv1 has no BN-ReLU of its
own: the first block's BN-ReLU follows it. Convs have no bias (BN follows each one).
``dropout`` > 0 puts WRN's dropout between the two convs of every block (WRN-28-10 with
dropout 0.3 in the paper); it changes no count.

``wrn50_2``: WRN-50-2-bottleneck (Sec. "ImageNet"), torchvision's wide_resnet50_2: ResNet-50
(v1.5, stride on the 3x3, post-activation, option B) with every bottleneck's inner width doubled
(128/256/512/1024), outputs unchanged (256/512/1024/2048).
"""

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import Conv2d
from archcost.registry import register, register_pattern
from archcost.zoo.resnet import (
    CIFAR_WIDTHS, IMAGENET, STAGE_WIDTHS, bottleneck_block, cifar_body, classifier_head, final_bn_relu,
    imagenet_body, imagenet_stem, preact_basic_block,
)


def _check_positive_int(field: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArchcostError(f"wrn: {field} must be a positive integer, got {value!r}")


def wide_resnet(depth: int = 28, width: int = 10, dropout: float = 0.0, num_classes: int = 10,
                input_shape=(3, 32, 32)) -> Graph:
    _check_positive_int("depth", depth)
    _check_positive_int("width", width)
    if depth < 10 or (depth - 4) % 6:
        raise ArchcostError(
            f"wrn: depth {depth} is invalid: depth - 4 must be a positive multiple of 6 (10, 16, 22, 28, 40, ...)"
        )
    g = Graph(f"wrn-{depth}-{width}")
    x = g.input(input_shape)
    with g.scope("conv1"):
        x = g.add(Conv2d(CIFAR_WIDTHS[0], 3, padding=1, bias=False), x, name="conv")  # -> 32x32x16

    def block(g, x, index, i, stride):
        # -> 32x32x16k, 16x16x32k, 8x8x64k
        return preact_basic_block(g, x, CIFAR_WIDTHS[index] * width, stride, "B", dropout=dropout)

    x = cifar_body(g, x, (depth - 4) // 6, block)
    x = final_bn_relu(g, x, "conv4_x")
    classifier_head(g, x, num_classes)
    return g


def wide_resnet_bottleneck(depth: int = 50, width: int = 2, num_classes: int = 1000,
                           input_shape=(3, 224, 224)) -> Graph:
    if depth not in IMAGENET or IMAGENET[depth][0] != "bottleneck" or depth == 200:
        raise ArchcostError(f"wrn_bottleneck: depth {depth!r} must be one of 50, 101, 152")
    _check_positive_int("width", width)

    def block(g, x, index, i, stride):
        inner = STAGE_WIDTHS[index] * width  # 128, 256, 512, 1024 for k = 2
        return bottleneck_block(g, x, inner, 4 * STAGE_WIDTHS[index], stride, "B", stride_on="3x3")

    g = Graph(f"wrn{depth}_{width}")
    x = imagenet_stem(g, g.input(input_shape))
    x = imagenet_body(g, x, IMAGENET[depth][1], block)  # -> 7x7x2048
    classifier_head(g, x, num_classes)
    return g


SOURCE = "Zagoruyko & Komodakis 2016, Wide Residual Networks"
register("wrn", wide_resnet, description="Wide ResNet for CIFAR; choose -o depth=D -o width=K (default WRN-28-10)",
         source=f"{SOURCE}, Table 1")
register_pattern(
    r"wrn-(\d+)-(\d+)", wide_resnet, lambda m: {"depth": int(m.group(1)), "width": int(m.group(2))},
    example="wrn-D-K", description="Wide ResNet WRN-D-K for CIFAR (D - 4 divisible by 6)",
    source=f"{SOURCE}, Table 1",
)
register("wrn50_2", wide_resnet_bottleneck, depth=50, width=2,
         description="WRN-50-2-bottleneck (torchvision's wide_resnet50_2)",
         source=f"{SOURCE}, ImageNet table; torchvision.models.wide_resnet50_2")
