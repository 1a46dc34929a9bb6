"""ResNeXt (Xie, Girshick, Dollar, Tu & He 2017, "Aggregated Residual Transformations").

Table 1: ResNet-50's layout with each bottleneck's 3x3 split into C paths of width d, written as
one grouped conv (Fig. 3(c), which the paper shows equivalent to (a) and (b)): stage i (0..3)
has an inner width of C x d x 2^i (128/256/512/1024 for 32x4d) and outputs 256 x 2^i. As in the
authors' code and torchvision, the stride sits on the 3x3 and shortcuts are option B.
"""

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.registry import register, register_pattern
from archcost.zoo.resnet import IMAGENET, bottleneck_block, classifier_head, imagenet_body, imagenet_stem


def resnext(depth: int = 50, cardinality: int = 32, bottleneck_width: int = 4, num_classes: int = 1000,
            input_shape=(3, 224, 224)) -> Graph:
    if depth not in IMAGENET or IMAGENET[depth][0] != "bottleneck" or depth == 200:
        raise ArchcostError(f"resnext: depth {depth!r} must be one of 50, 101, 152")
    for field, value in (("cardinality", cardinality), ("bottleneck_width", bottleneck_width)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArchcostError(f"resnext: {field} must be a positive integer, got {value!r}")

    def block(g, x, index, i, stride):
        inner = cardinality * bottleneck_width * 2**index  # 128, 256, 512, 1024 for 32x4d
        return bottleneck_block(g, x, inner, 256 * 2**index, stride, "B", stride_on="3x3", groups=cardinality)

    g = Graph(f"resnext{depth}_{cardinality}x{bottleneck_width}d")
    x = imagenet_stem(g, g.input(input_shape))
    x = imagenet_body(g, x, IMAGENET[depth][1], block)  # -> 7x7x2048
    classifier_head(g, x, num_classes)
    return g


SOURCE = "Xie et al. 2017, Aggregated Residual Transformations for Deep Neural Networks"
for _depth, _c, _d in ((50, 32, 4), (101, 32, 4), (101, 32, 8)):
    register(f"resnext{_depth}_{_c}x{_d}d", resnext, depth=_depth, cardinality=_c, bottleneck_width=_d,
             description=f"ResNeXt-{_depth} ({_c}x{_d}d)", source=f"{SOURCE}, Table 1 template; torchvision.models")
register_pattern(
    r"resnext(\d+)_(\d+)x(\d+)d", resnext,
    lambda m: {"depth": int(m.group(1)), "cardinality": int(m.group(2)), "bottleneck_width": int(m.group(3))},
    example="resnextD_CxWd", description="ResNeXt of depth D, cardinality C, bottleneck width W",
    source=f"{SOURCE}, Sec. 3",
)
