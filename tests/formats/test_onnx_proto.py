"""archcost's own ONNX decoder (archcost/formats/onnx_proto.py) against protobuf and onnx: the
same field numbers and types as onnx.proto, the same decoded values on real and hand-made
messages, the same tensor values and attribute values as onnx.numpy_helper and onnx.helper."""

import subprocess
import sys

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
from google.protobuf.descriptor import FieldDescriptor  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from archcost.formats import onnx_proto as P  # noqa: E402

PAIRS = [(P.Model, onnx.ModelProto), (P.Graph, onnx.GraphProto), (P.Node, onnx.NodeProto),
         (P.Attribute, onnx.AttributeProto), (P.Tensor, onnx.TensorProto), (P.SparseTensor, onnx.SparseTensorProto),
         (P.ValueInfo, onnx.ValueInfoProto), (P.Type, onnx.TypeProto), (P.TensorType, onnx.TypeProto.Tensor),
         (P.TensorShape, onnx.TensorShapeProto), (P.Dimension, onnx.TensorShapeProto.Dimension),
         (P.OperatorSetId, onnx.OperatorSetIdProto), (P.StringStringEntry, onnx.StringStringEntryProto),
         (P.Segment, onnx.TensorProto.Segment)]
KINDS = {FieldDescriptor.TYPE_INT64: P._INT64, FieldDescriptor.TYPE_INT32: P._INT32,
         FieldDescriptor.TYPE_ENUM: P._ENUM, FieldDescriptor.TYPE_UINT64: P._UINT64,
         FieldDescriptor.TYPE_FLOAT: P._FLOAT, FieldDescriptor.TYPE_DOUBLE: P._DOUBLE,
         FieldDescriptor.TYPE_STRING: P._STRING, FieldDescriptor.TYPE_BYTES: P._BYTES,
         FieldDescriptor.TYPE_MESSAGE: P._MESSAGE}
OURS = {pb.DESCRIPTOR.full_name: ours for ours, pb in PAIRS}


def _repeated(fd) -> bool:
    return fd.is_repeated if hasattr(fd, "is_repeated") else fd.label == FieldDescriptor.LABEL_REPEATED


@pytest.mark.parametrize("ours, pb", PAIRS, ids=[p[1].DESCRIPTOR.name for p in PAIRS])
def test_every_field_has_onnx_protos_number_and_type(ours, pb):
    by_number = {fd.number: fd for fd in pb.DESCRIPTOR.fields}
    for number, (name, kind, repeated, sub) in ours.FIELDS.items():
        fd = by_number[number]
        assert fd.name == name
        assert KINDS[fd.type] == kind, name
        assert _repeated(fd) == repeated, name
        if kind == P._MESSAGE and sub.FIELDS:  # opaque members (sequence types...) are not decoded
            assert OURS[fd.message_type.full_name] is sub, name
        if kind == P._ENUM:
            assert ours.ENUM_VALUES[name] == {v.number for v in fd.enum_type.values}, name
    for group, members in ours.ONEOFS.items():
        assert set(members) <= {fd.name for fd in pb.DESCRIPTOR.oneofs_by_name[group].fields}


def test_the_type_names_and_opset_are_onnxs():
    assert P.DATA_TYPE_NAMES == {v.number: v.name for v in TensorProto.DataType.DESCRIPTOR.values}
    assert P.EXTERNAL == TensorProto.EXTERNAL
    assert {t: f for t, (f, _) in P.ATTRIBUTE_FIELDS.items()} == {
        v.number: {"FLOAT": "f", "INT": "i", "STRING": "s", "TENSOR": "t", "GRAPH": "g", "TYPE_PROTO": "tp"}.get(
            v.name, v.name.lower()) for v in onnx.AttributeProto.AttributeType.DESCRIPTOR.values if v.number}
    # A version no onnx release defines must not be accepted as known.
    assert P.NEWEST_OPSET <= onnx.defs.onnx_opset_version()


def assert_same(pb, ours, path="model"):
    """Every field our decoder knows holds what protobuf decoded, presence included."""
    spec = type(ours).BY_NAME
    for fd in pb.DESCRIPTOR.fields:
        if fd.name not in spec:
            continue
        kind, repeated, sub = spec[fd.name]
        want, got = getattr(pb, fd.name), getattr(ours, fd.name)
        where = f"{path}.{fd.name}"
        if repeated:
            assert len(want) == len(got), where
            if kind == P._MESSAGE:
                for i, (w, g) in enumerate(zip(want, got)):
                    assert_same(w, g, f"{where}[{i}]")
            elif kind == P._BYTES:
                assert [bytes(w) for w in want] == [bytes(g) for g in got], where
            else:
                np.testing.assert_array_equal(np.asarray(list(want)), np.asarray(got), err_msg=where)
            continue
        assert pb.HasField(fd.name) == ours.HasField(fd.name), where
        if kind == P._MESSAGE:
            if sub.FIELDS:
                assert_same(want, got, where)
        elif kind == P._BYTES:
            assert bytes(want) == bytes(got), where
        else:
            assert want == got or (want != want and got != got), where  # NaN == NaN here


def _model():
    """A model using every message and field kind the importer reads."""
    w = numpy_helper.from_array(np.arange(24, dtype=np.float32).reshape(2, 3, 2, 2), "w")
    typed = helper.make_tensor("typed", TensorProto.INT64, [3], [-5, 0, 2**40])
    ext = TensorProto(name="ext", data_type=TensorProto.FLOAT, dims=[4], data_location=TensorProto.EXTERNAL)
    ext.external_data.add(key="location", value="w.bin")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[1, 1]),
        helper.make_node("LeakyRelu", ["c"], ["l"], alpha=0.2),
        helper.make_node("Constant", [], ["k"], value=helper.make_tensor("v", TensorProto.FLOAT16, [2], [1.5, -2])),
        helper.make_node("Resize", ["l", "", "s"], ["y"], mode="nearest", domain="", name="résumé"),
        helper.make_node("Custom", ["y"], ["z"], domain="my.domain", floats=[0.1, -1e30], strings=[b"a", b""],
                         tensors=[typed], g=helper.make_graph([], "sub", [], [])),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "g", [x], [z], initializer=[w, typed, ext],
                              value_info=[helper.make_tensor_value_info("c", TensorProto.FLOAT, [1, 2, 8, 8])])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("my.domain", 1)],
                             producer_name="test", doc_string="d")


def test_a_model_decodes_as_protobuf_decodes_it():
    pb = _model()
    data = pb.SerializeToString()
    assert_same(onnx.load_model_from_string(data), P.parse_model(data))


def _field(number, wire, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _delimited(number, payload: bytes) -> bytes:
    return _field(number, 2, _varint(len(payload)) + payload)


def test_wire_forms_protobuf_accepts_decode_the_same():
    """Forms a serializer may choose: packed and unpacked repeated scalars mixed in one field, a
    scalar given twice (the last wins), a singular message given twice (merged), negative int32
    as ten bytes, unknown fields of every wire type (a group too), a oneof set twice."""
    dims = _delimited(1, _varint(2) + _varint(3)) + _field(1, 0, _varint(4))  # packed, then unpacked
    floats = _field(4, 5, np.float32(1.5).tobytes()) + _delimited(4, np.array([2, -3], "<f4").tobytes())
    unknown = (_field(99, 0, _varint(7)) + _field(98, 1, b"\0" * 8) + _field(97, 5, b"\0" * 4)
               + _delimited(96, b"xyz") + _field(95, 3, _field(1, 0, _varint(1))) + _field(95, 4, b""))
    tensor = (dims + _field(2, 0, _varint(6)) + _field(2, 0, _varint(1)) + floats + unknown
              + _delimited(8, "t".encode()) + _field(14, 0, _varint(-1)))
    dim = _delimited(1, _field(2, 2, _varint(1) + b"N") + _field(1, 0, _varint(5)))  # oneof: the last wins
    shape_a, shape_b = _delimited(2, _delimited(1, _field(1, 0, _varint(7)))), _delimited(2, dim)
    value_type = _delimited(2, _delimited(1, _field(1, 0, _varint(1)) + shape_a) + _delimited(1, shape_b))
    graph = _delimited(5, tensor) + _delimited(11, _delimited(1, b"x") + value_type) + _delimited(2, b"a")
    data = _delimited(7, graph) + _delimited(7, _delimited(2, b"b")) + _field(1, 0, _varint(8))
    pb = onnx.load_model_from_string(data)
    ours = P.parse_model(data)
    assert_same(pb, ours)
    assert list(ours.graph.initializer[0].dims) == [2, 3, 4]
    # -1 is no DataLocation: a closed enum keeps it as an unknown field, so it reads as DEFAULT.
    assert ours.graph.name == "b" and ours.graph.initializer[0].data_location == 0
    assert [d.WhichOneof("value") for d in ours.graph.input[0].type.tensor_type.shape.dim] == ["dim_value", "dim_value"]


@pytest.mark.parametrize("data, why", [
    (_delimited(7, _delimited(1, b"\x0a\x05ab")), "truncated"),
    (_field(7, 2, _varint(50)) + b"x", "truncated"),
    (b"\x0f", "invalid wire type"),
    (b"\x00", "numbered 0"),
    (b"\xff" * 11, "varint"),
    (_delimited(7, _delimited(2, b"\xff\xfe")), "UTF-8"),
])
def test_malformed_bytes_are_a_decode_error(data, why):
    with pytest.raises(P.DecodeError, match=why):
        P.parse_model(data)


def test_nesting_past_protobufs_limit_is_a_decode_error_not_a_recursion_error():
    graph = b""
    for _ in range(P.MAX_DEPTH):  # graph in attribute in node in graph ...
        graph = _delimited(1, _delimited(5, _delimited(6, graph)))
    with pytest.raises(P.DecodeError, match="nested"):
        P.parse_model(_delimited(7, graph))


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_models_decode_as_protobuf_decodes_them_or_fail(data):
    """Flip, drop or insert bytes of a real model: whatever protobuf reads, we read the same, and
    we refuse only with a DecodeError. (We may read what protobuf refuses: damage inside a field
    the importer never reads, metadata_props say, is skipped as an unknown field.)"""
    raw = bytearray(_model().SerializeToString())
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        how = data.draw(st.sampled_from(["flip", "drop", "insert"]))
        if how == "flip":
            raw[at] = data.draw(st.integers(0, 255))
        elif how == "drop":
            del raw[at]
        else:
            raw.insert(at, data.draw(st.integers(0, 255)))
    raw = bytes(raw)
    try:
        pb = onnx.load_model_from_string(raw)
    except Exception:  # noqa: BLE001 - protobuf's DecodeError and kin
        pb = None
    try:
        ours = P.parse_model(raw)
    except P.DecodeError as exc:
        # Protobuf reads a proto2 string that is not UTF-8 as bytes; ONNX says strings are UTF-8.
        assert pb is None or "UTF-8" in str(exc), str(exc)
        return
    if pb is not None:
        assert_same(pb, ours)


VALUES = {
    TensorProto.FLOAT: np.array([[1.5, -2.25, 3e38]], np.float32),
    TensorProto.DOUBLE: np.array([1e-300, -2.5], np.float64),
    TensorProto.INT64: np.array([-(2**63), 2**63 - 1, 0], np.int64),
    TensorProto.INT32: np.array([-(2**31), 7], np.int32),
    TensorProto.INT16: np.array([-32768, 5], np.int16),
    TensorProto.INT8: np.array([-128, 127], np.int8),
    TensorProto.UINT8: np.array([0, 255], np.uint8),
    TensorProto.UINT16: np.array([65535, 1], np.uint16),
    TensorProto.UINT32: np.array([2**32 - 1, 3], np.uint32),
    TensorProto.UINT64: np.array([2**64 - 1, 3], np.uint64),
    TensorProto.BOOL: np.array([True, False, True]),
    TensorProto.FLOAT16: np.array([1.5, -65504, 2**-24], np.float16),
}


@pytest.mark.parametrize("raw", [True, False], ids=["raw_data", "typed_field"])
@pytest.mark.parametrize("data_type", sorted(VALUES), ids=[P.DATA_TYPE_NAMES[t] for t in sorted(VALUES)])
def test_tensor_values_are_numpy_helpers(data_type, raw):
    value = VALUES[data_type]
    if raw:
        tensor = numpy_helper.from_array(value, "t")
    else:
        vals = value.view(np.uint16).tolist() if data_type == TensorProto.FLOAT16 else value.tolist()
        tensor = helper.make_tensor("t", data_type, value.shape, vals)
        assert not tensor.HasField("raw_data")
    data = tensor.SerializeToString()
    ours = P.tensor_array(P._decode(P.Tensor, memoryview(data), 0, len(data), 0))
    want = numpy_helper.to_array(onnx.load_tensor_from_string(data))
    assert ours.dtype == want.dtype and ours.shape == want.shape
    np.testing.assert_array_equal(ours, want)


@pytest.mark.parametrize("raw", [True, False])
def test_bfloat16_widens_exactly_to_float32(raw):
    bits = np.array([0x3FC0, 0xC2F7, 0x0001, 0x7F80], np.uint16)  # 1.5, -123.5, a subnormal, inf
    tensor = TensorProto(name="b", data_type=TensorProto.BFLOAT16, dims=[4])
    if raw:
        tensor.raw_data = bits.tobytes()
    else:
        tensor.int32_data.extend(bits.tolist())
    data = tensor.SerializeToString()
    ours = P.tensor_array(P._decode(P.Tensor, memoryview(data), 0, len(data), 0))
    want = numpy_helper.to_array(tensor).astype(np.float32)  # ml_dtypes' bfloat16, widened
    assert ours.dtype == np.float32
    np.testing.assert_array_equal(ours, want)


def test_attribute_values_are_onnx_helpers():
    node = _model().graph.node[4]
    more = helper.make_node("X", [], ["o"], i=-3, f=0.2, s="ab", ints=[1, -2], t=helper.make_tensor("t", 1, [1], [2]))
    for pb_node in (node, more):
        data = pb_node.SerializeToString()
        ours = P._decode(P.Node, memoryview(data), 0, len(data), 0)
        for a_pb, a in zip(pb_node.attribute, ours.attribute):
            want, got = helper.get_attribute_value(a_pb), P.attribute_value(a)
            if isinstance(want, list) and want and hasattr(want[0], "DESCRIPTOR"):
                for w, g in zip(want, got):
                    assert_same(w, g)
            elif hasattr(want, "DESCRIPTOR"):
                assert_same(want, got)
            else:
                assert type(got) is type(want) and got == want, a.name
    ref = P.Attribute()
    ref.ref_attr_name = "alpha"
    with pytest.raises(ValueError, match="reference attribute"):
        P.attribute_value(ref)


def test_reading_an_onnx_file_imports_no_onnx(tmp_path):
    """Why the decoder exists: `archcost table model.onnx` must not pay for `import onnx`."""
    path = tmp_path / "m.onnx"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    code = ("import sys\nfrom archcost.formats import load\ng = load(sys.argv[1])\n"
            "print(len(g), sorted(m for m in ('onnx', 'google.protobuf', 'ml_dtypes') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["2", "[]"], out
