"""The Resize op (archcost/ops.py): its fields and refusals, shape, cost, backward and saving
rules, its semantics against ONNX's own reference implementation (onnx.reference) and
onnxruntime, the receptive field through it (exact fractions), and a graph holding it executed
and validated layer by layer (inference and training)."""

import json
import math

import numpy as np
import pytest

from archcost import ops
from archcost.analysis import analyze, infer_shapes
from archcost.errors import ShapeError
from archcost.graph import Graph
from archcost.kernels import cpu, reference
from archcost.receptive import receptive_fields
from archcost.report.table import layer_table, rf_text, to_json
from tests.kernels.cases import RESIZE_CASES

R = ops.Resize


# --- fields and refusals ------------------------------------------------------------------------

def test_fields_normalise_and_default_coord():
    assert R(size=7) == R(size=(7, 7))
    assert R(scale=(2, 4)).scale == (2.0, 4.0)
    assert R(scale=(2, 2)).coord == "asymmetric"
    assert R(size=(3, 3), mode="linear").coord == "half_pixel"
    assert R(size=(3, 3), mode="linear", coord="align_corners").coord == "align_corners"


@pytest.mark.parametrize("kwargs,message", [
    (dict(), "exactly one of size and scale"),
    (dict(size=(2, 2), scale=(2, 2)), "exactly one of size and scale"),
    (dict(size=(0, 2)), "size must be a positive int"),
    (dict(size=(2, 2, 2)), "size must be an int or a pair"),
    (dict(scale=(2.0,)), "scale must be two positive numbers"),
    (dict(scale=(2.0, -1.0)), "scale must be two positive numbers"),
    (dict(scale=(2.0, float("inf"))), "field 'scale'"),
    (dict(size=(2, 2), mode="cubic"), "mode must be one of 'nearest', 'linear'"),
    (dict(size=(2, 2), coord="half_pixel"), "coord must be one of 'asymmetric' for mode 'nearest'"),
    (dict(size=(2, 2), mode="linear", coord="asymmetric"), "coord must be one of 'half_pixel'"),
    (dict(size=(2, 2), mode="linear", coord="tf_crop_and_resize"), "coord must be one of"),
    (dict(size=(2, 2), coord=3), "field 'coord' must be str or None"),
])
def test_bad_fields_are_refused_by_name(kwargs, message):
    with pytest.raises(ShapeError, match=message):
        R(**kwargs)


def test_shape_rule():
    assert R(size=(7, 5)).infer(((2, 3, 3, 9),)) == (2, 3, 7, 5)
    assert R(scale=(2, 4)).infer(((2, 3, 3, 9),)) == (2, 3, 6, 36)
    assert R(scale=(1.5, 0.5)).infer(((1, 1, 5, 5),)) == (1, 1, 7, 2)  # floor(7.5), floor(2.5)
    assert R(scale=(1 / 3, 1 / 3)).infer(((1, 1, 9, 9),)) == (1, 1, 2, 2)  # 9 * (a bit under 1/3)
    with pytest.raises(ShapeError, match="an empty output"):
        R(scale=(0.25, 1)).infer(((1, 1, 3, 3),))
    with pytest.raises(ShapeError, match="needs an \\(N, C, H, W\\) input"):
        R(size=(2, 2)).infer(((1, 4),))
    with pytest.raises(ShapeError, match="takes one input"):
        R(size=(2, 2)).infer(((1, 1, 2, 2), (1, 1, 2, 2)))


def test_align_corners_with_a_scale_that_is_not_a_whole_size_is_refused():
    # 5 * 1.5 = 7.5: onnx.reference divides by 6.5, onnxruntime by 6 (checked below)
    op = R(scale=(1.5, 2.0), mode="linear", coord="align_corners")
    assert op.infer(((1, 1, 4, 3),)) == (1, 1, 6, 6)
    with pytest.raises(ShapeError, match="align_corners.*not a whole output size.*give size"):
        op.infer(((1, 1, 5, 3),))


# --- cost, backward and saving rules --------------------------------------------------------

def test_cost_rules():
    x, out = (2, 3, 5, 6), (2, 3, 10, 12)
    nearest = R(scale=(2, 2)).cost((x,), out)
    assert (nearest.macs, nearest.other, nearest.params) == (0, 0, 0)
    linear = R(scale=(2, 2), mode="linear").cost((x,), out)
    # 7 per output element (4 corner products, 3 adds), 4 per output position of each sample
    # (the corner weights, shared by the 3 channels)
    assert (linear.macs, linear.params) == (0, 0)
    assert linear.other == 7 * 2 * 3 * 10 * 12 + 4 * 2 * 10 * 12


def test_backward_and_saving_rules():
    x, out = (2, 3, 5, 6), (2, 3, 10, 12)
    for mode, other in (("nearest", 2 * 3 * 10 * 12), ("linear", 8 * 2 * 3 * 10 * 12 + 4 * 2 * 10 * 12)):
        op = R(scale=(2, 2), mode=mode)
        cost = op.backward((x,), out, (True,), True)
        assert (cost.data_macs, cost.weight_macs, cost.other) == (0, 0, other)
        assert op.backward((x,), out, (False,), True).other == 0
        for policy in ops.POLICIES:  # shapes only
            saved = op.saves((x,), out, policy, (True,), True)
            assert saved.inputs == () and not saved.output and saved.extras == ()


# --- the semantics against ONNX's reference and onnxruntime --------------------------------

def _onnx_model(shape, op: ops.Resize):
    from onnx import TensorProto, helper

    inputs, inits = ["x", ""], []
    if op.scale is not None:
        inputs.append("scales")
        inits.append(helper.make_tensor("scales", TensorProto.FLOAT, [4], [1.0, 1.0, *op.scale]))
    else:
        inputs += ["", "sizes"]
        inits.append(helper.make_tensor("sizes", TensorProto.INT64, [4], [*shape[:2], *op.size]))
    attrs = dict(mode=op.mode, coordinate_transformation_mode=op.coord)
    if op.mode == "nearest":
        attrs["nearest_mode"] = "floor"
    node = helper.make_node("Resize", inputs, ["y"], **attrs)
    graph = helper.make_graph([node], "resize", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


F32_SCALE = (float(np.float32(1.7)), float(np.float32(0.3)))
ONNX_CASES = {
    **{name: case for name, case in RESIZE_CASES.items()},
    # HRNet's x8 and a large non-integer ratio both ways, and scales whose product is fractional
    "nearest x8": (R(scale=(8, 8)), (1, 2, 2, 3)),
    "nearest 13->29, 29->13": (R(size=(29, 13)), (1, 1, 13, 29)),
    "linear 13->29, 29->13": (R(size=(29, 13), mode="linear"), (1, 1, 13, 29)),
    "linear pytorch 5->11, 11->5": (R(size=(11, 5), mode="linear", coord="pytorch_half_pixel"), (1, 1, 5, 11)),
    "linear align 13->29, 29->13": (R(size=(29, 13), mode="linear", coord="align_corners"), (1, 1, 13, 29)),
    # ONNX's scales are float32: the op holds their exact values (0.3f is a bit over 0.3, so
    # 10 * 0.3f floors to 3; the double 0.3, a bit under, would floor to 2)
    "linear scale 1.7f, 0.3f": (R(scale=F32_SCALE, mode="linear"), (1, 1, 7, 10)),
    "nearest scale 1.7f, 0.3f": (R(scale=F32_SCALE), (1, 1, 7, 10)),
}


@pytest.mark.parametrize("case", ONNX_CASES)
def test_matches_onnx_reference_and_onnxruntime(case):
    """The kernel and archcost's float64 reference against onnx.reference (ONNX's own Python
    implementation of the spec) and onnxruntime, for every mode, size and scale forms."""
    from onnx.reference import ReferenceEvaluator
    import onnxruntime

    op, shape = ONNX_CASES[case]
    x = np.random.default_rng(11).standard_normal(shape).astype(np.float32)
    out_shape = op.infer((shape,))
    adapter = cpu.ADAPTERS[ops.Resize]
    out = np.full(out_shape, np.nan, np.float32)
    adapter.run(op, adapter.prepare(op, (shape,), out_shape, {}), [x], out)
    ref = reference.forward(op, [x], {}, out_shape)
    model = _onnx_model(shape, op)
    onnx_ref = ReferenceEvaluator(model).run(None, {"x": x})[0]
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_rt = session.run(None, {"x": x})[0]
    assert onnx_ref.shape == onnx_rt.shape == out.shape == out_shape
    if op.mode == "nearest":  # a copy: bit-equal, and every index the same
        assert (out == onnx_ref).all() and (out == onnx_rt).all() and (ref == out).all()
    else:
        # onnx.reference takes its coordinates in float64 and rounds its output to float32;
        # onnxruntime computes coordinates and weights in float32 (errors of a few 1e-7 in a
        # weight on inputs of size ~3).
        np.testing.assert_allclose(out, onnx_ref, rtol=0, atol=1e-6)
        np.testing.assert_allclose(ref, onnx_ref, rtol=0, atol=1e-6)
        np.testing.assert_allclose(out, onnx_rt, rtol=0, atol=1e-5)


def test_onnx_implementations_disagree_where_align_corners_is_refused():
    """Why infer refuses align_corners with a scale whose product is not whole: the two
    implementations give different answers there."""
    from onnx.reference import ReferenceEvaluator
    import onnxruntime

    op, shape = R(scale=(1.5, 1.0), mode="linear", coord="align_corners"), (1, 1, 5, 2)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    model = _onnx_model(shape, op)
    onnx_ref = ReferenceEvaluator(model).run(None, {"x": x})[0]
    onnx_rt = onnxruntime.InferenceSession(model.SerializeToString(),
                                           providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.abs(onnx_ref - onnx_rt).max() > 1e-3


# --- receptive field ------------------------------------------------------------------------

def _chain(*layers, hw=16):
    g = Graph("chain")
    x = g.input((2, hw, hw))
    for op in layers:
        x = g.add(op, x)
    return g


def _brute_force_field(graph, axis=0) -> int:
    """The most input rows any output unit depends on, by composing the 0/1 dependency matrix of
    each layer along H (convs: their band; a resize: the nonzero pattern of the reference's
    interpolation matrix, every tap it reads)."""
    shapes = infer_shapes(graph)
    order = graph.topological_order()
    dep = np.eye(shapes[order[0]][2], dtype=np.int64)
    for node in order[1:]:
        op = graph.op(node)
        h_in, h_out = shapes[graph.inputs(node)[0]][2], shapes[node][2]
        if isinstance(op, ops.Conv2d):
            step = np.zeros((h_out, h_in), np.int64)
            top = op.pads(h_in, h_in)[0]
            for i in range(h_out):
                for k in range(op.kernel[0]):
                    r = i * op.stride[0] - top + k * op.dilation[0]
                    if 0 <= r < h_in:
                        step[i, r] = 1
        else:
            step = np.zeros((h_out, h_in), np.int64)
            for i in range(h_out):  # every tap read, even one of weight 0
                lo, hi, _ = op.source_index(0, h_in, h_out, i)
                step[i, lo] = step[i, hi] = 1
        dep = (step @ dep > 0).astype(np.int64)
    return int(dep.sum(axis=1).max())


def test_field_conv_stride2_nearest_x2_conv():
    """conv 3x3/2 (field 3, jump 2) -> nearest x2 (one input unit per output: field 3, jump 1)
    -> conv 3x3 (3 + 2 * 1 = 5, jump 1). By hand: output x reads upsampled x-1..x+1, which are
    conv units floor((x-1)/2)..floor((x+1)/2), two adjacent ones, 2 apart: 3 + 2 = 5 pixels."""
    g = _chain(ops.Conv2d(2, 3, stride=2, padding=1), R(scale=(2, 2)), ops.Conv2d(2, 3, padding=1))
    fields = receptive_fields(g, infer_shapes(g))
    conv1, up, conv2 = (fields[n] for n in g.topological_order()[1:])
    assert (conv1.size_h, conv1.jump_h, conv1.start_h) == (3, 2, 0.0)
    assert (up.size_h, up.jump_h, up.start_h) == (3, 1, 0.0)
    assert (conv2.size_h, conv2.size_w, conv2.jump_h, conv2.start_h) == (5, 5, 1, 0.0)
    assert all(type(v) is int for v in conv2[:4])  # whole again: ints, as without a resize
    assert _brute_force_field(g) == 5


def test_field_conv_stride2_linear_x2_conv():
    """conv 3x3/2 (3, jump 2) -> bilinear x2, half_pixel: each output reads two adjacent conv
    units, the first two for output 0 (x_orig = -0.25, clamped to 0): field 3 + 2 = 5, jump 1,
    start 0 + (0 + 1/2) * 2 = 1 -> conv 3x3: 5 + 2 = 7, start 1. By hand: output 2m + 1 reads
    upsampled 2m..2m+2, whose taps are conv units m-1..m+1: 3 units, 2 apart: 3 + 4 = 7."""
    g = _chain(ops.Conv2d(2, 3, stride=2, padding=1), R(scale=(2, 2), mode="linear"), ops.Conv2d(2, 3, padding=1))
    fields = receptive_fields(g, infer_shapes(g))
    _, up, conv2 = (fields[n] for n in g.topological_order()[1:])
    assert (up.size_h, up.jump_h, up.start_h) == (5, 1, 1.0)
    assert (conv2.size_h, conv2.jump_h, conv2.start_h) == (7, 1, 1.0)
    assert _brute_force_field(g) == 7


def test_field_after_upsampling_is_fractional_and_prints():
    """conv 3x3 (3, jump 1) -> nearest x4 (jump 1/4) -> conv 3x3: 3 + 2/4 = 3.5, jump 0.25."""
    g = _chain(ops.Conv2d(2, 3, padding=1), R(scale=(4, 4)), ops.Conv2d(2, 3, padding=1), hw=6)
    last = receptive_fields(g, infer_shapes(g))[g.topological_order()[-1]]
    assert (last.size_h, last.jump_h) == (3.5, 0.25)
    report = analyze(g)
    assert rf_text(report.records[-1]) == "3.5x3.5"
    assert "3.5x3.5" in layer_table(report)
    data = json.loads(json.dumps(to_json(report)))  # floats, never Fractions: JSON holds them
    assert json.dumps(data).count("3.5") >= 1
    # The slope's field is under the largest unit's by less than one input jump here (s = 4
    # does not divide k - 1 = 2: 3 consecutive outputs of floor(x / 4) may span 2 units).
    assert _brute_force_field(g) - last.size_h < 1


def test_field_of_a_non_integer_ratio_is_exact():
    """nearest 3 -> 7 then a 3x3 conv: jump 3/7 exactly; the field 1 + 2 * 3/7 = 13/7."""
    g = _chain(R(size=(7, 7)), ops.Conv2d(2, 3, padding=1), hw=3)
    last = receptive_fields(g, infer_shapes(g))[g.topological_order()[-1]]
    assert last.jump_h == 3 / 7 and math.isclose(last.size_h, 13 / 7, rel_tol=0, abs_tol=1e-15)


def test_field_of_a_downsampling_linear_resize_and_without_one_unchanged():
    # 7 -> 3 align_corners: slope (7-1)/(3-1) = 3, two taps: size 1 + 1 = 2, jump 3
    g = _chain(R(size=(3, 3), mode="linear", coord="align_corners"), hw=7)
    last = receptive_fields(g, infer_shapes(g))[g.topological_order()[-1]]
    assert (last.size_h, last.jump_h, last.start_h) == (2, 3, 0.5)
    assert _brute_force_field(g) == 2


# --- a graph holding it, executed -------------------------------------------------------------

def _hrnet_like():
    """An HRNet-style fusion: a low-resolution branch upsampled (nearest x2, and bilinear to an
    odd size) and added to the high-resolution one."""
    g = Graph("fusion")
    x = g.input((3, 12, 12))
    high = g.add(ops.Conv2d(4, 3, padding=1), x)
    low = g.seq(high, ops.Conv2d(4, 3, stride=2, padding=1), ops.Activation("relu"))
    up = g.add(R(scale=(2, 2)), low)
    fused = g.add(ops.Add(), high, up)
    small = g.add(R(size=(5, 7), mode="linear", coord="align_corners"), fused)
    g.seq(small, R(size=(12, 12), mode="linear"), ops.Conv2d(2, 1))
    return g


def test_a_graph_with_resizes_validates_layer_by_layer():
    from archcost.validation import validate

    for batch in (1, 2):
        result = validate(_hrnet_like(), batch=batch)
        assert result.ok, [(c.name, c.problem) for c in result.failures]


def test_a_graph_with_resizes_trains_one_step_layer_by_layer():
    """Training: the forward and each layer's gradients against the float64 references, and the
    measured peak against the predicted one (resizes keep nothing)."""
    from archcost.validation import validate_training

    g = _hrnet_like()
    g.seq(g.output_nodes()[-1], ops.GlobalAvgPool(), ops.Flatten(), ops.Linear(3))
    result = validate_training(g, batch=2)
    assert result.ok, ([(c.name, c.problem) for c in result.failures], result.peak_bytes, result.predicted_peak_bytes)


# --- peer tools' counts (archcost/conventions.py) -----------------------------------------------

def _resize_layer(op, x_shape, torch="default"):
    g = Graph("up")
    x = g.input(x_shape)
    g.add(op, x, torch=torch)
    return analyze(g)


@pytest.mark.parametrize("op,torch,expected", [
    # (1, 3, 8, 8) -> 3 x 16 x 16 = 768 outputs; the input has 192 elements. thop, ptflops and
    # fvcore were measured on the same nn.Upsample / F.interpolate calls (benchmarks/
    # peer_conventions.py --ops; ptflops 0.7.5, fvcore 0.1.5, thop 0.1.1); calflops by reading.
    # thop: nn.Upsample's count_upsample: nearest 1, bilinear 11 per output; F.interpolate unseen.
    # ptflops: the nn.Upsample hook (768) plus the patched F.interpolate it calls (768); a bare
    # F.interpolate only the latter. fvcore: aten::upsample_nearest2d 1, _bilinear2d 4 per output.
    # calflops: F.interpolate with a scale factor counts the input (192); with a size, Ho * Wo.
    (R(scale=(2, 2)), "default", dict(thop=768, ptflops=1536, fvcore=768, calflops=192)),
    (R(scale=(2, 2)), "functional", dict(thop=0, ptflops=768, fvcore=768, calflops=192)),
    (R(scale=(2, 2), mode="linear"), "default", dict(thop=11 * 768, ptflops=1536, fvcore=4 * 768, calflops=192)),
    (R(size=(16, 16), mode="linear"), "functional", dict(thop=0, ptflops=768, fvcore=4 * 768, calflops=256)),
    # per-axis factors (1.5, 0.75) -> 12 x 6: ptflops multiplies the input by
    # np.prod((1.5, 0.75), dtype=np.int64), which truncates each factor: 1 * 0 = 0
    (R(scale=(1.5, 0.75)), "default", dict(thop=216, ptflops=216, fvcore=216, calflops=192)),
])
def test_peer_tool_counts(op, torch, expected):
    from archcost import conventions

    report = _resize_layer(op, (3, 8, 8), torch)
    got = {name: conventions.layer_counts(report, name)[-1] for name in expected}
    assert got == expected
    others = set(conventions.CONVENTIONS) - set(expected) - {"archcost-other", "archcost-flops"}
    counts = [conventions.layer_counts(report, name)[-1] for name in others if conventions.get(name).base == "macs"]
    assert counts == [0] * len(counts)  # no MACs, no params: torchinfo, torchscan, flop_counter 0


# --- serialisation (archcost/formats, generic over ops.OPS) ---------------------------------------

def test_a_graph_with_resizes_round_trips_through_yaml_and_node_link_json():
    import yaml

    from archcost.formats.export import to_json as graph_json
    from archcost.formats.export import to_yaml
    from archcost.formats.nodelink import graph_to_node_link
    from archcost.formats.spec import build_spec

    g = _hrnet_like()
    g.add(R(scale=(float(np.float32(0.3)), 2.0), mode="linear"), g.output_nodes()[-1])  # a float32 scale, exact
    back = build_spec(yaml.safe_load(to_yaml(g)))
    assert [back.op(n) for n in back.topological_order()] == [g.op(n) for n in g.topological_order()]
    assert "resize" in graph_json(g) and graph_to_node_link(g)


def test_labels():
    assert R(scale=(4, 4)).label() == "resize nearest x4"
    assert R(scale=(1.5, 0.75), mode="linear").label() == "resize linear x1.5,0.75"
    assert R(size=(7, 3)).label() == "resize nearest 7x3"
