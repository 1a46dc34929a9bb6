"""The Pad op (archcost/ops.py): its fields and refusals, shape, cost, backward and saving rules,
its index map against numpy.pad, its semantics against ONNX's own reference implementation
(onnx.reference) and onnxruntime, the receptive field through it, peer tools' counts, a graph
holding it executed and validated layer by layer (inference and training), and serialisation."""

import numpy as np
import pytest

from archcost import ops
from archcost.analysis import analyze
from archcost.errors import ShapeError
from archcost.graph import Graph
from archcost.kernels import cpu, reference
from archcost.kernels.reference_grad_tensor import pad_matrix
from archcost.receptive import receptive_fields
from tests.kernels.cases import PAD_CASES

P = ops.Pad


# --- fields and refusals ------------------------------------------------------------------------

def test_fields_normalise():
    assert P(2).pads == (2, 2, 2, 2)
    assert P((1, 3)).pads == (1, 1, 3, 3)
    assert P([1, 2, 3, 4]).pads == (1, 2, 3, 4)
    assert P((0, 0, 1, 1), value=2).value == 2.0 and isinstance(P(1, value=2).value, float)
    assert P(1) == P((1, 1, 1, 1), "constant", 0.0)


@pytest.mark.parametrize("kwargs,message", [
    (dict(pads=(1, 2, 3)), "Pad: pads must be an int, \\(h, w\\) or \\(top, bottom, left, right\\)"),
    (dict(pads=(1.0, 0, 0, 0)), "Pad: pads must be"),
    (dict(pads=True), "field 'pads' must be int or tuple"),
    (dict(pads="same"), "field 'pads' must be int or tuple"),
    (dict(pads=1, mode="symmetric"), "Pad: mode must be one of 'constant', 'reflect', 'edge', 'wrap'"),
    (dict(pads=1, mode=3), "field 'mode' must be str"),
    (dict(pads=1, value=float("nan")), "field 'value' must be a finite number"),
    (dict(pads=1, value="0"), "field 'value' must be float"),
    (dict(pads=1, mode="reflect", value=1.0), "value 1.0 is read only in mode 'constant'"),
    (dict(pads=1, value=-1e39), "value -1e\\+39 is past float32's range"),
    (dict(pads=(0, -1, 0, 0), mode="edge"), "crop \\(negative\\) in mode 'edge'"),
    (dict(pads=(0, 0, 2, -1), mode="wrap"), "crop \\(negative\\) in mode 'wrap'"),
])
def test_bad_fields_are_refused_by_name(kwargs, message):
    with pytest.raises(ShapeError, match=message):
        P(**kwargs)


def test_the_float32_limit_is_numpys():
    assert ops._FLOAT32_MAX == float(np.finfo(np.float32).max)
    assert P(1, value=float(np.finfo(np.float32).max)).value == ops._FLOAT32_MAX


def test_shape_rule():
    assert P((1, 2, 3, 4)).infer(((2, 3, 5, 6),)) == (2, 3, 8, 13)
    assert P((-1, -2, 0, 3), value=1).infer(((2, 3, 5, 6),)) == (2, 3, 2, 9)
    assert P((0, 0, 2, 1), "wrap").infer(((2, 3, 5),)) == (2, 3, 8)
    assert P((0, 0, 7, 9), "wrap").infer(((1, 1, 2),)) == (1, 1, 18)  # any amount
    assert P(5, "edge").infer(((1, 1, 1, 1),)) == (1, 1, 11, 11)
    assert P((1, 1, 2, 2), "reflect").infer(((1, 1, 2, 3),)) == (1, 1, 4, 7)  # size - 1 on both axes
    with pytest.raises(ShapeError, match="reflect pads \\(0, 3\\) of axis W must be less than its size 3"):
        P((0, 0, 0, 3), "reflect").infer(((1, 1, 5, 3),))
    with pytest.raises(ShapeError, match="reflect pads \\(1, 1\\) of axis H must be less than its size 1"):
        P(1, "reflect").infer(((1, 1, 1, 4),))
    with pytest.raises(ShapeError, match="reflect pads \\(5, 0\\) of axis L"):
        P((0, 0, 5, 0), "reflect").infer(((1, 1, 5),))
    with pytest.raises(ShapeError, match="crop axis H of 1x1x3x3 to 0"):
        P((-2, -1, 0, 0)).infer(((1, 1, 3, 3),))
    with pytest.raises(ShapeError, match="pad rows \\(top, bottom\\) of the \\(N, C, L\\) input 1x2x5"):
        P((1, 0, 0, 0)).infer(((1, 2, 5),))
    for bad in ((1, 2), (1, 2, 3, 4, 5)):
        with pytest.raises(ShapeError, match="Pad needs an \\(N, C, H, W\\) or \\(N, C, L\\) input"):
            P(1).infer((bad,))
    with pytest.raises(ShapeError, match="takes one input"):
        P(1).infer(((1, 1, 3, 3), (1, 1, 3, 3)))


@pytest.mark.parametrize("mode", ops.PAD_MODES)
def test_source_index_is_numpy_pad_of_the_indices(mode):
    """ops.Pad.source_index (what the kernels gather through) against numpy.pad of arange."""
    for size in (1, 2, 3, 5):
        for before in range(0, 2 * size + 3):
            for after in (0, 1, size - 1, 2 * size + 1):
                op = P((0, 0, before, after), mode)
                if mode == "reflect" and max(before, after) >= size:
                    continue
                kwargs = dict(constant_values=-1) if mode == "constant" else {}
                want = np.pad(np.arange(size), (before, after), mode=mode, **kwargs).tolist()
                assert [op.source_index(size, before, o) for o in range(size + before + after)] == want


def test_cost_is_a_copy():
    for op in (P(1), P((1, 2, 3, 4), "reflect"), P(2, "edge"), P(3, "wrap"), P((-1, 0, 1, 0), value=3)):
        cost = op.cost(((2, 3, 5, 6),), op.infer(((2, 3, 5, 6),)))
        assert (cost.macs, cost.other, cost.params, cost.buffers) == (0, 0, 0, 0)


def _adds_by_brute_force(op, x):
    """The adds of the data gradient from the reference's 0/1 matrices: an input element read by
    k outputs sums k gradients, k - 1 adds."""
    mats = [pad_matrix(op, size, b, a) for size, (b, a) in zip(x[2:], op.amounts(len(x)))]
    reads = mats[0].sum(axis=0) if len(mats) == 1 else np.outer(mats[0].sum(axis=0), mats[1].sum(axis=0))
    return int(x[0] * x[1] * np.maximum(reads - 1, 0).sum())


@pytest.mark.parametrize("case", PAD_CASES)
def test_backward_and_saving_rules(case):
    op, x = PAD_CASES[case]
    out = op.infer((x,))
    cost = op.backward((x,), out, (True,), True)
    assert (cost.data_macs, cost.weight_macs) == (0, 0)
    assert cost.other == _adds_by_brute_force(op, x)
    assert (cost.other == 0) == (op.mode == "constant")
    assert op.backward((x,), out, (False,), True).other == 0
    assert op.saves((x,), out, "archcost", (True,), True) == op.saves((x,), out, "archcost", (False,), True)
    saved = op.saves((x,), out, "archcost", (True,), True)
    assert saved.inputs == () and not saved.output and saved.extras == ()
    # PyTorch: reflection_pad2d / replication_pad2d backward read self (autograd keeps the input);
    # constant_pad_nd's reads only the pads; circular padding is narrow and cat (shapes only).
    torch_saved = op.saves((x,), out, "pytorch", (True,), True)
    assert torch_saved.inputs == ((0,) if op.mode in ("reflect", "edge") else ())
    assert op.saves((x,), out, "pytorch", (False,), True).inputs == ()


# --- the semantics against ONNX's reference and onnxruntime --------------------------------

def _onnx_model(shape, op: ops.Pad):
    from onnx import TensorProto, helper

    rank = len(shape)
    begins = [0, 0] + [b for b, _ in op.amounts(rank)]
    ends = [0, 0] + [a for _, a in op.amounts(rank)]
    inits = [helper.make_tensor("pads", TensorProto.INT64, [2 * rank], begins + ends)]
    inputs = ["x", "pads"]
    if op.mode == "constant":
        inits.append(helper.make_tensor("value", TensorProto.FLOAT, [], [op.value]))
        inputs.append("value")
    node = helper.make_node("Pad", inputs, ["y"], mode=op.mode)
    graph = helper.make_graph([node], "pad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


@pytest.mark.parametrize("case", PAD_CASES)
def test_matches_onnx_reference_and_onnxruntime(case):
    """The kernel and archcost's float64 reference, bit-equal (a copy) to onnx.reference and
    onnxruntime; onnx.reference (numpy.pad) takes no negative pads, so crops meet onnxruntime only."""
    import onnxruntime
    from onnx.reference import ReferenceEvaluator

    op, shape = PAD_CASES[case]
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    out_shape = op.infer((shape,))
    adapter = cpu.ADAPTERS[ops.Pad]
    out = np.full(out_shape, np.nan, np.float32)
    adapter.run(op, adapter.prepare(op, (shape,), out_shape, {}), [x], out)
    ref = reference.forward(op, [x], {}, out_shape)
    model = _onnx_model(shape, op)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    onnx_rt = session.run(None, {"x": x})[0]
    assert onnx_rt.shape == out.shape == out_shape
    assert (out == onnx_rt).all() and (ref == out).all()
    if min(op.pads) >= 0:
        onnx_ref = ReferenceEvaluator(model).run(None, {"x": x})[0]
        assert (out == onnx_ref).all()


def test_onnx_implementations_disagree_where_reflect_is_refused():
    """Why infer refuses reflect pads of the axis size or more: onnx.reference (numpy) reflects
    again, onnxruntime refuses."""
    import onnxruntime
    from onnx.reference import ReferenceEvaluator

    op, shape = P((0, 0, 4, 0), "reflect"), (1, 1, 1, 3)
    x = np.arange(3, dtype=np.float32).reshape(shape)
    model = _onnx_model(shape, op)
    assert ReferenceEvaluator(model).run(None, {"x": x})[0].ravel().tolist() == [0, 1, 2, 1, 0, 1, 2]
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    with pytest.raises(Exception, match="reflect"):
        session.run(None, {"x": x})
    with pytest.raises(ShapeError, match="must be less than its size 3"):
        op.infer((shape,))


# --- receptive field ------------------------------------------------------------------------

def _chain(*layers, shape=(2, 16, 16)):
    g = Graph("chain")
    x = g.input(shape)
    for op in layers:
        x = g.add(op, x)
    return g


def _last_field(g):
    from archcost.analysis import infer_shapes

    return receptive_fields(g, infer_shapes(g))[g.output_nodes()[-1]]


@pytest.mark.parametrize("mode", ops.PAD_MODES)
def test_field_of_a_pad_then_conv_is_the_padded_conv(mode):
    """Pad (top 2, left 1) then a 3x3/2 conv: the field (size, jump, start) of the conv padding
    2 rows above and 1 column left itself, in every mode (the pass places windows, as it ignores
    what a padded position reads)."""
    padded = _chain(P((2, 0, 1, 0), mode), ops.Conv2d(4, 3, stride=2), ops.Conv2d(4, 3))
    direct = _chain(ops.Conv2d(4, 3, stride=2, padding=(2, 0, 1, 0)), ops.Conv2d(4, 3))
    assert _last_field(padded) == _last_field(direct)
    # by hand: the first conv's output 0 reads input rows -2..0 (centre -1) and columns -1..1
    # (centre 0); the second's output 0 reads three of those, 2 apart: centres 1 and 2, 7 rows.
    field = _last_field(padded)
    assert (field.size_h, field.jump_h, field.start_h, field.start_w) == (7, 2, 1.0, 2.0)


def test_field_of_a_crop_moves_the_start():
    field = _last_field(_chain(P((-3, 0, -1, 0)), ops.Conv2d(2, 3)))
    assert (field.size_h, field.size_w, field.start_h, field.start_w) == (3, 3, 4.0, 2.0)


def test_field_on_a_1d_map_pads_along_l():
    g = _chain(P((0, 0, 2, 0), "reflect"), shape=(3, 9))
    field = _last_field(g)
    assert (field.size_w, field.start_w, field.start_h) == (1, -2.0, 0.0)


# --- graphs: validation in inference and training ---------------------------------------------

def _padded_net():
    """Every mode: a reflect-padded conv (CycleGAN's ResNet blocks), an edge pad, a wrap pad, a
    constant pad of 0.5 and a crop, an (N, C, L) pad, merged with an add."""
    g = Graph("pads")
    x = g.input((3, 9, 8))
    a = g.seq(x, P(1, "reflect"), ops.Conv2d(4, 3), ops.Activation("relu"))
    b = g.seq(a, P((2, 0, 0, 1), "edge"), P((0, 1, 3, 0), "wrap"), ops.Conv2d(4, 3, padding=0))
    c = g.seq(b, P((1, -1, -2, 1), value=0.5))
    d = g.seq(c, ops.Reshape((4, -1)), P((0, 0, 2, 3), "reflect"), ops.Reshape((4, 1, -1)))
    g.add(ops.Conv2d(2, 1), d)
    return g


def test_a_graph_with_pads_validates_layer_by_layer():
    from archcost.validation import validate

    for batch in (1, 2):
        result = validate(_padded_net(), batch=batch)
        assert result.ok, [(c.name, c.problem) for c in result.failures]


def test_a_graph_with_pads_trains_one_step_layer_by_layer():
    """Training: the forward and each layer's gradients against the float64 references, and the
    measured peak against the predicted one (pads keep nothing)."""
    from archcost.validation import validate_training

    g = _padded_net()
    g.seq(g.output_nodes()[-1], ops.GlobalAvgPool(), ops.Flatten(), ops.Linear(3))
    result = validate_training(g, batch=2)
    assert result.ok, ([(c.name, c.problem) for c in result.failures], result.peak_bytes, result.predicted_peak_bytes)


# --- peer tools' counts (archcost/conventions.py) -----------------------------------------------

@pytest.mark.parametrize("op", [P(1), P((1, 2, 3, 4), "reflect"), P(2, "edge"), P(3, "wrap"), P(1, value=2.0)])
def test_peer_tools_count_nothing(op):
    """nn.ZeroPad2d (thop: zero_ops), ConstantPad2d, ReflectionPad2d, ReplicationPad2d and
    CircularPad2d (no hook in any tool; aten constant_pad_nd / reflection_pad2d /
    replication_pad2d have no fvcore handle and no flop_counter formula): 0 everywhere, as
    archcost (no MACs, no other ops, no params)."""
    from archcost import conventions

    g = Graph("pad")
    g.add(op, g.input((3, 8, 8)))
    report = analyze(g)
    counts = {name: conventions.layer_counts(report, name)[-1] for name in conventions.CONVENTIONS
              if conventions.get(name).base == "macs"}
    assert counts and set(counts.values()) == {0}, counts


# --- serialisation (archcost/formats, generic over ops.OPS) ---------------------------------------

def test_a_graph_with_pads_round_trips_through_yaml_and_node_link_json():
    import yaml

    from archcost.formats.export import to_json as graph_json
    from archcost.formats.export import to_yaml
    from archcost.formats.nodelink import graph_to_node_link
    from archcost.formats.spec import build_spec

    g = _padded_net()
    back = build_spec(yaml.safe_load(to_yaml(g)))
    assert [back.op(n) for n in back.topological_order()] == [g.op(n) for n in g.topological_order()]
    assert '"pad"' in graph_json(g) and graph_to_node_link(g)


def test_a_spec_writes_a_pad_by_kind():
    from archcost.formats.spec import build_spec

    g = build_spec({"name": "p", "input": [3, 8, 8],
                    "layers": [{"pad": {"pads": [1, 2, 0, 3], "mode": "reflect"}}, {"conv": {"out_channels": 4}}]})
    ops_ = [g.op(n) for n in g.topological_order()]
    assert P((1, 2, 0, 3), "reflect") in ops_


def test_labels():
    assert P(1, "reflect").label() == "pad reflect 1,1,1,1"
    assert P((0, 1, -1, 2), value=0.5).label() == "pad constant 0,1,-1,2 =0.5"
