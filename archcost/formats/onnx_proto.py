"""A reader of ONNX model files that does not import the onnx package.

``import onnx`` costs about 0.65 s (most of it ml_dtypes and the op schemas), three times what
``archcost table resnet18`` takes in all. The importer needs only a little of a model: its
nodes, attributes, value infos and tensors' dims, plus the values of a few small constants.
This module decodes the protobuf wire format for exactly those messages of onnx.proto (proto2),
with protobuf's semantics: unknown fields are skipped, the last value of a singular scalar wins,
repeated scalars may be packed or not, singular messages given twice are merged, and presence
is recorded so that ``HasField`` answers as protobuf does. Tensor data is not copied: a
``raw_data`` field is a memoryview into the file's bytes, decoded only when its values are read.

The field numbers are onnx.proto's; tests/formats/test_onnx_proto.py checks every one against
the descriptors of the installed onnx package, and checks decoding against protobuf's.
"""

from __future__ import annotations

import struct

import numpy as np

# The newest default-domain opset this importer was written and tested against (onnx 1.23's).
# An op's meaning (a default axis, an attribute turned input) changes between opsets, so a newer
# version is refused rather than read as if it were this one.
NEWEST_OPSET = 28

# How deep messages may nest (graphs in attributes in nodes in graphs...): protobuf's own limit,
# so that a hostile file of a million nested graphs is refused, not a RecursionError.
MAX_DEPTH = 100


class DecodeError(ValueError):
    """The bytes are not a protobuf message of the expected shape."""


# TensorProto.DataType names, as onnx.proto numbers them.
DATA_TYPE_NAMES = {
    0: "UNDEFINED", 1: "FLOAT", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64",
    8: "STRING", 9: "BOOL", 10: "FLOAT16", 11: "DOUBLE", 12: "UINT32", 13: "UINT64", 14: "COMPLEX64",
    15: "COMPLEX128", 16: "BFLOAT16", 17: "FLOAT8E4M3FN", 18: "FLOAT8E4M3FNUZ", 19: "FLOAT8E5M2",
    20: "FLOAT8E5M2FNUZ", 21: "UINT4", 22: "INT4", 23: "FLOAT4E2M1", 24: "FLOAT8E8M0", 25: "UINT2",
    26: "INT2", 27: "FLOAT6E2M3", 28: "FLOAT6E3M2",
}
EXTERNAL = 1  # TensorProto.DataLocation.EXTERNAL

# AttributeProto.AttributeType -> the field that holds the value, and whether it is a list.
ATTRIBUTE_FIELDS = {
    1: ("f", False), 2: ("i", False), 3: ("s", False), 4: ("t", False), 5: ("g", False),
    11: ("sparse_tensor", False), 13: ("tp", False), 6: ("floats", True), 7: ("ints", True),
    8: ("strings", True), 9: ("tensors", True), 10: ("graphs", True), 12: ("sparse_tensors", True),
    14: ("type_protos", True),
}

# Numpy dtypes of the element types whose values are read (little-endian, as ONNX stores them).
# BFLOAT16 has no numpy dtype; its values are widened to float32, which holds each exactly.
NUMPY_DTYPES = {
    1: np.dtype("<f4"), 2: np.dtype("u1"), 3: np.dtype("i1"), 4: np.dtype("<u2"), 5: np.dtype("<i2"),
    6: np.dtype("<i4"), 7: np.dtype("<i8"), 9: np.dtype("?"), 10: np.dtype("<f2"), 11: np.dtype("<f8"),
    12: np.dtype("<u4"), 13: np.dtype("<u8"),
}
BFLOAT16 = 16


# ---- the wire format
# Scalar field kinds: how a varint or fixed-width value becomes a Python value.
# _ENUM is a proto2 (closed) enum: a number outside the enum is kept by protobuf as an unknown
# field, so the field reads as unset; ENUM_VALUES of the message lists the numbers it defines.
_INT64, _INT32, _UINT64, _FLOAT, _DOUBLE, _STRING, _BYTES, _MESSAGE, _ENUM = range(9)
_WIRE = {_INT64: 0, _INT32: 0, _UINT64: 0, _FLOAT: 5, _DOUBLE: 1, _STRING: 2, _BYTES: 2, _MESSAGE: 2, _ENUM: 0}
_PACKED_DTYPE = {_FLOAT: np.dtype("<f4"), _DOUBLE: np.dtype("<f8")}


def _varint(buf, pos: int, end: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= end:
            raise DecodeError("truncated message (a varint runs past the end)")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise DecodeError("a varint longer than 10 bytes")


def _skip(buf, pos: int, wire: int, end: int, number: int, depth: int) -> int:
    """The position after an unknown field's value."""
    if wire == 0:
        return _varint(buf, pos, end)[1]
    if wire == 1:
        pos += 8
    elif wire == 5:
        pos += 4
    elif wire == 2:
        n, pos = _varint(buf, pos, end)
        pos += n
    elif wire == 3:  # a group: skip fields to its end marker
        if depth >= MAX_DEPTH:
            raise DecodeError("groups nested too deeply")
        while True:
            key, pos = _varint(buf, pos, end)
            if key & 7 == 4:
                if key >> 3 != number:
                    raise DecodeError("a group ends with the wrong field number")
                return pos
            pos = _skip(buf, pos, key & 7, end, key >> 3, depth + 1)
    else:
        raise DecodeError(f"invalid wire type {wire}")
    if pos > end:
        raise DecodeError("truncated message (a field runs past the end)")
    return pos


def _scalar(kind: int, raw: int):
    if kind == _INT64:
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    if kind == _INT32 or kind == _ENUM:  # negative int32 values are sign-extended to 64 bits on the wire
        raw &= 0xFFFFFFFF
        return raw - (1 << 32) if raw >= 1 << 31 else raw
    return raw & 0xFFFFFFFFFFFFFFFF  # _UINT64


class Message:
    """A decoded message: one attribute per field, its default when absent (an empty list, 0,
    "", or an empty message, as protobuf gives them), ``HasField`` for presence and
    ``WhichOneof`` for the oneofs of onnx.proto."""

    # number -> (name, kind, repeated, message class); and name -> the same, set by _finish.
    FIELDS: dict = {}
    ONEOFS: dict = {}
    BY_NAME: dict = {}
    ENUM_VALUES: dict = {}

    def __init__(self):
        self._present = set()

    def __getattr__(self, name):
        # Only called for a field never set: its default, kept so that a list or message
        # read twice is the same object (as protobuf's).
        spec = type(self).BY_NAME.get(name)
        if spec is None:
            raise AttributeError(f"{type(self).__name__} has no field {name!r}")
        kind, repeated, sub = spec
        value = [] if repeated else sub() if kind == _MESSAGE else _DEFAULTS[kind]
        setattr(self, name, value)
        return value

    def HasField(self, name: str) -> bool:  # noqa: N802 - protobuf's name, so callers read the same
        return name in self._present

    def WhichOneof(self, group: str):  # noqa: N802
        return next((name for name in self.ONEOFS.get(group, ()) if name in self._present), None)

    def __repr__(self):
        shown = {n: getattr(self, n) for n in sorted(self._present)}
        return f"{type(self).__name__}({shown})"


_DEFAULTS = {_INT64: 0, _INT32: 0, _ENUM: 0, _UINT64: 0, _FLOAT: 0.0, _DOUBLE: 0.0, _STRING: "", _BYTES: b""}


def _decode(cls, buf, start: int, end: int, depth: int):
    if depth > MAX_DEPTH:
        raise DecodeError(f"messages nested more than {MAX_DEPTH} deep")
    msg = cls()
    fields = cls.FIELDS
    chunks = {}  # singular message fields seen more than once, merged as protobuf merges them
    packed = {}  # repeated numeric fields: the values, in order, over packed and unpacked runs
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        number, wire = key >> 3, key & 7
        if number == 0:
            raise DecodeError("a field numbered 0")
        spec = fields.get(number)
        if spec is None:
            pos = _skip(buf, pos, wire, end, number, depth)
            continue
        name, kind, repeated, sub = spec
        if wire == 2 and repeated and kind not in (_STRING, _BYTES, _MESSAGE):
            n, pos = _varint(buf, pos, end)
            stop = pos + n
            if stop > end:
                raise DecodeError(f"truncated message (field {name} runs past the end)")
            values = packed.setdefault(name, [])
            if kind in _PACKED_DTYPE:
                width = _PACKED_DTYPE[kind].itemsize
                if n % width:
                    raise DecodeError(f"packed field {name} is not a whole number of values")
                values.append(np.frombuffer(buf[pos:stop], dtype=_PACKED_DTYPE[kind]))
            else:
                ints = []
                while pos < stop:
                    raw, pos = _varint(buf, pos, stop)
                    ints.append(_scalar(kind, raw))
                values.append(ints)
            pos = stop
            msg._present.add(name)
            continue
        if wire != _WIRE[kind]:  # protobuf keeps a field of the wrong wire type as unknown
            pos = _skip(buf, pos, wire, end, number, depth)
            continue
        if wire == 0:
            raw, pos = _varint(buf, pos, end)
            value = _scalar(kind, raw)
            if kind == _ENUM and value not in cls.ENUM_VALUES[name]:
                continue
        elif wire == 5 or wire == 1:
            width = 4 if wire == 5 else 8
            if pos + width > end:
                raise DecodeError(f"truncated message (field {name} runs past the end)")
            value = struct.unpack_from("<f" if wire == 5 else "<d", buf, pos)[0]
            pos += width
        else:
            n, pos = _varint(buf, pos, end)
            stop = pos + n
            if stop > end:
                raise DecodeError(f"truncated message (field {name} runs past the end)")
            if kind == _MESSAGE:
                if repeated:
                    value = _decode(sub, buf, pos, stop, depth + 1)
                else:
                    chunks.setdefault(name, []).append((pos, stop))
                    pos = stop
                    msg._present.add(name)
                    continue
            elif kind == _STRING:
                try:
                    value = bytes(buf[pos:stop]).decode("utf-8")
                except UnicodeDecodeError:
                    raise DecodeError(f"field {name} is not valid UTF-8") from None
            else:
                value = buf[pos:stop]  # bytes: a view into the file, never copied here
            pos = stop
        if repeated:
            if kind in _PACKED_DTYPE:
                packed.setdefault(name, []).append(np.array([value], dtype=_PACKED_DTYPE[kind]))
            elif kind in (_INT64, _INT32, _UINT64):
                packed.setdefault(name, []).append([value])
            else:
                getattr(msg, name).append(value)
        else:
            setattr(msg, name, value)
        msg._present.add(name)
    if pos != end:
        raise DecodeError("truncated message (the last field runs past its message's end)")
    for name, runs in packed.items():
        if cls.BY_NAME[name][0] in _PACKED_DTYPE:
            setattr(msg, name, np.concatenate(runs) if len(runs) > 1 else runs[0])
        else:
            setattr(msg, name, [v for run in runs for v in run])
    for name, spans in chunks.items():
        sub = cls.BY_NAME[name][2]
        if len(spans) == 1:
            setattr(msg, name, _decode(sub, buf, spans[0][0], spans[0][1], depth + 1))
        else:  # merging messages is decoding their concatenation
            joined = memoryview(b"".join(bytes(buf[a:b]) for a, b in spans))
            setattr(msg, name, _decode(sub, joined, 0, len(joined), depth + 1))
    for group in cls.ONEOFS.values():  # a oneof holds the last member set
        set_members = [n for n in group if n in msg._present]
        if len(set_members) > 1:
            last = _last_set(cls, buf, start, end, group)
            for n in set_members:
                if n != last:
                    msg._present.discard(n)
                    del msg.__dict__[n]  # reads as its default again, as protobuf's cleared member
    return msg


def _last_set(cls, buf, start, end, group) -> str:
    """Which member of a oneof appears last in a message's bytes (the one protobuf keeps)."""
    numbers = {k: s[0] for k, s in cls.FIELDS.items() if s[0] in group}
    last, pos = None, start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        if key >> 3 in numbers:
            last = numbers[key >> 3]
        pos = _skip(buf, pos, key & 7, end, key >> 3, 0)
    return last


def _message(name: str, fields: dict, oneofs: dict | None = None) -> type:
    return type(name, (Message,), {"FIELDS": fields, "ONEOFS": oneofs or {}})


# ---- onnx.proto's messages, the fields the importer reads (field numbers as in onnx.proto)
StringStringEntry = _message("StringStringEntry", {1: ("key", _STRING, False, None),
                                                   2: ("value", _STRING, False, None)})
OperatorSetId = _message("OperatorSetId", {1: ("domain", _STRING, False, None),
                                           2: ("version", _INT64, False, None)})
Segment = _message("Segment", {1: ("begin", _INT64, False, None), 2: ("end", _INT64, False, None)})
Tensor = _message("Tensor", {
    1: ("dims", _INT64, True, None), 2: ("data_type", _INT32, False, None), 3: ("segment", _MESSAGE, False, Segment),
    4: ("float_data", _FLOAT, True, None), 5: ("int32_data", _INT32, True, None),
    6: ("string_data", _BYTES, True, None), 7: ("int64_data", _INT64, True, None), 8: ("name", _STRING, False, None),
    9: ("raw_data", _BYTES, False, None), 10: ("double_data", _DOUBLE, True, None),
    11: ("uint64_data", _UINT64, True, None), 13: ("external_data", _MESSAGE, True, StringStringEntry),
    14: ("data_location", _ENUM, False, None),
})
Tensor.ENUM_VALUES = {"data_location": {0, EXTERNAL}}
SparseTensor = _message("SparseTensor", {1: ("values", _MESSAGE, False, Tensor),
                                         2: ("indices", _MESSAGE, False, Tensor), 3: ("dims", _INT64, True, None)})
Dimension = _message("Dimension", {1: ("dim_value", _INT64, False, None), 2: ("dim_param", _STRING, False, None),
                                   3: ("denotation", _STRING, False, None)},
                     {"value": ("dim_value", "dim_param")})
TensorShape = _message("TensorShape", {1: ("dim", _MESSAGE, True, Dimension)})
TensorType = _message("TensorType", {1: ("elem_type", _INT32, False, None),
                                     2: ("shape", _MESSAGE, False, TensorShape)})
# TypeProto's other members (sequence, map, optional, sparse tensor) are known by name only:
# the importer refuses them, so their contents are not decoded.
_Opaque = _message("Opaque", {})
Type = _message("Type", {1: ("tensor_type", _MESSAGE, False, TensorType),
                         4: ("sequence_type", _MESSAGE, False, _Opaque), 5: ("map_type", _MESSAGE, False, _Opaque),
                         9: ("optional_type", _MESSAGE, False, _Opaque),
                         8: ("sparse_tensor_type", _MESSAGE, False, _Opaque),
                         6: ("denotation", _STRING, False, None)},
                {"value": ("tensor_type", "sequence_type", "map_type", "optional_type", "sparse_tensor_type")})
ValueInfo = _message("ValueInfo", {1: ("name", _STRING, False, None), 2: ("type", _MESSAGE, False, Type),
                                   3: ("doc_string", _STRING, False, None)})
Attribute = _message("Attribute", {})  # fields below: it refers to Graph, which refers to Node
Node = _message("Node", {1: ("input", _STRING, True, None), 2: ("output", _STRING, True, None),
                         3: ("name", _STRING, False, None), 4: ("op_type", _STRING, False, None),
                         7: ("domain", _STRING, False, None), 5: ("attribute", _MESSAGE, True, Attribute),
                         6: ("doc_string", _STRING, False, None)})
Graph = _message("Graph", {1: ("node", _MESSAGE, True, Node), 2: ("name", _STRING, False, None),
                           5: ("initializer", _MESSAGE, True, Tensor),
                           15: ("sparse_initializer", _MESSAGE, True, SparseTensor),
                           10: ("doc_string", _STRING, False, None), 11: ("input", _MESSAGE, True, ValueInfo),
                           12: ("output", _MESSAGE, True, ValueInfo), 13: ("value_info", _MESSAGE, True, ValueInfo)})
Attribute.FIELDS = {
    1: ("name", _STRING, False, None), 21: ("ref_attr_name", _STRING, False, None),
    13: ("doc_string", _STRING, False, None), 20: ("type", _ENUM, False, None), 2: ("f", _FLOAT, False, None),
    3: ("i", _INT64, False, None), 4: ("s", _BYTES, False, None), 5: ("t", _MESSAGE, False, Tensor),
    6: ("g", _MESSAGE, False, Graph), 22: ("sparse_tensor", _MESSAGE, False, SparseTensor),
    14: ("tp", _MESSAGE, False, Type), 7: ("floats", _FLOAT, True, None), 8: ("ints", _INT64, True, None),
    9: ("strings", _BYTES, True, None), 10: ("tensors", _MESSAGE, True, Tensor),
    11: ("graphs", _MESSAGE, True, Graph), 23: ("sparse_tensors", _MESSAGE, True, SparseTensor),
    15: ("type_protos", _MESSAGE, True, Type),
}
Attribute.ENUM_VALUES = {"type": {0, *ATTRIBUTE_FIELDS}}
Model = _message("Model", {1: ("ir_version", _INT64, False, None), 8: ("opset_import", _MESSAGE, True, OperatorSetId),
                           2: ("producer_name", _STRING, False, None), 3: ("producer_version", _STRING, False, None),
                           4: ("domain", _STRING, False, None), 5: ("model_version", _INT64, False, None),
                           6: ("doc_string", _STRING, False, None), 7: ("graph", _MESSAGE, False, Graph)})
for _cls in (StringStringEntry, OperatorSetId, Segment, Tensor, SparseTensor, Dimension, TensorShape, TensorType,
             _Opaque, Type, ValueInfo, Attribute, Node, Graph, Model):
    _cls.BY_NAME = {name: (kind, repeated, sub) for name, kind, repeated, sub in _cls.FIELDS.values()}


def parse_model(data) -> Model:
    """The Model in ``data`` (bytes); DecodeError when they are not a well-formed message."""
    buf = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
    return _decode(Model, buf, 0, len(buf), 0)


def as_model(model) -> Model:
    """``model`` as this module's Model: an onnx ModelProto (from code that built one with
    onnx.helper) is serialised and decoded, so that the importer reads one kind of message."""
    if isinstance(model, Model):
        return model
    return parse_model(model.SerializeToString())


def attribute_value(a):
    """The value of an attribute by its declared type, as onnx.helper.get_attribute_value
    gives it (lists for the list types, None for UNDEFINED); ValueError for a reference
    attribute (only meaningful inside a function) or an unknown type."""
    if a.ref_attr_name:
        raise ValueError(f"reference attribute {a.ref_attr_name!r} outside a function")
    if a.type == 0:
        return None
    if a.type not in ATTRIBUTE_FIELDS:
        raise ValueError(f"unknown attribute type {a.type}")
    field, is_list = ATTRIBUTE_FIELDS[a.type]
    value = getattr(a, field)
    if is_list:
        if field == "floats":
            return [float(v) for v in value]
        return [bytes(v) for v in value] if field == "strings" else list(value)
    return bytes(value) if field == "s" else value


def tensor_array(t, raw=None) -> np.ndarray:
    """The values of a tensor of a type in NUMPY_DTYPES (or BFLOAT16, widened to float32) as an
    array of its dims; ``raw`` replaces its raw_data (data read from an external file). The
    caller has checked that the data matches the dims."""
    dims = tuple(t.dims)
    data = raw if raw is not None else (t.raw_data if t.HasField("raw_data") else None)
    if t.data_type == BFLOAT16:
        if data is not None:
            bits = np.frombuffer(data, dtype="<u2")
        else:
            bits = np.asarray(t.int32_data, dtype=np.int64).astype(np.uint16)
        return (bits.astype(np.uint32) << 16).view(np.float32).reshape(dims)
    dtype = NUMPY_DTYPES[t.data_type]
    if data is not None:
        return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="), copy=False)
    if t.data_type == 1:
        values = np.asarray(t.float_data, dtype=np.float32)
    elif t.data_type == 11:
        values = np.asarray(t.double_data, dtype=np.float64)
    elif t.data_type == 7:
        values = np.asarray(t.int64_data, dtype=np.int64)
    elif t.data_type in (12, 13):
        values = np.asarray(t.uint64_data, dtype=np.uint64).astype(dtype)
    elif t.data_type == 10:  # float16 values are stored as their bits, in int32_data
        values = np.asarray(t.int32_data, dtype=np.int64).astype(np.uint16).view(np.float16)
    else:
        values = np.asarray(t.int32_data, dtype=np.int64).astype(dtype)
    return values.reshape(dims)
