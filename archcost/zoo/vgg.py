"""VGG (Simonyan & Zisserman 2015, "Very Deep Convolutional Networks", Table 1).

Configurations A (VGG-11), B (VGG-13), D (VGG-16), E (VGG-19): 3x3 convs, stride 1, pad 1, each
followed by ReLU; 2x2/2 max pools; FC-4096, FC-4096, FC-1000 with dropout 0.5.
Configuration C (1x1 convs in the last three stages) is left out: the lectures do not use it.
The paper has no BatchNorm; the ``_bn`` variants put BN between each conv and its ReLU and,
like torchvision's vgg*_bn, keep the (redundant) conv bias.
torchvision inserts an AdaptiveAvgPool2d(7) before the classifier, an identity at 224x224;
here the classifier sees the last pool directly, as in the paper (and the CS231n table);
``-o torchvision=true`` adds it, for an exact twin of torchvision's vgg* (the peer tools count it).
"""

from archcost.graph import Graph
from archcost.ops import MaxPool2d
from archcost.registry import register
from archcost.zoo._blocks import adaptive_avg_pool, classifier, conv_relu

# Table 1: the conv widths of each stage ("M" closes a stage with a 2x2/2 max pool).
CONFIGS = {
    "A": (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "B": (64, 64, "M", 128, 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"),
    "D": (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"),
    "E": (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512, 512, 512, 512, "M"),
}


def vgg(cfg: str = "D", batch_norm: bool = False, torchvision: bool = False, num_classes: int = 1000,
        input_shape=(3, 224, 224)) -> Graph:
    g = Graph(f"vgg-{cfg}")
    x = g.input(input_shape)
    stage, index = 1, 1
    for width in CONFIGS[cfg]:
        if width == "M":
            x = g.add(MaxPool2d(2, 2), x, name=f"pool{stage}")  # -> H/2
            stage, index = stage + 1, 1
        else:
            x = conv_relu(g, x, width, 3, padding=1, bn=batch_norm, bias=True, name=f"conv{stage}_{index}")
            index += 1
    if torchvision:
        x = adaptive_avg_pool(g, x, 7)
    classifier(g, x, (4096, 4096), num_classes)
    return g


SOURCE = "Simonyan & Zisserman 2015, Table 1"
for _depth, _cfg in (("11", "A"), ("13", "B"), ("16", "D"), ("19", "E")):
    # The description is printed above every table: it names the one layer torchvision adds.
    register(
        f"vgg{_depth}", vgg, cfg=_cfg, source=SOURCE,
        description=f"VGG-{_depth} (configuration {_cfg}; -o torchvision=true adds torchvision's AdaptiveAvgPool2d(7))",
    )
    register(
        f"vgg{_depth}_bn", vgg, cfg=_cfg, batch_norm=True, source=SOURCE,
        description=f"VGG-{_depth} with BatchNorm after every conv (torchvision's vgg{_depth}_bn "
        "with -o torchvision=true)",
    )
