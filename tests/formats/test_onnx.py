"""ONNX import: models built with onnx.helper (no torch) give the same records as the same
network written with the archcost builder; exporter patterns fold back into single layers; a
node with no IR equivalent is never counted as zero: all of them are named in one error."""

import math
import pathlib

import numpy as np
import pytest

from archcost import cli, zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import (
    LRN, Activation, Add, BatchNorm, Conv2d, Dropout, Flatten, GlobalAvgPool, Linear, MaxPool2d, Permute,
    Scale, Softmax, Sub,
)

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from archcost.formats.onnx_import import load_onnx  # noqa: E402


def node(op_type, inputs, outputs, name=None, **attrs):
    outputs = [outputs] if isinstance(outputs, str) else outputs
    return helper.make_node(op_type, inputs, outputs, name=name or outputs[0], **attrs)


def save(tmp_path, nodes, inits=None, input_shape=(1, 3, 32, 32), output="y", opset=13, name="m.onnx"):
    """An ONNX model with one float input called 'input'; ``inits`` maps name -> array or shape."""
    tensors = []
    for key, value in (inits or {}).items():
        array = np.asarray(value) if not isinstance(value, tuple) else np.zeros(value, np.float32)
        tensors.append(numpy_helper.from_array(array, key))
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, None)], initializer=tensors,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = pathlib.Path(tmp_path) / name
    onnx.save(model, str(path))
    return path


def same_records(a: Graph, b: Graph):
    ra, rb = analyze(a), analyze(b)
    assert ra.records == rb.records
    assert ra.totals == rb.totals


def test_plain_stack_matches_the_builder(tmp_path):
    # conv 5x5/1 (bias) - relu - LRN - maxpool 3x3/2 - conv 3x3 (padded) - relu - maxpool - fc - relu -
    # dropout - fc - softmax: AlexNet's layer types on a 32x32 input.
    path = save(tmp_path, [
        node("Conv", ["input", "w1", "b1"], "conv1", kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        node("Relu", ["conv1"], "relu1"),
        node("LRN", ["relu1"], "norm1", size=5, alpha=1e-4, beta=0.75, bias=2.0),
        node("MaxPool", ["norm1"], "pool1", kernel_shape=[3, 3], strides=[2, 2]),
        node("Conv", ["pool1", "w2", "b2"], "conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Relu", ["conv2"], "relu2"),
        node("MaxPool", ["relu2"], "pool2", kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1),
        node("Flatten", ["pool2"], "flatten", axis=1),
        node("Gemm", ["flatten", "w3", "b3"], "fc1", transB=1),
        node("Relu", ["fc1"], "relu3"),
        node("Dropout", ["relu3"], "drop"),
        node("Gemm", ["drop", "w4", "b4"], "fc2", transB=1),
        node("Softmax", ["fc2"], "y", axis=1),
    ], {"w1": (16, 3, 5, 5), "b1": (16,), "w2": (32, 16, 3, 3), "b2": (32,),
        "w3": (64, 32 * 7 * 7), "b3": (64,), "w4": (10, 64), "b4": (10,)})
    g = Graph("net")
    x = g.input((3, 32, 32))
    g.seq(x, ("conv1", Conv2d(16, 5, padding=2)), ("relu1", Activation()), ("norm1", LRN(5, 1e-4, 0.75, 2.0)),
          ("pool1", MaxPool2d(3, 2)), ("conv2", Conv2d(32, 3, padding=1)), ("relu2", Activation()),
          ("pool2", MaxPool2d(3, 2, ceil_mode=True)), ("flatten", Flatten()), ("fc1", Linear(64)),
          ("relu3", Activation()), ("drop", Dropout(0.5)), ("fc2", Linear(10)), ("y", Softmax(1)))
    same_records(load_onnx(path), g)


def test_resnet_basic_block_matches_the_builder(tmp_path):
    bn = {f"{k}{i}": (64,) for i in (1, 2, 3) for k in ("s", "b", "m", "v")}
    path = save(tmp_path, [
        node("Conv", ["input", "w1"], "conv1", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        node("BatchNormalization", ["conv1", "s1", "b1", "m1", "v1"], "bn1"),
        node("Relu", ["bn1"], "relu1"),
        node("Conv", ["relu1", "w2"], "conv2", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("BatchNormalization", ["conv2", "s2", "b2", "m2", "v2"], "bn2"),
        node("Conv", ["input", "w3"], "shortcut.conv", kernel_shape=[1, 1], strides=[2, 2]),
        node("BatchNormalization", ["shortcut.conv", "s3", "b3", "m3", "v3"], "shortcut.bn"),
        node("Add", ["bn2", "shortcut.bn"], "add"),
        node("Relu", ["add"], "y"),
    ], {"w1": (64, 32, 3, 3), "w2": (64, 64, 3, 3), "w3": (64, 32, 1, 1), **bn}, input_shape=(1, 32, 56, 56))
    g = Graph("net")
    x = g.input((32, 56, 56))
    body = [("conv1", Conv2d(64, 3, 2, 1, bias=False)), ("bn1", BatchNorm()), ("relu1", Activation()),
            ("conv2", Conv2d(64, 3, 1, 1, bias=False)), ("bn2", BatchNorm())]
    y = g.residual(x, body, [("conv", Conv2d(64, 1, 2, bias=False)), ("bn", BatchNorm())], name="add")
    g.add(Activation(), y, name="y")
    imported = load_onnx(path)
    same_records(imported, g)
    assert analyze(imported).totals["params"] == 64 * 32 * 9 + 64 * 64 * 9 + 64 * 32 + 3 * 2 * 64


def test_a_global_context_block_matches_the_builder(tmp_path):
    """GCNet's context as exports write it: x + a transform of its pooled context (N, C, 1, 1), a
    per-position map (N, 1, H, W) subtracted, and a two-input Sum with the context again, each an
    archcost broadcast add or sub."""
    path = save(tmp_path, [
        node("Conv", ["input", "w1"], "conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("GlobalAveragePool", ["conv"], "gap"),
        node("Conv", ["gap", "w2"], "ctx", kernel_shape=[1, 1]),
        node("Add", ["ctx", "conv"], "add"),
        node("Conv", ["add", "w3"], "map", kernel_shape=[1, 1]),
        node("Sub", ["add", "map"], "sub"),
        node("Sum", ["sub", "ctx"], "y"),
    ], {"w1": (16, 3, 3, 3), "w2": (16, 16, 1, 1), "w3": (1, 16, 1, 1)}, input_shape=(1, 3, 8, 8))
    g = Graph("net")
    x = g.add(Conv2d(16, 3, padding=1, bias=False), g.input((3, 8, 8)), name="conv")
    ctx = g.seq(x, ("gap", GlobalAvgPool()), ("ctx", Conv2d(16, 1, bias=False)))
    a = g.add(Add(), ctx, x, name="add")
    s = g.add(Sub(), a, g.add(Conv2d(1, 1, bias=False), a, name="map"), name="sub")
    g.add(Add(), s, ctx, name="y")
    imported = load_onnx(path)
    same_records(imported, g)
    assert [imported.shape(n) for n in ("add", "sub", "y")] == [(1, 16, 8, 8)] * 3
    assert analyze(imported).totals["other"] == analyze(g).totals["other"]


@pytest.mark.parametrize("op_type,shapes,message", [
    ("Add", [(1, 16, 8, 8), (1, 4, 1, 1)], "broadcasting 1x16x8x8 with 1x4x1x1"),
    ("Sub", [(1, 16, 8, 8), (1, 16, 2, 1)], "broadcasting 1x16x8x8 with 1x16x2x1"),
    ("Sum", [(1, 16, 8, 8), (1, 16, 8, 8), (1, 16, 1, 1)], "broadcasting 1x16x8x8 with 1x16x8x8 with 1x16x1x1"),
])
def test_broadcasts_archcost_does_not_compute_are_refused(tmp_path, op_type, shapes, message, capsys):
    # Each operand a conv of the input (an activation): 1x1 convs to the channels, strided to the size.
    nodes, inits = [], {}
    for k, (_, c, h, _) in enumerate(shapes):
        nodes.append(node("Conv", ["input", f"w{k}"], f"c{k}", kernel_shape=[1, 1], strides=[8 // h, 8 // h]))
        inits[f"w{k}"] = (c, 3, 1, 1)
    if shapes[1][2:] == (2, 1):  # a 2x1 map: pool the W axis away
        nodes[1] = node("Conv", ["input", "w1"], "c1", kernel_shape=[4, 8], strides=[4, 8])
        inits["w1"] = (16, 3, 4, 8)
    nodes.append(node(op_type, [f"c{k}" for k in range(len(shapes))], "y"))
    path = save(tmp_path, nodes, inits, input_shape=(1, 3, 8, 8))
    assert cli.main(["table", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and op_type in err, err


def test_sub_of_a_constant_is_refused(tmp_path, capsys):
    path = save(tmp_path, [node("Sub", ["input", "k"], "y")], {"k": np.ones((1, 3, 1, 1), np.float32)})
    assert cli.main(["table", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "subtracting a constant" in err, err


def test_inception_block_matches_the_zoo_module(tmp_path):
    # Named like archcost.zoo.examples.inception_module(bottleneck=True): same records expected.
    path = save(tmp_path, [
        node("Conv", ["input", "w1"], "b1x1.conv1x1", kernel_shape=[1, 1]),
        node("Conv", ["input", "w2"], "b3x3.reduce", kernel_shape=[1, 1]),
        node("Conv", ["b3x3.reduce", "w3"], "b3x3.conv3x3", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Conv", ["input", "w4"], "b5x5.reduce", kernel_shape=[1, 1]),
        node("Conv", ["b5x5.reduce", "w5"], "b5x5.conv5x5", kernel_shape=[5, 5], pads=[2, 2, 2, 2]),
        node("MaxPool", ["input"], "bpool.pool", kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1]),
        node("Conv", ["bpool.pool", "w6"], "bpool.proj", kernel_shape=[1, 1]),
        node("Concat", ["b1x1.conv1x1", "b3x3.conv3x3", "b5x5.conv5x5", "bpool.proj"], "y", name="concat", axis=1),
    ], {"w1": (128, 256, 1, 1), "w2": (64, 256, 1, 1), "w3": (192, 64, 3, 3), "w4": (64, 256, 1, 1),
        "w5": (96, 64, 5, 5), "w6": (64, 256, 1, 1)}, input_shape=(1, 256, 28, 28))
    same_records(load_onnx(path), zoo.build("inception_bottleneck"))


def test_exporter_patterns_fold_into_single_layers(tmp_path):
    sqrt2 = np.array(math.sqrt(2), np.float32)
    consts = {"w": (8, 3, 3, 3), "pads": np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64), "lo": np.array(0, np.float32),
              "hi": np.array(6, np.float32), "sqrt2": sqrt2, "one": np.array(1, np.float32),
              "half": np.array(0.5, np.float32), "axis0": np.array([0], np.int64), "minus1": np.array([-1], np.int64),
              "idx": np.array(0, np.int64), "fcw": (8, 5), "fcb": (5,), "k": np.array([2.0], np.float32)}
    path = save(tmp_path, [
        node("Pad", ["input", "pads"], "padded"),                                   # folds into conv's padding
        node("Conv", ["padded", "w"], "conv", kernel_shape=[3, 3]),
        node("Clip", ["conv", "lo", "hi"], "relu6"),                                # -> relu6
        node("Sigmoid", ["relu6"], "sig"), node("Mul", ["relu6", "sig"], "silu"),  # -> silu
        node("Div", ["silu", "sqrt2"], "d"), node("Erf", ["d"], "e"), node("Add", ["e", "one"], "a"),
        node("Mul", ["silu", "a"], "m"), node("Mul", ["m", "half"], "gelu"),       # -> gelu
        node("HardSigmoid", ["gelu"], "hs", alpha=1 / 6), node("Mul", ["gelu", "hs"], "hswish"),
        node("ReduceMean", ["hswish"], "gap", axes=[2, 3], keepdims=1),             # -> global avg pool
        node("Shape", ["gap"], "shape"), node("Gather", ["shape", "idx"], "n", axis=0),
        node("Unsqueeze", ["n", "axis0"], "n1"), node("Concat", ["n1", "minus1"], "target", axis=0),
        node("Reshape", ["gap", "target"], "flat"),                                 # -> flatten
        node("MatMul", ["flat", "fcw"], "mm"), node("Add", ["mm", "fcb"], "fc"),    # -> fc 5 with bias
        node("Mul", ["fc", "k"], "y"),                                              # -> scale by 2
    ], consts, input_shape=(1, 3, 8, 8))
    g = load_onnx(path)
    ops = [g.op(n) for n in g.topological_order()[1:]]
    assert ops == [Conv2d(8, 3, padding=1, bias=False), Activation("relu6"), Activation("silu"), Activation("gelu"),
                   Activation("hardswish"), GlobalAvgPool(), Flatten(), Linear(5), Scale(2.0)]
    assert g.topological_order()[1:] == ["conv", "relu6", "silu", "gelu", "hswish", "gap", "flat", "fc", "y"]


def test_older_opsets_and_more_ops(tmp_path):
    path = save(tmp_path, [
        node("Clip", ["input"], "c", min=0.0, max=6.0),                            # opset 6: bounds as attributes
        node("LeakyRelu", ["c"], "lr", alpha=0.2),
        node("GlobalAveragePool", ["lr"], "gap"),
        node("Transpose", ["gap"], "t", perm=[0, 2, 3, 1]),
        node("Identity", ["t"], "y"),
    ], input_shape=(1, 4, 6, 6), opset=9)
    g = load_onnx(path)
    assert [g.op(n) for n in g.topological_order()[1:]] == [
        Activation("relu6"), Activation("leaky_relu", 0.2), GlobalAvgPool(), Permute((0, 2, 3, 1))]


def test_unsupported_nodes_are_all_named_in_one_error(tmp_path, capsys):
    path = save(tmp_path, [
        node("Resize", ["input", "", "scales"], "up"),
        node("Clip", ["input", "lo", "hi3"], "clip3"),
        node("Erf", ["clip3"], "erf"),
        node("Relu", ["up"], "after_up"),
        node("Concat", ["clip3", "input"], "y", axis=1),
    ], {"scales": np.array([1, 1, 2, 2], np.float32), "lo": np.array(0, np.float32), "hi3": np.array(3, np.float32)})
    assert cli.main(["table", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err
    assert "3 ONNX nodes with no archcost equivalent" in err
    # Resize's defaults (nearest with half_pixel and round_prefer_floor) are not PyTorch's mode
    assert "Resize (up: nearest with coordinate_transformation_mode='half_pixel'" in err
    assert "Clip (clip3: min 0.0, max 3.0" in err and "Erf (erf)" in err
    assert "after_up" not in err  # a supported op after an unsupported one is not an extra problem


def test_a_pattern_after_an_unsupported_node_is_not_blamed(tmp_path):
    # timm's PoolFormer: a GELU written as x * 0.5 * (1 + erf(x / sqrt 2)) after a node archcost
    # refuses (Cos here). The pattern's last Mul reads only the pattern's own (folded) nodes: it
    # was reported as "input 'conv' is a constant where an activation is expected".
    consts = {"w": np.ones((4, 3, 1, 1), np.float32), "sqrt2": np.array(math.sqrt(2), np.float32),
              "one": np.array(1, np.float32), "half": np.array(0.5, np.float32)}
    path = save(tmp_path, [
        node("Cos", ["input"], "cos"),
        node("Conv", ["cos", "w"], "conv", kernel_shape=[1, 1]),
        node("Div", ["conv", "sqrt2"], "d"), node("Erf", ["d"], "e"), node("Add", ["e", "one"], "a"),
        node("Mul", ["conv", "a"], "m"), node("Mul", ["m", "half"], "y"),
    ], consts, input_shape=(1, 3, 4, 4))
    with pytest.raises(ArchcostError) as info:
        load_onnx(path)
    message = str(info.value)
    assert "1 ONNX node with no archcost equivalent" in message and "Cos (cos)" in message
    assert "constant" not in message


def test_the_cli_reads_onnx_and_applies_input(tmp_path, capsys):
    path = save(tmp_path, [node("Conv", ["input", "w"], "y", kernel_shape=[3, 3])], {"w": (4, 3, 3, 3)})
    assert cli.main(["table", str(path), "--input", "3x10x10", "--all-layers"]) == 0
    out = capsys.readouterr().out
    assert "8x8x4" in out and "input 3x10x10" in out
    assert cli.main(["export", str(path), "--to", "yaml"]) == 0
    assert "conv: {out_channels: 4, bias: false}" in capsys.readouterr().out


def _write(path, data: bytes):
    path.write_bytes(data)
    return path


BAD = {
    "cycle": (lambda t: save(t, [node("Add", ["input", "b"], "a"), node("Relu", ["a"], "b"),
                                 node("Relu", ["b"], "y")]), "the graph has a cycle: a -> b -> a"),
    "unknown_input": (lambda t: save(t, [node("Relu", ["nowhere"], "y")]),
                      "node 'y' (Relu): input 'nowhere' is not a graph input"),
    "shapes": (lambda t: save(t, [node("Conv", ["input", "w"], "y", kernel_shape=[3, 3])], {"w": (16, 4, 3, 3)}),
               "node 'y' (Conv): weight 16x4x3x3 with group 1 needs 4 input channels, the input has 3"),
    "too_small": (lambda t: save(t, [node("Conv", ["input", "w"], "y", kernel_shape=[5, 5])], {"w": (4, 3, 5, 5)},
                                 input_shape=(1, 3, 4, 4)), "layer 'y' (conv 5x5/1, 4): kernel 5"),
    "dynamic": (lambda t: save(t, [node("Relu", ["input"], "y")], input_shape=("N", 3, "H", "W")),
                "input 'input': dimension 'H'"),
    "malformed": (lambda t: _write(t / "junk.onnx", b"\x08\x07not a protobuf at all\xff\xff"),
                  "not a readable ONNX model"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_onnx_is_one_line_naming_the_file_and_node(case, tmp_path, capsys):
    make, expected = BAD[case]
    path = make(tmp_path)
    assert cli.main(["table", str(path)]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and expected in lines[0], captured.err
    assert captured.out == ""


def test_constant_products_are_scales_only_along_one_axis(tmp_path, capsys):
    path = save(tmp_path, [
        node("Mul", ["input", "gamma"], "ls"),            # (C, 1, 1): a learned per-channel scale
        node("Div", ["ls", "two"], "half"),               # scalar: a constant factor
        node("Mul", ["half", "plane"], "y"),              # (H, W): varies along two axes
    ], {"gamma": (3, 1, 1), "two": np.array(2.0, np.float32), "plane": (32, 32)})
    assert cli.main(["table", str(path)]) == 2
    err = capsys.readouterr().err
    assert "1 ONNX node with no archcost equivalent" in err and "Mul (y: a constant of shape (32, 32))" in err
    # (W,) broadcasts along W alone (numpy's rule): a factor per column, W learned values, as the
    # file computes it; a (C,) factor on a channels-last map is the same rule on its last axis.
    path = save(tmp_path, [node("Mul", ["input", "gamma"], "ls"), node("Div", ["ls", "two"], "half"),
                           node("Mul", ["half", "row"], "y")],
                {"gamma": (3, 1, 1), "two": np.array(2.0, np.float32), "row": (32,)}, name="ok.onnx")
    g = load_onnx(path)
    assert [g.op(n) for n in g.topological_order()[1:]] == [Scale(None, 1), Scale(0.5), Scale(None, 3)]
    assert analyze(g).totals["params"] == 3 + 32


def test_constant_nodes_are_constants_to_the_patterns(tmp_path):
    # Issue 17: exporters (torchvision convnext_tiny, shufflenet_v2; timm nfnets) write scalars as
    # Constant nodes, sometimes as arithmetic on them. The pattern matcher saw only initializers:
    # a GELU whose sqrt(2), 1 and 0.5 were Constants was refused ("erf outside the GELU pattern"),
    # and a Mul by a Constant was taken for a gate (IndexError in _fuse_gated).
    def const(name, value):
        return helper.make_node("Constant", [], [name], name=name,
                                value=numpy_helper.from_array(np.asarray(value, np.float32), name))

    path = save(tmp_path, [
        const("two", 2.0), const("sqrt2", 2.0), node("Sqrt", ["two"], "s2"),    # sqrt(2) as arithmetic
        const("one", 1.0), const("half", 0.5), const("k", 3.0),
        node("Conv", ["input", "w"], "conv", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Div", ["conv", "s2"], "d"), node("Erf", ["d"], "e"), node("Add", ["e", "one"], "a"),
        node("Mul", ["conv", "a"], "m"), node("Mul", ["m", "half"], "gelu"),       # -> gelu
        node("Mul", ["gelu", "k"], "y"),                                            # -> scale by 3
    ], {"w": (4, 3, 3, 3)}, input_shape=(1, 3, 8, 8))
    g = load_onnx(path)
    assert [g.op(n) for n in g.topological_order()[1:]] == [Conv2d(4, 3, padding=1, bias=False),
                                                           Activation("gelu"), Scale(3.0)]


def _one_node_model(tmp_path, onnx_node, inits, shape, opset):
    tensors = [numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()]
    graph = helper.make_graph([onnx_node], "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=tensors)
    path = pathlib.Path(tmp_path) / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


W58, B5 = np.ones((5, 8), np.float32), np.ones(5, np.float32)


@pytest.mark.parametrize("onnx_node,inits,shape,opset,refusal", [
    (node("Gemm", ["input", "w", "b"], "y", alpha=2.0, transB=1), {"w": W58, "b": B5}, [1, 8], 17, "alpha=2"),
    (node("Gemm", ["input", "w", "b"], "y", beta=0.5, transB=1), {"w": W58, "b": B5}, [1, 8], 17, "beta=0.5"),
    (node("Gelu", ["input"], "y", approximate="tanh"), {}, [1, 4, 2, 2], 20, "approximate='tanh'"),
    (node("Dropout", ["input", "r", "t"], "y"), {"r": np.array(0.5, np.float32), "t": np.array(True)},
     [1, 4, 2, 2], 13, "training_mode=1"),
    (node("Softmax", ["input"], "y", axis=1), {}, [1, 4, 2, 2], 11, "softmax over all axes from 1 on"),
    (node("ReduceSum", ["input", "a"], "y"), {"a": np.array([0])}, [2, 3, 4, 4], 13, "batch axis"),
    (node("ReduceSum", ["input", "a"], "y"), {"a": np.array([1, 3])}, [2, 3, 4, 4], 13, "spatial axis"),
    (node("ReduceSum", ["input"], "y"), {}, [2, 3, 4, 4], 13, "batch axis"),  # no axes: all of them
    (node("ReduceSum", ["input"], "y", noop_with_empty_axes=1), {}, [2, 3, 4, 4], 13, "reduces nothing"),
])
def test_semantics_archcost_cannot_honour_are_refused_not_approximated(tmp_path, onnx_node, inits, shape, opset,
                                                                       refusal, capsys):
    # Issue 13: each of these was imported without a word and executed wrong (Gemm's alpha and
    # beta dropped, tanh-GELU run as exact GELU, training-mode dropout as identity, an opset-11
    # softmax over C, H and W together run over C alone).
    path = _one_node_model(tmp_path, onnx_node, inits, shape, opset)
    assert cli.main(["table", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and refusal in err and onnx_node.op_type in err


@pytest.mark.parametrize("onnx_node,inits,shape,opset,label", [
    (node("Gemm", ["input", "w", "b"], "y", alpha=1.0, beta=1.0, transB=1), {"w": W58, "b": B5}, [1, 8], 17, "fc 5"),
    (node("Gelu", ["input"], "y"), {}, [1, 4, 2, 2], 20, "gelu"),
    (node("Dropout", ["input", "r", "t"], "y"), {"r": np.array(0.5, np.float32), "t": np.array(False)},
     [1, 4, 2, 2], 13, "dropout"),
    (node("Softmax", ["input"], "y", axis=1), {}, [1, 4], 11, "softmax"),  # 2-D: the last axis, as at opset 13
    (node("ReduceSum", ["input"], "y", axes=[1], keepdims=0), {}, [2, 3, 4, 4], 11, "reducesum"),
])
def test_the_same_ops_within_what_archcost_computes_still_import(tmp_path, onnx_node, inits, shape, opset, label):
    g = load_onnx(_one_node_model(tmp_path, onnx_node, inits, shape, opset))
    assert [g.op(n).label() for n in g.topological_order()[1:]] == [label]


# --- every op on constants is folded (issue 17) ---------------------------------------------------
# Exporters leave arithmetic on constants in the graph: TF-style SAME padding computes pads with
# Transpose/Clip/Max, weight standardisation (NFNets) takes ReduceMean and Pow of an initializer.
# Each fold is checked against onnx.reference (the executable ONNX operator specs) on random values.
RNG = np.random.default_rng(17)
A = RNG.standard_normal((2, 3, 4)).astype(np.float32)
B = RNG.standard_normal((3, 1)).astype(np.float32)
POS = (RNG.random((2, 3, 4)) + 0.5).astype(np.float32)
FOLDS = [
    # (op, inputs, attrs, opset)
    ("Transpose", [A], {"perm": [2, 0, 1]}, 17),
    ("Transpose", [A], {}, 17),
    ("Clip", [A, np.array(-0.5, np.float32), np.array(0.25, np.float32)], {}, 17),
    ("Clip", [A, np.array(1.0, np.float32), np.array(-1.0, np.float32)], {}, 17),  # min > max: all max
    ("ReduceMean", [A], {"axes": [1, 2], "keepdims": 1}, 17),
    ("ReduceMean", [A, np.array([-1], np.int64)], {"keepdims": 0}, 18),
    ("ReduceSum", [A, np.array([0], np.int64)], {}, 13),
    ("ReduceMax", [A], {"axes": [0]}, 13),
    ("ReduceMin", [A], {}, 13),
    ("Pow", [POS, np.array(2.0, np.float32)], {}, 17),
    ("Pow", [POS, np.array(3, np.int64)], {}, 17),
    ("Neg", [A], {}, 17), ("Abs", [A], {}, 17), ("Exp", [A], {}, 17), ("Log", [POS], {}, 17),
    ("Reciprocal", [POS], {}, 17), ("Sign", [A], {}, 17), ("Erf", [A], {}, 17),
    ("Max", [A, B], {}, 17), ("Min", [A, B, np.float32(0.1).reshape(1)], {}, 17),
    ("Equal", [np.array([1, 2, 3]), np.array([1, 0, 3])], {}, 17), ("Less", [A, B], {}, 17),
    ("Greater", [A, B], {}, 17), ("LessOrEqual", [A, B], {}, 17), ("GreaterOrEqual", [A, B], {}, 17),
    ("Not", [A > 0], {}, 17), ("And", [A > 0, A < 0.5], {}, 17), ("Or", [A > 0, A < -0.5], {}, 17),
    ("Where", [A > 0, A, B], {}, 17),
    ("Expand", [B, np.array([2, 3, 4], np.int64)], {}, 17),
    ("Tile", [B, np.array([2, 3], np.int64)], {}, 17),
    ("Flatten", [A], {"axis": 2}, 17), ("Flatten", [A], {"axis": -1}, 17),
]


def _fold_model(op, values, attrs, opset):
    inits = [numpy_helper.from_array(np.asarray(v), f"c{k}") for k, v in enumerate(values)]
    nodes = [helper.make_node(op, [f"c{k}" for k in range(len(values))], ["folded"], name="fold", **attrs),
             helper.make_node("Relu", ["input"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("op,values,attrs,opset", FOLDS, ids=[f"{f[0]}-{i}" for i, f in enumerate(FOLDS)])
def test_ops_on_constants_fold_as_the_onnx_reference_computes_them(op, values, attrs, opset):
    from onnx.reference import ReferenceEvaluator

    from archcost.formats.onnx_import import _Importer

    model = _fold_model(op, values, attrs, opset)
    importer = _Importer(model, "m.onnx", None, None)
    importer.run()
    got = importer.values["folded"]
    expected = ReferenceEvaluator(model).run(["folded"], {"input": np.zeros((1, 2), np.float32)})[0]
    assert got.dtype == expected.dtype and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_clip_before_opset_11_takes_min_and_max_attributes():
    from archcost.formats.onnx_import import _Importer

    importer = _Importer(_fold_model("Clip", [A], {"min": -0.5, "max": 0.25}, 6), "m.onnx", None, None)
    importer.run()
    np.testing.assert_array_equal(importer.values["folded"], np.minimum(np.maximum(A, -0.5), 0.25))


def test_weight_standardisation_of_an_initializer_folds_into_the_conv(tmp_path):
    # timm's ScaledStdConv2d exports the standardised weight as arithmetic on the initializer:
    # (w - mean(w)) / sqrt(mean((w - mean)^2) + eps), per output channel, then the Conv.
    eps = np.array(1e-5, np.float32)
    path = save(tmp_path, [
        node("ReduceMean", ["w"], "mean", axes=[1, 2, 3], keepdims=1),
        node("Sub", ["w", "mean"], "centred"), node("Pow", ["centred", "two"], "sq"),
        node("ReduceMean", ["sq"], "var", axes=[1, 2, 3], keepdims=1), node("Add", ["var", "eps"], "ve"),
        node("Sqrt", ["ve"], "std"), node("Div", ["centred", "std"], "ws"),
        node("Transpose", ["ws_t"], "ws_back", perm=[0, 1, 2, 3]),
        node("Conv", ["input", "ws"], "y", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ], {"w": RNG.standard_normal((4, 3, 3, 3)).astype(np.float32), "two": np.array(2.0, np.float32),
        "eps": eps, "ws_t": np.ones((1, 1, 1, 1), np.float32)}, input_shape=(1, 3, 8, 8))
    g = load_onnx(path)
    assert [g.op(n) for n in g.topological_order()[1:]] == [Conv2d(4, 3, padding=1, bias=False)]


def test_a_constant_where_an_activation_is_needed_is_listed_with_the_other_unsupported_nodes(tmp_path):
    # Before, the first such node ended the import with "is a constant where an activation is
    # expected", hiding every other node that does not convert.
    path = save(tmp_path, [
        node("Conv", ["w", "w2"], "c", kernel_shape=[1, 1]),  # a conv of two constants: no constant form
        node("Relu", ["input"], "r"), node("Celu", ["r"], "y"),
    ], {"w": (1, 3, 4, 4), "w2": (2, 3, 1, 1)}, input_shape=(1, 3, 4, 4))
    with pytest.raises(ArchcostError) as err:
        load_onnx(path)
    message = str(err.value)
    assert "2 ONNX nodes with no archcost equivalent" in message
    assert "Conv (c: input 'w' is a constant where an activation is expected)" in message and "Celu (y)" in message


def test_integer_arithmetic_that_would_wrap_is_refused():
    from archcost.formats.onnx_import import _Importer

    low = np.array([np.iinfo(np.int64).min], np.int64)
    with pytest.raises(ArchcostError, match="integer overflow, Neg"):
        _Importer(_fold_model("Neg", [low], {}, 17), "m.onnx", None, None).run()
    with pytest.raises(ArchcostError, match="Pow of integer constants is not evaluated"):
        _Importer(_fold_model("Pow", [np.array([3], np.int64), np.array([40], np.int64)], {}, 17),
                  "m.onnx", None, None).run()


def test_same_padding_computed_from_the_activation_shape_folds_into_the_conv(tmp_path):
    # timm's tf_* models (Conv2dSame) pad dynamically: the pads are arithmetic on Shape of the
    # Pad's input, known only once the walk reaches it. Before, the Pad was refused ("a Pad that
    # cannot fold into the padding of the Conv or pool after it").
    i64 = lambda v: np.array(v, np.int64)  # noqa: E731
    path = save(tmp_path, [
        node("Conv", ["input", "w0"], "c0", kernel_shape=[1, 1]),
        node("Shape", ["c0"], "shape"), node("Gather", ["shape", "two"], "h", axis=0),  # H of c0
        node("Sub", ["k", "h"], "need"), node("Max", ["need", "one"], "total"),        # max(k - H, 1)
        node("Div", ["total", "two"], "before"), node("Sub", ["total", "before"], "after"),
        node("Concat", ["zeros2", "before", "before", "zeros2", "after", "after"], "pads", axis=0),
        node("Pad", ["c0", "pads"], "padded", mode="constant"),
        node("Conv", ["padded", "w"], "y", kernel_shape=[3, 3], strides=[2, 2]),
    ], {"w0": (4, 3, 1, 1), "w": (4, 4, 3, 3), "two": i64(2), "k": i64([9]), "one": i64([1]),
        "zeros2": i64([0, 0])}, input_shape=(1, 3, 8, 8))
    g = load_onnx(path)
    # H = 8: total = max(9 - 8, 1) = 1 -> 0 before, 1 after on each spatial axis.
    assert g.op(g.topological_order()[-1]) == Conv2d(4, 3, stride=2, padding=(0, 1, 0, 1), bias=False)


def _bn_weight_model(tmp_path, training, use_running=False):
    w = RNG.standard_normal((1, 4, 27)).astype(np.float32)
    gain = (RNG.random(4) + 0.5).astype(np.float32)
    outputs = ["ws", "rm", "rv"] if use_running else ["ws"]
    nodes = [
        helper.make_node("BatchNormalization", ["w", "gain", "b", "m", "v"], outputs, name="std",
                         epsilon=1e-4, training_mode=int(training)),
        node("Reshape", ["ws", "wshape"], "weight"),
        node("Conv", ["input", "weight"], "y", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
    ]
    if use_running:
        nodes.append(node("Add", ["rm", "rv"], "stats"))
    inits = {"w": w, "gain": gain, "b": np.zeros(4, np.float32), "m": np.zeros(4, np.float32),
             "v": np.ones(4, np.float32), "wshape": np.array([4, 3, 3, 3], np.int64)}
    return save(tmp_path, nodes, inits, input_shape=(1, 3, 8, 8), opset=15), w, gain


def test_training_mode_batchnorm_of_a_weight_is_its_standardisation(tmp_path):
    # timm's ScaledStdConv2d (NFNets): F.batch_norm(w.reshape(1, out, -1), training=True) exports as
    # a training-mode BatchNormalization of the initializer: the weight's own mean and variance.
    from archcost.formats.onnx_import import _Importer

    path, w, gain = _bn_weight_model(tmp_path, training=True)
    importer = _Importer(onnx.load(str(path)), "m.onnx", None, None)
    g = importer.run()
    assert [g.op(n) for n in g.topological_order()[1:]] == [Conv2d(4, 3, padding=1, bias=False)]
    w64 = w.astype(np.float64)
    expected = (w64 - w64.mean(axis=(0, 2), keepdims=True)) / np.sqrt(w64.var(axis=(0, 2), keepdims=True) + 1e-4)
    np.testing.assert_allclose(importer.values["ws"], expected * gain.reshape(1, 4, 1), rtol=1e-5)
    from onnx.reference import ReferenceEvaluator

    reference = ReferenceEvaluator(onnx.load(str(path))).run(["ws"], {"input": np.zeros((1, 3, 8, 8), np.float32)})[0]
    np.testing.assert_allclose(importer.values["ws"], reference, rtol=1e-5, atol=1e-6)


def test_batchnorm_of_a_constant_whose_running_statistics_are_used_is_listed(tmp_path):
    path, _, _ = _bn_weight_model(tmp_path, training=True, use_running=True)
    with pytest.raises(ArchcostError, match="BatchNormalization \\(std: its running-statistics output 'rm' is used\\)"):
        load_onnx(path)


# --- channel slices (issue 13): ShuffleNet's chunk, CSP/Res2Net's split, channel gathers ---------
I64_MAX = np.iinfo(np.int64).max


def _select_graph(branches):
    """conv 8 maps -> each branch's ChannelSelect -> concat, with the archcost builder."""
    from archcost.ops import ChannelSelect

    g = Graph("net")
    x = g.input((3, 8, 8))
    c = g.add(Conv2d(8, 1, bias=False), x, name="c")
    outs = [g.add(ChannelSelect(tuple(ch)), c, name=f"s{k}") for k, ch in enumerate(branches)]
    g.concat(*outs, name="y")
    return g


@pytest.mark.parametrize("nodes,inits,opset,branches", [
    # Slice with starts/ends/axes inputs: chunk(2) as torch exports it (end = INT64_MAX)
    ([node("Slice", ["c", "z", "four", "one"], "s0"), node("Slice", ["c", "four", "big", "one"], "s1")],
     {"z": np.array([0]), "four": np.array([4]), "one": np.array([1]), "big": np.array([I64_MAX])}, 13,
     [range(0, 4), range(4, 8)]),
    # negative start and a step; a whole-axis slice of axis 0 beside it changes nothing
    ([node("Slice", ["c", "st", "en", "ax", "sp"], "s0")],
     {"st": np.array([0, -1]), "en": np.array([I64_MAX, -I64_MAX]), "ax": np.array([0, 1]), "sp": np.array([1, -2])},
     13, [range(7, -1, -2)]),
    # opset 9: starts/ends/axes attributes
    ([node("Slice", ["c"], "s0", starts=[2], ends=[5], axes=[1])], {}, 9, [range(2, 5)]),
    # Split: equal parts (no sizes), sizes as an input (opset 13), as an attribute (opset 11)
    ([node("Split", ["c"], ["s0", "s1"], axis=1)], {}, 13, [range(0, 4), range(4, 8)]),
    ([node("Split", ["c", "sizes"], ["s0", "s1", "s2"], axis=1)], {"sizes": np.array([2, 5, 1])}, 13,
     [range(0, 2), range(2, 7), range(7, 8)]),
    ([node("Split", ["c"], ["s0", "s1"], axis=1, split=[3, 5])], {}, 11, [range(0, 3), range(3, 8)]),
    ([node("Split", ["c"], ["s0", "s1", "s2"], axis=-3, num_outputs=3)], {}, 18,
     [range(0, 3), range(3, 6), range(6, 8)]),
    # Gather of channels by constant indices (negative ones count from the end)
    ([node("Gather", ["c", "idx"], "s0", axis=1)], {"idx": np.array([3, -1, 0])}, 13, [(3, 7, 0)]),
])
def test_channel_slices_import_as_channel_selects(tmp_path, nodes, inits, opset, branches):
    outs = [o for n in nodes for o in n.output]
    path = save(tmp_path, [node("Conv", ["input", "w"], "c", kernel_shape=[1, 1]), *nodes,
                           node("Concat", outs, "y", axis=1)],
                {"w": (8, 3, 1, 1), **inits}, input_shape=(1, 3, 8, 8), opset=opset)
    g = load_onnx(path)
    expected = _select_graph(branches)
    got_ops = [g.op(n) for n in g.topological_order()]
    assert got_ops == [expected.op(n) for n in expected.topological_order()]


@pytest.mark.parametrize("onnx_node,inits,message", [
    (node("Slice", ["c", "z", "two", "ax"], "y"), {"z": np.array([0]), "two": np.array([2]), "ax": np.array([2])},
     "a slice of axis 2 (archcost slices channels only)"),
    (node("Split", ["c"], ["y", "y2"], axis=2), {}, "a split of axis 2"),
    # the graph's shapes are at batch 1: a slice of axis 0 would look whole there (ONNX's test_slice)
    (node("Slice", ["c", "z", "two", "ax"], "y"), {"z": np.array([0]), "two": np.array([2]), "ax": np.array([0])},
     "a slice of the batch axis"),
    (node("Gather", ["c", "k"], "y", axis=1), {"k": np.array(1)}, "0-d indices"),
    (node("Gather", ["c", "k"], "y", axis=1), {"k": np.array([1, 1])}, "repeat a channel"),
])
def test_other_slices_are_listed(tmp_path, onnx_node, inits, message):
    path = save(tmp_path, [node("Conv", ["input", "w"], "c", kernel_shape=[1, 1]), onnx_node],
                {"w": (8, 3, 1, 1), **inits}, input_shape=(1, 3, 8, 8))
    with pytest.raises(ArchcostError, match="no archcost equivalent") as err:
        load_onnx(path)
    assert message in str(err.value)


def test_a_split_that_does_not_add_up_is_an_error(tmp_path):
    path = save(tmp_path, [node("Conv", ["input", "w"], "c", kernel_shape=[1, 1]),
                           node("Split", ["c", "sizes"], ["y", "y2"], axis=1)],
                {"w": (8, 3, 1, 1), "sizes": np.array([3, 3])}, input_shape=(1, 3, 8, 8))
    with pytest.raises(ArchcostError, match="split \\[3, 3\\] does not cut 8 channels into 2 outputs"):
        load_onnx(path)


def test_a_graph_output_computed_from_shapes_alone_is_refused(tmp_path):
    # ONNX's test_shape: the output is Shape(input), a constant once folded; no layer computes it,
    # and it was imported as a network with no output layer for it.
    path = save(tmp_path, [node("Shape", ["input"], "y")], input_shape=(1, 3, 4, 4))
    with pytest.raises(ArchcostError, match="graph output 'y' is a constant, not computed by any layer"):
        load_onnx(path)


def test_batchnorm_folded_by_the_exporter_is_said_under_the_table(tmp_path, capsys):
    # torch.onnx.export folds BatchNorm into the conv by default (do_constant_folding) and names
    # the new weight and bias onnx::Conv_N; params then differ from the framework's count.
    folded = save(tmp_path, [
        node("Conv", ["input", "onnx::Conv_1", "onnx::Conv_2"], "c1", kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        node("Relu", ["c1"], "r"),
        node("Conv", ["r", "w", "b"], "y", kernel_shape=[1, 1]),
    ], {"onnx::Conv_1": (4, 3, 3, 3), "onnx::Conv_2": (4,), "w": (2, 4, 1, 1), "b": (2,)}, name="folded.onnx")
    g = load_onnx(folded)
    assert len(g.notes) == 1 and g.notes[0].startswith("1 of 2 convs carry a weight and bias the exporter folded")
    assert cli.main(["table", str(folded)]) == 0
    assert "note: 1 of 2 convs carry a weight and bias the exporter folded from BatchNorm" in capsys.readouterr().out
    assert cli.main(["table", str(folded), "--format", "json"]) == 0
    import json

    assert json.loads(capsys.readouterr().out)["notes"] == g.notes
    kept = save(tmp_path, [node("Conv", ["input", "w", "b"], "y", kernel_shape=[1, 1])],
                {"w": (2, 3, 1, 1), "b": (2,)}, name="kept.onnx")
    assert load_onnx(kept).notes == []


def test_adding_zero_or_multiplying_by_one_is_no_layer(tmp_path):
    # timm's MobileOne and FastViT (eval, not reparameterised) add a Constant 0 where a block has
    # no identity branch; x * 1 and x / 1 are the same identity. A 0 that would enlarge x (a
    # broadcast to more elements) or a 0 that x is subtracted from are not identities.
    # Only literals: an initializer of 0 or 1 may be a learned bias or scale at its initial value.
    literals = {"zero": np.array(0.0, np.float32), "ones": np.ones((3, 1, 1), np.float32),
                "one": np.array([1.0], np.float32), "zeros_c": np.zeros((1, 3, 1, 1), np.float32)}
    constants = [helper.make_node("Constant", [], [k], value=numpy_helper.from_array(v, k)) for k, v in literals.items()]
    path = save(tmp_path, constants + [
        node("Relu", ["input"], "r"),
        node("Add", ["r", "zero"], "a"), node("Add", ["zeros_c", "a"], "b"), node("Sub", ["b", "zero"], "c"),
        node("Mul", ["ones", "c"], "d"), node("Div", ["d", "one"], "y"),
    ], input_shape=(1, 3, 4, 4))
    g = load_onnx(path)
    assert [g.op(n) for n in g.topological_order()[1:]] == [Activation("relu")]
    assert analyze(g).totals["other"] == 3 * 4 * 4
    path = save(tmp_path, [node("Add", ["input", "bias"], "y")], {"bias": np.zeros(1, np.float32)},
                input_shape=(1, 3, 4, 4), name="init.onnx")
    with pytest.raises(ArchcostError, match="Add"):
        load_onnx(path)
    # PyTorch's GroupNorm export multiplies by Unsqueeze(weight): ones at initialisation, still
    # 3 learned values (timm's resnetv2_50x1_bit lost its GroupNorms' 45,440 params to this).
    path = save(tmp_path, [node("Unsqueeze", ["gamma", "axes"], "g"), node("Mul", ["input", "g"], "y")],
                {"gamma": np.ones(3, np.float32), "axes": np.array([1, 2], np.int64)},
                input_shape=(1, 3, 4, 4), name="gamma.onnx")
    g = load_onnx(path)
    assert [g.op(n).kind for n in g.topological_order()[1:]] == ["scale"] and analyze(g).totals["params"] == 3
    path = save(tmp_path, constants[:1] + [node("Sub", ["zero", "input"], "y")], input_shape=(1, 3, 4, 4),
                name="neg.onnx")
    with pytest.raises(ArchcostError, match="Sub"):
        load_onnx(path)
    path = save(tmp_path, [node("Add", ["input", "big"], "y")], {"big": np.zeros((1, 3, 4, 4, 2), np.float32)},
                input_shape=(1, 3, 4, 4), name="big.onnx")
    with pytest.raises(ArchcostError, match="Add"):
        load_onnx(path)


# --- Pad (issue 13): folded where it computes the same, else a Pad layer, in every mode ----------

def _reflect_block(tmp_path, opset=17):
    """CycleGAN's ResNet generator block as torch.onnx writes it: ReflectionPad2d(1) -> Conv 3x3 ->
    InstanceNorm -> ReLU -> ReflectionPad2d(1) -> Conv 3x3 -> InstanceNorm, added to the input;
    then an edge pad, a wrap pad (opset 19) and a constant crop of 0.25 before a 1x1 conv."""
    rng = np.random.default_rng(3)
    f32 = lambda *s: (rng.standard_normal(s) * 0.3).astype(np.float32)  # noqa: E731
    i64 = lambda v: np.array(v, np.int64)  # noqa: E731
    inits = {"p1": i64([0, 0, 1, 1, 0, 0, 1, 1]), "w1": f32(4, 4, 3, 3), "b1": f32(4), "w2": f32(4, 4, 3, 3),
             "b2": f32(4), "s": (rng.random(4) + 0.5).astype(np.float32), "t": f32(4),
             "pe": i64([0, 0, 2, 0, 0, 0, 0, 3]), "pc": i64([0, 0, -1, 2, 0, 0, 1, -2]),
             "v": np.array(0.25, np.float32), "w3": f32(2, 4, 1, 1)}
    nodes = [node("Pad", ["input", "p1"], "a", mode="reflect"),
             node("Conv", ["a", "w1", "b1"], "c1", kernel_shape=[3, 3]),
             node("InstanceNormalization", ["c1", "s", "t"], "n1"), node("Relu", ["n1"], "r1"),
             node("Pad", ["r1", "p1"], "a2", mode="reflect"),
             node("Conv", ["a2", "w2", "b2"], "c2", kernel_shape=[3, 3]),
             node("InstanceNormalization", ["c2", "s", "t"], "n2"), node("Add", ["input", "n2"], "res"),
             node("Pad", ["res", "pe"], "e", mode="edge")]
    last = "e"
    if opset >= 19:
        inits["pw"] = i64([0, 0, 1, 3, 0, 0, 2, 0])
        nodes.append(node("Pad", ["e", "pw"], "wr", mode="wrap"))
        last = "wr"
    nodes += [node("Pad", [last, "pc", "v"], "cr", mode="constant"),
              node("Conv", ["cr", "w3"], "y", kernel_shape=[1, 1])]
    return save(tmp_path, nodes, inits, input_shape=(2, 4, 6, 7), opset=opset)


@pytest.mark.parametrize("opset", [13, 19])
def test_a_reflect_padded_resnet_block_runs_as_onnxruntime_computes_it(tmp_path, opset, capsys):
    from archcost.execute import Executor
    from archcost.formats.onnx_import import load_onnx_weights
    from archcost.ops import Pad

    ort = pytest.importorskip("onnxruntime")
    path = _reflect_block(tmp_path, opset)
    graph, params, outputs = load_onnx_weights(path)
    pads = [graph.op(n) for n in graph.topological_order() if isinstance(graph.op(n), Pad)]
    assert pads[:3] == [Pad(1, "reflect"), Pad(1, "reflect"), Pad((2, 0, 0, 3), "edge")]
    assert pads[-1] == Pad((-1, 1, 2, -2), value=0.25) and len(pads) == (5 if opset >= 19 else 4)
    x = np.random.default_rng(4).standard_normal((2, 4, 6, 7)).astype(np.float32)
    ours = Executor(graph, 2, "cpu", 0, params=params).forward(x).outputs[outputs["y"]]
    theirs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert cli.main(["validate", str(path), "--weights", "file", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "-> ok" in out and "FAIL" not in out and "onnxruntime: output 'y'" in out


I64 = lambda v: np.array(v, np.int64)  # noqa: E731
PAD_FORMS = {
    # (node, initializers, input shape, opset, the Pad op, or None for an identity)
    "opset 1 paddings attribute": (node("Pad", ["input"], "y", paddings=[0, 0, 1, 0, 0, 0, 2, 3], value=0.5),
                                   {}, [1, 2, 3, 4], 1, ("constant", (1, 2, 0, 3), 0.5)),
    "opset 2 pads and value attributes": (node("Pad", ["input"], "y", pads=[0, 0, 0, 2, 0, 0, 1, 1], value=-1.5),
                                          {}, [1, 2, 3, 4], 2, ("constant", (0, 1, 2, 1), -1.5)),
    "opset 2 reflect": (node("Pad", ["input"], "y", pads=[0, 0, 2, 1, 0, 0, 1, 3], mode="reflect"),
                        {}, [1, 2, 3, 4], 2, ("reflect", (2, 1, 1, 3), 0.0)),
    "opset 11 edge, no value": (node("Pad", ["input", "p"], "y", mode="edge"),
                                {"p": I64([0, 0, 3, 0, 0, 0, 0, 5])}, [2, 1, 2, 2], 11, ("edge", (3, 0, 0, 5), 0.0)),
    "opset 11 float64 value": (node("Pad", ["input", "p", "v"], "y"),
                               {"p": I64([0, 0, 1, 1, 0, 0, 1, 1]), "v": np.array(0.1, np.float64)}, [1, 2, 3, 3], 11,
                               ("constant", (1, 1, 1, 1), float(np.float32(0.1)))),
    "opset 11 int32 value": (node("Pad", ["input", "p", "v"], "y"),
                             {"p": I64([0, 0, 0, 1, 0, 0, 2, 0]), "v": np.array([3], np.int32)}, [1, 2, 3, 3], 11,
                             ("constant", (0, 2, 1, 0), 3.0)),
    "opset 13 reflect of an (N, C, L) map": (node("Pad", ["input", "p"], "y", mode="reflect"),
                                             {"p": I64([0, 0, 2, 0, 0, 3])}, [2, 3, 5], 13,
                                             ("reflect", (0, 0, 2, 3), 0.0)),
    "opset 18 axes": (node("Pad", ["input", "p", "", "a"], "y", mode="reflect"),
                      {"p": I64([1, 2, 0, 1]), "a": I64([2, 3])}, [1, 2, 4, 4], 18, ("reflect", (1, 0, 2, 1), 0.0)),
    "opset 18 negative axes": (node("Pad", ["input", "p", "v", "a"], "y"),
                               {"p": I64([3, 1]), "v": np.array(2.0, np.float32), "a": I64([-1])}, [1, 2, 3, 3], 18,
                               ("constant", (0, 0, 3, 1), 2.0)),
    "opset 19 wrap past the size": (node("Pad", ["input", "p"], "y", mode="wrap"),
                                    {"p": I64([0, 0, 5, 0, 0, 0, 1, 7])}, [1, 2, 2, 3], 19,
                                    ("wrap", (5, 1, 0, 7), 0.0)),
    "zero pads of a 5-d input: an identity": (node("Pad", ["input", "p"], "y", mode="reflect"),
                                              {"p": I64([0] * 10)}, [1, 2, 3, 3, 3], 13, None),
}


@pytest.mark.parametrize("case", PAD_FORMS)
def test_a_pad_of_every_opset_form_imports_and_runs_as_onnx_reference_computes_it(tmp_path, case):
    from onnx.reference import ReferenceEvaluator

    from archcost.execute import Executor
    from archcost.formats.onnx_import import load_onnx_weights
    from archcost.ops import Pad

    onnx_node, inits, shape, opset, want = PAD_FORMS[case]
    path = _one_node_model(tmp_path, onnx_node, inits, shape, opset)
    graph, params, outputs = load_onnx_weights(path)
    layers = [graph.op(n) for n in graph.topological_order()[1:]]
    assert layers == ([] if want is None else [Pad(want[1], want[0], want[2])])
    if want is None:
        return
    x = np.random.default_rng(8).standard_normal(shape).astype(np.float32)
    ours = Executor(graph, shape[0], "cpu", 0, params=params).forward(x).outputs[outputs["y"]]
    expected = ReferenceEvaluator(str(path)).run(None, {"input": x})[0]
    assert ours.shape == expected.shape and (ours == expected).all()


@pytest.mark.parametrize("onnx_node,inits,shape,opset,refusal", [
    (node("Pad", ["input", "p"], "y"), {"p": I64([0, 1, 0, 0, 0, 1, 0, 0])}, [1, 2, 3, 3], 13,
     "pads of the C (1, 1) axis"),
    (node("Pad", ["input", "p"], "y"), {"p": I64([1, 0, 0, 0, 0, 0, 0, 0])}, [1, 2, 3, 3], 13,
     "pads of the N (1, 0) axis"),
    (node("Pad", ["input", "p", "", "a"], "y"), {"p": I64([0, 2]), "a": I64([1])}, [1, 2, 3, 3], 18,
     "pads of the C (0, 2) axis"),
    (node("Pad", ["input", "p"], "y", mode="symmetric"), {"p": I64([0, 0, 1, 1, 0, 0, 1, 1])}, [1, 2, 3, 3], 13,
     "mode 'symmetric'"),
    (node("Pad", ["input", "p"], "y", mode="reflect"), {"p": I64([0, 0, 3, 0, 0, 0, 0, 0])}, [1, 2, 3, 3], 13,
     "reflect pads (3, 0) of axis H must be less than its size 3"),
    (node("Pad", ["input", "p"], "y", mode="edge"), {"p": I64([0, 0, -1, 0, 0, 0, 2, 0])}, [1, 2, 3, 3], 13,
     "crop (negative) in mode 'edge'"),
    (node("Pad", ["input", "p", "v"], "y"),
     {"p": I64([0, 0, 1, 0, 0, 0, 0, 0]), "v": np.array(-np.inf, np.float32)},
     [1, 2, 3, 3], 13, "value -inf (archcost pads with a finite value)"),
    (node("Pad", ["input", "p"], "y"), {"p": I64([0, 0, 1, 1, 1, 0, 0, 1, 1, 1])}, [1, 2, 3, 3, 3], 13,
     "a Pad of a 5-d input"),
])
def test_pads_archcost_cannot_honour_are_refused_by_name(tmp_path, onnx_node, inits, shape, opset, refusal,
                                                        capsys):
    path = _one_node_model(tmp_path, onnx_node, inits, shape, opset)
    assert cli.main(["table", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and refusal in err and "Pad" in err, err


def test_a_weight_computed_from_more_values_than_it_holds_is_noted(tmp_path):
    # NFNets' ScaledStdConv2d: the conv's weight is the file's weight times a learned gain per
    # output channel, computed in the graph. archcost folds it into one weight (4*3*3*3 = 108) and
    # says that the 4 gains are not counted.
    path = save(tmp_path, [
        node("Mul", ["w", "gain"], "wg"),
        node("Conv", ["input", "wg", "b"], "y", kernel_shape=[3, 3]),
    ], {"w": (4, 3, 3, 3), "gain": (4, 1, 1, 1), "b": (4,)}, input_shape=(1, 3, 8, 8))
    g = load_onnx(path)
    assert analyze(g).totals["params"] == 108 + 4
    assert len(g.notes) == 1
    assert "1 layer (y) computes its weight from 4 more file values than it holds" in g.notes[0] and "gain" in g.notes[0]
    plain = save(tmp_path, [node("Reshape", ["w", "shape"], "wr"), node("Conv", ["input", "wr"], "y", kernel_shape=[3, 3])],
                 {"w": (4, 27), "shape": np.array([4, 3, 3, 3], np.int64)}, input_shape=(1, 3, 8, 8), name="plain.onnx")
    assert load_onnx(plain).notes == []  # a reshaped weight holds all the values it is computed from
