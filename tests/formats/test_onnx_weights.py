"""An ONNX file run with its own weights: the importer hands the executor every layer's
initializers in archcost's layout, and the outputs agree with onnx's reference evaluator and
onnxruntime (independent implementations of what the file means), on random weights and inputs."""

import pathlib

import numpy as np
import pytest

from archcost import ops
from archcost.cli import main
from archcost.errors import ArchcostError
from archcost.execute import Executor

onnx = pytest.importorskip("onnx")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

from archcost.formats.onnx_import import load_onnx_weights  # noqa: E402

RNG = np.random.default_rng(13)


def f32(*shape, low=-1.0, high=1.0):
    return RNG.uniform(low, high, shape).astype(np.float32)


def net(tmp_path, *, opset=17, bn_mean=None, name="w.onnx"):
    """Every op whose weights the importer reads: conv + bias, BN, per-channel Mul and Div,
    Gemm with transB=0 and a (1, M) bias, MatMul + Add, LayerNormalization."""
    inits = {
        "w": f32(6, 3, 3, 3), "b": f32(6), "gamma": f32(6, low=0.5, high=1.5), "beta": f32(6),
        "mean": f32(6) if bn_mean is None else bn_mean, "var": f32(6, low=0.5, high=2.0),
        "k": f32(1, 6, 1, 1, low=0.5, high=2.0), "d": f32(6, 1, 1, low=0.5, high=2.0),
        "g1": f32(6, 10), "c1": f32(1, 10), "g2": f32(10, 8), "c2": f32(8), "ln_s": f32(8), "ln_b": f32(8),
    }
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["conv", "gamma", "beta", "mean", "var"], ["bn"], epsilon=1e-3),
        helper.make_node("Relu", ["bn"], ["relu"]),
        helper.make_node("Mul", ["relu", "k"], ["scaled"]),
        helper.make_node("Div", ["scaled", "d"], ["divided"]),
        helper.make_node("GlobalAveragePool", ["divided"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "g1", "c1"], ["fc1"]),
        helper.make_node("MatMul", ["fc1", "g2"], ["mm"]),
        helper.make_node("Add", ["mm", "c2"], ["fc2"]),
        helper.make_node("LayerNormalization", ["fc2", "ln_s", "ln_b"], ["y"], axis=-1, epsilon=1e-5),
    ]
    graph = helper.make_graph(
        nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    path = pathlib.Path(tmp_path) / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


def test_the_files_weights_give_the_reference_evaluators_outputs(tmp_path):
    path = net(tmp_path)
    graph, params, outputs = load_onnx_weights(path)
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    ours = Executor(graph, 2, "cpu", 0, params=params).forward(x).outputs[outputs["y"]]
    expected = ReferenceEvaluator(str(path)).run(None, {"input": x})[0]
    assert ours.shape == expected.shape == (2, 8)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
    # Drawn weights give other outputs: the file's weights are the ones that ran.
    drawn = Executor(graph, 2, "cpu", 0).forward(x).outputs[outputs["y"]]
    assert np.abs(drawn - expected).max() > 1e-2


def _split_attention(tmp_path, radix=2, opset=17):
    """SKNet's selective kernel and ResNeSt's split attention as their exports spell them: the
    branches stacked on a new axis 1 (Unsqueeze + Concat) or a conv reshaped to (N, radix, C, H, W),
    ReduceSum over axis 1, the attention's convs, a softmax over the branches (on the 5-axis
    tensor, or after ResNeSt's transpose), a 5-axis broadcast product and ReduceSum again."""
    c = 4
    inits = {"w0": f32(c, 3, 3, 3), "w1": f32(c, 3, 3, 3), "wr": f32(radix * c, 3, 1, 1),
             "fc1": f32(3, c, 1, 1), "fc2": f32(radix * c, 3, 1, 1),
             "one": np.array([1], np.int64), "shape5": np.array([0, 2, c, 1, 1], np.int64),
             "radix5": np.array([0, radix, c, 6, 6], np.int64), "rs": np.array([0, 1, radix, -1], np.int64),
             "back": np.array([0, radix, c, 1, 1], np.int64)}
    nodes = [
        # SKNet: two conv paths stacked, summed, attended
        helper.make_node("Conv", ["input", "w0"], ["p0"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["input", "w1"], ["p1"], kernel_shape=[3, 3], pads=[2, 2, 2, 2], dilations=[2, 2]),
        helper.make_node("Unsqueeze", ["p0", "one"], ["u0"]),
        helper.make_node("Unsqueeze", ["p1", "one"], ["u1"]),
        helper.make_node("Concat", ["u0", "u1"], ["stack"], axis=1),
        helper.make_node("ReduceSum", ["stack", "one"], ["s"], keepdims=0),
        helper.make_node("ReduceMean", ["s"], ["gap"], axes=[2, 3], keepdims=1),
        helper.make_node("Conv", ["gap", "fc1"], ["z"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["z"], ["zr"]),
        helper.make_node("Conv", ["zr", "fc2"], ["logits"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["logits", "shape5"], ["l5"]),
        helper.make_node("Softmax", ["l5"], ["attn"], axis=1),
        helper.make_node("Mul", ["stack", "attn"], ["weighted"]),
        helper.make_node("ReduceSum", ["weighted", "one"], ["sk"], keepdims=0),
        # ResNeSt: one conv of radix * C channels seen as (N, radix, C, H, W); rSoftMax transposes
        helper.make_node("Conv", ["input", "wr"], ["r"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["r", "radix5"], ["r5"]),
        helper.make_node("ReduceSum", ["r5", "one"], ["rs_sum"], keepdims=0),
        helper.make_node("Add", ["rs_sum", "sk"], ["mixed"]),
        helper.make_node("ReduceMean", ["mixed"], ["gap2"], axes=[2, 3], keepdims=1),
        helper.make_node("Conv", ["gap2", "fc1"], ["z2"], kernel_shape=[1, 1]),
        helper.make_node("Conv", ["z2", "fc2"], ["logits2"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["logits2", "rs"], ["card"]),
        helper.make_node("Transpose", ["card"], ["t"], perm=[0, 2, 1, 3]),
        helper.make_node("Softmax", ["t"], ["attn2"], axis=1),
        helper.make_node("Reshape", ["attn2", "back"], ["a5"]),
        helper.make_node("Mul", ["r5", "a5"], ["w5"]),
        helper.make_node("ReduceSum", ["w5", "one"], ["y"], keepdims=0),
    ]
    graph = helper.make_graph(
        nodes, "split_attention", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()],
    )
    path = pathlib.Path(tmp_path) / "sa.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


def test_split_attention_runs_as_the_reference_evaluator_computes_it(tmp_path):
    path = _split_attention(tmp_path)
    graph, params, outputs = load_onnx_weights(path)
    sums = [n for n in graph.topological_order() if graph.op(n).kind == "reducesum"]
    assert len(sums) == 4 and graph.shape(sums[0]) == (1, 4, 6, 6)  # (N, 2, C, H, W) -> (N, C, H, W)
    x = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
    ours = Executor(graph, 2, "cpu", 0, params=params).forward(x).outputs[outputs["y"]]
    expected = ReferenceEvaluator(str(path)).run(None, {"input": x})[0]
    assert ours.shape == expected.shape == (2, 4, 6, 6)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


def test_onnxruntime_agrees(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    path = net(tmp_path)
    graph, params, outputs = load_onnx_weights(path)
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    ours = Executor(graph, 2, "cpu", 0, params=params).forward(x).outputs[outputs["y"]]
    theirs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)


def test_validate_with_the_files_weights(tmp_path, capsys):
    path = net(tmp_path)
    assert main(["validate", str(path), "--weights", "file", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "-> ok" in out and "FAIL" not in out
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        assert "onnxruntime: not installed" in out
    else:
        assert "onnxruntime: output 'y'" in out


def test_a_weight_of_the_wrong_size_is_named(tmp_path):
    path = net(tmp_path, bn_mean=f32(5))
    with pytest.raises(ArchcostError, match="layer 'bn': mean 'mean' holds 5 values, the layer needs 6"):
        load_onnx_weights(path)


def test_weights_computed_at_run_time_are_refused(tmp_path):
    # A BN scale that is an activation: the analysis needs only its shape, a run needs its values.
    nodes = [
        helper.make_node("Relu", ["input"], ["r"]),
        helper.make_node("GlobalAveragePool", ["r"], ["s4"]),
        helper.make_node("Flatten", ["s4"], ["scale"], axis=1),
        helper.make_node("BatchNormalization", ["r", "scale", "b", "m", "v"], ["y"]),
    ]
    inits = [numpy_helper.from_array(np.zeros(3, np.float32), k) for k in ("b", "m")]
    inits += [numpy_helper.from_array(np.ones(3, np.float32), "v")]
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    path = tmp_path / "rt.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    with pytest.raises(ArchcostError, match="layer 'y': gamma is computed at run time"):
        load_onnx_weights(path)


# --- archcost run --------------------------------------------------------------------------------

def test_run_writes_the_outputs(tmp_path, capsys):
    path = net(tmp_path)
    x = RNG.standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 0
    assert "file weights" in capsys.readouterr().out
    expected = ReferenceEvaluator(str(path)).run(None, {"input": x})[0]
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-4, atol=1e-5)
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npz")]) == 0
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["y"], expected, rtol=1e-4, atol=1e-5)


def test_run_a_zoo_model_at_the_inputs_size(tmp_path, capsys):
    np.save(tmp_path / "x.npy", RNG.standard_normal((1, 1, 32, 32)).astype(np.float32))
    assert main(["run", "lenet5", "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 0
    assert "random weights" in capsys.readouterr().out
    y = np.load(tmp_path / "y.npy")
    assert y.shape[0] == 1 and np.isfinite(y).all()


@pytest.mark.parametrize("make,args,message", [
    (lambda d: np.save(d / "x.npy", np.arange(12).reshape(1, 3, 2, 2)), [], "holds int64 values"),
    (lambda d: np.save(d / "x.npy", np.array([object()], dtype=object), allow_pickle=True), [],
     "not a readable .npy array"),
    (lambda d: (d / "x.npy").write_bytes(b"not numpy"), [], "not a readable .npy array"),
    (lambda d: np.save(d / "x.npy", np.full((1, 1, 32, 32), np.nan, np.float32)), [], "NaN or infinite"),
    (lambda d: np.save(d / "x.npy", np.zeros(5, np.float32)), [], "expected a batch"),
    (lambda d: np.save(d / "x.npy", np.zeros((1, 1, 32, 32), np.float32)), ["--weights", "file"],
     "is not an .onnx file"),
])
def test_run_refuses_bad_input_in_one_line(tmp_path, capsys, make, args, message):
    make(tmp_path)
    out = tmp_path / "y.npy"
    code = main(["run", "lenet5", "--input", str(tmp_path / "x.npy"), "-o", str(out), *args])
    err = capsys.readouterr().err
    assert code != 0 and message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_run_refuses_an_output_name_it_cannot_write(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 1, 32, 32), np.float32))
    assert main(["run", "lenet5", "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.txt")]) != 0
    assert "expected a file name ending in .npy, .npz" in capsys.readouterr().err


def _save(tmp_path, nodes, inits, shape, name):
    graph = helper.make_graph(nodes, "net", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = pathlib.Path(tmp_path) / name
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def _same_as_reference(path, shape):
    graph, params, outputs = load_onnx_weights(path)
    x = RNG.standard_normal(shape).astype(np.float32)
    ours = Executor(graph, shape[0], "cpu", 0, params=params).forward(x).outputs[outputs["y"]]
    expected = ReferenceEvaluator(str(path)).run(None, {"input": x})[0]
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
    return graph


@pytest.mark.parametrize("attrs", [
    {"strides": [2], "pads": [1, 2], "group": 2},
    {"dilations": [2], "auto_pad": "SAME_UPPER"},
    {"auto_pad": "VALID"},
])
def test_a_1d_convolution_runs_as_a_1xk_conv2d(tmp_path, attrs):
    # ECA-Net's channel attention convolves the pooled channels as a 1-D signal.
    group = attrs.get("group", 1)
    path = _save(tmp_path, [helper.make_node("Conv", ["input", "w", "b"], ["y"], kernel_shape=[3], **attrs)],
                 {"w": f32(6, 4 // group, 3), "b": f32(6)}, (2, 4, 10), "c1.onnx")
    graph = _same_as_reference(path, (2, 4, 10))
    conv = graph.op(graph.topological_order()[2])
    assert conv.kernel == (1, 3) and conv.groups == group


def test_expand_as_feeding_a_product_is_the_broadcast(tmp_path):
    # ECA-Net: x * gate.expand_as(x)
    path = _save(tmp_path, [
        helper.make_node("GlobalAveragePool", ["input"], ["g"]), helper.make_node("Sigmoid", ["g"], ["s"]),
        helper.make_node("Expand", ["s", "shape"], ["e"]), helper.make_node("Mul", ["input", "e"], ["y"]),
    ], {"shape": np.array([1, 3, 8, 8], np.int64)}, (2, 3, 8, 8), "ex.onnx")
    _same_as_reference(path, (2, 3, 8, 8))


@pytest.mark.parametrize("op_type", ["Add", "Sub"])
@pytest.mark.parametrize("first", [True, False])
def test_expand_as_feeding_a_sum_or_difference_is_the_broadcast(tmp_path, op_type, first):
    # A global context: x + ctx.expand_as(x), x - ctx.expand_as(x), either operand first
    operands = ["input", "e"] if first else ["e", "input"]
    path = _save(tmp_path, [
        helper.make_node("GlobalAveragePool", ["input"], ["g"]), helper.make_node("Tanh", ["g"], ["s"]),
        helper.make_node("Expand", ["s", "shape"], ["e"]), helper.make_node(op_type, operands, ["y"]),
    ], {"shape": np.array([1, 3, 8, 8], np.int64)}, (2, 3, 8, 8), "exa.onnx")
    graph = _same_as_reference(path, (2, 3, 8, 8))
    assert graph.op(graph.topological_order()[-1]).kind == op_type.lower()


def test_other_expands_are_listed(tmp_path):
    path = _save(tmp_path, [helper.make_node("Expand", ["input", "shape"], ["y"])],
                 {"shape": np.array([1, 3, 8, 8], np.int64)}, (2, 3, 1, 1), "ex2.onnx")
    with pytest.raises(ArchcostError, match="Expand \\(y: an Expand that does not feed one Mul, Add or Sub\\)"):
        load_onnx_weights(path)


def test_validate_with_the_files_weights_takes_input_and_refuses_options(tmp_path, capsys):
    path = net(tmp_path)
    # --input applies as to any model (the file's own input is 3x8x8); -o options do not exist for ONNX.
    assert main(["validate", str(path), "--weights", "file", "--input", "3x8x8", "--batch", "2"]) == 0
    capsys.readouterr()
    assert main(["validate", str(path), "--weights", "file", "-o", "depth=2"]) == 2
    assert "an ONNX model takes no -o options" in capsys.readouterr().err


def _resize_model(tmp_path, resize_node, inits, opset=17, shape=(2, 3, 5, 6)):
    """Conv -> (the resize) -> Conv, so the resize sits between layers with weights."""
    inits = {"w": f32(4, shape[1], 3, 3), "w2": f32(2, 4, 3, 3), **inits}
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             resize_node,
             helper.make_node("Conv", ["r", "w2"], ["y"], kernel_shape=[3, 3], pads=[1, 1, 1, 1])]
    graph = helper.make_graph(
        nodes, "resize", [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(np.asarray(v), k) for k, v in inits.items()])
    path = pathlib.Path(tmp_path) / "resize.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


EMPTY = np.array([], np.float32)
RESIZES = {
    # torch.onnx's F.interpolate(scale_factor=2) (HRNet's fusion), with the empty roi it writes
    "nearest x2 (torch)": (helper.make_node("Resize", ["c", "roi", "scales"], ["r"], mode="nearest",
                                            coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
                           {"roi": EMPTY, "scales": np.array([1, 1, 2, 2], np.float32)}, 17),
    # GhostNetV2's F.interpolate(size=...) to a size the ratio does not divide: 5x6 -> 7x11
    "nearest to a size": (helper.make_node("Resize", ["c", "", "", "sizes"], ["r"], mode="nearest",
                                           coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
                          {"sizes": np.array([2, 4, 7, 11], np.int64)}, 17),
    "nearest x1.5 float32 scale": (helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="nearest",
                                                    coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
                                   {"scales": np.array([1, 1, 1.5, 0.7], np.float32)}, 13),
    "bilinear (torch, align_corners=False)": (
        helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="linear",
                         coordinate_transformation_mode="pytorch_half_pixel"),
        {"scales": np.array([1, 1, 2, 2], np.float32)}, 17),
    "bilinear align_corners to a size": (
        helper.make_node("Resize", ["c", "", "", "sizes"], ["r"], mode="linear",
                         coordinate_transformation_mode="align_corners"),
        {"sizes": np.array([2, 4, 9, 4], np.int64)}, 17),
    "linear half_pixel, opset 18 axes": (
        helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="linear", axes=[2, 3]),
        {"scales": np.array([3, 0.5], np.float32)}, 18),
    "Upsample nearest (opset 9)": (helper.make_node("Upsample", ["c", "scales"], ["r"], mode="nearest"),
                                   {"scales": np.array([1, 1, 2, 3], np.float32)}, 9),
}


@pytest.mark.parametrize("case", RESIZES)
def test_resizes_run_as_the_reference_evaluator_computes_them(tmp_path, case):
    resize_node, inits, opset = RESIZES[case]
    path = _resize_model(tmp_path, resize_node, inits, opset)
    graph, params, outputs = load_onnx_weights(path)
    assert [graph.op(n).kind for n in graph.topological_order()].count("resize") == 1
    x = RNG.standard_normal((2, 3, 5, 6)).astype(np.float32)
    ours = Executor(graph, 2, "cpu", 0, params=params).forward(x).outputs[outputs["y"]]
    expected = ReferenceEvaluator(str(path)).run(None, {"input": x})[0]
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


REFUSED_RESIZES = {
    "cubic": (helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="cubic"), 17, "mode='cubic'"),
    "nearest round_prefer_floor": (helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="nearest"), 17,
                                   "nearest_mode='round_prefer_floor'"),
    "nearest half_pixel": (helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="nearest", nearest_mode="floor",
                                            coordinate_transformation_mode="half_pixel"), 17, "half_pixel"),
    "crop and resize": (helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="linear",
                                         coordinate_transformation_mode="tf_crop_and_resize"), 17,
                        "tf_crop_and_resize"),
    "antialias": (helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="linear", antialias=1), 18,
                  "antialias=1"),
    "opset 10": (helper.make_node("Resize", ["c", "scales"], ["r"], mode="nearest"), 10, "opset 10"),
    "Upsample linear": (helper.make_node("Upsample", ["c", "scales"], ["r"], mode="linear"), 9, "mode='linear'"),
}


@pytest.mark.parametrize("case", REFUSED_RESIZES)
def test_resizes_archcost_does_not_compute_are_refused_by_name(tmp_path, case, capsys):
    resize_node, opset, message = REFUSED_RESIZES[case]
    path = _resize_model(tmp_path, resize_node, {"scales": np.array([1, 1, 2, 2], np.float32)}, opset)
    assert main(["table", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and resize_node.op_type in err, err


def test_a_resize_of_the_channel_axis_is_refused(tmp_path, capsys):
    node = helper.make_node("Resize", ["c", "", "scales"], ["r"], mode="nearest",
                            coordinate_transformation_mode="asymmetric", nearest_mode="floor")
    path = _resize_model(tmp_path, node, {"scales": np.array([1, 2, 2, 2], np.float32)})
    assert main(["table", str(path)]) == 2
    assert "channel axis" in capsys.readouterr().err


def _pad_model(tmp_path, consumer, pads, mode="constant", value=None, opset=17, axes=None, pool_attrs=None):
    """Pad -> one Conv / MaxPool / AveragePool, as exporters write TF-style SAME padding."""
    inits = {"pads": np.array(pads, np.int64), "w": f32(4, 3, 3, 3)}
    ins = ["input", "pads"]
    if value is not None or axes is not None:
        ins.append("value" if value is not None else "")
        if value is not None:
            inits["value"] = np.array(value, np.float32)
    if axes is not None:
        ins.append("axes")
        inits["axes"] = np.array(axes, np.int64)
    nodes = [helper.make_node("Pad", ins, ["p"], mode=mode)]
    if consumer == "Conv":
        nodes.append(helper.make_node("Conv", ["p", "w"], ["y"], kernel_shape=[3, 3], strides=[2, 2]))
    else:
        nodes.append(helper.make_node(consumer, ["p"], ["y"], kernel_shape=[3, 3], strides=[2, 2],
                                      **(pool_attrs or {})))
    graph = helper.make_graph(
        nodes, "pad", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 3, 7, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = pathlib.Path(tmp_path) / "pad.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


PAD = [0, 0, 0, 1, 0, 0, 1, 1]  # SAME padding of a 3x3/2 window: bottom 1, left 1, right 1
FOLDED_PADS = {
    "zeros before a conv": dict(consumer="Conv", pads=PAD),
    "zeros given as a value": dict(consumer="Conv", pads=PAD, value=0.0),
    "-inf before a max pool (timm MaxPool2dSame)": dict(consumer="MaxPool", pads=PAD, value=-np.inf),
    "zeros before an average pool that counts only its input": dict(
        consumer="AveragePool", pads=PAD, pool_attrs={"count_include_pad": 0}),
    "opset 18 axes": dict(consumer="Conv", pads=[1, 1, 1, 1], opset=18, axes=[2, -1]),
}


@pytest.mark.parametrize("case", FOLDED_PADS)
def test_a_pad_folds_into_the_layer_only_where_it_computes_the_same(tmp_path, case):
    path = _pad_model(tmp_path, **FOLDED_PADS[case])
    graph, params, outputs = load_onnx_weights(path)
    assert len(graph) == 2  # the input and the one layer: the Pad is in its padding
    x = RNG.standard_normal((2, 3, 7, 8)).astype(np.float32) - 0.5  # negative values: zero pads show in a max
    ours = Executor(graph, 2, "cpu", 0, params=params).forward(x).outputs[outputs["y"]]
    expected = ReferenceEvaluator(str(path)).run(None, {"input": x})[0]
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)


UNFOLDED_PADS = {
    "reflect before a conv": dict(consumer="Conv", pads=PAD, mode="reflect"),
    "edge before a conv": dict(consumer="Conv", pads=PAD, mode="edge"),
    "wrap before a conv (opset 19)": dict(consumer="Conv", pads=PAD, mode="wrap", opset=19),
    "a value of 1.5 before a conv": dict(consumer="Conv", pads=PAD, value=1.5),
    "zeros before a max pool": dict(consumer="MaxPool", pads=PAD),
    "zeros before an average pool that pads too": dict(consumer="AveragePool", pads=PAD,
                                                       pool_attrs={"pads": [1, 1, 1, 1]}),
    "a crop before a conv": dict(consumer="Conv", pads=[0, 0, -1, 1, 0, 0, 2, -2]),
}


@pytest.mark.parametrize("case", UNFOLDED_PADS)
def test_a_pad_that_would_fold_into_something_else_is_a_pad_layer(tmp_path, case):
    # Before the Pad op, each was folded into the layer's padding (costed right, executed wrong),
    # then refused; now it is a Pad layer of its own before the layer, executed as the file means.
    path = _pad_model(tmp_path, **UNFOLDED_PADS[case])
    graph, params, outputs = load_onnx_weights(path)
    assert len(graph) == 3 and sum(isinstance(graph.op(n), ops.Pad) for n in graph.topological_order()) == 1
    x = RNG.standard_normal((2, 3, 7, 8)).astype(np.float32) - 0.5
    ours = Executor(graph, 2, "cpu", 0, params=params).forward(x).outputs[outputs["y"]]
    ort = pytest.importorskip("onnxruntime")  # onnx.reference (numpy.pad) takes no crop
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"input": x})[0]
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


def _norm_decoder(tmp_path, opset):
    """nn.GroupNorm as PyTorch writes it below opset 18 (Reshape to (N, groups, -1),
    InstanceNormalization with a scale of ones and a bias of zeros, Reshape back, Mul and Add of
    the learned per-channel weight and bias), a transposed conv (stride 2, asymmetric pads,
    output_padding, 2 groups), InstanceNormalization with learned scale and bias, and at opset 21
    a GroupNormalization."""
    inits = {"w": f32(8, 3, 3, 3), "g_shape": np.array([0, 4, -1], np.int64), "back": np.array([0, 8, 5, 6], np.int64),
             "ones": np.ones(4, np.float32), "zeros": np.zeros(4, np.float32),
             "gamma": f32(8, 1, 1, low=0.5, high=1.5), "beta": f32(8, 1, 1),
             "wt": f32(8, 3, 4, 3), "bt": f32(6), "s_in": f32(6, low=0.5, high=1.5), "b_in": f32(6)}
    nodes = [
        helper.make_node("Conv", ["input", "w"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["c", "g_shape"], ["g"]),
        helper.make_node("InstanceNormalization", ["g", "ones", "zeros"], ["gn"], epsilon=1e-5),
        helper.make_node("Reshape", ["gn", "back"], ["gb"]),
        helper.make_node("Mul", ["gb", "gamma"], ["gm"]),
        helper.make_node("Add", ["gm", "beta"], ["ga"]),
        helper.make_node("ConvTranspose", ["ga", "wt", "bt"], ["t"], kernel_shape=[4, 3], strides=[2, 2],
                         pads=[1, 0, 2, 1], output_padding=[1, 0], group=2),
        helper.make_node("InstanceNormalization", ["t", "s_in", "b_in"], ["y" if opset < 21 else "i"], epsilon=1e-3),
    ]
    if opset >= 21:
        inits.update(gs=f32(6, low=0.5, high=1.5), gbias=f32(6))
        nodes.append(helper.make_node("GroupNormalization", ["i", "gs", "gbias"], ["y"], num_groups=3, epsilon=1e-4))
    graph = helper.make_graph(
        nodes, "norms", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [2, 3, 5, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = pathlib.Path(tmp_path) / f"norms{opset}.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    return path


@pytest.mark.parametrize("opset", [17, 21])
def test_group_norms_and_transposed_convs_run_as_the_reference_evaluator_computes_them(tmp_path, opset):
    path = _norm_decoder(tmp_path, opset)
    graph, params, outputs = load_onnx_weights(path)
    kinds = [graph.op(n).kind for n in graph.topological_order()]
    assert kinds.count("affine") == 1 and "add" not in kinds and "convtranspose" in kinds
    norms = [graph.op(n) for n in graph.topological_order() if graph.op(n).kind == "gn"]
    # PyTorch's GroupNorm pattern: the ones and zeros are no parameters; the Mul and Add are.
    assert [(op.groups, op.affine) for op in norms] == [(4, False), (6, True)] + ([(3, True)] if opset >= 21 else [])
    x = RNG.standard_normal((2, 3, 5, 6)).astype(np.float32)
    ours = Executor(graph, 2, "cpu", 0, params=params).forward(x).outputs[outputs["y"]]
    # onnxruntime, not onnx.reference: the reference's grouped ConvTranspose reshapes its weight
    # wrongly (onnx 1.23.2: "cannot reshape array of size 108 into shape (1,4,36)").
    ort = pytest.importorskip("onnxruntime")
    expected = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    assert ours.shape == expected.shape == (2, 6, 10, 12)  # H: 4*2 - 3 + 3 + 1 + 1; W: 5*2 - 1 + 2 + 1
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("onnx_node,opset,message", [
    (helper.make_node("ConvTranspose", ["input", "w"], ["y"], output_shape=[9, 9]), 17, "output_shape"),
    (helper.make_node("ConvTranspose", ["input", "w"], ["y"], auto_pad="SAME_UPPER"), 17, "auto_pad"),
    (helper.make_node("GroupNormalization", ["input", "s", "b"], ["y"], num_groups=1), 18, "per-group scale"),
])
def test_group_norm_and_transposed_conv_forms_archcost_does_not_compute_are_refused(tmp_path, onnx_node, opset,
                                                                                    message, capsys):
    inits = {"w": f32(3, 2, 3, 3), "s": f32(1), "b": f32(1)}
    graph = helper.make_graph(
        [onnx_node], "m", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 5, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=[numpy_helper.from_array(v, k) for k, v in inits.items()])
    path = pathlib.Path(tmp_path) / "m.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)]), str(path))
    assert main(["table", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err, err


def test_a_factor_along_the_last_axis_of_a_channels_last_map_is_a_learned_scale(tmp_path):
    # EdgeNeXt's layer scale: a Permute to (N, H, W, C), then x * gamma with gamma of shape (C,);
    # then x * a + b along C again, then back to NCHW and a per-channel (C, 1, 1) factor.
    inits = {"gamma": f32(6, low=0.5, high=1.5), "a": f32(6, low=0.5, high=1.5), "b": f32(6),
             "k": f32(6, 1, 1, low=0.5, high=1.5)}
    nodes = [
        helper.make_node("Transpose", ["input"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Mul", ["nhwc", "gamma"], ["scaled"]),
        helper.make_node("Mul", ["scaled", "a"], ["ax"]),
        helper.make_node("Add", ["ax", "b"], ["axb"]),
        helper.make_node("Transpose", ["axb"], ["nchw"], perm=[0, 3, 1, 2]),
        helper.make_node("Mul", ["nchw", "k"], ["y"]),
    ]
    graph = _same_as_reference(_save(tmp_path, nodes, inits, (2, 6, 4, 5), "ls.onnx"), (2, 6, 4, 5))
    layers = [graph.op(n) for n in graph.topological_order()[1:]]
    assert [(op.kind, op.axis) for op in layers if op.kind in ("scale", "affine")] == [
        ("scale", 3), ("affine", 3), ("scale", 1)]
    from archcost.analysis import analyze

    assert analyze(graph).totals["params"] == 4 * 6  # gamma, a, b, k: 6 values each


def test_a_factor_along_two_axes_is_refused_by_shape(tmp_path):
    path = _save(tmp_path, [helper.make_node("Mul", ["input", "k"], ["y"])], {"k": f32(6, 4, 1)}, (2, 6, 4, 5),
                 "k2.onnx")
    with pytest.raises(ArchcostError, match=r"Mul \(y: a constant of shape \(6, 4, 1\)\)"):
        load_onnx_weights(path)


def _global_context(tmp_path):
    """GCNet's global-context block and a centred map as exports write them, all between
    activations: x + a transform of its pooled context (N, C, 1, 1), x less a per-position map
    (N, 1, H, W), a two-input Sum broadcasting the context's first operand."""
    inits = {"w": f32(6, 3, 3, 3), "b": f32(6), "t1": f32(3, 6, 1, 1), "t2": f32(6, 3, 1, 1), "m": f32(1, 6, 1, 1),
             "mb": f32(1)}
    nodes = [
        helper.make_node("Conv", ["input", "w", "b"], ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("ReduceMean", ["x"], ["ctx"], axes=[2, 3], keepdims=1),
        helper.make_node("Conv", ["ctx", "t1"], ["t"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["t"], ["tr"]),
        helper.make_node("Conv", ["tr", "t2"], ["term"], kernel_shape=[1, 1]),
        helper.make_node("Add", ["x", "term"], ["gc"]),
        helper.make_node("Conv", ["gc", "m", "mb"], ["map"], kernel_shape=[1, 1]),
        helper.make_node("Sub", ["map", "gc"], ["centred"]),
        helper.make_node("Sum", ["term", "centred"], ["y"]),
    ]
    return _save(tmp_path, nodes, inits, (2, 3, 6, 5), "gc.onnx")


def test_broadcast_adds_and_subs_run_as_onnxruntime_computes_them(tmp_path, capsys):
    path = _global_context(tmp_path)
    graph, params, outputs = load_onnx_weights(path)
    kinds = [graph.op(n).kind for n in graph.topological_order()]
    assert kinds.count("add") == 2 and kinds.count("sub") == 1
    x = RNG.standard_normal((2, 3, 6, 5)).astype(np.float32)
    ours = Executor(graph, 2, "cpu", 0, params=params).forward(x).outputs[outputs["y"]]
    expected = ReferenceEvaluator(str(path)).run(None, {"input": x})[0]
    assert ours.shape == expected.shape == (2, 6, 6, 5)
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
    ort = pytest.importorskip("onnxruntime")
    theirs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert main(["validate", str(path), "--weights", "file", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "-> ok" in out and "FAIL" not in out and "onnxruntime: output 'y'" in out


# Space-to-depth and depth-to-space as exports write them: Reshape to 6-D, Transpose, Reshape
# back (TResNet's stem and YOLOv5's Focus; ESPCN's PixelShuffle is CRD, DepthToSpace's default
# DCR). Their permutes merge to 5 axes, which the 6-axis permute kernels run.
SHUFFLES = {  # (conv channels, 6-D shape, perm, 4-D shape) on a (2, 3, 8, 6) input, batch -1
    "space_to_depth": (8, [-1, 8, 4, 2, 3, 2], [0, 3, 5, 1, 2, 4], [-1, 32, 4, 3]),
    "pixel_shuffle_crd": (8, [-1, 2, 2, 2, 8, 6], [0, 1, 4, 2, 5, 3], [-1, 2, 16, 12]),
    "depth_to_space_dcr": (8, [-1, 2, 2, 2, 8, 6], [0, 3, 4, 1, 5, 2], [-1, 2, 16, 12]),
}


def _shuffle(tmp_path, case):
    c, six, perm, four = SHUFFLES[case]
    inits = {"w": f32(c, 3, 3, 3), "b": f32(c), "six": np.array(six, np.int64), "four": np.array(four, np.int64),
             "w2": f32(5, four[1], 1, 1), "b2": f32(5)}
    return _save(tmp_path, [
        helper.make_node("Conv", ["input", "w", "b"], ["x"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Reshape", ["x", "six"], ["x6"]),
        helper.make_node("Transpose", ["x6"], ["t6"], perm=perm),
        helper.make_node("Reshape", ["t6", "four"], ["x4"]),
        helper.make_node("Conv", ["x4", "w2", "b2"], ["y"], kernel_shape=[1, 1]),
    ], inits, (2, 3, 8, 6), f"{case}.onnx")


@pytest.mark.parametrize("case", SHUFFLES)
def test_space_to_depth_and_depth_to_space_run_as_the_reference_and_onnxruntime_compute_them(tmp_path, case,
                                                                                           capsys):
    path = _shuffle(tmp_path, case)
    graph = _same_as_reference(path, (2, 3, 8, 6))
    permutes = [graph.op(n) for n in graph.topological_order() if graph.op(n).kind == "permute"]
    assert [p.dims for p in permutes] == [tuple(SHUFFLES[case][2])]
    graph, params, outputs = load_onnx_weights(path)
    x = RNG.standard_normal((2, 3, 8, 6)).astype(np.float32)
    ours = Executor(graph, 2, "cpu", 0, params=params).forward(x).outputs[outputs["y"]]
    ort = pytest.importorskip("onnxruntime")
    theirs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"input": x})[0]
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
    assert main(["validate", str(path), "--weights", "file", "--batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "-> ok" in out and "FAIL" not in out and "onnxruntime: output 'y'" in out
