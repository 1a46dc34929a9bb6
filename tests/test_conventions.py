"""Each peer tool's convention pinned on small layers whose counts can be checked by hand.

Every expected number below is the tool's own formula applied by hand to the layer, with the
formula's source (file and released version) next to it. The sources are the same as those cited
in archcost/conventions.py; the test values were worked out independently from those formulas.
"""

import json

import pytest

from archcost import conventions, zoo
from archcost.analysis import analyze
from archcost.cli import main
from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import (
    LRN,
    Activation,
    Add,
    AvgPool2d,
    BatchNorm,
    Conv2d,
    Dropout,
    Flatten,
    GlobalAvgPool,
    GroupNorm,
    LayerNorm,
    Linear,
    MaxPool2d,
    Permute,
    Softmax,
    Sub,
)

TOOLS = (
    "archcost", "flop_counter", "fvcore", "ptflops", "ptflops-aten", "thop", "torchinfo",
    "torchscan-flops", "torchscan-macs", "torchscan-dmas", "convnet-burden",
)


def counts_of(layer: str, graph: Graph, batch: int = 1) -> dict:
    """Every convention's count for the layer named ``layer``."""
    report = analyze(graph, batch=batch)
    index = [r.name for r in report.records].index(layer)
    return {name: conventions.layer_counts(report, name)[index] for name in conventions.CONVENTIONS}


def single(op, input_shape, batch: int = 1, torch: str = "default") -> dict:
    g = Graph("one")
    x = g.input(input_shape)
    g.add(op, x, name="layer", torch=torch)
    return counts_of("layer", g, batch)


def check(got: dict, expected: dict) -> None:
    assert {k: got[k] for k in expected} == expected


# Conv 3x3, 3 -> 4 channels, pad 1, on 8x8: 256 outputs, each C_in*k*k = 27 MACs -> 6,912 MACs;
# weights 4*27 = 108, bias 4.
def test_conv_with_bias():
    check(single(Conv2d(4, 3, padding=1, bias=True), (3, 8, 8)), {
        "archcost": 6912,
        "archcost-other": 256,  # archcost/cost.py: one add per output for the bias
        "archcost-flops": 2 * 6912 + 256,  # 2 x MACs + other
        "paper": 6912,
        "flop_counter": 13824,  # torch/utils/flop_counter.py conv_flop_count: 2 x MACs, bias ignored
        "fvcore": 6912,  # fvcore 0.1.5 jit_handles.conv_flop_count: N*prod(w)*prod(out HW), bias ignored
        "ptflops": 7168,  # ptflops 0.7.5 conv_flops_counter_hook: 9*3*4 per position * 64 + 256 bias
        "ptflops-aten": 7168,  # ptflops 0.7.5 aten_ops.conv_flop_count: + N*C_out*HW for the bias
        "thop": 6912,  # thop calculate_conv2d_flops: out numel * C_in/g * kh*kw, no bias
        "torchinfo": 7168,  # torchinfo 1.8.0 calculate_macs: (108 + 4) params * N*H*W (64)
        "torchscan-flops": 13824,  # torchscan 0.1.2 flops_convnd: 256 * (3*(2*9-1) + 2) + 256 bias
        "torchscan-macs": 6912,  # torchscan 0.1.2 macs_convnd
        "torchscan-dmas": 7280,  # dmas_convnd: 3*9*256 input reads + 112 params + 256 outputs
        "convnet-burden": 7168,  # burden.m vl_nnconv: numel(out)*numel(filter) + numel(out) bias
        "calflops": 14080,  # calflops pytorch_ops._conv_flops_compute: 2 * MACs + C_out * positions
    })


def test_conv_without_bias():
    check(single(Conv2d(4, 3, padding=1, bias=False), (3, 8, 8)), {
        "archcost": 6912,
        "archcost-flops": 13824,
        "flop_counter": 13824,
        "fvcore": 6912,
        "ptflops": 6912,
        "ptflops-aten": 6912,
        "thop": 6912,
        "torchinfo": 6912,  # 108 params * 64 positions
        "torchscan-flops": 13568,  # 256 * (3*17 + 2): 2k-1 per window, C_in-1 adds across channels
        "torchscan-macs": 6912,
        "torchscan-dmas": 7276,  # 6912 + 108 + 256
        "convnet-burden": 6912,
        "calflops": 13824,
    })


# Grouped conv: 4 -> 8 channels, 2 groups, 3x3 pad 1 on 6x6: 288 outputs * (2 * 9) = 5,184 MACs.
def test_grouped_conv():
    check(single(Conv2d(8, 3, padding=1, groups=2, bias=False), (4, 6, 6)), {
        "archcost": 5184,
        "flop_counter": 10368,  # c_in read from the weight (C_in/groups = 2)
        "fvcore": 5184,  # prod(w_shape) = 8*2*3*3
        "ptflops": 5184,  # 9 * (4 * 8/2) per position * 36 positions
        "ptflops-aten": 5184,
        "thop": 5184,  # 288 * (4 // 2) * 9
        "torchinfo": 5184,  # 144 params * 36
        "torchscan-flops": 10080,  # 288 * (2*17 + 1)
        "torchscan-macs": 5184,
        "torchscan-dmas": 5616,  # 4*9*288 // 2 + 144 + 288
        "convnet-burden": 5184,
        "calflops": 10368,
    })


# BatchNorm (affine, eval) on 3 channels of 4x4, batch 2: 96 elements.
def test_batchnorm():
    check(single(BatchNorm(), (3, 4, 4), batch=2), {
        "archcost": 0,
        "archcost-flops": 192,  # archcost: scale and shift, 2 per element
        "flop_counter": 0,  # no aten.native_batch_norm formula registered
        "fvcore": 192,  # batchnorm_flop_jit, eval: numel * (2 if affine)
        "ptflops": 192,  # bn_flops_counter_hook: numel, x2 when module.affine
        "ptflops-aten": 0,
        "thop": 384,  # count_normalization: calculate_norm = 2*numel, "flops *= 2" when affine
        "torchinfo": 12,  # out[0] * (gamma + beta) = 2 * 6: per sample, not per element
        "torchscan-flops": 390,  # flops_bn: 2*C + 2*numel + 2*numel (affine)
        "torchscan-macs": 192,  # macs_bn: numel * (1 + affine)
        "torchscan-dmas": 206,  # dmas_bn: 96 in + 2*3 stats + eps + 2*3 affine + momentum + 96 out
        "convnet-burden": 0,  # vl_nnbnorm "assume merged at test time"
        "calflops": 192,  # _batch_norm_flops_compute, eval: numel * (2 if affine)
    })


def test_relu():
    check(single(Activation("relu"), (2, 4, 4)), {
        "archcost": 0,
        "archcost-flops": 32,
        "flop_counter": 0,
        "fvcore": 0,  # no handle for aten::relu
        "ptflops": 64,  # relu_flops_counter_hook (32) + the patched F.relu nn.ReLU calls (32)
        "ptflops-aten": 0,
        "thop": 0,  # register_hooks: nn.ReLU -> zero_ops
        "torchinfo": 0,
        "torchscan-flops": 32,  # flops_relu: one comparison per element
        "torchscan-macs": 0,
        "torchscan-dmas": 32,  # dmas_relu: input reads, no output writes for inplace=True
        "convnet-burden": 64,  # vl_nnrelu: "comparison + multiply"
        "calflops": 32,  # the wrapped F.relu only (calflops has no module hooks)
    })


def test_relu6_and_leaky_relu_are_not_double_counted_by_ptflops():
    # nn.ReLU6 calls F.hardtanh and nn.LeakyReLU F.leaky_relu, which ptflops 0.7.5 does not patch.
    assert single(Activation("relu6"), (2, 4, 4))["ptflops"] == 32
    assert single(Activation("leaky_relu"), (2, 4, 4))["ptflops"] == 32
    # torchscan 0.2.0: flops_relu6 2, flops_leakyrelu 4, flops_sigmoid 4, flops_tanh 6 per element.
    assert [single(Activation(fn), (2, 4, 4))["torchscan-flops"] for fn in ("relu6", "leaky_relu", "sigmoid", "tanh")] \
        == [64, 128, 128, 192]


# Max pool 2x2/2 on 2x8x8: 32 outputs from 128 inputs.
def test_maxpool():
    check(single(MaxPool2d(2, 2), (2, 8, 8)), {
        "archcost-flops": 96,  # archcost: k*k - 1 comparisons per output
        "flop_counter": 0,
        "fvcore": 0,  # aten::max_pool2d has no default handle
        "ptflops": 256,  # pool_flops_counter_hook: input numel (128), + the patched F.max_pool2d (128)
        "ptflops-aten": 0,
        "thop": 0,  # nn.MaxPool2d -> zero_ops
        "torchinfo": 0,
        # torchscan 0.2.0 flops_maxpool: out numel * (k - 1) with k the int kernel_size (2), not
        # k*k (its bug); measured 32 on nn.MaxPool2d(2, 2) with torchscan 0.2.0.
        "torchscan-flops": 32,
        "torchscan-macs": 32,
        "torchscan-dmas": 160,  # dmas_pool: k reads per output + the output: 4*32 + 32
        "convnet-burden": 256,  # vl_nnpool: 2 * numel(out) * prod(stride) = 2*32*4
        "calflops": 128,  # _pool_flops_compute: input numel
    })


# Average pool 3x3/1 pad 1 on 2x4x4: 32 outputs, 32 inputs.
def test_avgpool():
    check(single(AvgPool2d(3, 1, 1), (2, 4, 4)), {
        "archcost-flops": 288,  # k*k - 1 adds and a divide per output
        "fvcore": 0,  # aten::avg_pool2d has no default handle
        "ptflops": 64,  # input numel, twice (hook + F.avg_pool2d)
        "thop": 32,  # count_avgpool: calculate_avgpool(output numel)
        # torchscan 0.2.0 flops_avgpool: out * (k - 1 + ndim - 2) with the int k: 32 * 4 (measured 128).
        "torchscan-flops": 128,
        "torchscan-macs": 128,
        "torchscan-dmas": 320,  # 9*32 + 32
        "convnet-burden": 64,  # 2 * 32 * 1
        "calflops": 32,
    })


# Global average pool (torchvision's nn.AdaptiveAvgPool2d(1)) on 4x3x3: 36 inputs, 4 outputs.
def test_global_avg_pool():
    check(single(GlobalAvgPool(), (4, 3, 3)), {
        "archcost-flops": 36,
        "flop_counter": 0,
        "fvcore": 36,  # "aten::adaptive_avg_pool2d": elementwise_flop_counter(1, 0) = input numel
        "ptflops": 72,  # input numel, twice (hook + F.adaptive_avg_pool2d)
        "thop": 40,  # count_adap_avgpool: (9/1 + 1) * 4
        "torchinfo": 0,
        "torchscan-flops": 40,  # flops_adaptive_avgpool: 4 * (9 - 1 + 2)
        "torchscan-macs": 40,
        "torchscan-dmas": 40,  # dmas_adaptive_pool: 9*4 + 4
        "convnet-burden": 36,  # vl_nnglobalpool: numel(input)
        "calflops": 36,
    })


def test_residual_add():
    g = Graph("add")
    x = g.input((2, 3, 3))
    a = g.add(Conv2d(2, 1), x, name="a")
    b = g.add(Conv2d(2, 1), x, name="b")
    g.add(Add(), a, b, name="sum")
    check(counts_of("sum", g), {
        "archcost-flops": 18,  # one add per element
        "flop_counter": 0,
        "fvcore": 0,  # aten::add has no default handle
        "ptflops": 0,  # torchvision's `out += identity` is Tensor.__iadd__, which ptflops does not patch
        "ptflops-aten": 0,
        "thop": 0,  # not a module
        "torchinfo": 0,
        "torchscan-flops": 0,
        "torchscan-dmas": 0,
        "convnet-burden": 18,  # vl_nnwsum: numel(out)
        "calflops": 0,  # Tensor.__iadd__ is not wrapped
    })


# GCNet's x + context (2x3x3 + 2x1x1) and x - y: 18 outputs, one add or subtract each. The
# twin's `x + ctx` / `x - y` are Tensor.__add__/__sub__: no tool's hook, patch or aten handle
# counts them; convnet-burden's vl_nnwsum (a weighted sum, weights 1 and -1 for a - b) counts
# numel(out), as for the residual add.
@pytest.mark.parametrize("op", [Add(), Sub()], ids=str)
def test_broadcast_add_and_sub(op):
    g = Graph("bcast")
    x = g.input((2, 3, 3))
    a = g.add(Conv2d(2, 1), x, name="a")
    ctx = g.add(Conv2d(2, 1), g.add(GlobalAvgPool(), x, name="gap"), name="ctx")
    g.add(op, a, ctx, name="sum")
    check(counts_of("sum", g), {
        "archcost-flops": 18, "archcost-other": 18, "archcost": 0, "flop_counter": 0, "fvcore": 0, "ptflops": 0,
        "ptflops-aten": 0, "thop": 0, "torchinfo": 0, "torchscan-flops": 0, "torchscan-macs": 0,
        "torchscan-dmas": 0, "convnet-burden": 18, "calflops": 0,
    })


# Linear 3 -> 5 applied per position of a channels-last 4x4 map (ConvNeXt's pointwise layers):
# 16 positions * 5 outputs = 80 outputs, 240 MACs; params 15 + 5 = 20.
def test_linear_on_channels_last_map():
    g = Graph("cl")
    x = g.input((3, 4, 4))
    x = g.add(Permute((0, 2, 3, 1)), x, name="to_nhwc")
    g.add(Linear(5), x, name="fc")
    check(counts_of("fc", g), {
        "archcost": 240,
        "flop_counter": 480,  # mm_flop on the flattened input: 2 * 16 * 5 * 3
        "fvcore": 240,  # linear_flop_jit: prod(input shape) * out_features
        "ptflops": 320,  # linear_flops_counter_hook: (3*5 + 5) * prod(input.shape[:-1])
        "ptflops-aten": 320,  # addmm_flop: 16*3*5 + 16*5
        "thop": 240,  # count_linear: in_features * output numel
        # torchinfo 1.8.0 calculate_macs: output_size[0] * params = 1 * 20. The released tool's bug:
        # H*W = 16 positions are dropped (fixed after 1.8.0 with prod(output_size[:-1])).
        "torchinfo": 20,
        "torchscan-flops": 480,  # flops_linear: 80 * (2*3 - 1) + 80 bias
        "torchscan-macs": 240,
        "torchscan-dmas": 148,  # dmas_linear: 48 in + 20 params + 80 out
        "convnet-burden": 320,
    })
    assert counts_of("fc", g)["calflops"] == 480  # _linear_flops_compute: 2 * input numel * out; no bias


def test_linear_on_vectors_torchinfo_is_right():
    # On (N, F) the same torchinfo rule is exact: 2 * (6*3 + 3) = MACs 36 + bias adds 6.
    check(single(Linear(3), (6,), batch=2), {"archcost": 36, "torchinfo": 42, "thop": 36, "ptflops": 42, "calflops": 72})


def test_group_norm():
    # nn.GroupNorm(2, 8) on 2x8x3x3: 144 elements. fvcore aten::group_norm norm_flop_counter(2):
    # 5 per element with affine, 4 without; ptflops bn_flops_counter_hook: numel, x2 with affine;
    # thop: not registered, 0; torchinfo: out[0] * (8 + 8); calflops _group_norm_flops_compute:
    # 5 or 4 per element; flop_counter, torchscan macs and dmas: 0. All but calflops measured at
    # batch 1 (half these counts; torchinfo 16) with benchmarks/peer_conventions.py --ops.
    n = 2 * 8 * 3 * 3
    check(single(GroupNorm(2), (8, 3, 3), batch=2), {
        "archcost-other": 5 * n, "fvcore": 5 * n, "ptflops": 2 * n, "thop": 0, "torchinfo": 2 * 16,
        "calflops": 5 * n, "flop_counter": 0, "torchscan-macs": 0, "torchscan-dmas": 0, "torchscan-flops": 0,
    })
    check(single(GroupNorm(8, affine=False), (8, 3, 3), batch=2), {
        "archcost-other": 4 * n, "fvcore": 4 * n, "ptflops": n, "thop": 0, "torchinfo": 0, "calflops": 4 * n,
    })


def test_other_ops():
    ln = single(LayerNorm(axis=-1), (4, 4, 8))  # 128 elements, 8 channels
    # fvcore norm_flop_counter(2): 5 per element; thop count_normalization: 2*numel, x2 (elementwise_affine);
    # ptflops bn hook: numel (nn.LayerNorm has no `affine`); torchinfo: out[0] * (8 + 8);
    # torchscan 0.2.0 flops_layernorm: 6*numel + 2*rows + numel (weight) + numel (bias) = 1056
    # (measured on nn.LayerNorm(8) with torchscan 0.2.0; 0.1.2 did not dispatch it).
    check(ln, {"fvcore": 640, "thop": 512, "ptflops": 128, "torchinfo": 16, "torchscan-flops": 1056,
               "torchscan-macs": 0, "torchscan-dmas": 0})
    sm = single(Softmax(axis=-1), (10,), batch=2)
    # thop count_softmax: rows * (nf exp + nf-1 adds + nf divs) = 2 * 29; ptflops F.softmax: numel.
    check(sm, {"thop": 58, "ptflops": 20, "fvcore": 0, "flop_counter": 0})
    drop = single(Dropout(0.5), (6,))
    # torchscan 0.2.0 flops_dropout counts a draw per element whenever p > 0, eval mode included;
    # dmas_dropout: 6 in + p + 6 out.
    check(drop, {"torchscan-flops": 6, "torchscan-dmas": 13, "ptflops": 0, "thop": 0})
    lrn = single(LRN(5), (4, 2, 2))  # 16 elements
    # ptflops: F.local_response_norm calls the patched Tensor.mul (x*x), avg_pool3d over the padded
    # (1, 1, 4+4, 2, 2) squares (32), Tensor.mul (alpha) and Tensor.add (k): 3*16 + 32.
    # convnet-burden vl_nnnormalize: numel(out) + (2 + 2C)*H*W = 16 + 10*4.
    check(lrn, {"ptflops": 80, "convnet-burden": 56, "thop": 0, "fvcore": 0})


def small_net() -> Graph:
    g = Graph("small")
    x = g.input((3, 8, 8))
    g.seq(x, ("conv", Conv2d(4, 3, padding=1)), ("bn", BatchNorm()), ("relu", Activation("relu")),
          ("pool", MaxPool2d(2)), ("flatten", Flatten()), ("fc", Linear(2)))
    return g


def test_memory_conventions():
    report = analyze(small_net())
    totals = {name: conventions.total(report, name) for name in conventions.CONVENTIONS}
    # archcost: input 192 + conv 256 + bn 256 + pool 64 + fc 2 elements (ReLU, flatten in place).
    assert totals["archcost-activations"] == 770 * 4 == report.totals["activation_bytes"]
    assert totals["archcost-peak"] == report.totals["peak_activation_bytes"]
    # torchinfo 1.8.0 "Forward/backward pass size": 2 x outputs of conv, bn, fc (the layers with
    # params) = 2 * (256 + 256 + 2) * 4 bytes; "Params size": (112 + 8 + 130) * 4; "Input size".
    assert totals["torchinfo-pass"] == 2 * 514 * 4
    assert totals["torchinfo-params"] == 250 * 4
    # torchinfo 1.8.0 "Input size" is sys.getsizeof of the input's storage: its bytes + 64, the
    # Python object (measured 832 for a 1x3x8x8 float32 input, CPython 3.11, torch 2.14.1).
    assert totals["torchinfo-input"] == 192 * 4 + 64
    # convnet-burden computeMemory: every layer output, ReLU and flatten included, input excluded:
    # 256 + 256 + 256 + 64 + 64 + 2; params include BN's moments (2 per channel).
    assert totals["convnet-burden-feats"] == 898 * 4
    assert totals["convnet-burden-params"] == (250 + 8) * 4


def test_fp16_memory_is_in_bytes_of_the_dtype():
    report = analyze(small_net(), dtype="float16")
    assert conventions.total(report, "torchinfo-pass") == 2 * 514 * 2


def small_resnet() -> Graph:
    """A ResNet-like graph (stem, two bottlenecks, one with a projection, GAP, FC)."""
    g = Graph("mini-resnet")
    x = g.input((3, 32, 32))
    x = g.seq(x, ("conv1", Conv2d(8, 3, 1, 1, bias=False)), ("bn1", BatchNorm()), ("relu", Activation()),
              ("maxpool", MaxPool2d(3, 2, 1)))

    def bottleneck(width, stride):
        def body(g, y):
            return g.seq(y, ("conv1", Conv2d(width, 1, bias=False)), ("bn1", BatchNorm()), ("relu1", Activation()),
                         ("conv2", Conv2d(width, 3, stride, 1, bias=False)), ("bn2", BatchNorm()),
                         ("relu2", Activation()), ("conv3", Conv2d(4 * width, 1, bias=False)), ("bn3", BatchNorm()))
        return body

    with g.scope("block1"):
        x = g.residual(x, bottleneck(4, 2), [("conv", Conv2d(16, 1, 2, bias=False)), ("bn", BatchNorm())],
                       post=[("relu3", Activation())])
    with g.scope("block2"):
        x = g.residual(x, bottleneck(4, 1), post=[("relu3", Activation())])
    g.seq(x, ("avgpool", GlobalAvgPool()), ("flatten", Flatten()), ("fc", Linear(10)))
    return g


def test_small_resnet_relations():
    report = analyze(small_resnet())
    t = {name: conventions.total(report, name) for name in conventions.CONVENTIONS}
    macs = report.totals["macs"]
    by_kind = {}
    for rec in report.records:
        by_kind.setdefault(rec.op, []).append(rec)
    bn_elems = sum(r.activations for r in by_kind["bn"])
    relu_elems = sum(r.flops for r in by_kind["act"])  # 1 op per element
    pooled_inputs = 8 * 32 * 32 + 16 * 8 * 8  # maxpool and global pool inputs
    assert t["archcost"] == t["paper"] == macs
    assert t["flop_counter"] == 2 * macs
    assert t["ptflops-aten"] == macs + 10  # only the FC has a bias
    assert t["ptflops"] == macs + 10 + 2 * bn_elems + 2 * relu_elems + 2 * pooled_inputs
    assert t["fvcore"] == macs + 2 * bn_elems + 16 * 8 * 8
    assert t["thop"] == macs + 4 * bn_elems + (64 + 1) * 16
    assert t["torchinfo"] == macs + 10 + sum(2 * r.output_shape[1] for r in by_kind["bn"])
    # torchscan's FLOPs with no conv bias: 2 x MACs minus one add per conv/fc output (2k-1 rule).
    conv_fc_outputs = sum(r.activations for r in report.records if r.op in ("conv", "fc"))
    assert t["torchscan-flops"] > 2 * macs - conv_fc_outputs
    # Per-layer counts add up to the totals, folded or not.
    for name in conventions.CONVENTIONS:
        conv = conventions.get(name)
        assert conventions.combine(conv, conventions.folded_counts(report, conv)) == t[name]


def test_summary_ratios():
    report = analyze(small_resnet())
    rows = {row["name"]: row for row in conventions.summary(report)}
    assert set(rows) == set(conventions.CONVENTIONS)
    assert rows["archcost"]["ratio"] == 1.0
    assert rows["flop_counter"]["ratio"] == 2.0
    assert rows["archcost-activations"]["ratio"] == 1.0
    assert all(row["includes"] and row["source"] for row in rows.values())


def test_unknown_convention_is_one_line_error(capsys):
    assert main(["table", "lenet5", "--convention", "gflops"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "unknown 'gflops'" in err and "ptflops" in err


def test_table_convention_column(capsys):
    assert main(["table", "alexnet_tv", "--convention", "ptflops", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    header = "ptflops MACs"
    # conv1 + its folded ReLU: MACs + bias (55*55*64) + the ReLU counted twice.
    conv1 = next(row for row in data["layers"] if row["name"] == "conv1")
    assert conv1[header] == 70276800 + 3 * 55 * 55 * 64
    assert data["totals"][header] == sum(row[header] for row in data["layers"])
    assert main(["table", "alexnet_tv", "--convention", "torchinfo"]) == 0
    text = capsys.readouterr().out
    assert "torchinfo MACs" in text.splitlines()[2]


def test_conventions_command(capsys):
    assert main(["conventions", "vgg16"]) == 0
    out = capsys.readouterr().out
    for name in conventions.CONVENTIONS:
        assert f"\n{name} " in out
    assert main(["conventions", "vgg16", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)["conventions"]
    assert {r["name"]: r["total"] for r in rows}["flop_counter"] == 2 * 15470264320
    assert main(["conventions", "vgg16", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("convention,unit,total,ratio") and len(lines) == 1 + len(conventions.CONVENTIONS)
    assert "flop_counter,FLOPs,30940528640,2.0," in lines[[line.split(",")[0] for line in lines].index("flop_counter")]


# --- published totals of the tools on torchvision's models ---------------------------------------
# Each tool prints rounded numbers; the tolerance is half the last printed unit.

PUBLISHED = [
    # (model, convention, value, abs_tol, source)
    ("vgg16", "ptflops", 15.52e9, 0.005e9, "ptflops README (v0.7.5) torchvision benchmark, pytorch backend"),
    ("vgg16", "ptflops-aten", 15.48e9, 0.005e9, "ptflops README (v0.7.5) torchvision benchmark, aten backend"),
    ("alexnet_tv", "ptflops", 0.72e9, 0.005e9, "ptflops README (v0.7.5), pytorch backend"),
    ("alexnet_tv", "ptflops-aten", 0.71e9, 0.005e9, "ptflops README (v0.7.5), aten backend"),
    ("vgg16", "torchscan-flops", 30.96e9, 0.005e9, "torchscan README (v0.1.2) torchvision benchmark"),
    ("vgg16", "torchscan-macs", 15.47e9, 0.005e9, "torchscan README (v0.1.2)"),
    ("vgg16", "torchscan-dmas", 15.52e9, 0.005e9, "torchscan README (v0.1.2)"),
    ("alexnet_tv", "torchscan-flops", 1.43e9, 0.005e9, "torchscan README (v0.1.2)"),
    ("alexnet_tv", "torchscan-macs", 0.71e9, 0.005e9, "torchscan README (v0.1.2)"),
    ("alexnet_tv", "torchscan-dmas", 0.72e9, 0.005e9, "torchscan README (v0.1.2)"),
    # calflops README benchmark prints 6 significant digits: half a unit of the 6th is the tolerance.
    # torchvision's vgg16 ends its features with AdaptiveAvgPool2d(7), an identity at 224x224 that
    # the paper's vgg16 leaves out (-o torchvision=true adds it); calflops counts its input
    # (25,088), added here. alexnet_tv carries torchvision's AdaptiveAvgPool2d(6).
    ("vgg16", "calflops", 30973800000 - 25088, 50000, "calflops README (29ca584): vgg16 30973800000"),
    ("alexnet_tv", "calflops", 1429740000, 5000, "calflops README (29ca584): alexnet 1429740000"),
]


@pytest.mark.parametrize("model,name,value,tol,source", PUBLISHED, ids=[f"{m}-{n}" for m, n, *_ in PUBLISHED])
def test_published_tool_totals(model, name, value, tol, source):
    # The paper's vgg16 leaves out torchvision's AdaptiveAvgPool2d (an identity at 224x224), which
    # ptflops and torchscan count as at most 2 x 25,088 ops: far below the printed rounding.
    assert abs(conventions.total(analyze(zoo.build(model)), name) - value) <= tol, source


def test_resnet50_published_totals():
    report = analyze(zoo.build("resnet50_tv"))
    total = {name: conventions.total(report, name) for name in conventions.CONVENTIONS}
    assert report.totals["params"] == 25557032  # torchvision ResNet50_Weights meta num_params
    # ptflops README (v0.7.5) torchvision benchmark: resnet50 4.13 GMac (pytorch), 4.09 (aten).
    assert abs(total["ptflops"] - 4.13e9) <= 0.005e9
    assert abs(total["ptflops-aten"] - 4.09e9) <= 0.005e9
    # torchinfo 1.8.0 "Total mult-adds (G): 4.09" at batch 1.
    assert abs(total["torchinfo"] - 4.09e9) <= 0.005e9
    # torch.utils.flop_counter: 2 x the conv+fc MACs = 8.18 G. The "8.21 G" for
    # flop_counter does not come from this rule (8.21 G is calflops' and torchscan's figure).
    assert total["flop_counter"] == 2 * report.totals["macs"]
    assert abs(total["flop_counter"] - 8.18e9) <= 0.005e9
    assert abs(total["flop_counter"] - 8.21e9) > 0.005e9
    # thop 0.1.1.post2209072238 prints clever_format "%.3f": BN at 4 per element, ReLU and max
    # pool at 0 give 4.134 G. The "4.14 G" of thop's README is from a 2019 thop that also counted
    # ReLUs (issue Lyken17/pytorch-OpCounter#17 prints 4,142,713,856).
    assert abs(total["thop"] - 4.134e9) <= 0.0005e9
    assert abs(total["thop"] - 4.14e9) > 0.005e9
    # calflops README (29ca584): resnet50 8211110000 FLOPs (6 significant digits). This, and
    # torchscan's README, are where the "8.21 G" comes from.
    assert abs(total["calflops"] - 8211110000) <= 5000
    # fvcore: conv/fc MACs + BN + the adaptive pool: "~4.1 G".
    assert abs(total["fvcore"] - 4.11e9) <= 0.005e9


def test_resnet50_torchinfo_batch2_summary():
    # torchinfo v1.8.0 tests/test_output/resnet50.out (batch 2): "Total mult-adds (G): 8.18",
    # "Input size (MB): 1.20", "Forward/backward pass size (MB): 355.66", "Params size (MB): 102.23".
    report = analyze(zoo.build("resnet50_tv"), batch=2)
    assert abs(conventions.total(report, "torchinfo") - 8.18e9) <= 0.005e9
    assert abs(conventions.total(report, "torchinfo-input") - 1.20e6) <= 0.005e6
    assert abs(conventions.total(report, "torchinfo-pass") - 355.66e6) <= 0.005e6
    assert abs(conventions.total(report, "torchinfo-params") - 102.23e6) <= 0.005e6


def test_docs_generator_table():
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).parents[1] / "docs" / "generate_conventions.py"
    spec = importlib.util.spec_from_file_location("generate_conventions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = module.table()
    assert "`vgg16`" in text
    for name in conventions.CONVENTIONS:
        assert f"| `{name}` |" in text
    # VGG-16 under flop_counter: 2 x 15,470,264,320 MACs.
    assert "30.941 G (2.000x)" in text


# --- how the PyTorch twin computes a layer (Graph torch forms) -----------------------------------
# Each value below was measured by running the tool on the one-module (or one-function) PyTorch
# model at batch 1 (2026-12-04: thop 0.1.1.post2209072238, ptflops 0.7.5, fvcore 0.1.5.post20221221,
# torchscan 0.2.0, torch 2.14.1); `python benchmarks/peer_conventions.py --ops` prints them again.
FUNCTIONAL = [
    # (op, input, what torchvision calls, {convention: measured})
    (Activation("relu"), (2, 4, 4), "F.relu(x, inplace=True)",
     {"ptflops": 32, "thop": 0, "fvcore": 0, "torchscan-flops": 0, "torchscan-dmas": 0}),
    (AvgPool2d(3, 1, 1), (2, 4, 4), "F.avg_pool2d(x, 3, 1, 1)",
     {"ptflops": 32, "thop": 0, "fvcore": 0, "torchscan-flops": 0, "torchscan-macs": 0, "torchscan-dmas": 0}),
    (MaxPool2d(3, 2), (2, 5, 5), "F.max_pool2d(x, 3, 2)",
     {"ptflops": 50, "thop": 0, "fvcore": 0, "torchscan-flops": 0, "torchscan-dmas": 0}),
    (GlobalAvgPool(), (2, 4, 4), "F.adaptive_avg_pool2d(x, 1)",
     {"ptflops": 32, "thop": 0, "fvcore": 32, "torchscan-flops": 0, "torchscan-macs": 0, "torchscan-dmas": 0}),
]


@pytest.mark.parametrize("op,shape,call,measured", FUNCTIONAL, ids=[c for _, _, c, _ in FUNCTIONAL])
def test_functional_calls_are_seen_only_by_tools_that_patch_functions(op, shape, call, measured):
    got = single(op, shape, torch="functional")
    check(got, measured)
    # The tools that trace aten ops or patch functions (fvcore, flop_counter, calflops) do not
    # care; the module-hook tools do, so the form must change something somewhere.
    module = single(op, shape)
    for name in ("fvcore", "flop_counter", "ptflops-aten", "calflops"):
        assert got[name] == module[name], name
    assert got["ptflops"] < module["ptflops"] or got["thop"] < module["thop"] or \
        got["torchscan-dmas"] < module["torchscan-dmas"]


def test_adaptive_avg_pool_form():
    # nn.AdaptiveAvgPool2d(2) on 2x4x4 (2x2 windows) and AdaptiveAvgPool2d(4) (an identity), measured.
    check(single(AvgPool2d(2, 2), (2, 4, 4), torch="adaptive"), {
        "thop": 40,  # count_adap_avgpool: (4 + 1) * 8
        "ptflops": 64,  # input numel, hook + F.adaptive_avg_pool2d
        "fvcore": 32,  # aten::adaptive_avg_pool2d: input numel (aten::avg_pool2d would be 0)
        "torchscan-flops": 40, "torchscan-macs": 40, "torchscan-dmas": 40,
    })
    check(single(AvgPool2d(1, 1), (2, 4, 4), torch="adaptive"), {
        "thop": 64, "ptflops": 64, "fvcore": 32, "torchscan-flops": 64, "torchscan-macs": 64, "torchscan-dmas": 64,
    })
    # The same op as a plain nn.AvgPool2d(2, 2): thop 1 per output, fvcore nothing.
    check(single(AvgPool2d(2, 2), (2, 4, 4)), {"thop": 8, "fvcore": 0})


def test_layernorm2d_is_unknown_to_exact_type_lookups():
    # torchvision.models.convnext.LayerNorm2d(2) on 2x4x4, measured: ptflops and thop look modules
    # up by exact type (0); fvcore traces aten::layer_norm (5/elem); torchscan matches with
    # isinstance: 8*32 + 2*16 rows.
    got = single(LayerNorm(axis=1), (2, 4, 4))
    check(got, {"ptflops": 0, "thop": 0, "fvcore": 160, "torchscan-flops": 288, "torchscan-macs": 0})


def test_flatten_module_form():
    # nn.Flatten(1) on 2x2x2, measured: torchscan dmas_flatten reads and writes each element;
    # torch.flatten (the default form) is a function no hook sees.
    assert single(Flatten(), (2, 2, 2), torch="module")["torchscan-dmas"] == 16
    assert single(Flatten(), (2, 2, 2))["torchscan-dmas"] == 0


@pytest.mark.parametrize("form,op", [("module", Activation("relu")), ("adaptive", AvgPool2d(3, 1, 1)),
                                     ("adaptive", MaxPool2d(2, 2)), ("sideways", Activation("relu"))])
def test_a_torch_form_that_does_not_fit_the_op_is_refused(form, op):
    g = Graph("one")
    x = g.input((2, 4, 4))
    with pytest.raises(ArchcostError, match="layer 'layer': torch"):
        g.add(op, x, name="layer", torch=form)


def test_twins_mark_what_torchvision_computes_with_functions():
    # torchvision's GoogLeNet BasicConv2d and Inception3 end in F.relu; Inception3's blocks pool with
    # F.avg_pool2d / F.max_pool2d (11 blocks); DenseNet's head is F.relu + F.adaptive_avg_pool2d.
    def functional(name):
        g = zoo.build(name)
        return [n for n in g.topological_order() if g.torch_form(n) == "functional"]

    assert len(functional("googlenet_tv")) == 57  # 57 BasicConv2d
    assert len(functional("inception_v3")) == 94 + 11  # 94 BasicConv2d, 11 block pools
    assert functional("densenet121") == ["classifier.relu", "classifier.pool"]
    assert functional("googlenet") == [] and functional("resnet50_tv") == []


# Totals printed by the tools on torchvision's models (batch 1, eval, weights=None), measured by
# benchmarks/peer_conventions.py on 2026-12-04 with the versions above; each was off before the
# layer forms (the differences: googlenet ptflops +3,226,160, inception_v3 ptflops
# +11,544,640 and thop +2,002,400, densenet121 ptflops +100,352, convnext_t ptflops +828,672 and thop
# +3,314,688, vgg16 thop/ptflops -50,176 and fvcore -25,088).
MEASURED = [
    # (model, zoo options, convention, the tool's printed total)
    ("googlenet_tv", {}, "ptflops", 1513907448),
    ("inception_v3", {}, "ptflops", 5747660552),
    ("inception_v3", {}, "thop", 5749219168),
    ("inception_v3", {}, "torchscan-flops", 11454656768),
    ("densenet121", {}, "ptflops", 2899843048),
    ("densenet121", {}, "thop", 2897007104),
    ("convnext_t", {}, "ptflops", 4488347368),
    ("convnext_t", {}, "thop", 4464149760),
    ("vgg16", {"torchvision": True}, "fvcore", 15470289408),
    ("vgg16", {"torchvision": True}, "thop", 15470314496),
    ("vgg16", {"torchvision": True}, "ptflops", 15523225576),
    ("vgg16", {"torchvision": True}, "torchscan-flops", 30955673088),
    ("alexnet_tv", {}, "torchscan-dmas", 718600402),
    ("resnet50_tv", {}, "torchscan-flops", 8221876096),
    ("resnet50_tv", {}, "torchscan-macs", 4111916032),
    ("resnet50_tv", {}, "torchscan-dmas", 4157809658),
    ("resnet50_tv", {}, "torchinfo-input", 602176),
]


@pytest.mark.parametrize("model,options,name,measured", MEASURED, ids=[f"{m}-{n}" for m, _, n, _ in MEASURED])
def test_the_tools_own_totals_on_torchvision_models(model, options, name, measured):
    shape = (3, 299, 299) if model == "inception_v3" else None
    report = analyze(zoo.build(model, input_shape=shape, **options))
    assert conventions.total(report, name) == measured
