"""Random archcost graphs, for the property tests (tests/test_properties.py) and the fuzzer
(benchmarks/fuzz_graphs.py), which share every generator here.

A generator makes its random decisions through a ``Chooser``: ``DrawChooser`` draws them from
hypothesis (so failing examples shrink: every choice shrinks towards its first option, which is
the simplest), ``RandomChooser`` from ``random.Random`` (the fuzzer: fast, never stops at a
failure). Three kinds of spec come out:

- ``valid_spec``: a graph that must build, each layer with the shape that the textbook formulas
  (PyTorch's conv and pooling output sizes, written here independently of archcost/shapes.py)
  give it; sizes are small (input channels 1-8, spatial 1-20, batch 1-3), so that it executes in
  milliseconds. Convs of random kernel, stride, padding (int, pair, four sides, "same",
  "valid"), dilation and groups (dense, grouped, depthwise); max/avg pooling with ceil mode and
  overhanging windows; every activation, BatchNorm, LRN, dropout, channel pad, maxout, channel
  selection, affine, scale, softmax, LayerNorm on any axis, GroupNorm (1 to C groups); permutes, reshapes, flatten;
  linear layers on vectors and channels-last maps; residual adds and means, SE gates (broadcast
  mul), broadcast adds and subs (a global context, a per-position map), inception branches
  joined by a concat, concats along any axis, a spatial transformer, resizes (nearest and
  bilinear, every coordinate mode, to a size or by a scale), transposed convs, pads (every mode,
  crops in constant mode, of maps and of (N, C, L) tensors).
- ``invalid_spec``: a valid prefix plus one layer that archcost must refuse (``spec.reason``
  says why), by a shape rule or by a field check.
- ``hostile_spec``: a valid prefix plus one layer of any op with some fields set to hostile
  values (wrong types, zero, negative, NaN, 2**2000, ...), which may or may not be refused.

A ``Spec`` prints as the Python that builds it, so a failure reads as a reproducer.
"""

from __future__ import annotations

import dataclasses
import math
import random
from dataclasses import dataclass, field

from archcost import ops
from archcost.graph import Graph

MAX_CHANNELS = 32  # channels of a map the generator lets grow (concat, channel pad, conv)
MAX_NUMEL = 12_000  # elements per sample of any layer
MAX_FEATURES = 32  # out features of a linear layer


# --- where the random decisions come from ------------------------------------------------------


class Chooser:
    """The random decisions of a generator. Every choice shrinks towards ``lo`` / the first option."""

    def int(self, lo: int, hi: int) -> int:
        raise NotImplementedError

    def float(self, lo: float, hi: float) -> float:
        raise NotImplementedError

    def bool(self) -> bool:
        return self.int(0, 1) == 1

    def chance(self, one_in: int) -> bool:
        """True about once in ``one_in`` (shrinks to False)."""
        return self.int(0, one_in - 1) == one_in - 1

    def choice(self, options):
        options = list(options)
        return options[self.int(0, len(options) - 1)]

    def sample(self, options, k: int) -> list:
        pool = list(options)
        return [pool.pop(self.int(0, len(pool) - 1)) for _ in range(k)]


class RandomChooser(Chooser):
    def __init__(self, rng: random.Random):
        self.rng = rng

    def int(self, lo, hi):
        return self.rng.randint(lo, hi)

    def float(self, lo, hi):
        return round(self.rng.uniform(lo, hi), 3)


class DrawChooser(Chooser):
    def __init__(self, draw):
        from hypothesis import strategies as st

        self.draw, self.st = draw, st

    def int(self, lo, hi):
        return self.draw(self.st.integers(lo, hi))

    def float(self, lo, hi):
        # three decimals, so a shrunk example prints as 0.25 rather than 0.2500000000000001
        return self.draw(self.st.integers(round(lo * 1000), round(hi * 1000))) / 1000


# --- specs -------------------------------------------------------------------------------------


def _src(value) -> str:
    """Python source for a field value (huge ints as powers, non-finite floats spelled out)."""
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, int):
        if value.bit_length() > 256:
            sign, mag = ("-" if value < 0 else ""), abs(value)
            for base in (2, 10):
                for off in (0, 1):
                    exp = round(math.log(mag + off, base))
                    if base**exp == mag + off:
                        return f"{sign}{base}**{exp}" if not off else f"{sign}({base}**{exp} - 1)"
            return f"<{value.bit_length()}-bit int>"
        return repr(value)
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, tuple):
        inner = ", ".join(_src(v) for v in value)
        return f"({inner},)" if len(value) == 1 else f"({inner})"
    if isinstance(value, list):
        return "[" + ", ".join(_src(v) for v in value) + "]"
    return repr(value)


@dataclass
class Layer:
    kind: str  # a class of archcost.ops
    kwargs: dict = field(default_factory=dict)
    inputs: tuple = ()  # indices of earlier nodes: 0 is the input, i the i-th layer
    shape: tuple | None = None  # batch-1 output shape by the textbook formulas (valid specs)

    def op(self) -> ops.Op:
        return getattr(ops, self.kind)(**self.kwargs)

    def code(self) -> str:
        return f"ops.{self.kind}(" + ", ".join(f"{k}={_src(v)}" for k, v in self.kwargs.items()) + ")"


@dataclass
class Spec:
    input_shape: tuple
    layers: list
    batch: int = 1
    seed: int = 0
    reason: str = ""  # invalid specs: why the last layer must be refused

    def code(self) -> str:
        lines = ["g = Graph('random')", f"n0 = g.input({_src(tuple(self.input_shape))})"]
        for i, layer in enumerate(self.layers, 1):
            srcs = "".join(f", n{j}" for j in layer.inputs)
            lines.append(f"n{i} = g.add({layer.code()}{srcs}, name='n{i}')")
        lines.append(f"# batch={self.batch}, seed={self.seed}" + (f"; must fail: {self.reason}" if self.reason else ""))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return "\n" + self.code() + "\n"

    def _repr_pretty_(self, printer, cycle) -> None:  # how hypothesis prints a failing example
        printer.text(repr(self))


def build(spec: Spec) -> Graph:
    """The graph of ``spec``: layer i is named ``n{i}``, the input ``n0``."""
    g = Graph("random")
    nodes = [g.input(spec.input_shape, name="n0")]
    for i, layer in enumerate(spec.layers, 1):
        nodes.append(g.add(layer.op(), *(nodes[j] for j in layer.inputs), name=f"n{i}"))
    return g


# --- textbook shape formulas (independent of archcost/shapes.py) -------------------------------


def conv_size(size: int, kernel: int, stride: int, before: int, after: int, dilation: int) -> int:
    """PyTorch's Conv2d: floor((size + pads - dilation * (kernel - 1) - 1) / stride) + 1."""
    return math.floor((size + before + after - dilation * (kernel - 1) - 1) / stride) + 1


def pool_size(size: int, kernel: int, stride: int, before: int, after: int, ceil: bool) -> int:
    """PyTorch's pooling_output_shape_pad_lr: ceil mode adds stride - 1 before dividing, then
    drops a last window that would start in the trailing padding."""
    out = (size + before + after - kernel + (stride - 1 if ceil else 0)) // stride + 1
    if ceil and (out - 1) * stride >= size + before:
        out -= 1
    return out


def same_size(size: int, stride: int) -> int:
    """TensorFlow's "same": ceil(size / stride)."""
    return -(-size // stride)


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


# --- the network a generator grows ---------------------------------------------------------------


class _Net:
    def __init__(self, input_shape):
        self.input_shape = tuple(input_shape)
        self.shapes = [(1, *input_shape)]
        self.layers: list[Layer] = []

    def add(self, kind: str, kwargs: dict, inputs, shape) -> int:
        shape = None if shape is None else tuple(shape)  # None: a layer that must be refused
        self.layers.append(Layer(kind, kwargs, tuple(inputs), shape))
        self.shapes.append(shape)
        return len(self.shapes) - 1

    def spec(self, ch: Chooser, reason: str = "") -> Spec:
        return Spec(self.input_shape, self.layers, batch=ch.int(1, 3), seed=ch.int(0, 1000), reason=reason)


def _fits(shape) -> bool:
    return math.prod(shape[1:]) <= MAX_NUMEL and (len(shape) != 4 or shape[1] <= MAX_CHANNELS)


def _pair_or_int(ch: Chooser, a: int, b: int):
    return a if a == b and ch.bool() else (a, b)


def _axis(ch: Chooser, rank: int) -> int:
    """A non-batch axis of a rank-``rank`` shape, sometimes spelled negative."""
    axis = ch.int(1, rank - 1)
    return axis - rank if ch.chance(3) else axis


# --- valid layers: each returns the new node, or None where it does not apply -------------------


def conv(ch: Chooser, net: _Net, src: int):
    _, c, h, w = net.shapes[src]
    groups = c if ch.chance(4) else ch.choice(_divisors(c))
    out = groups * ch.int(1, max(1, 24 // groups))
    mode = ch.int(0, 4)
    if mode == 0:
        padding = ch.int(0, 2)
        pads = (padding,) * 4
    elif mode == 1:
        padding = (ch.int(0, 2), ch.int(0, 2))
        pads = (padding[0], padding[0], padding[1], padding[1])
    elif mode == 2:
        padding = tuple(ch.int(0, 2) for _ in range(4))
        pads = padding
    else:
        padding = "same" if mode == 3 else "valid"
        pads = (0, 0, 0, 0)
    dh, dw = ch.int(1, 3), ch.int(1, 3)
    sh, sw = ch.int(1, 3), ch.int(1, 3)
    if padding == "same":
        kh, kw = ch.int(1, 5), ch.int(1, 5)
        shape = (1, out, same_size(h, sh), same_size(w, sw))
    else:
        kh = ch.int(1, min(5, (h + pads[0] + pads[1] - 1) // dh + 1))
        kw = ch.int(1, min(5, (w + pads[2] + pads[3] - 1) // dw + 1))
        shape = (1, out, conv_size(h, kh, sh, pads[0], pads[1], dh), conv_size(w, kw, sw, pads[2], pads[3], dw))
    if not _fits(shape):
        return None
    kwargs = dict(out_channels=out, kernel=_pair_or_int(ch, kh, kw), stride=_pair_or_int(ch, sh, sw),
                  padding=padding, dilation=_pair_or_int(ch, dh, dw), groups=groups, bias=ch.bool())
    return net.add("Conv2d", kwargs, [src], shape)


def pool(ch: Chooser, net: _Net, src: int):
    _, c, h, w = net.shapes[src]
    kind = ch.choice(["MaxPool2d", "AvgPool2d"])
    kh, kw = ch.int(1, 4), ch.int(1, 4)
    mode = ch.int(0, 2)
    if mode == 0:
        padding = ch.int(0, min(kh, kw) // 2)
        pads = (padding,) * 4
    elif mode == 1:
        padding = (ch.int(0, kh // 2), ch.int(0, kw // 2))
        pads = (padding[0], padding[0], padding[1], padding[1])
    else:
        padding = (ch.int(0, kh // 2), ch.int(0, kh // 2), ch.int(0, kw // 2), ch.int(0, kw // 2))
        pads = padding
    stride = None if ch.bool() else (ch.int(1, 3), ch.int(1, 3))
    sh, sw = (kh, kw) if stride is None else stride
    ceil = ch.bool()
    shape = (1, c, pool_size(h, kh, sh, pads[0], pads[1], ceil), pool_size(w, kw, sw, pads[2], pads[3], ceil))
    if min(shape) < 1:
        return None  # no window starts inside the input (or fits it, in floor mode)
    kwargs = dict(kernel=_pair_or_int(ch, kh, kw), stride=stride if stride is None else _pair_or_int(ch, sh, sw),
                  padding=padding, ceil_mode=ceil)
    if kind == "AvgPool2d":
        kwargs["count_include_pad"] = ch.bool()
    return net.add(kind, kwargs, [src], shape)


def activation(ch, net, src):
    fn = ch.choice(ops.ACTIVATIONS)
    kwargs = {"fn": fn}
    if fn in ("leaky_relu", "elu"):
        kwargs["slope"] = ch.float(0.01, 1.0)
    return net.add("Activation", kwargs, [src], net.shapes[src])


def batch_norm(ch, net, src):
    return net.add("BatchNorm", dict(eps=ch.choice([1e-5, 1e-3]), affine=ch.bool()), [src], net.shapes[src])


def group_norm(ch, net, src):
    # groups: a divisor of the channels, from 1 (a LayerNorm over (C, ...)) to C (InstanceNorm).
    c = net.shapes[src][1]
    groups = ch.choice([g for g in range(1, c + 1) if c % g == 0])
    kwargs = {"groups": groups, "eps": ch.choice([1e-5, 1e-3]), "affine": ch.bool()}
    return net.add("GroupNorm", kwargs, [src], net.shapes[src])


def lrn(ch, net, src):
    kwargs = dict(size=ch.int(1, 5), alpha=ch.choice([1e-4, 1e-2]), beta=ch.choice([0.75, 0.5]),
                  k=ch.choice([2.0, 1.0]))
    return net.add("LRN", kwargs, [src], net.shapes[src])


def dropout(ch, net, src):
    return net.add("Dropout", {"p": ch.choice([0.0, 0.2, 0.5])}, [src], net.shapes[src])


def global_pool(ch, net, src):
    n, c, _, _ = net.shapes[src]
    return net.add("GlobalAvgPool", {}, [src], (n, c, 1, 1))


def channel_pad(ch, net, src):
    n, c, h, w = net.shapes[src]
    out, stride = c + ch.int(0, 8), ch.int(1, 3)
    shape = (n, out, same_size(h, stride), same_size(w, stride))
    return net.add("ChannelPad", dict(out_channels=out, stride=stride), [src], shape) if _fits(shape) else None


def maxout(ch, net, src):
    shape = net.shapes[src]
    pieces = ch.choice(_divisors(shape[1]))
    return net.add("Maxout", {"pieces": pieces}, [src], (shape[0], shape[1] // pieces, *shape[2:]))


def channel_select(ch, net, src):
    shape = net.shapes[src]
    # at most 64 picks: a wide vector (8,160 features) would pass the 4,096-entry field limit
    channels = tuple(ch.sample(range(shape[1]), ch.int(1, min(shape[1], 64))))
    return net.add("ChannelSelect", {"channels": channels}, [src], (shape[0], len(channels), *shape[2:]))


def affine(ch, net, src):
    return net.add("Affine", {"axis": _axis(ch, len(net.shapes[src]))}, [src], net.shapes[src])


def scale(ch, net, src):
    factor = None if ch.bool() else ch.float(0.25, 2.0)
    return net.add("Scale", dict(factor=factor, axis=_axis(ch, len(net.shapes[src]))), [src], net.shapes[src])


def softmax(ch, net, src):
    return net.add("Softmax", {"axis": _axis(ch, len(net.shapes[src]))}, [src], net.shapes[src])


def layer_norm(ch, net, src):
    kwargs = dict(axis=_axis(ch, len(net.shapes[src])), eps=ch.choice([1e-6, 1e-3]))
    return net.add("LayerNorm", kwargs, [src], net.shapes[src])


def permute(ch, net, src):
    shape = net.shapes[src]
    dims = (0, *ch.sample(range(1, len(shape)), len(shape) - 1))
    return net.add("Permute", {"dims": dims}, [src], tuple(shape[d] for d in dims))


def reshape(ch, net, src):
    shape = net.shapes[src]
    left, dims = math.prod(shape[1:]), []
    for _ in range(ch.int(1, 3) - 1):  # 1 to 3 axes per sample: the cpu kernels take up to 4 in all
        d = ch.choice(_divisors(left))
        dims.append(d)
        left //= d
    dims.append(left)
    target = list(dims)
    if ch.bool():
        target[ch.int(0, len(target) - 1)] = -1
    return net.add("Reshape", {"shape": tuple(target)}, [src], (shape[0], *dims))


def flatten(ch, net, src):
    shape = net.shapes[src]
    return net.add("Flatten", {}, [src], (shape[0], math.prod(shape[1:])))


def linear(ch, net, src):
    shape = net.shapes[src]
    out = ch.int(1, MAX_FEATURES)
    new = (*shape[:-1], out)
    return net.add("Linear", dict(out_features=out, bias=ch.bool()), [src], new) if _fits(new) else None


def rbf(ch, net, src):
    shape = net.shapes[src]
    out = ch.int(1, 10)
    return net.add("RBF", dict(out_features=out, trainable=ch.bool()), [src], (shape[0], out))


def _same_map_conv(ch, net, src):
    """A conv that keeps the shape of ``src``: stride 1, padding dilation * (kernel // 2)."""
    _, c, h, w = net.shapes[src]
    k, d = ch.choice([1, 3]), ch.int(1, 2)
    kwargs = dict(out_channels=c, kernel=k, padding=d * (k // 2), dilation=d, groups=ch.choice(_divisors(c)))
    return net.add("Conv2d", kwargs, [src], net.shapes[src])


def residual(ch, net, src):
    body = _same_map_conv(ch, net, src)
    if ch.bool():
        body = batch_norm(ch, net, body)
    if ch.bool():
        body = activation(ch, net, body)
    kind = ch.choice(["Add", "Mean"])
    inputs = [src, body] if ch.bool() else [body, src]
    if ch.chance(4):
        inputs.append(ch.choice(inputs))  # three inputs, one of them twice
    return net.add(kind, {}, inputs, net.shapes[src])


def gate(ch, net, src):
    """Squeeze-and-excitation: (N, C, H, W) * sigmoid(conv(gap(x))) of shape (N, C, 1, 1)."""
    n, c, _, _ = net.shapes[src]
    g = global_pool(ch, net, src)
    g = net.add("Conv2d", dict(out_channels=c, kernel=1), [g], (n, c, 1, 1))
    g = net.add("Activation", {"fn": "sigmoid"}, [g], (n, c, 1, 1))
    return net.add("Mul", {}, [src, g] if ch.bool() else [g, src], net.shapes[src])


def broadcast_add(ch, net, src):
    """x + or - a term that broadcasts: a map's global context (N, C, 1, 1), its per-position
    map (N, 1, H, W), or a linear layer's one feature ((N, 1) on a vector, (N, L, 1) on rank 3);
    either operand first."""
    shape = net.shapes[src]
    if len(shape) == 4:
        n, c, h, w = shape
        if ch.bool():  # GCNet: a conv of the pooled context
            term = net.add("Conv2d", dict(out_channels=c, kernel=1), [global_pool(ch, net, src)], (n, c, 1, 1))
        else:
            term = net.add("Conv2d", dict(out_channels=1, kernel=1), [src], (n, 1, h, w))
    else:
        term = net.add("Linear", {"out_features": 1}, [src], shape[:-1] + (1,))
    return net.add(ch.choice(["Add", "Sub"]), {}, [src, term] if ch.bool() else [term, src], shape)


def inception(ch, net, src):
    n, c, h, w = net.shapes[src]
    ends = []
    for _ in range(ch.int(2, 3)):
        kind = ch.int(0, 3)
        if kind == 0:
            ends.append(src)
        elif kind == 1:
            k = ch.choice([1, 3, 5])
            out = ch.int(1, 8)
            ends.append(net.add("Conv2d", dict(out_channels=out, kernel=k, padding=k // 2), [src], (n, out, h, w)))
        else:
            pool_kind = "MaxPool2d" if kind == 2 else "AvgPool2d"
            ends.append(net.add(pool_kind, dict(kernel=3, stride=1, padding=1), [src], (n, c, h, w)))
    shape = (n, sum(net.shapes[e][1] for e in ends), h, w)
    return net.add("Concat", {"axis": ch.choice([1, -3])}, ends, shape) if _fits(shape) else None


def concat(ch, net, src):
    """Concat of ``src`` with earlier nodes that agree with it on all axes but one."""
    shape = net.shapes[src]
    axis = _axis(ch, len(shape))
    a = axis % len(shape)
    same = [i for i, s in enumerate(net.shapes)
            if len(s) == len(shape) and all(x == y for j, (x, y) in enumerate(zip(s, shape)) if j != a)]
    ends = [src] + [ch.choice(same) for _ in range(ch.int(1, 2))]
    new = tuple(sum(net.shapes[e][a] for e in ends) if j == a else d for j, d in enumerate(shape))
    return net.add("Concat", {"axis": axis}, ends, new) if _fits(new) else None


def join(ch, net, src):
    """Add, Mean, Mul or Sub of ``src`` with earlier nodes of the same shape (itself if none)."""
    same = [i for i, s in enumerate(net.shapes) if s == net.shapes[src]]
    kind = ch.choice(["Add", "Mean", "Mul", "Sub"])
    inputs = [src, ch.choice(same)]
    if kind not in ("Mul", "Sub") and ch.bool():
        inputs.append(ch.choice(same))
    return net.add(kind, {}, inputs, net.shapes[src])


def transformer(ch, net, src):
    """A spatial transformer: theta = fc(flatten(gap(x))), an affine grid, a bilinear sampler."""
    n, c, _, _ = net.shapes[src]
    theta = net.add("Linear", {"out_features": 6}, [flatten(ch, net, global_pool(ch, net, src))], (n, 6))
    oh, ow, align = ch.int(1, 6), ch.int(1, 6), ch.bool()
    grid = net.add("AffineGrid", dict(out_h=oh, out_w=ow, align_corners=align), [theta], (n, oh, ow, 2))
    return net.add("GridSample", {"align_corners": align}, [src, grid], (n, c, oh, ow))


# Scales whose products with small sizes floor exactly in binary (no 0.3-like rounding): ratios
# up and down, integer and not.
RESIZE_SCALES = [2.0, 0.5, 1.5, 3.0, 0.75, 4.0, 1.25]


def conv_transpose(ch, net, src):
    """A ConvTranspose2d: any stride, dilation, groups and (symmetric, per-axis or 4-way) padding,
    output_padding below the stride or the dilation; PyTorch's output size
    (size - 1) * stride - pads + dilation * (kernel - 1) + output_padding + 1."""
    _, c, h, w = net.shapes[src]
    groups = c if ch.chance(4) else ch.choice(_divisors(c))
    out = groups * ch.int(1, max(1, 16 // groups))
    padding = tuple(ch.int(0, 2) for _ in range(4)) if ch.bool() else ch.int(0, 2)
    pads = padding if isinstance(padding, tuple) else (padding,) * 4
    kh, kw = ch.int(1, 4), ch.int(1, 4)
    sh, sw = ch.int(1, 3), ch.int(1, 3)
    dh, dw = ch.int(1, 2), ch.int(1, 2)
    extra = (ch.int(0, max(sh, dh) - 1), ch.int(0, max(sw, dw) - 1))
    oh = (h - 1) * sh - pads[0] - pads[1] + dh * (kh - 1) + extra[0] + 1
    ow = (w - 1) * sw - pads[2] - pads[3] + dw * (kw - 1) + extra[1] + 1
    shape = (1, out, oh, ow)
    if min(oh, ow) < 1 or not _fits(shape):
        return None
    kwargs = dict(out_channels=out, kernel=_pair_or_int(ch, kh, kw), stride=_pair_or_int(ch, sh, sw), padding=padding,
                  output_padding=extra, dilation=_pair_or_int(ch, dh, dw), groups=groups, bias=ch.bool())
    return net.add("ConvTranspose2d", kwargs, [src], shape)


def resize(ch, net, src):
    """A Resize: nearest or bilinear in any coordinate mode, to a size or by a scale, up or down."""
    n, c, h, w = net.shapes[src]
    mode = ch.choice(["nearest", "linear"])
    coord = ch.choice({"nearest": ["asymmetric"],
                       "linear": ["half_pixel", "pytorch_half_pixel", "align_corners"]}[mode])
    if ch.bool():
        oh, ow = ch.int(1, 12), ch.int(1, 12)
        kwargs = {"size": (oh, ow)}
    else:
        sh, sw = ch.choice(RESIZE_SCALES), ch.choice(RESIZE_SCALES)
        oh, ow = math.floor(h * sh), math.floor(w * sw)
        if min(oh, ow) < 1 or (coord == "align_corners" and (oh != h * sh or ow != w * sw)):
            return None  # an empty output, or align_corners with a fractional size: refused
        kwargs = {"scale": (sh, sw)}
    new = (n, c, oh, ow)
    return net.add("Resize", {**kwargs, "mode": mode, "coord": coord}, [src], new) if _fits(new) else None


PAD_MODES = ["constant", "reflect", "edge", "wrap"]


def pad(ch, net, src):
    """A Pad of an (N, C, H, W) map or along L of an (N, C, L) one: any mode, unequal sides;
    constant mode with a random value and sometimes negative amounts (crops), reflect below the
    axis size, edge and wrap past it. Per axis: size + before + after."""
    shape = net.shapes[src]
    mode = ch.choice(PAD_MODES)
    sizes = shape[2:]
    amounts = []
    for size in sizes:
        hi = size - 1 if mode == "reflect" else 2 * size + 1
        lo = -(size - 1) // 2 if mode == "constant" and ch.chance(3) else 0
        amounts.append((ch.int(lo, min(hi, 3)) if hi >= lo else 0, ch.int(lo, min(hi, 3)) if hi >= lo else 0))
    if len(sizes) == 1:
        pads = (0, 0, *amounts[0])
    else:
        pads = (*amounts[0], *amounts[1])
    new = (*shape[:2], *(size + b + a for size, (b, a) in zip(sizes, amounts)))
    if min(new[2:]) < 1 or not _fits(new):
        return None
    kwargs = {"pads": pads, "mode": mode}
    if mode == "constant" and ch.bool():
        kwargs["value"] = ch.float(-2.0, 2.0)
    return net.add("Pad", kwargs, [src], new)


MAKERS = {
    2: [activation, linear, batch_norm, dropout, maxout, softmax, layer_norm, group_norm, scale, affine, rbf, channel_select,
        reshape, join, concat, permute, broadcast_add],
    3: [activation, linear, batch_norm, layer_norm, group_norm, softmax, scale, affine, maxout, channel_select, permute,
        reshape, flatten, join, concat, dropout, pad, broadcast_add],
    4: [conv, pool, activation, batch_norm, conv, residual, inception, pool, lrn, dropout, global_pool,
        channel_pad, maxout, channel_select, affine, scale, softmax, layer_norm, group_norm, permute, reshape, flatten,
        linear, gate, concat, join, transformer, resize, conv_transpose, pad, pad, broadcast_add],
}


def _grow(ch: Chooser, net: _Net, max_steps: int, min_steps: int = 1) -> None:
    """Add up to ``max_steps`` random layers (or blocks) to ``net``: after ``min_steps``, each
    further one with probability 7/8. A "stop" choice of 0 ends the list, so the shrinker can
    drop any step of a failing example (as hypothesis's own lists do)."""
    for step in range(max_steps):
        if step >= min_steps and ch.int(0, 7) == 0:
            break
        last = len(net.shapes) - 1
        src = last if not ch.chance(4) else ch.int(0, last)
        makers = MAKERS[len(net.shapes[src])]
        for _attempt in range(3):
            if ch.choice(makers)(ch, net, src) is not None:
                break


def _input_shape(ch: Chooser) -> tuple:
    if ch.chance(6):
        return (ch.int(1, 32),)
    return (ch.int(1, 8), ch.int(1, 20), ch.int(1, 20))


def valid_spec(ch: Chooser, max_steps: int = 12) -> Spec:
    net = _Net(_input_shape(ch))
    _grow(ch, net, max_steps)
    last = len(net.shapes) - 1
    if ch.bool():  # a classifier head
        if len(net.shapes[last]) == 4:
            last = flatten(ch, net, global_pool(ch, net, last))
        linear(ch, net, last)
    return net.spec(ch)


# --- invalid layers: each appends one layer archcost must refuse and returns the reason ----------

# Values that are no positive int, for fields that must be one.
NOT_POSITIVE_INT = [0, -1, -7, 1.5, 2.0, True, False, None, "3", "a", [1, 2, 3], (1, "a"), (), float("nan"),
                    float("inf"), -(2**2000), 10**5000, b"3", {}, {1, 2}]
NOT_BOOL = [0, 1, "yes", "True", None, 1.0, [True]]
NOT_FLOAT = ["1e-5", "x", None, float("nan"), float("inf"), float("-inf"), 2**1024 - 1, 10**400, True, [1.0], (1.0,)]

# (op, field, kwargs that are valid apart from that field, rank of input it runs on)
POSITIVE_FIELDS = [
    ("Conv2d", "out_channels", {"out_channels": 4}), ("Conv2d", "kernel", {"out_channels": 4, "kernel": 1}),
    ("Conv2d", "stride", {"out_channels": 4, "kernel": 1}), ("Conv2d", "dilation", {"out_channels": 4, "kernel": 1}),
    ("Conv2d", "groups", {"out_channels": 4, "kernel": 1}), ("MaxPool2d", "kernel", {"kernel": 1}),
    ("AvgPool2d", "kernel", {"kernel": 1}), ("Linear", "out_features", {"out_features": 3}),
    ("ChannelPad", "out_channels", {"out_channels": 40}), ("ChannelPad", "stride", {"out_channels": 40}),
    ("Maxout", "pieces", {"pieces": 1}), ("LRN", "size", {}), ("RBF", "out_features", {"out_features": 3}),
    ("GroupNorm", "groups", {}), ("AffineGrid", "out_h", {}), ("AffineGrid", "out_w", {}), ("Resize", "size", {"size": 2}),
    ("ConvTranspose2d", "out_channels", {"out_channels": 4}), ("ConvTranspose2d", "stride", {"out_channels": 4}),
    ("ConvTranspose2d", "groups", {"out_channels": 4, "kernel": 1}),
]
BOOL_FIELDS = [("Conv2d", "bias", {"out_channels": 4, "kernel": 1}), ("MaxPool2d", "ceil_mode", {"kernel": 1}),
               ("AvgPool2d", "count_include_pad", {"kernel": 1}), ("BatchNorm", "affine", {}),
               ("Linear", "bias", {"out_features": 3}), ("RBF", "trainable", {"out_features": 3}),
               ("AffineGrid", "align_corners", {}), ("GridSample", "align_corners", {}),
               ("GroupNorm", "affine", {"groups": 1}),
               ("ConvTranspose2d", "bias", {"out_channels": 4, "kernel": 1})]
FLOAT_FIELDS = [("BatchNorm", "eps"), ("LayerNorm", "eps"), ("LRN", "alpha"), ("LRN", "beta"), ("LRN", "k"),
                ("Activation", "slope"), ("Dropout", "p"), ("Scale", "factor")]


def _bad_field_value(ch: Chooser, net: _Net, src: int) -> str:
    group = ch.int(0, 2)
    if group == 0:
        kind, name, base = ch.choice(POSITIVE_FIELDS)
        values = [v for v in NOT_POSITIVE_INT if not (kind.endswith("Pool2d") and name == "stride" and v is None)]
    elif group == 1:
        kind, name, base = ch.choice(BOOL_FIELDS)
        values = NOT_BOOL
    else:
        kind, name = ch.choice(FLOAT_FIELDS)
        base = {}
        values = [v for v in NOT_FLOAT if not (kind == "Scale" and v is None)]
    value = ch.choice(values)
    net.add(kind, {**base, name: value}, [src], None)
    return f"{kind}.{name} = {_src(value)}"


def _bad_padding(ch, net, src):
    if ch.bool():
        value = ch.choice([-1, (-1, 0), (0, 0, 0, -2), "full", "SAME", 1.5, (1, 2, 3), (1, 1.5), [None, 1], ()])
        kind = ch.choice(["Conv2d", "MaxPool2d", "AvgPool2d"])
        kwargs = {"out_channels": 4, "kernel": 3} if kind == "Conv2d" else {"kernel": 3}
        net.add(kind, {**kwargs, "padding": value}, [src], None)
        return f"{kind} padding {_src(value)}"
    k = ch.int(1, 4)
    p = k // 2 + ch.int(1, 2)
    value = ch.choice([p, (p, 0), (0, 0, 0, p), "same"])
    net.add(ch.choice(["MaxPool2d", "AvgPool2d"]), {"kernel": k, "padding": value}, [src], None)
    return f"pool padding {_src(value)} past half the kernel {k} (or 'same')"


def _conv_too_big(ch, net, src):
    _, _, h, w = net.shapes[src]
    p, d, along_h = ch.int(0, 2), ch.int(1, 2), ch.bool()
    size = h if along_h else w
    k = (size + 2 * p - 1) // d + 2 + ch.int(0, 3)  # dilated kernel d * (k - 1) + 1 > size + 2p
    kernel = (k, 1) if along_h else (1, k)
    net.add("Conv2d", dict(out_channels=4, kernel=kernel, padding=p, dilation=d), [src], None)
    return f"conv kernel {kernel} dilation {d} larger than the padded input"


def _conv_groups(ch, net, src):
    c = net.shapes[src][1]
    if ch.bool():
        groups = ch.choice([g for g in range(2, c + 5) if c % g])
        net.add("Conv2d", dict(out_channels=groups * ch.int(1, 2), kernel=1, groups=groups), [src], None)
        return f"groups {groups} do not divide the {c} input channels"
    groups = ch.int(2, 6)
    out = groups * ch.int(1, 3) + ch.int(1, groups - 1)
    net.add("Conv2d", dict(out_channels=out, kernel=1, groups=groups), [src], None)
    return f"groups {groups} do not divide out_channels {out}"


def _wrong_rank(ch, net, src):
    rank = len(net.shapes[src])
    if rank == 4:
        kind, kwargs = ch.choice([("RBF", {"out_features": 3}), ("AffineGrid", {})])
    else:
        kind, kwargs = ch.choice([("Conv2d", {"out_channels": 2, "kernel": 1}), ("MaxPool2d", {"kernel": 1}),
                                  ("AvgPool2d", {"kernel": 1}), ("GlobalAvgPool", {}), ("LRN", {}),
                                  ("ChannelPad", {"out_channels": 64}), ("Resize", {"size": 2})])
    net.add(kind, kwargs, [src], None)
    return f"{kind} on a rank-{rank} input"


def _wrong_arity(ch, net, src):
    kind, kwargs, inputs = ch.choice([
        ("Activation", {}, [src, src]), ("Linear", {"out_features": 2}, [src, src]), ("Flatten", {}, []),
        ("Add", {}, [src]), ("Mean", {}, [src]), ("Add", {}, []), ("Mul", {}, [src]), ("Mul", {}, [src] * 3),
        ("Sub", {}, [src]), ("Sub", {}, [src] * 3),
        ("Concat", {}, []), ("GridSample", {}, [src]), ("BatchNorm", {}, [src, src]),
    ])
    net.add(kind, kwargs, inputs, None)
    return f"{kind} with {len(inputs)} inputs"


def _mismatched_merge(ch, net, src):
    """Concat (spatial sizes or ranks differ), Mean (shapes differ), Add/Mul/Sub (no broadcast),
    Add of three inputs one of which broadcasts (Add broadcasts pairs only)."""
    shape = net.shapes[src]
    kind = ch.choice(["Concat", "Add", "Mean", "Mul", "Sub"])
    broadcasts = kind in ("Add", "Mul", "Sub")
    if kind == "Add" and len(shape) == 4 and shape[1] > 1 and ch.chance(3):
        n, c, h, w = shape
        term = net.add("Conv2d", {"out_channels": 1, "kernel": 1}, [src], (n, 1, h, w))
        net.add("Add", {}, [src, src, term], None)
        return "Add of three inputs that broadcast"
    options = ["rank"]
    if len(shape) == 4 and max(shape[2:]) > 1:
        options.append("spatial")
    if kind != "Concat" and (not broadcasts or shape[1] > 1) and len(shape) in (2, 4):
        options.append("channels")
    if broadcasts and "spatial" in options:
        options.remove("spatial")  # a halved size of 1 would broadcast
    how = ch.choice(options)
    if how == "rank":
        other = flatten(ch, net, src) if len(shape) > 2 else net.add("Reshape", {"shape": (1, -1)}, [src],
                                                                     (1, 1, shape[1]))
    elif how == "spatial":
        n, c, h, w = shape
        other = net.add("ChannelPad", {"out_channels": c, "stride": 2}, [src], (n, c, -(-h // 2), -(-w // 2)))
    elif len(shape) == 4:
        n, c, h, w = shape
        other = net.add("Conv2d", {"out_channels": c + 1, "kernel": 1}, [src], (n, c + 1, h, w))
    else:
        other = net.add("Linear", {"out_features": shape[1] + 1}, [src], (1, shape[1] + 1))
    inputs = [src, other] if ch.bool() else [other, src]
    net.add(kind, {}, inputs, None)
    return f"{kind} of {how}-mismatched inputs"


def _bad_axis(ch, net, src):
    rank = len(net.shapes[src])
    axis = ch.choice([0, -rank, rank, rank + 2, -rank - 1, 10**6, -(2**70), 1.0, "1", None, True])
    kind = ch.choice(["Softmax", "Scale", "LayerNorm", "Affine", "Concat"])
    net.add(kind, {"axis": axis}, [src, src] if kind == "Concat" else [src], None)
    return f"{kind} axis {_src(axis)} on a rank-{rank} input"


def _bad_reshape(ch, net, src):
    n = math.prod(net.shapes[src][1:])
    target = ch.choice([(n + 1,), (2 * n,), (n, 2), (-1, n + 1), (n + 1, -1), (0,), (-2,), (-1, -1), (), (1.5,),
                        ("3",), (True,), (n, 0), (10**30, -1)])
    net.add("Reshape", {"shape": target}, [src], None)
    return f"Reshape of {n} elements to {_src(target)}"


def _bad_permute(ch, net, src):
    rank = len(net.shapes[src])
    dims = ch.choice([tuple(range(rank + 1)), tuple(range(rank - 1)) if rank > 2 else (0, 1, 2),
                      (0,) + (1,) * max(rank - 1, 2),
                      (1, 0) + tuple(range(2, rank)), (), (0, 1.5), ("0", "1"), (0, -1), (0, 2**70)])
    net.add("Permute", {"dims": dims}, [src], None)
    return f"Permute {_src(dims)} of a rank-{rank} input"


def _bad_channels(ch, net, src):
    shape = net.shapes[src]
    c = shape[1]
    what = ch.int(0, 4)
    if what == 4:
        groups = ch.choice([c + 1, 2 * c + 1] + [g for g in range(2, c) if c % g])
        net.add("GroupNorm", {"groups": groups}, [src], None)
        return f"GroupNorm groups {groups} of {c} channels"
    if what == 0:
        channels = ch.choice([(c,), (0, c + 2), (-1,), (0, 0), (), (0.0,), ("0",), (True,)])
        net.add("ChannelSelect", {"channels": channels}, [src], None)
        return f"ChannelSelect {_src(channels)} of {c} channels"
    if what == 1:
        net.add("Maxout", {"pieces": c + 1}, [src], None)
        return f"Maxout pieces {c + 1} of {c} channels"
    if what == 2 and len(shape) == 4:
        net.add("ChannelPad", {"out_channels": c - 1 if c > 1 else 0}, [src], None)
        return f"ChannelPad shrinking {c} channels"
    net.add("Linear", {"out_features": 6}, [src], (*shape[:-1], 6))
    last = len(net.shapes) - 1
    if len(shape) == 2:  # theta (N, 6) is fine: break the grid instead
        grid = net.add("AffineGrid", {}, [last], (1, 28, 28, 2))
        net.add("GridSample", {}, [last, grid], None)  # x is theta, not a map
        return "GridSample of a non-map x"
    net.add("AffineGrid", {}, [last], None)
    return f"AffineGrid of theta {(*shape[:-1], 6)}"


def _bad_misc(ch, net, src):
    kind, kwargs = ch.choice([
        ("Activation", {"fn": "relu7"}), ("Activation", {"fn": ""}), ("Activation", {"fn": "RELU"}),
        ("Activation", {"fn": 3}), ("Dropout", {"p": 1.0}), ("Dropout", {"p": -0.1}), ("Dropout", {"p": 1.5}),
        ("GridSample", {"mode": "nearest"}), ("Conv2d", {"out_channels": "8"}), ("Linear", {"out_features": "10"}),
        ("Conv2d", {"out_channels": 4, "kernel": "3"}), ("Conv2d", {"out_channels": 4, "kernel": (3, 3, 3)}),
        ("Conv2d", {"out_channels": 4, "kernel": 10**30}), ("Conv2d", {"out_channels": 2**2000}),
        ("MaxPool2d", {"kernel": 10**30}), ("Maxout", {"pieces": 10**30}),
        ("Resize", {}), ("Resize", {"size": 2, "scale": (2.0, 2.0)}), ("Resize", {"size": 2, "mode": "cubic"}),
        ("Resize", {"size": 2, "coord": "half_pixel"}), ("Resize", {"size": 2, "mode": "linear", "coord": "floor"}),
        ("Resize", {"scale": (2.0, 0.0)}), ("Resize", {"scale": (2.0,)}), ("Resize", {"scale": (0.01, 1.0)}),
    ])
    net.add(kind, kwargs, [src], None)
    return f"{kind}({', '.join(f'{k}={_src(v)}' for k, v in kwargs.items())})"


def _bad_pad(ch, net, src):
    """A Pad archcost must refuse: on a rank-2 input, rows of an (N, C, L) map, reflect of the
    axis size or more, a crop to nothing, negative amounts outside constant mode, a value outside
    constant mode, an unknown mode, pads of the wrong length or type."""
    shape = net.shapes[src]
    if len(shape) == 2:
        net.add("Pad", {"pads": 1}, [src], None)
        return f"Pad of a rank-2 input {shape}"
    size = shape[-1]
    what = ch.int(0, 6)
    if what == 0:
        kwargs = {"pads": (0, 0, 0, size + ch.int(0, 2)), "mode": "reflect"}
    elif what == 1:
        kwargs = {"pads": (0, 0, -size, ch.int(-1, 0))}
    elif what == 2:
        kwargs = {"pads": (0, 0, -1, 2), "mode": ch.choice(PAD_MODES[1:])}
    elif what == 3:
        kwargs = {"pads": 1, "mode": ch.choice(PAD_MODES[1:]), "value": ch.choice([0.5, -1.0])}
    elif what == 4:
        kwargs = {"pads": 1, "mode": ch.choice(["symmetric", "CONSTANT", "", "zeros"])}
    elif what == 5:
        kwargs = {"pads": ch.choice([(1, 2, 3), (1,) * 5, (1.5, 0, 0, 0), ("1", 0), (True, 0, 0, 0), ()])}
    elif len(shape) == 3:
        kwargs = {"pads": (1, 0, 0, 0)}
    else:
        kwargs = {"pads": (-shape[2], 0, 0, 0)}
    net.add("Pad", kwargs, [src], None)
    return f"Pad({', '.join(f'{k}={_src(v)}' for k, v in kwargs.items())}) of {shape}"


INVALID = [_bad_field_value, _bad_padding, _conv_too_big, _conv_groups, _wrong_rank, _wrong_arity,
           _mismatched_merge, _bad_axis, _bad_reshape, _bad_permute, _bad_channels, _bad_misc, _bad_pad]
_MAP_ONLY = {_bad_padding, _conv_too_big, _conv_groups}
BAD_INPUT_SHAPES = [(0, 4, 4), (3, -1, 4), (3, 4.0, 4), ("3", 4, 4), (True, 4, 4), (3, None), (2**2000,),
                    (3, 10**5000), [[3], 4]]


def invalid_spec(ch: Chooser, max_steps: int = 3) -> Spec:
    """A valid prefix and one layer archcost must refuse (or, now and then, a bad input shape)."""
    if ch.chance(15):
        shape = ch.choice(BAD_INPUT_SHAPES)
        return Spec(shape, [], reason=f"input shape {_src(shape)}")
    net = _Net(_input_shape(ch))
    _grow(ch, net, max_steps, min_steps=0)
    src = len(net.shapes) - 1
    rank = len(net.shapes[src])
    makers = [m for m in INVALID if rank == 4 or m not in _MAP_ONLY]
    reason = ch.choice(makers)(ch, net, src)
    return net.spec(ch, reason)


# --- hostile layers: any op, some fields set to anything ------------------------------------------

HOSTILE_VALUES = [0, 1, 2, 3, -1, 7, 1.5, 0.5, True, False, None, "3", "relu", "same", "", (), (1,), (2, 2),
                  (1, 1, 1, 1), (0, 2, 3, 1), (-1,), [3, 3], (1, "a"), ((1, 2), (3, 4)), float("nan"), float("inf"),
                  1e308, -1e308, 2**31, 2**63, 10**30, -(10**30), 2**1024 - 1, 2**1024, 10**400, 10**5000,
                  b"x", {}, object]
REQUIRED = {"Conv2d": "out_channels", "ConvTranspose2d": "out_channels", "Linear": "out_features",
            "ChannelPad": "out_channels", "RBF": "out_features", "GroupNorm": "groups"}


def hostile_spec(ch: Chooser, max_steps: int = 3) -> Spec:
    net = _Net(_input_shape(ch))
    _grow(ch, net, max_steps, min_steps=0)
    kind = ch.choice([op.__name__ for op in ops.OPS if op is not ops.Input])
    names = [f.name for f in dataclasses.fields(getattr(ops, kind)) if f.init]
    kwargs = {}
    if kind in REQUIRED:
        kwargs[REQUIRED[kind]] = ch.int(1, 8)
    for name in ch.sample(names, ch.int(1, len(names))) if names else []:
        kwargs[name] = ch.choice(HOSTILE_VALUES)
    inputs = [ch.int(0, len(net.shapes) - 1) for _ in range(ch.choice([1, 1, 1, 2, 0, 3]))]
    net.add(kind, kwargs, inputs, None)
    return net.spec(ch, "hostile")


# --- the properties, as checks that list what is wrong (the tests assert none; the fuzzer counts) ---


def _pair(value):
    return value if isinstance(value, tuple) else (value, value)


def expected_cost(layer: Layer, in_shapes, out) -> tuple[int, int]:
    """(MACs, params) of one layer, counted from its spec and textbook shapes, not by archcost."""
    kw, numel = layer.kwargs, math.prod(out)
    if layer.kind == "Conv2d":
        kh, kw_ = _pair(kw.get("kernel", 3))
        per_output = in_shapes[0][1] // kw.get("groups", 1) * kh * kw_
        return numel * per_output, kw["out_channels"] * per_output + (kw["out_channels"] if kw.get("bias", True) else 0)
    if layer.kind == "ConvTranspose2d":
        # every input element times every tap of out_channels / groups kernels
        kh, kw_ = _pair(kw.get("kernel", 3))
        per_input = kw["out_channels"] // kw.get("groups", 1) * kh * kw_
        params = in_shapes[0][1] * per_input + (kw["out_channels"] if kw.get("bias", True) else 0)
        return math.prod(in_shapes[0]) * per_input, params
    if layer.kind == "Linear":
        f = in_shapes[0][-1]
        return numel * f, f * kw["out_features"] + (kw["out_features"] if kw.get("bias", True) else 0)
    axis = kw.get("axis", -1 if layer.kind == "LayerNorm" else 1)
    params = {
        "BatchNorm": 2 * out[1] if kw.get("affine", True) else 0,
        "LayerNorm": 2 * out[axis],
        "GroupNorm": 2 * out[1] if kw.get("affine", True) else 0,
        "Affine": 2 * out[axis],
        "Scale": out[axis] if kw.get("factor") is None else 0,
        "RBF": in_shapes[0][-1] * kw["out_features"] if kw.get("trainable") else 0,
    }
    return 0, params.get(layer.kind, 0)


def shape_problems(spec: Spec, graph: Graph) -> list[str]:
    """Layers whose inferred shape is not the textbook one."""
    return [
        f"n{i} = {layer.code()}: archcost infers {graph.shape(f'n{i}')}, the textbook formula {layer.shape}"
        for i, layer in enumerate(spec.layers, 1) if graph.shape(f"n{i}") != layer.shape
    ]


def validation_problems(spec: Spec, graph: Graph) -> list[str]:
    """What archcost validate finds wrong (per layer: shape, counted MACs, float64 agreement;
    the peak), plus executed shapes that are not the spec's."""
    from archcost.validation import validate

    result = validate(graph, batch=spec.batch, seed=spec.seed)
    problems = []
    if [c.name for c in result.layers] != [f"n{i}" for i in range(1, len(spec.layers) + 1)]:
        problems.append(f"validated layers {[c.name for c in result.layers]}")
    for check, layer in zip(result.layers, spec.layers):
        if not check.ok:
            problems.append(f"layer {check.name} = {layer.code()} at batch {spec.batch}: {check.problem}")
        elif check.shape != (spec.batch, *layer.shape[1:]):
            problems.append(f"layer {check.name} = {layer.code()}: executed shape {check.shape}")
    if not result.peak_ok:
        problems.append(f"measured peak {result.peak_bytes} != predicted {result.predicted_peak_bytes}")
    if not problems and not result.ok:
        problems.append("validate is not ok, though no layer failed")
    return problems


def analysis_problems(spec: Spec, graph: Graph) -> list[str]:
    """Inconsistent totals of analyze: sums, per-record identities, the independent count of MACs
    and params (``expected_cost``), and how totals scale with the batch."""
    from archcost.analysis import analyze

    one, many = analyze(graph), analyze(graph, batch=spec.batch)
    totals, records, problems = one.totals, one.records, []

    def expect(ok, what):
        if not ok:
            problems.append(what)

    for key in ("weights", "biases", "buffers", "macs", "other", "flops", "activations"):
        expect(totals[key] == sum(getattr(r, key) for r in records), f"totals[{key!r}] is not the sum of the layers")
    expect(totals["params"] == totals["weights"] + totals["biases"] == sum(r.params for r in records), "params")
    expect(totals["layers"] == len(spec.layers), f"totals['layers'] = {totals['layers']}")
    expect(totals["peak_activation_bytes"] == max(r.live_bytes for r in records), "peak is not the largest live")
    expect(max(r.activation_bytes for r in records) <= totals["peak_activation_bytes"] <= totals["activation_bytes"],
           "peak below one layer's output or above all activations")
    for r in records:
        expect(r.flops == 2 * r.macs + r.other and r.params == r.weights + r.biases, f"{r.name}: flops or params")
        expect(r.activation_bytes == 4 * r.activations and (r.activations == 0) == r.inplace, f"{r.name}: activations")
        expect(r.live_bytes >= r.activation_bytes, f"{r.name}: live bytes below its own output")
    shapes = [(1, *spec.input_shape)] + [layer.shape for layer in spec.layers]
    macs = params = 0
    for i, layer in enumerate(spec.layers, 1):
        m, p = expected_cost(layer, [shapes[j] for j in layer.inputs], shapes[i])
        expect((records[i].macs, records[i].params) == (m, p),
               f"n{i} = {layer.code()}: (macs, params) {(records[i].macs, records[i].params)}, counted here {(m, p)}")
        macs, params = macs + m, params + p
    expect((totals["macs"], totals["params"]) == (macs, params), "total macs or params")
    b = spec.batch
    for key in ("macs", "other", "flops", "activations", "activation_bytes", "peak_activation_bytes"):
        expect(many.totals[key] == b * totals[key], f"totals[{key!r}] at batch {b} is not {b} x batch 1")
    for key in ("params", "weights", "biases", "buffers", "layers"):
        expect(many.totals[key] == totals[key], f"totals[{key!r}] changes with the batch")
    return problems


def refusal(spec: Spec):
    """(exception or None, problem or None) of building ``spec``: a problem when the exception is
    not an ArchcostError with a one-line message."""
    from archcost.errors import ArchcostError

    try:
        build(spec)
    except Exception as exc:  # noqa: BLE001 - the class is the point
        if not isinstance(exc, ArchcostError):
            return exc, f"{type(exc).__name__}: {exc}"
        if "\n" in str(exc):
            return exc, f"a message of several lines: {str(exc)!r}"
        return exc, None
    return None, None


def invalid_problem(spec: Spec) -> str | None:
    exc, problem = refusal(spec)
    if exc is None:
        return f"built, though {spec.reason}"
    return problem


def hostile_outcome(spec: Spec) -> tuple[str, str | None]:
    """("refused" or "built", problem): a problem when building ``spec``, or analysing the graph
    it builds, raises anything but an ArchcostError (with a one-line message)."""
    from archcost.analysis import analyze
    from archcost.errors import ArchcostError

    exc, problem = refusal(spec)
    if exc is not None:
        return "refused", problem
    try:
        analyze(build(spec))
    except Exception as exc:  # noqa: BLE001
        if not isinstance(exc, ArchcostError):
            return "built", f"analyze: {type(exc).__name__}: {exc}"
    return "built", None


# --- hypothesis strategies -------------------------------------------------------------------------


def _strategy(generator):
    from hypothesis import strategies as st

    return st.composite(lambda draw: generator(DrawChooser(draw)))()


def valid_specs():
    return _strategy(valid_spec)


def invalid_specs():
    return _strategy(invalid_spec)


def hostile_specs():
    return _strategy(hostile_spec)
