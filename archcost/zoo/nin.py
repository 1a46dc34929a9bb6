"""Network in Network (Lin, Chen & Yan 2014, ICLR).

An mlpconv layer is a conv followed by a small MLP shared over positions, i.e. 1x1 convs
("cccp", cascaded cross channel parametric pooling), each with a ReLU. The last mlpconv has one
map per class and global average pooling replaces the FC classifier (Sec. 3.2).

The paper gives no layer table; both models follow the authors' released Caffe definitions:
- ``nin`` (ImageNet, Caffe Model Zoo "nin_imagenet", 224x224 crop): mlpconv 11x11/4 96 - 96 - 96,
  max pool 3x3/2; mlpconv 5x5 256 - 256 - 256, max pool; mlpconv 3x3 384 - 384 - 384, max pool,
  dropout; mlpconv 3x3 1024 - 1024 - 1000; 6x6 average pool.
- ``nin_cifar`` (CIFAR-10, Caffe gist "cifar10_nin", 3 mlpconv layers): mlpconv 5x5 192 - 160 -
  96, max pool 3x3/2, dropout; mlpconv 5x5 192 - 192 - 192, avg pool 3x3/2, dropout; mlpconv
  3x3 192 - 192 - 10, 8x8 global average pool.

Choices (docs/zoo/nin.md): pools are in ceil mode (Caffe's rounding, which the ImageNet model
needs: 54 -> 27 -> 13 -> 6); the final pool is a global average (the Caffe 6x6 and 8x8 windows are
the whole map at the released input sizes); dropout costs nothing at inference but is kept as a node.
"""

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import Activation, AvgPool2d, Conv2d, Dropout, Flatten, GlobalAvgPool, MaxPool2d
from archcost.registry import register

# (kernel, stride, padding, widths of the conv and its two 1x1 layers), then the pool after it:
# ("max" | "avg" | None, dropout after the pool?).
IMAGENET = (
    ((11, 4, 0, (96, 96, 96)), ("max", False)),  # -> 54x54x96 -> pool 27x27
    ((5, 1, 2, (256, 256, 256)), ("max", False)),  # -> 27x27x256 -> pool 13x13
    ((3, 1, 1, (384, 384, 384)), ("max", True)),  # -> 13x13x384 -> pool 6x6
    ((3, 1, 1, (1024, 1024, None)), (None, False)),  # -> 6x6x1000 (None: num_classes)
)
CIFAR = (
    ((5, 1, 2, (192, 160, 96)), ("max", True)),  # -> 32x32x96 -> pool 16x16
    ((5, 1, 2, (192, 192, 192)), ("avg", True)),  # -> 16x16x192 -> pool 8x8
    ((3, 1, 1, (192, 192, None)), (None, False)),  # -> 8x8x10
)


def _mlpconv(g: Graph, x: str, kernel: int, stride: int, padding: int, widths, first_cccp: int) -> str:
    names = ("conv", f"cccp{first_cccp}", f"cccp{first_cccp + 1}")
    for i, (name, width) in enumerate(zip(names, widths)):
        k, s, p = (kernel, stride, padding) if i == 0 else (1, 1, 0)
        x = g.add(Conv2d(width, k, stride=s, padding=p), x, name=name)
        x = g.add(Activation("relu"), x, name=f"{name}_relu")
    return x


def nin(config: str = "imagenet", num_classes: int | None = None, input_shape=None) -> Graph:
    if config not in ("imagenet", "cifar"):
        raise ArchcostError(f"nin: config must be 'imagenet' or 'cifar', got {config!r}")
    layers = IMAGENET if config == "imagenet" else CIFAR
    num_classes = num_classes or (1000 if config == "imagenet" else 10)
    g = Graph(f"nin_{config}")
    x = g.input(input_shape or ((3, 224, 224) if config == "imagenet" else (3, 32, 32)))
    for i, ((kernel, stride, padding, widths), (pool, dropout)) in enumerate(layers, start=1):
        widths = tuple(num_classes if w is None else w for w in widths)
        with g.scope(f"mlpconv{i}"):
            x = _mlpconv(g, x, kernel, stride, padding, widths, 2 * i - 1)
        if pool:
            with g.scope(f"pool{i}"):
                op = MaxPool2d(3, 2, ceil_mode=True) if pool == "max" else AvgPool2d(3, 2, ceil_mode=True)
                x = g.add(op, x, name="pool")
                if dropout:
                    x = g.add(Dropout(0.5), x, name="dropout")
    with g.scope("gap"):
        x = g.add(GlobalAvgPool(), x, name="pool")  # -> 1x1xclasses
        g.add(Flatten(), x, name="flatten")
    return g


register(
    "nin", nin, config="imagenet", description="Network in Network, ImageNet (4 mlpconv layers + global avg pool)",
    source="Lin et al. 2014; the authors' Caffe Model Zoo nin_imagenet",
)
register(
    "nin_cifar", nin, config="cifar", description="Network in Network, CIFAR-10 (3 mlpconv layers + global avg pool)",
    source="Lin et al. 2014, Sec. 4.2; the authors' Caffe cifar10_nin",
)
