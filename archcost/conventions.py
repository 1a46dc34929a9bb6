"""What each tool calls "FLOPs", "MACs" or memory, reproduced from ONE analysis.

ResNet-50 is published as 3.8 G "FLOPs" (the paper), 4.09 G "Mult-Adds" (torchinfo), 4.13 GMac
(ptflops), 4.14 G "MACs" (thop), 8.18 G (torch.utils.flop_counter) and 8.21 G "FLOPs"
(calflops, torchscan).
They count different things. Each ``Convention`` below is one tool's rule, written as a pure
function of what archcost's analysis already knows about a layer (its op spec, input and output
shapes, its ``Cost``, its memory), so that all conventions come from the same graph.

Each rule maps an archcost op to the PyTorch module torchvision uses for it (Conv2d -> nn.Conv2d,
Activation("relu") -> nn.ReLU(inplace=True), GlobalAvgPool -> nn.AdaptiveAvgPool2d(1), Add ->
``out += identity`` (a broadcasting Add -> ``x + context``, Sub -> ``x - y``), Flatten ->
``torch.flatten``, BatchNorm -> nn.BatchNorm2d in eval mode,
Resize -> nn.Upsample(size or scale_factor, mode "nearest" / "bilinear"), whose forward calls
F.interpolate, ConvTranspose2d -> nn.ConvTranspose2d (weight (C_in, C_out/groups, kh, kw); its
forward calls F.conv_transpose2d, i.e. aten.convolution with transposed=True), Pad -> nn.ZeroPad2d
(constant 0), nn.ConstantPad2d (another value), nn.ReflectionPad2d, nn.ReplicationPad2d (edge) or
nn.CircularPad2d (wrap), whose forwards call F.pad (aten constant_pad_nd, reflection_pad2d,
replication_pad2d, and circular padding as narrow and cat), ...) and then applies the tool's own
formula for that module, read from the tool's released source: the file and version are cited
next to each rule. Where a released tool has a bug, the rule reproduces the released number and
says so. Where the PyTorch twin computes a layer otherwise
(a function call where the mapping has a module, nn.Flatten, an adaptive pool; a bare
F.interpolate, as HRNet's and GhostNetV2's code resize), the graph says
so per layer (``Graph.torch_form``, archcost/graph.py ``TORCH_FORMS``) and the rules follow:
the tools that hook modules do not see a function. benchmarks/peer_conventions.py runs the
tools on torchvision's models and compares (docs/conventions.md has its table).

Counts are for the analysed batch (the tools that always run one sample report the batch-1
value). Memory conventions are in bytes of the analysed dtype. docs/conventions.md explains
each convention and tabulates them for the zoo.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from archcost.cost import Cost
from archcost.errors import ArchcostError
from archcost.ops import (
    LRN,
    Activation,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    ConvTranspose2d,
    Dropout,
    Flatten,
    GlobalAvgPool,
    GroupNorm,
    Input,
    LayerNorm,
    Linear,
    MaxPool2d,
    Op,
    Resize,
    Softmax,
)

Shape = tuple


@dataclass(frozen=True)
class Layer:
    """What a rule sees of one analysed layer."""

    op: Op
    inputs: tuple[Shape, ...]  # input shapes, batch first
    output: Shape
    cost: Cost
    itemsize: int  # bytes per element of the analysed dtype
    activation_bytes: int  # bytes of the fresh buffer archcost allocates (0 when in place)
    live_bytes: int  # archcost's live activation bytes while this layer runs
    torch: str = "default"  # how the PyTorch twin computes it (archcost/graph.py TORCH_FORMS)

    @property
    def functional(self) -> bool:
        # A torch.nn.functional call: module hooks (thop, torchscan, torchinfo, ptflops' hooks)
        # never fire for it.
        return self.torch == "functional"


@dataclass(frozen=True)
class Convention:
    name: str
    unit: str  # "MACs", "FLOPs", "DMAs" or "bytes"
    includes: str  # one line: what it counts
    source: str  # the file and version the rule was read from
    rule: Callable[[Layer], int]
    reduce: str = "sum"  # "max" for a peak
    base: str = "macs"  # the archcost total it is compared with: "macs" or "activation_bytes"


def _spatial_kernel(op) -> int:
    return op.kernel[0] * op.kernel[1]


def _layernorm2d(layer: Layer) -> bool:
    # LayerNorm over the channel axis of an NCHW map is torchvision's convnext.LayerNorm2d, a
    # subclass of nn.LayerNorm (permute, F.layer_norm, permute back); tools that look modules up
    # by exact type (ptflops, thop) do not know it.
    return isinstance(layer.op, LayerNorm) and len(layer.output) == 4 and layer.op.axis % 4 == 1


def _adaptive_window(layer: Layer) -> int:
    # The window of an nn.AdaptiveAvgPool2d: input H*W over output H*W (its fixed pool's kernel).
    x, out = layer.inputs[0], layer.output
    return (x[2] // out[2]) * (x[3] // out[3])


# --- archcost's own conventions (archcost/cost.py, archcost/analysis.py) -------------------------


def archcost_macs(layer: Layer) -> int:
    # Multiply-accumulates of convolutions and linear layers only (archcost/cost.py).
    return layer.cost.macs


def archcost_other(layer: Layer) -> int:
    # Every elementary op that is not a conv/linear multiply-accumulate, one per op (cost.py).
    return layer.cost.other


def archcost_flops(layer: Layer) -> int:
    # 2 x MACs + every other elementary op (bias adds, BN, activations, pooling, adds...).
    return layer.cost.flops


def paper_flops(layer: Layer) -> int:
    # The papers' "FLOPs": He et al. 2016 write "3.6 billion FLOPs (multiply-adds)" for ResNet-34
    # and 3.8e9 for ResNet-50 (Table 1); MobileNet's "Mult-Adds" likewise: multiply-adds of the
    # conv and FC layers, nothing else. That is archcost's MACs; it is a row of its own because the word differs.
    return layer.cost.macs


def archcost_activation_bytes(layer: Layer) -> int:
    # Every fresh activation buffer of the forward pass, the input included; in-place ReLU,
    # dropout and flatten add nothing (archcost/analysis.py, archcost/memory.py).
    return layer.activation_bytes


def archcost_peak_bytes(layer: Layer) -> int:
    # Live activation bytes while the layer runs, under the topological schedule; reduced by max.
    return layer.live_bytes


# --- torch.utils.flop_counter.FlopCounterMode ---------------------------------------------------


def flop_counter(layer: Layer) -> int:
    # torch/utils/flop_counter.py (PyTorch 2.1-2.5; read at pytorch/pytorch 0140b62):
    # conv_flop_count = prod(out spatial) * prod(kernel) * N * c_out * c_in * 2, with c_in taken
    # from the weight, i.e. C_in/groups: 2 x MACs, bias ignored. nn.Linear reaches aten.addmm/mm:
    # mm_flop = m * n * 2 * k, bias ignored. No other op of a CNN is registered (BN, pooling,
    # activations, adds, subs, broadcast or not, are 0).
    # nn.ConvTranspose2d reaches aten.convolution with transposed=True: conv_flop_count takes the
    # spatial size from the input then (x_shape if transposed else out_shape) and c_out, c_in from
    # the weight (C_in, C_out/groups, kh, kw): N * H * W * kh*kw * C_in * C_out/groups * 2, i.e.
    # 2 x archcost's MACs (the conv it is the transpose of), bias ignored.
    # Pads (F.pad's aten.constant_pad_nd, reflection_pad2d, replication_pad2d, narrow/cat): no
    # formula registered, 0.
    if isinstance(layer.op, (Conv2d, ConvTranspose2d, Linear)):
        return 2 * layer.cost.macs
    return 0


# --- fvcore.nn.FlopCountAnalysis ----------------------------------------------------------------


def fvcore(layer: Layer) -> int:
    # fvcore 0.1.5.post20221221, fvcore/nn/flop_count.py _DEFAULT_SUPPORTED_OPS and
    # fvcore/nn/jit_handles.py: "one fused multiply-add = one flop".
    op, x = layer.op, layer.inputs[0] if layer.inputs else ()
    if isinstance(op, Resize):
        # "aten::upsample_nearest2d": elementwise_flop_counter(0, 1), "aten::upsample_bilinear2d":
        # elementwise_flop_counter(0, 4): 1 or 4 per output element. fvcore traces aten ops, so
        # nn.Upsample and F.interpolate count alike.
        return math.prod(layer.output) * (1 if op.mode == "nearest" else 4)
    if isinstance(op, (Conv2d, ConvTranspose2d, Linear)):
        # conv_flop_count: N * prod(w_shape) * prod(out spatial), bias ignored (a transposed conv,
        # conv_flop_jit's inputs[6]: the input's spatial size instead, N * C_in * C_out/g * kh*kw *
        # H * W = MACs); linear_flop_jit: prod(input shape) * out_features, bias ignored.
        return layer.cost.macs
    if isinstance(op, BatchNorm):
        # batchnorm_flop_jit, eval mode: input numel * (2 if affine else 1).
        return math.prod(x) * (2 if op.affine else 1)
    if isinstance(op, GlobalAvgPool) or (isinstance(op, AvgPool2d) and layer.torch == "adaptive"):
        # "aten::adaptive_avg_pool2d": elementwise_flop_counter(1, 0) = input numel (aten::avg_pool2d
        # has no handle).
        return math.prod(x)
    if isinstance(op, LayerNorm):
        # "aten::layer_norm": norm_flop_counter(2) = input numel * 5 with affine.
        return 5 * math.prod(x)
    if isinstance(op, GroupNorm):
        # "aten::group_norm": norm_flop_counter(2) (argument 2 is the weight, None without
        # affine): input numel * (5 if affine else 4). nn.GroupNorm(C, C) is still aten::group_norm
        # (aten::instance_norm, norm_flop_counter(1), is nn.InstanceNorm*'s). Its
        # "assert 2 <= len(input_shape) <= 5" fails on a larger rank: no count to reproduce.
        if not 2 <= len(x) <= 5:
            raise ArchcostError(f"fvcore: aten::group_norm's handle asserts a rank of 2 to 5, got {len(x)}")
        return math.prod(x) * (5 if op.affine else 4)
    # Max/avg pooling, activations, adds and subs (broadcast or not), softmax, LRN, pads
    # (aten::constant_pad_nd, reflection_pad2d, replication_pad2d): no default handle (ignored,
    # with a warning).
    return 0


def _transposed_as_conv_macs(layer: Layer) -> int:
    """What the tools that reuse their conv hook for nn.ConvTranspose2d (thop, torchscan)
    multiply: output numel * C_in/groups * kh * kw, the count of a conv with this layer's output,
    not the transposed conv's own MACs (input numel * C_out/groups * kh * kw)."""
    op, x = layer.op, layer.inputs[0]
    return math.prod(layer.output) * (x[1] // op.groups) * _spatial_kernel(op)


def _calflops_conv_transpose(layer: Layer) -> int:
    """calflops' _conv_trans_flops_compute on nn.ConvTranspose2d's F.conv_transpose2d call:
    MACs = prod(kernel) * C_in * filters_per_channel per INPUT position (N * H * W), with
    filters_per_channel = weight.shape[1] // groups = (C_out/groups) // groups (groups divided
    twice: the release's bug, reproduced; exact for groups 1); FLOPs = 2 * MACs, + for a bias
    weight.shape[1] * N * prod(output_dims) where output_dims are a plain conv's output size of
    the input, (H + 2p - (d(k-1)+1)) // s + 1, not the transposed conv's (also reproduced, a
    negative product included). The twin's padding is (top, left): nn.ConvTranspose2d pads
    symmetrically."""
    op, x = layer.op, layer.inputs[0]
    n, c, h, w = x
    per_group = op.out_channels // op.groups
    macs = _spatial_kernel(op) * c * (per_group // op.groups) * n * h * w
    flops = 2 * macs
    if op.bias:
        dims = [(size + 2 * pad - (d * (k - 1) + 1)) // s + 1
                for size, pad, d, k, s in zip((h, w), op.padding[::2], op.dilation, op.kernel, op.stride)]
        flops += per_group * n * math.prod(dims)
    return flops


# --- ptflops ------------------------------------------------------------------------------------

# ptflops' pytorch backend also patches torch.nn.functional (count_functional=True by default,
# ptflops/pytorch_engine.py patch_functional). nn.ReLU, nn.ELU, nn.GELU and the pooling modules
# call the patched F.relu / F.elu / F.gelu / F.max_pool2d / F.avg_pool2d / F.adaptive_avg_pool2d
# from their forward, so each is counted twice: once by the module hook and once by the
# functional wrapper. nn.ReLU6 (F.hardtanh) and nn.LeakyReLU (F.leaky_relu) are not patched.
# The README's torchvision benchmark (vgg16 15.52, resnet50 4.13 GMac) is only reached with
# this double count.
_PTFLOPS_DOUBLE = ("relu", "elu", "gelu")
_PTFLOPS_SINGLE = ("relu6", "leaky_relu")


def _ptflops_interpolate(layer: Layer) -> int:
    """ptflops 0.7.5 pytorch_ops.py _interpolate_functional_flops_hook on the twin's F.interpolate
    call: with ``size``, prod(size) * N * C (the output's numel); with ``scale_factor``, the input's
    numel times np.prod(scale_factor, dtype=np.int64) for a per-axis tuple, which truncates each
    factor before multiplying ((1.5, 0.75) counts 1 * 0 = 0x; measured), or scale_factor ** 2 for
    one number, which the twin passes when both axes share it (a float count there for a
    fractional factor, truncated to an int here)."""
    op, x = layer.op, layer.inputs[0]
    if op.size is not None:
        return math.prod(layer.output)
    sh, sw = op.scale
    if sh == sw:
        return int(math.prod(x) * sh * sh)
    return math.prod(x) * (int(sh) * int(sw))


def ptflops_pytorch(layer: Layer) -> int:
    # ptflops 0.7.5 (sovrasov/flops-counter.pytorch v0.7.5), backend="pytorch":
    # ptflops/pytorch_ops.py MODULES_MAPPING and FUNCTIONAL_MAPPING, ptflops/pytorch_engine.py.
    # Module hooks are looked up by exact type (MODULES_MAPPING[type(module)]).
    op, out = layer.op, layer.output
    x = layer.inputs[0] if layer.inputs else ()
    if layer.functional:
        # No module hook; only the patched functions count, once: F.relu, F.elu, F.gelu, F.silu,
        # F.relu6 and F.*pool2d by numel (_numel_functional_flops_hook), F.softmax likewise.
        # F.leaky_relu, F.batch_norm, F.layer_norm and F.conv2d are not patched.
        if isinstance(op, Activation):
            return math.prod(out) if op.fn in ("relu", "elu", "gelu", "silu", "relu6") else 0
        if isinstance(op, (MaxPool2d, AvgPool2d, GlobalAvgPool, Softmax)):
            return math.prod(x)
        if isinstance(op, Resize):  # F.interpolate is patched
            return _ptflops_interpolate(layer)
        if not isinstance(op, (Linear, LRN)):
            return 0
    if _layernorm2d(layer):
        return 0
    if isinstance(op, Conv2d):
        # conv_flops_counter_hook: prod(kernel) * C_in * C_out/groups per output position
        # (= MACs) + output numel for the bias.
        return layer.cost.macs + (math.prod(out) if op.bias else 0)
    if isinstance(op, ConvTranspose2d):
        # MODULES_MAPPING gives nn.ConvTranspose2d conv_flops_counter_hook(transpose=True), which
        # counts prod(kernel) * C_in * C_out/groups per INPUT position (N * H * W of them): the
        # transposed conv's own MACs; + output numel for the bias. F.conv_transpose2d is not
        # patched. (Measured with ptflops 0.7.5: 5400 on nn.ConvTranspose2d(4, 6, 4, 2, 1,
        # groups=2) over 1x4x5x5, benchmarks/peer_conventions.py --ops.)
        return layer.cost.macs + (math.prod(out) if op.bias else 0)
    if isinstance(op, Linear):
        # linear_flops_counter_hook: (in * out + bias) * prod(input.shape[:-1]).
        return layer.cost.macs + (math.prod(out) if op.bias else 0)
    if isinstance(op, Activation):
        # relu_flops_counter_hook: output numel (+ the F.* wrapper, see above); nn.SiLU has no
        # module hook but F.silu is patched; sigmoid, tanh, hardswish, hardsigmoid: 0.
        if op.fn in _PTFLOPS_DOUBLE:
            return 2 * math.prod(out)
        if op.fn in _PTFLOPS_SINGLE or op.fn == "silu":
            return math.prod(out)
        return 0
    if isinstance(op, (MaxPool2d, AvgPool2d, GlobalAvgPool)):
        # pool_flops_counter_hook: input numel; the patched F.*pool2d adds input numel again.
        return 2 * math.prod(x)
    if isinstance(op, BatchNorm):
        # bn_flops_counter_hook: input numel, x2 if module.affine.
        return math.prod(x) * (2 if op.affine else 1)
    if isinstance(op, LayerNorm):
        # Same hook, but nn.LayerNorm has no `affine` attribute (it is `elementwise_affine`).
        return math.prod(x)
    if isinstance(op, GroupNorm):
        # MODULES_MAPPING nn.GroupNorm: bn_flops_counter_hook, which nn.GroupNorm's `affine`
        # attribute doubles; F.group_norm is not patched.
        return math.prod(x) * (2 if op.affine else 1)
    if isinstance(op, Softmax):
        # nn.Softmax has no hook; its F.softmax is patched: input numel.
        return math.prod(x)
    if isinstance(op, Resize):
        # upsample_flops_counter_hook (nn.Upsample): output numel, whatever the mode; its forward
        # calls the patched F.interpolate, counted again.
        return math.prod(out) + _ptflops_interpolate(layer)
    if isinstance(op, LRN):
        # nn.LocalResponseNorm has no hook, but F.local_response_norm calls the patched
        # input.mul(input), avg_pool3d over the channel-padded squares (N, 1, C+size-1, H, W),
        # .mul(alpha) and .add(k): 3 x numel + N*(C+size-1)*H*W.
        n, c, h, w = x
        return 3 * math.prod(x) + n * (c + op.size - 1) * h * w
    # Dropout, flatten, concat, residual `+=` (Tensor.__iadd__ is not patched), a broadcast
    # `x + y` or `x - y` (the operators Tensor.__add__/__sub__, not patched either), mul, pads (no
    # nn.*Pad2d in MODULES_MAPPING, F.pad not patched): 0.
    return 0


def ptflops_aten(layer: Layer) -> int:
    # ptflops 0.7.5, backend="aten" (ptflops/aten_ops.py ATEN_OPS_MAPPING: aten.mm, matmul,
    # addmm, bmm, convolution): conv_flop = N * prod(w_shape) * prod(out spatial) + output numel
    # for the bias; addmm_flop = batch * in * out + batch * out for the bias. nn.Linear with a
    # bias reaches aten.addmm (for inputs of more than 2 dims via PyTorch's _flatten_nd_linear).
    # Everything else is "treated as a zero-op". A transposed conv is aten.convolution with
    # transposed=True: conv_flop takes the input's spatial size then (inputs[6]), N * prod(w_shape)
    # * H * W = MACs, + output numel for the bias as for a conv.
    op = layer.op
    if isinstance(op, (Conv2d, ConvTranspose2d, Linear)):
        return layer.cost.macs + (math.prod(layer.output) if op.bias else 0)
    return 0


# --- thop ---------------------------------------------------------------------------------------


def thop(layer: Layer) -> int:
    # thop 0.1.1.post2209072238 (Lyken17/pytorch-OpCounter 43c064a): thop/profile.py
    # register_hooks, thop/vision/basic_hooks.py and calc_func.py. Module hooks only, looked up
    # by exact type (register_hooks[type(m)]): functions and subclasses count 0.
    op, out = layer.op, layer.output
    x = layer.inputs[0] if layer.inputs else ()
    if layer.functional or _layernorm2d(layer):
        return 0
    if isinstance(op, (Conv2d, Linear)):
        # calculate_conv2d_flops: out numel * C_in/g * kh*kw (bias ignored);
        # count_linear: in_features * out numel (bias ignored).
        return layer.cost.macs
    if isinstance(op, ConvTranspose2d):
        # register_hooks maps nn.ConvTranspose2d to the same count_convNd: out numel * C_in/g *
        # kh*kw, with C_in the module's input channels: output elements, as for a conv, so about
        # stride^2 times the MACs (every input element times every tap).
        return _transposed_as_conv_macs(layer)
    if isinstance(op, BatchNorm):
        # count_normalization: calculate_norm = 2 * input numel, then "flops *= 2" when affine.
        return 2 * math.prod(x) * (2 if op.affine else 1)
    if isinstance(op, LayerNorm):
        # The same hook (elementwise_affine): 4 * numel.
        return 4 * math.prod(x)
    if isinstance(op, GroupNorm):
        # Not in this release's register_hooks (BatchNorm*, LayerNorm and InstanceNorm* are;
        # nn.GroupNorm is not): "THOP has not implemented counting method", 0.
        return 0
    if isinstance(op, AvgPool2d) and layer.torch == "adaptive":
        # count_adap_avgpool: (kernel = in / out spatial, prod + 1) * output numel.
        return (_adaptive_window(layer) + 1) * math.prod(out)
    if isinstance(op, AvgPool2d):
        # count_avgpool: calculate_avgpool(output numel) = 1 per output element.
        return math.prod(out)
    if isinstance(op, GlobalAvgPool):
        # count_adap_avgpool: (prod(in spatial / out spatial) + 1) * output numel.
        return (x[2] * x[3] + 1) * math.prod(out)
    if isinstance(op, Softmax):
        # count_softmax: rows * (nf exp + nf-1 adds + nf divs).
        features = out[op.axis]
        return math.prod(out) // features * (3 * features - 1)
    if isinstance(op, Resize):
        # count_upsample (nn.Upsample) -> vision/calc_func.py calculate_upsample: output numel for
        # "nearest" (not multiplied: not zero_ops), x 11 for "bilinear".
        return math.prod(out) * (1 if op.mode == "nearest" else 11)
    # nn.ReLU, ReLU6, MaxPool, Dropout, ZeroPad2d ("padding does not involve any
    # multiplication"): zero_ops; LeakyReLU: calculate_relu_flops -> 0; other activations, LRN,
    # adds and subs (broadcast or not), concat, mul, the other nn.*Pad2d: no hook (0).
    return 0


# --- torchinfo ----------------------------------------------------------------------------------


def torchinfo(layer: Layer) -> int:
    # torchinfo 1.8.0, torchinfo/layer_info.py LayerInfo.calculate_macs: for each parameter
    # named "weight" or "bias" of a leaf module, "Conv" modules add params * prod(out[:1] +
    # out[2:]) (= MACs + bias adds); every other module adds out[0] * params.
    op, out = layer.op, layer.output
    if isinstance(op, (Conv2d, ConvTranspose2d)):
        # "Conv" in the class name: nn.ConvTranspose2d matches too, params x output positions.
        return layer.cost.params * (math.prod(out) // out[1])
    if isinstance(op, Linear):
        # BUG in the release: out[0] * params ignores every axis but the batch, so a Linear on a
        # channels-last (N, H, W, C) map is undercounted H*W times. Reproduced; fixed after
        # 1.8.0 by using prod(out[:-1]).
        return out[0] * layer.cost.params
    if isinstance(op, (BatchNorm, LayerNorm, GroupNorm)):
        # out[0] * (gamma + beta): 2C per sample, not per element (0 for a GroupNorm without
        # affine: no parameters).
        return out[0] * layer.cost.params
    # Parameter-free modules (pads included): 0. A learned Scale (ConvNeXt's layer_scale) is a parameter of its
    # block in torchvision, not a leaf module, so it is not counted.
    return 0


def _torchinfo_counts_output(op: Op) -> bool:
    # Leaf modules with parameters (weight/bias): conv, linear, BN and GroupNorm (affine), LayerNorm.
    return isinstance(op, (Conv2d, ConvTranspose2d, Linear, LayerNorm)) or (isinstance(op, (BatchNorm, GroupNorm)) and op.affine)


def torchinfo_pass_bytes(layer: Layer) -> int:
    # torchinfo 1.8.0, torchinfo/model_statistics.py: "Forward/backward pass size" sums
    # output_bytes * 2 ("x2 for gradients") over leaf layers with num_params > 0 only: outputs of
    # ReLU, pooling, adds and the input are not counted.
    if _torchinfo_counts_output(layer.op):
        return 2 * math.prod(layer.output) * layer.itemsize
    return 0


def torchinfo_param_bytes(layer: Layer) -> int:
    # torchinfo 1.8.0, model_statistics.py "Params size": param_bytes of the leaf layers
    # (BN running stats are buffers, not counted).
    if isinstance(layer.op, (Conv2d, ConvTranspose2d, Linear, LayerNorm, BatchNorm, GroupNorm)):
        return layer.cost.params * layer.itemsize
    return 0


# What sys.getsizeof adds to a storage's bytes: the Python object of torch.UntypedStorage with its
# GC header (measured: 64 on CPython 3.11 x86-64 with torch 2.14, for every size and dtype).
TORCHINFO_STORAGE_OVERHEAD = 64


def torchinfo_input_bytes(layer: Layer) -> int:
    # torchinfo 1.8.0 "Input size": torchinfo.py get_total_memory_used sums
    # sys.getsizeof(x.untyped_storage()) over the input tensors: their bytes plus the object's size.
    if not isinstance(layer.op, Input):
        return 0
    return math.prod(layer.output) * layer.itemsize + TORCHINFO_STORAGE_OVERHEAD


# --- torchscan ----------------------------------------------------------------------------------


def _torchscan_kernel(op) -> int:
    # torchscan 0.2.0 modules/flops.py and macs.py take prod(kernel_size) only when the module
    # stores a tuple; torchvision writes square pools as nn.MaxPool2d(3, ...), an int, so the
    # released count uses k where k*k is meant (a bug, reproduced). dmas_pool expands the int.
    kh, kw = op.kernel
    return kh if kh == kw else kh * kw


def _torchscan_pool(layer: Layer) -> int | None:
    """torchscan 0.2.0's FLOPs (and MACs, the same formulas) of a pooling layer, or None:
    flops_maxpool out * (k - 1); flops_avgpool out * (k - 1 + spatial dims);
    flops_adaptive_avgpool out * (prod(kernel) - 1 + len(kernel))."""
    op, x = layer.op, layer.inputs[0] if layer.inputs else ()
    if isinstance(op, GlobalAvgPool):
        window, dims = x[2] * x[3], 2  # adaptive_kernel_size: the whole map
    elif isinstance(op, AvgPool2d) and layer.torch == "adaptive":
        window, dims = _adaptive_window(layer), 2
    elif isinstance(op, (MaxPool2d, AvgPool2d)):
        window, dims = _torchscan_kernel(op), len(x) - 2
    else:
        return None
    return math.prod(layer.output) * (window - 1 + (0 if isinstance(op, MaxPool2d) else dims))


def torchscan_flops(layer: Layer) -> int:
    # torchscan 0.2.0 (frgfm/torch-scan v0.2.0), torchscan/modules/flops.py module_flops, summed
    # over every call of a leaf module (crawler.py "module_flops"); modules are matched with
    # isinstance, and functions are not seen.
    op, out = layer.op, layer.output
    x = layer.inputs[0] if layer.inputs else ()
    if layer.functional:
        return 0
    if isinstance(op, (Conv2d, ConvTranspose2d)):
        # flops_convnd: out numel * (2 * k * C_in/g - 1 + bias), C_in the input's channels.
        # flops_convtransposend: len(kernel_size) * 8 "padding" flops + flops_convnd on its output
        # (per output element, as for a conv: about stride^2 times 2 x MACs).
        terms = _spatial_kernel(op) * (x[1] // op.groups)
        padding = 2 * 8 if isinstance(op, ConvTranspose2d) else 0
        return padding + math.prod(out) * (2 * terms - 1 + int(op.bias))
    if isinstance(op, Linear):
        # flops_linear: out_feats * (2 * in - 1) + out_feats for the bias.
        outputs = math.prod(out)
        return outputs * (2 * x[-1] - 1) + (outputs if op.bias else 0)
    if isinstance(op, Activation):
        # flops_relu 1, flops_relu6 2, flops_leakyrelu 4, flops_sigmoid 4, flops_elu 6,
        # flops_tanh 6 per element; GELU, SiLU, Hardswish, Hardsigmoid unsupported (0).
        per = {"relu": 1, "relu6": 2, "leaky_relu": 4, "sigmoid": 4, "elu": 6, "tanh": 6}
        return per.get(op.fn, 0) * math.prod(x)
    if isinstance(op, BatchNorm):
        # flops_bn, eval: 2 per channel (eps + var, sqrt), 2 per element (sub mean, div),
        # 2 per element for gamma and beta when affine.
        return 2 * x[1] + 2 * math.prod(x) + (2 * math.prod(x) if op.affine else 0)
    pool = _torchscan_pool(layer)
    if pool is not None:
        return pool
    if isinstance(op, Dropout):
        # flops_dropout: one random draw per element whenever p > 0 (eval mode included).
        return math.prod(x) if op.p > 0 else 0
    if isinstance(op, LayerNorm):
        # flops_layernorm (new in 0.2.0; LayerNorm2d is an nn.LayerNorm): 6 per element + 2 per
        # normalised row + 1 per element each for weight and bias.
        return 8 * math.prod(x) + 2 * (math.prod(x) // x[op.axis])
    # GroupNorm: taken as unsupported in 0.2.0 ("Module type not supported", 0) NOT verified
    # against the 0.2.0 release: a later torch-scan has flops_groupnorm (6 per element + 2 per
    # (sample, group) + 1 per element each for weight and bias); which release added it is unknown.
    # Softmax, LRN, permutes, adds and subs (no module at all), nn.*Pad2d: "Module type not
    # supported", 0.
    return 0


def torchscan_macs(layer: Layer) -> int:
    # torchscan 0.2.0, torchscan/modules/macs.py module_macs.
    op = layer.op
    x = layer.inputs[0] if layer.inputs else ()
    if layer.functional:
        return 0
    if isinstance(op, (Conv2d, Linear)):
        # macs_convnd: out numel * C_in/g * k; macs_linear: in_features * out numel.
        return layer.cost.macs
    if isinstance(op, ConvTranspose2d):
        # macs_convtransposend: len(kernel_size) * 4 "padding" MACs + macs_convnd on its output.
        return 2 * 4 + _transposed_as_conv_macs(layer)
    if isinstance(op, BatchNorm):
        # macs_bn, eval: numel * (1 + affine).
        return math.prod(x) * (2 if op.affine else 1)
    pool = _torchscan_pool(layer)
    if pool is not None:  # macs_maxpool, macs_avgpool, macs_adaptive_*: the flops' formulas
        return pool
    # Activations, dropout, flatten: 0; LayerNorm, GroupNorm, pads and anything else unsupported: 0.
    return 0


def torchscan_dmas(layer: Layer) -> int:
    # torchscan 0.2.0, torchscan/modules/memory.py module_dmas (direct memory accesses).
    op, out = layer.op, layer.output
    x = layer.inputs[0] if layer.inputs else ()
    if layer.functional:
        return 0
    if isinstance(op, (Conv2d, ConvTranspose2d)):
        # dmas_convnd: C_in * k * out numel // groups + params + out numel. dmas_convtransposend:
        # len(kernel_size) * 4 + len(kernel_size) (stride, padding, kernel accesses) + dmas_convnd.
        padding = 2 * 4 + 2 if isinstance(op, ConvTranspose2d) else 0
        return padding + x[1] * _spatial_kernel(op) * math.prod(out) // op.groups + layer.cost.params + math.prod(out)
    if isinstance(op, Linear):
        # dmas_linear: input numel + params + out numel.
        return math.prod(x) + layer.cost.params + math.prod(out)
    if isinstance(op, Activation):
        # torchvision builds ReLU/ReLU6 with inplace=True: no output access then.
        written = 0 if op.inplace else math.prod(out)
        if op.fn in ("relu", "relu6"):  # dmas_relu
            return math.prod(x) + written
        if op.fn in ("elu", "leaky_relu"):  # dmas_act_single_param: + alpha or slope
            return math.prod(x) + 1 + written
        if op.fn == "sigmoid":  # dmas_sigmoid
            return math.prod(x) + math.prod(out)
        if op.fn == "tanh":  # dmas_tanh
            return 2 * math.prod(x) + math.prod(out)
        return 0
    if isinstance(op, BatchNorm):
        # dmas_bn, eval: input + running mean/var + eps (+ gamma, beta) + momentum + output.
        c = x[1]
        return math.prod(x) + 2 * c + 1 + (2 * c if op.affine else 0) + 1 + math.prod(out)
    if isinstance(op, (MaxPool2d, AvgPool2d)):
        # dmas_pool (the int kernel expanded here) and dmas_adaptive_pool: k reads per output + the output.
        return _spatial_kernel(op) * math.prod(out) + math.prod(out)
    if isinstance(op, GlobalAvgPool):
        # dmas_adaptive_pool with kernel = H x W.
        return x[2] * x[3] * math.prod(out) + math.prod(out)
    if isinstance(op, Dropout):
        # dmas_dropout: input + p + output (torchvision's nn.Dropout is not in place).
        return math.prod(x) + 1 + math.prod(out)
    if isinstance(op, Flatten) and layer.torch == "module":
        # dmas_flatten (nn.Flatten only; torch.flatten is a function): read and write each element.
        return 2 * math.prod(x)
    # nn.*Pad2d: no dmas_* handler ("Module type not supported"), 0.
    return 0


# --- calflops -----------------------------------------------------------------------------------


def calflops(layer: Layer) -> int:
    # calflops, calflops/pytorch_ops.py at MrYxJ/calculate-flops.pytorch 29ca584 (2024-03-01):
    # DeepSpeed-profiler style, it wraps torch.nn.functional (no module hooks), so each function
    # a module calls is counted once.
    op, out = layer.op, layer.output
    x = layer.inputs[0] if layer.inputs else ()
    if isinstance(op, Conv2d):
        # _conv_flops_compute: 2 * MACs + C_out * output positions for the bias.
        return 2 * layer.cost.macs + (math.prod(out) if op.bias else 0)
    if isinstance(op, ConvTranspose2d):
        return _calflops_conv_transpose(layer)
    if isinstance(op, Linear):
        # _linear_flops_compute: 2 * input numel * out_features; the bias is not counted.
        return 2 * layer.cost.macs
    if isinstance(op, Activation):
        # F.relu, F.leaky_relu, F.elu, F.gelu, F.silu: input numel. nn.ReLU6 calls F.hardtanh and
        # sigmoid/tanh/hardswish/hardsigmoid are torch.* or unwrapped functions: 0.
        return math.prod(x) if op.fn in ("relu", "leaky_relu", "elu", "gelu", "silu") else 0
    if isinstance(op, (MaxPool2d, AvgPool2d, GlobalAvgPool)):
        # _pool_flops_compute: input numel.
        return math.prod(x)
    if isinstance(op, BatchNorm):
        # _batch_norm_flops_compute, eval: numel * (2 if affine else 1).
        return math.prod(x) * (2 if op.affine else 1)
    if isinstance(op, LayerNorm):
        # _layer_norm_flops_compute: numel * 5 with affine.
        return 5 * math.prod(x)
    if isinstance(op, GroupNorm):
        # _group_norm_flops_compute (the wrapped F.group_norm that nn.GroupNorm calls):
        # numel * (5 if weight is not None else 4).
        return math.prod(x) * (5 if op.affine else 4)
    if isinstance(op, Softmax):
        return math.prod(x)
    if isinstance(op, Resize):
        # _upsample_flops_compute (F.interpolate, which nn.Upsample calls): with a size tuple,
        # int(prod(size)) = Ho * Wo, batch and channels left out; with a scale factor, the input's
        # numel (the release computes "flops * int(_prod(scale_factor))" and drops the product).
        # Both reproduced.
        return out[2] * out[3] if op.size is not None else math.prod(x)
    if isinstance(op, LRN):
        # F.local_response_norm's wrapped Tensor.mul (x*x, alpha), Tensor.add (k) and avg_pool3d
        # over the channel-padded squares, as for ptflops.
        n, c, h, w = x
        return 3 * math.prod(x) + n * (c + op.size - 1) * h * w
    # Residual `out += identity` (Tensor.__iadd__ is not wrapped), a broadcast `x + y` or `x - y`
    # (Tensor.__add__/__sub__, not wrapped either), dropout (0), concat, flatten, F.pad (not
    # wrapped): 0.
    return 0


# --- convnet-burden -----------------------------------------------------------------------------


def convnet_burden_flops(layer: Layer) -> int:
    # convnet-burden (albanie/convnet-burden 9c7f31b), core/burden.m computeFlops on MatConvNet
    # layers; FC layers are convolutions there.
    op, out = layer.op, layer.output
    x = layer.inputs[0] if layer.inputs else ()
    if isinstance(op, (Conv2d, Linear)):
        # vl_nnconv: "count fused multiply-adds": out numel * filter size, + out numel for a bias.
        return layer.cost.macs + (math.prod(out) if op.bias else 0)
    if isinstance(op, ConvTranspose2d):
        # vl_nnconvt: numel(x) * numel(F(:,:,1,:)) (+ out numel for a bias), F being MatConvNet's
        # FH x FW x (C_out/groups) x C_in filter bank: x's numel times kh * kw * C_in, the input
        # channels where the output channels per group are meant (read at burden.m 42f03d3;
        # reproduced).
        return math.prod(x) * _spatial_kernel(op) * x[1] + (math.prod(out) if op.bias else 0)
    if isinstance(op, Activation):
        # vl_nnrelu: "comparison + multiply" = 2 per element; sigmoid: 0 (exp not counted).
        return 2 * math.prod(out) if op.fn in ("relu", "leaky_relu") else 0
    if isinstance(op, (MaxPool2d, AvgPool2d)):
        # vl_nnpool: "assume two flops per location": 2 * out numel * prod(stride).
        return 2 * math.prod(out) * op.stride[0] * op.stride[1]
    if isinstance(op, GlobalAvgPool):
        # vl_nnglobalpool: input numel.
        return math.prod(x)
    if op.kind in ("add", "sub"):
        # vl_nnwsum: out numel. autonn's weighted sum Y = W(1) * A + W(2) * B is a - b too, with
        # weights 1 and -1, and broadcasts: out numel either way.
        return math.prod(out)
    if isinstance(op, LRN):
        # vl_nnnormalize: out numel + (1 + 1 + 2C) * H * W.
        _, c, h, w = out
        return math.prod(out) + (2 + 2 * c) * h * w
    if op.kind in ("scale", "mul"):
        # vl_nnscale: out numel.
        return math.prod(out)
    # vl_nnbnorm "assume merged at test time", softmax (exp not counted), dropout, reshape,
    # concat: 0; MatConvNet has no padding layer (pads are the conv's own): a Pad counts 0.
    return 0


def convnet_burden_feature_bytes(layer: Layer) -> int:
    # core/burden.m computeMemory over `feats`: every network variable that is neither a
    # parameter nor an input, at its own size: every layer output, ReLU and dropout included
    # (autonn keeps one variable per layer output; nothing is in place).
    if isinstance(layer.op, Input):
        return 0
    return math.prod(layer.output) * layer.itemsize


def convnet_burden_param_bytes(layer: Layer) -> int:
    # computeBurden(net, 'params'): every net.params variable, BN's moments (archcost's
    # buffers) included.
    return (layer.cost.params + layer.cost.buffers) * layer.itemsize


# --- the registry -------------------------------------------------------------------------------

CONVENTIONS: dict[str, Convention] = {
    c.name: c
    for c in (
        Convention(
            "archcost", "MACs", "multiply-accumulates of conv and linear layers; every other op counted separately",
            "archcost/cost.py", archcost_macs,
        ),
        Convention(
            "archcost-other", "ops", "the other ops: bias adds, BN, activations, pooling, adds, softmax, LRN",
            "archcost/cost.py", archcost_other,
        ),
        Convention(
            "archcost-flops", "FLOPs", "2 x MACs + every other elementary op (bias, BN, activations, pooling, adds)",
            "archcost/cost.py", archcost_flops,
        ),
        Convention(
            "paper", "FLOPs", "the papers' 'FLOPs': multiply-adds of conv and FC layers only",
            "He et al. 2016 Table 1; Howard et al. 2017 Table 2", paper_flops,
        ),
        Convention(
            "flop_counter", "FLOPs", "2 x MACs of conv and linear (matmul); bias, BN, pooling, activations ignored",
            "torch/utils/flop_counter.py (PyTorch 2.x)", flop_counter,
        ),
        Convention(
            "fvcore", "FLOPs", "1 per MAC of conv/linear (no bias) + BN (2/elem) + adaptive avg pool (1/input elem)",
            "fvcore 0.1.5 fvcore/nn/flop_count.py, jit_handles.py", fvcore,
        ),
        Convention(
            "ptflops", "MACs",
            "conv/linear MACs + bias; BN 2/elem; ReLU and pooling counted twice (module hook + F.* patch)",
            "ptflops 0.7.5 pytorch_ops.py, pytorch_engine.py (backend=pytorch)", ptflops_pytorch,
        ),
        Convention(
            "ptflops-aten", "MACs", "conv/linear MACs + bias adds; nothing else",
            "ptflops 0.7.5 aten_ops.py (backend=aten)", ptflops_aten,
        ),
        Convention(
            "thop", "MACs", "conv/linear MACs (no bias) + BN 4/elem + avg pooling; ReLU and max pool 0",
            "thop 0.1.1.post2209072238 profile.py, vision/basic_hooks.py", thop,
        ),
        Convention(
            "torchinfo", "MACs", "'Mult-Adds': params x output positions for conv, batch x params otherwise",
            "torchinfo 1.8.0 layer_info.py calculate_macs", torchinfo,
        ),
        Convention(
            "torchscan-flops", "FLOPs", "conv (2k-1 per window + channel adds) + bias + BN + activations + pooling",
            "torchscan 0.2.0 modules/flops.py", torchscan_flops,
        ),
        Convention(
            "torchscan-macs", "MACs", "conv/linear MACs + BN (2/elem) + pooling",
            "torchscan 0.2.0 modules/macs.py", torchscan_macs,
        ),
        Convention(
            "torchscan-dmas", "DMAs", "reads and writes: inputs per window + params + outputs",
            "torchscan 0.2.0 modules/memory.py", torchscan_dmas,
        ),
        Convention(
            "calflops", "FLOPs", "2 x MACs + conv bias; BN 2/elem; ReLU and pooling 1/elem; linear bias ignored",
            "calflops pytorch_ops.py (MrYxJ/calculate-flops.pytorch 29ca584)", calflops,
        ),
        Convention(
            "convnet-burden", "FLOPs", "conv/FC multiply-adds + bias + ReLU 2/elem + pooling 2/location; BN 0",
            "convnet-burden core/burden.m computeFlops", convnet_burden_flops,
        ),
        Convention(
            "archcost-activations", "bytes", "every fresh forward activation, input included; in-place ops free",
            "archcost/analysis.py", archcost_activation_bytes, base="activation_bytes",
        ),
        Convention(
            "archcost-peak", "bytes", "peak live activation bytes under the topological schedule",
            "archcost/memory.py", archcost_peak_bytes, reduce="max", base="activation_bytes",
        ),
        Convention(
            "torchinfo-pass", "bytes", "'Forward/backward pass size': 2 x outputs of layers with params",
            "torchinfo 1.8.0 model_statistics.py", torchinfo_pass_bytes, base="activation_bytes",
        ),
        Convention(
            "torchinfo-params", "bytes", "'Params size': parameter bytes of leaf layers",
            "torchinfo 1.8.0 model_statistics.py", torchinfo_param_bytes, base="activation_bytes",
        ),
        Convention(
            "torchinfo-input", "bytes", "'Input size': sys.getsizeof of the input's storage (its bytes + 64)",
            "torchinfo 1.8.0 torchinfo.py", torchinfo_input_bytes, base="activation_bytes",
        ),
        Convention(
            "convnet-burden-feats", "bytes", "'feat. mem': every layer output (no in-place), input excluded",
            "convnet-burden core/burden.m computeMemory", convnet_burden_feature_bytes, base="activation_bytes",
        ),
        Convention(
            "convnet-burden-params", "bytes", "'param mem': params + BN moments",
            "convnet-burden core/burden.m computeBurden", convnet_burden_param_bytes, base="activation_bytes",
        ),
    )
}


def get(name: str) -> Convention:
    try:
        return CONVENTIONS[name]
    except KeyError:
        raise ArchcostError(f"--convention: unknown {name!r}; known: {', '.join(CONVENTIONS)}") from None


def layers(report) -> list[Layer]:
    """One ``Layer`` per record of ``report`` (an ``analysis.Report``), in record order."""
    from archcost.analysis import dtype_bytes

    itemsize = dtype_bytes(report.dtype)
    shapes = {rec.name: rec.output_shape for rec in report.records}
    out = []
    for rec in report.records:
        op = report.graph.op(rec.name)
        inputs = tuple(shapes[src] for src in rec.inputs)
        cost = Cost(rec.weights, rec.biases, rec.buffers, rec.macs, rec.other)
        out.append(Layer(op, inputs, rec.output_shape, cost, itemsize, rec.activation_bytes, rec.live_bytes,
                         report.graph.torch_form(rec.name)))
    return out


def layer_counts(report, convention: str | Convention) -> list[int]:
    """The convention's count for each record of ``report``, in record order."""
    conv = get(convention) if isinstance(convention, str) else convention
    return [int(conv.rule(layer)) for layer in layers(report)]


def combine(conv: Convention, counts) -> int:
    counts = list(counts)
    if conv.reduce == "max":
        return max(counts, default=0)
    return sum(counts)


def total(report, convention: str | Convention) -> int:
    conv = get(convention) if isinstance(convention, str) else convention
    return combine(conv, layer_counts(report, conv))


def folded_counts(report, convention: str | Convention) -> list[int]:
    """Counts aligned with ``report.folded()``: each folded row combines the records it merged
    (a folded row keeps its producer's name, so the rows split the records in order)."""
    conv = get(convention) if isinstance(convention, str) else convention
    counts = layer_counts(report, conv)
    names = [rec.name for rec in report.records]
    starts = []
    position = 0
    for row in report.folded():
        position = names.index(row.name, position)
        starts.append(position)
    ends = starts[1:] + [len(names)]
    return [combine(conv, counts[a:b]) for a, b in zip(starts, ends)]


def table_columns(report, names: list[str], fold: bool = True) -> list[tuple[str, list[int], int]]:
    """``(header, per-row values, total)`` for each named convention, for report.table.layer_table."""
    columns = []
    for name in names:
        conv = get(name)
        values = layer_counts(report, conv)
        shown = folded_counts(report, conv) if fold else values
        columns.append((f"{conv.name} {conv.unit}", shown, combine(conv, values)))
    return columns


def summary(report) -> list[dict]:
    """One row per convention: name, unit, total, ratio to archcost's MACs (or to its forward
    activation bytes for memory conventions), what it includes, and its source."""
    rows = []
    for conv in CONVENTIONS.values():
        value = total(report, conv)
        base = report.totals[conv.base]
        rows.append(
            {
                "name": conv.name,
                "unit": conv.unit,
                "total": value,
                "ratio": value / base if base else None,
                "base": "archcost MACs" if conv.base == "macs" else "archcost activation bytes",
                "includes": conv.includes,
                "source": conv.source,
            }
        )
    return rows
