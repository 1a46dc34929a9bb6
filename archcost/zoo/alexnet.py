"""AlexNet (Krizhevsky, Sutskever & Hinton 2012) and ZFNet (Zeiler & Fergus 2014).

- ``alexnet``: the lecture's simplified AlexNet (CS231n Lecture 9): 227x227x3 input, one tower,
  conv1 -> pool -> norm (the CaffeNet order the slide lists), no grouping.
- ``alexnet_2gpu``: the paper's network split over two GPUs: CONV2, CONV4 and CONV5 see only the
  maps on their own GPU (2 groups); CONV1 sees the whole image and CONV3 and the FCs connect to
  all maps. Section 3.5 of the paper puts normalisation before pooling. The paper writes
  224x224 but its own layer sizes need 227x227 (55 = (227 - 11) / 4 + 1).
- ``alexnet_tv``: torchvision's AlexNet, based on "One weird trick" (Krizhevsky 2014):
  64/192/384/256/256 filters, conv1 padded by 2, no LRN, 224x224 input; its AdaptiveAvgPool2d(6)
  (an identity at 224x224, but one that writes its output) and its classifier's dropout-FC-ReLU
  order, as torchvision has them.
- ``zfnet``: Zeiler & Fergus Fig. 3: conv1 7x7/2, conv2 5x5/2; with the lecture's 512/1024/512
  filters in CONV3-5 (the paper's larger variant that gave the ILSVRC 2013 11.7% top-5).
  Its 3x3/2 pools are in ceil mode to give the figure's 55 and 13.
"""

from archcost.graph import Graph
from archcost.ops import LRN, MaxPool2d
from archcost.registry import register
from archcost.zoo._blocks import adaptive_avg_pool, classifier, conv_relu


def alexnet(
    groups: int = 1,
    norm_before_pool: bool = False,
    widths: tuple = (96, 256, 384, 384, 256),
    lrn: bool = True,
    conv1_padding: int = 0,
    torchvision: bool = False,
    num_classes: int = 1000,
    input_shape=(3, 227, 227),
) -> Graph:
    """``torchvision``: the AdaptiveAvgPool2d(6) before the classifier and dropout before each
    hidden FC layer, as torchvision's AlexNet."""
    g = Graph("alexnet")
    x = g.input(input_shape)
    # (kernel, stride, padding, groups, followed by norm+pool?)
    layers = (
        (11, 4, conv1_padding, 1, True),  # CONV1 -> 55x55x96
        (5, 1, 2, groups, True),  # CONV2 -> 27x27x256
        (3, 1, 1, 1, False),  # CONV3 -> 13x13x384 (connects to both towers)
        (3, 1, 1, groups, False),  # CONV4
        (3, 1, 1, groups, True),  # CONV5 (pool only)
    )
    for i, (width, (kernel, stride, padding, grp, after)) in enumerate(zip(widths, layers), start=1):
        x = conv_relu(g, x, width, kernel, stride=stride, padding=padding, groups=grp, name=f"conv{i}")
        if after:
            norm = lrn and i <= 2
            if norm and norm_before_pool:
                x = g.add(LRN(5, 1e-4, 0.75, 2.0), x, name=f"norm{i}")
            x = g.add(MaxPool2d(3, 2), x, name=f"pool{i if i < 5 else 3}")
            if norm and not norm_before_pool:
                x = g.add(LRN(5, 1e-4, 0.75, 2.0), x, name=f"norm{i}")
    if torchvision:
        x = adaptive_avg_pool(g, x, 6)
    classifier(g, x, (4096, 4096), num_classes, dropout_first=torchvision)
    return g


def zfnet(widths: tuple = (96, 256, 512, 1024, 512), num_classes: int = 1000, input_shape=(3, 224, 224)) -> Graph:
    g = Graph("zfnet")
    x = g.input(input_shape)
    x = conv_relu(g, x, widths[0], 7, stride=2, padding=1, name="conv1")  # -> 110x110
    x = g.add(MaxPool2d(3, 2, ceil_mode=True), x, name="pool1")  # -> 55x55
    x = g.add(LRN(), x, name="norm1")
    x = conv_relu(g, x, widths[1], 5, stride=2, name="conv2")  # -> 26x26
    x = g.add(MaxPool2d(3, 2, ceil_mode=True), x, name="pool2")  # -> 13x13
    x = g.add(LRN(), x, name="norm2")
    for i in (3, 4, 5):
        x = conv_relu(g, x, widths[i - 1], 3, padding=1, name=f"conv{i}")
    x = g.add(MaxPool2d(3, 2), x, name="pool5")  # -> 6x6
    classifier(g, x, (4096, 4096), num_classes)
    return g


register(
    "alexnet", alexnet, description="AlexNet as the lecture simplifies it (227x227, one tower, LRN)",
    source="Krizhevsky et al. 2012; CS231n Lecture 9",
)
register(
    "alexnet_2gpu", alexnet, groups=2, norm_before_pool=True,
    description="AlexNet as published: 2 groups on CONV2/4/5, LRN before pooling",
    source="Krizhevsky et al. 2012, Fig. 2 and Sec. 3.5",
)
register(
    "alexnet_tv", alexnet, widths=(64, 192, 384, 256, 256), lrn=False, conv1_padding=2, torchvision=True,
    input_shape=(3, 224, 224),
    description="torchvision's AlexNet ('one weird trick' widths, no LRN)",
    source="Krizhevsky 2014, 'One weird trick'; torchvision alexnet",
)
register(
    "zfnet", zfnet, description="ZFNet: AlexNet with CONV1 7x7/2 and CONV3-5 of 512/1024/512",
    source="Zeiler & Fergus 2014, Fig. 3 and Table 1; CS231n Lecture 9",
)
