"""ONNX models -> archcost Graphs. The file is decoded by :mod:`archcost.formats.onnx_proto`,
so reading a model needs no onnx package (importing it would cost more than the analysis).

Each ONNX node maps to the IR op that computes the same thing; weight shapes come from the
initializers (a Conv or Gemm has a bias when its bias input is given). Patterns that exporters
spell out of several nodes are folded back into one layer: a Pad before a Conv or pool becomes
its padding (where that computes the same; any other Pad is a Pad layer), ``x * sigmoid(x)``
is SiLU, ``x * hardsigmoid(x)`` is hard-swish, the erf form of GELU is GELU, MatMul + bias Add
is one Linear, and shape arithmetic (Shape -> Gather -> Concat -> Reshape) is evaluated on the
known shapes. Nodes with no IR equivalent are reported all
together in one error: nothing is ever counted as zero silently.

A file is untrusted input: before anything is evaluated, every initializer's declared size is
checked against the data it holds (so a tensor declaring 10^12 values is refused, never
allocated), external data must lie in a file inside the model's directory, tensor names must be
unique, and constant folding runs under exact integer arithmetic and ``np.errstate(all="raise")``
with a cap on the size of what it builds. Every failure is one ArchcostError naming the node,
initializer or input; names from the file are quoted with :func:`archcost.errors.quote`.
"""

from __future__ import annotations

import math
import mmap
import os
import pathlib
import warnings

import networkx as nx
import numpy as np

from archcost.errors import MAX_MESSAGE_CHARS, ArchcostError, ShapeError, limit_from_env, one_line, quote
from archcost.formats import onnx_proto
from archcost.graph import Graph
from archcost.ops import (
    LRN,
    Affine,
    ConvTranspose2d,
    GroupNorm, Activation, Add, AvgPool2d, BatchNorm, ChannelSelect, Concat, Conv2d, Dropout, Flatten, GlobalAvgPool,
    PAD_MODES, Input, LayerNorm, Linear, MaxPool2d, Mean, Mul, Pad, Permute, ReduceSum, Reshape, Resize, Scale,
    Softmax, Sub,
)


def _same_pads(auto: str, size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """(before, after) of auto_pad SAME_UPPER (the odd pixel after, as TensorFlow) or SAME_LOWER."""
    from archcost.shapes import same_padding

    pads = same_padding(size, kernel, stride, dilation)
    return pads[::-1] if auto == "SAME_LOWER" else pads


class Unsupported(Exception):
    """A node this importer cannot express in the IR (collected, then reported together)."""


# The most values one folded constant may hold (ConstantOfShape, Range, a broadcast product...):
# shape arithmetic needs a handful; a hostile file asking for 10^12 must not get them allocated.
DEFAULT_MAX_FOLD_VALUES = 1 << 24
# The most bytes one tensor may declare, even one holding only dims (1 TiB: more than any model).
DEFAULT_MAX_TENSOR_BYTES = 1 << 40
# protobuf's hard limit on one serialized message.
MAX_PROTOBUF_BYTES = 1 << 31
# How many unsupported nodes, and how many nodes of a cycle, an error message lists by name.
MAX_LISTED = 8


def load_onnx(path, input_shape=None) -> Graph:
    """The Graph of the ONNX file at ``path``."""
    return _load(path, input_shape, weights=False)


def load_onnx_weights(path, input_shape=None) -> tuple[Graph, dict, dict]:
    """The Graph, the file's own weights in the executor's layout ({layer: {param: float32
    array}}, as archcost.execute.init_params would draw them), and {ONNX graph output: layer}."""
    return _load(path, input_shape, weights=True)


def _load(path, input_shape, weights: bool):
    path = pathlib.Path(path)
    # Read the bytes ourselves, so an unreadable file, a directory or an empty file is named as
    # such (onnx.load would report them as odd protobuf errors, or parse b"" as an empty model).
    try:
        # A protobuf message cannot exceed 2 GiB: refuse a larger file before reading all of it.
        if path.is_file() and path.stat().st_size >= MAX_PROTOBUF_BYTES:
            raise ArchcostError(f"{path}: {path.stat().st_size:,} bytes, more than an ONNX protobuf can hold "
                                f"(2 GiB); large weights belong in external data files")
        data = _read(path)
    except IsADirectoryError:
        raise ArchcostError(f"{path}: is a directory, not an ONNX file") from None
    except FileNotFoundError:
        raise ArchcostError(f"{path}: no such file") from None
    except OSError as exc:
        raise ArchcostError(f"{path}: cannot read the file ({exc.strerror or type(exc).__name__})") from None
    if not data:
        raise ArchcostError(f"{path}: the file is empty, not an ONNX model")
    try:
        model = onnx_proto.parse_model(data)
    except onnx_proto.DecodeError as exc:
        raise ArchcostError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {_first_line(exc)})") from None
    # Random bytes can parse as a protobuf message holding only unknown fields: no graph, no model.
    if not model.HasField("graph"):
        raise ArchcostError(f"{path}: not a readable ONNX model (the file holds no graph)")
    return import_model(model, str(path), input_shape, base_dir=path.parent, weights=weights)


def _read(path: pathlib.Path):
    """The file's bytes, mapped rather than read where the system allows: the analysis decodes
    the nodes and a few small constants, so the megabytes of weights are never paged in."""
    with open(path, "rb") as f:
        try:
            return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):  # an empty file (mmap refuses it), a pipe: read it
            return f.read()


def import_model(model, source: str = "<onnx>", input_shape=None, base_dir=None, weights: bool = False):
    """The Graph of an ONNX ``ModelProto``. ``base_dir`` is the directory external tensor data is
    read from (the model file's directory); without it a model with external data is refused.
    With ``weights``: (Graph, the file's weights per layer, {graph output: layer})."""
    try:
        importer = _Importer(model, source, input_shape, base_dir)
        graph = importer.run()
        if not weights:
            return graph
        return graph, importer.file_weights(), importer.output_layers()
    except ArchcostError as exc:
        message = str(exc)
        message = message if message.startswith(source) else f"{source}: {message}"
        # The last guard: a message built elsewhere (a Graph error quoting a 1-MB layer name with
        # repr) still reaches the caller as one line that fits the CLI's limit.
        if "\n" in message or "\r" in message or len(message) > MAX_MESSAGE_CHARS:
            message = one_line(message, MAX_MESSAGE_CHARS - 40)
        raise ArchcostError(message) from None


def _f(value) -> float:
    """An ONNX float attribute (float32) as the decimal it was written as: 0.2, not 0.20000000298."""
    return float(f"{float(value):.7g}")


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return one_line(text[0], 160) if text else "no details"


def _name(text) -> str:
    """A name from the file as written when it is short and printable, else quoted (so a newline
    or a megabyte of it cannot reach the message)."""
    text = str(text)
    return text if 0 < len(text) <= 80 and text.isprintable() else quote(text)


def _max_fold_values() -> int:
    return limit_from_env("ARCHCOST_MAX_FOLD_VALUES", DEFAULT_MAX_FOLD_VALUES)


def _check_fold_size(count: int, what: str) -> None:
    limit = _max_fold_values()
    if count > limit:
        raise ArchcostError(f"{what}: the result would hold {_count(count)} values; archcost evaluates constants "
                            f"of at most {limit:,} (set ARCHCOST_MAX_FOLD_VALUES to raise it)")


def _count(n: int) -> str:
    """A count for a message: 1,000,000 in full, an astronomic one (from dims [2**62, 2**62]) as 1.91e+38."""
    return f"{n:,}" if n < 10**15 else f"{float(n):.3g}"


# The type each attribute this importer reads must have (ONNX's INT, INTS, FLOAT, STRING), so a
# group of 2.5 or a perm given as a string is refused instead of read as int(2.5) == 2.
_INT_ATTRS = {"axis", "group", "size", "num_groups", "stash_type", "transA", "transB", "keepdims", "ceil_mode",
              "count_include_pad", "antialias", "exclude_outside", "allowzero", "training_mode", "to", "start", "end", "noop_with_empty_axes"}
_INTS_ATTRS = {"kernel_shape", "strides", "pads", "dilations", "perm", "axes", "starts", "ends", "output_padding",
               "output_shape"}
_FLOAT_ATTRS = {"alpha", "beta", "bias", "epsilon", "ratio", "min", "max"}
_STRING_ATTRS = {"auto_pad", "mode", "approximate", "coordinate_transformation_mode", "nearest_mode",
                  "keep_aspect_ratio_policy"}


def _attr_problem(name: str, value) -> str | None:
    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    if name in _INT_ATTRS and not is_int(value):
        return "expected an integer"
    if name in _INTS_ATTRS and not (isinstance(value, list) and all(is_int(v) for v in value)):
        return "expected a list of integers"
    if name in _FLOAT_ATTRS and not (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return "expected a number"
    if name in _STRING_ATTRS and not isinstance(value, bytes):
        return "expected a string"
    return None


# Tensor element types archcost reads: TensorProto.DataType -> (bytes per value, typed field).
# Others (STRING, complex, 4-bit and 8-bit float types, UNDEFINED, numbers from a future or a
# corrupt file) are refused: their values cannot be checked or evaluated here.
_TENSOR_TYPES = {
    1: (4, "float_data"),    # FLOAT
    2: (1, "int32_data"),    # UINT8
    3: (1, "int32_data"),    # INT8
    4: (2, "int32_data"),    # UINT16
    5: (2, "int32_data"),    # INT16
    6: (4, "int32_data"),    # INT32
    7: (8, "int64_data"),    # INT64
    9: (1, "int32_data"),    # BOOL
    10: (2, "int32_data"),   # FLOAT16
    11: (8, "double_data"),  # DOUBLE
    12: (4, "uint64_data"),  # UINT32
    13: (8, "uint64_data"),  # UINT64
    16: (2, "int32_data"),   # BFLOAT16
}

_FLOAT_TYPES = {1, 10, 11, 16}  # FLOAT, FLOAT16, DOUBLE, BFLOAT16: values, not shapes or indices


def _type_name(data_type: int) -> str:
    return onnx_proto.DATA_TYPE_NAMES.get(data_type, str(data_type))


ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish"}
# Shape arithmetic evaluated when every input is known (Constant/Shape are always evaluated).
FOLDABLE = {"Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice", "Reshape",
            "Mul", "Div", "Add", "Sub", "Identity", "ConstantOfShape", "Range", "Floor", "Ceil", "Sqrt"}
# More ops evaluated on constants: TF-style SAME padding (Transpose, Clip, Max of shape arithmetic),
# weight standardisation (ReduceMean, Pow of an initializer), masks (Where, comparisons). Each
# output is no larger than its broadcast inputs, except Expand and Tile, checked before they run.
FOLDABLE_ELEMENTWISE = {
    "Neg": np.negative, "Abs": np.abs, "Exp": np.exp, "Log": np.log, "Reciprocal": np.reciprocal,
    "Not": np.logical_not, "Sign": np.sign,
}
FOLDABLE_COMPARE = {"Equal": np.equal, "Less": np.less, "Greater": np.greater, "LessOrEqual": np.less_equal,
                    "GreaterOrEqual": np.greater_equal, "And": np.logical_and, "Or": np.logical_or,
                    "Xor": np.logical_xor}
FOLDABLE_REDUCE = {"ReduceMean": np.mean, "ReduceSum": np.sum, "ReduceMax": np.max, "ReduceMin": np.min}
FOLDABLE |= {"Transpose", "Clip", "Pow", "Max", "Min", "Where", "Expand", "Tile", "Flatten", "Erf",
             "BatchNormalization",
             *FOLDABLE_ELEMENTWISE, *FOLDABLE_COMPARE, *FOLDABLE_REDUCE}


class _Importer:
    def __init__(self, model, source: str, input_shape, base_dir=None):
        model = onnx_proto.as_model(model)
        self.source = source
        self.input_shape = input_shape
        self.base_dir = None if base_dir is None else pathlib.Path(base_dir)
        self.onnx_graph = model.graph
        self.opset = self._default_opset(model)
        self.init = {}
        for t in model.graph.initializer:
            # Two initializers of one name: which one the graph means is not defined.
            if t.name in self.init:
                raise ArchcostError(f"initializer {quote(t.name)}: defined twice")
            self.init[t.name] = t
        if len(model.graph.sparse_initializer):
            t = model.graph.sparse_initializer[0]
            raise ArchcostError(f"sparse initializer {quote(t.values.name)}: sparse tensors are not supported")
        self.dataless: set[str] = set()  # initializers with dims and no data (a shape, no values)
        for t in self.init.values():  # before anything reads a value: sizes, types, external files
            self._check_tensor(t, f"initializer {quote(t.name)}", shape_only=True)
        self.values: dict[str, np.ndarray] = {}  # constant tensors, evaluated on demand
        self.tensors: dict[str, str] = {}  # activation tensor -> archcost node
        self.g = Graph(model.graph.name or pathlib.Path(source).stem)
        self.unsupported: list[tuple[str, str, str]] = []
        self.poisoned: set[str] = set()
        self.skip: set[int] = set()  # nodes folded into another one
        self.replace: dict[int, tuple] = {}  # node index -> (handler name, data)
        self.extra_pads: dict[int, tuple] = {}
        # layer -> {param: (tensor, layout)}: where each layer's weights are in the file, read only
        # when they are asked for (file_weights), so that the analysis never decodes them.
        self.weight_sources: dict[str, dict[str, tuple[str, str]]] = {}

    @staticmethod
    def _default_opset(model) -> int:
        """The version of the default ONNX domain the model imports (13 when it names none)."""
        versions = {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")}
        if len(versions) > 1:
            raise ArchcostError(f"opset_import: the ONNX domain is imported at several versions {sorted(versions)}")
        version = versions.pop() if versions else 13
        newest = onnx_proto.NEWEST_OPSET
        # An op's meaning (a default axis, an attribute turned input) changes between opsets:
        # a version no ONNX release defines cannot be read as if it were an older one.
        if not 1 <= version <= newest:
            raise ArchcostError(f"opset_import: ONNX opset version {version} is not one this importer knows "
                                f"(1 to {newest})")
        return version

    # ---- tensors
    def _check_tensor(self, t, what: str, shape_only: bool = False) -> None:
        """Refuse a tensor whose type is unknown or whose data does not match its dims, before
        any of it is allocated: ``dims`` may declare 10^12 values over a few bytes of data.
        With ``shape_only`` (initializers), a tensor with dims and no data at all is accepted as
        a weight known only by its shape."""
        if t.data_type not in _TENSOR_TYPES:
            raise ArchcostError(f"{what}: data type {quote(_type_name(t.data_type))} is not supported")
        if t.HasField("segment"):
            raise ArchcostError(f"{what}: segmented tensors are not supported")
        dims = list(t.dims)
        if any(d < 0 for d in dims):
            raise ArchcostError(f"{what}: dims {quote(dims)} has a negative dimension")
        count = math.prod(dims)
        itemsize, field = _TENSOR_TYPES[t.data_type]
        limit = limit_from_env("ARCHCOST_MAX_TENSOR_BYTES", DEFAULT_MAX_TENSOR_BYTES)
        if count * itemsize > limit:  # even as a shape alone: no model holds a tensor this large
            raise ArchcostError(f"{what}: dims {quote(dims)} declare {_count(count)} values "
                                f"({_count(count * itemsize)} bytes), "
                                f"more than the {limit:,} archcost accepts (set ARCHCOST_MAX_TENSOR_BYTES to raise it)")
        if t.data_location == onnx_proto.EXTERNAL:
            self._external_file(t, what, count * itemsize)
            return
        if t.HasField("raw_data"):
            if len(t.raw_data) != count * itemsize:
                raise ArchcostError(f"{what}: raw_data holds {len(t.raw_data):,} bytes, but dims {quote(dims)} of "
                                    f"{_type_name(t.data_type)} need {count * itemsize:,}")
            return
        held = len(getattr(t, field))
        if held == 0 and count and shape_only:
            # Dims and no data at all: a weight kept for its shape (cost models strip the values).
            # Its shape is used; reading its values is refused in const().
            self.dataless.add(t.name)
            return
        if held != count:
            raise ArchcostError(f"{what}: {field} holds {held:,} values, but dims {quote(dims)} declare {count:,}")

    def _external_file(self, t, what: str, need: int) -> tuple[pathlib.Path, int]:
        """The file and offset of an external tensor's data, after checking that the file lies
        inside the model's directory and holds ``need`` bytes there."""
        info = {e.key: e.value for e in t.external_data}
        location = info.get("location", "")
        if self.base_dir is None:
            raise ArchcostError(f"{what}: its data is in an external file, and the model's directory is not known")
        if not location:
            raise ArchcostError(f"{what}: external data without a location")
        # Only a relative path below the model's directory: '../../etc/passwd' or '/etc/passwd'
        # in a downloaded model must not make archcost read files the model does not own.
        parts = location.replace("\\", "/").split("/")
        drive = len(parts[0]) >= 2 and parts[0][1] == ":" and parts[0][0].isalpha()  # C:\... on Windows
        if "\0" in location or os.path.isabs(location) or location[:1] in "/\\" or drive or ".." in parts:
            raise ArchcostError(f"{what}: external data location {quote(location)} is outside the model's directory")
        base = self.base_dir.resolve()
        path = (base / location).resolve()
        if base not in path.parents:  # a symbolic link inside the directory pointing out of it
            raise ArchcostError(f"{what}: external data location {quote(location)} is outside the model's directory")
        try:
            offset = int(info.get("offset", "0"))
            length = int(info["length"]) if "length" in info else None
        except ValueError:
            raise ArchcostError(f"{what}: external data offset/length {quote(info.get('offset'))}/"
                                f"{quote(info.get('length'))} are not integers") from None
        if offset < 0 or (length is not None and length < 0):
            raise ArchcostError(f"{what}: external data offset {offset} / length {length} is negative")
        try:
            if not path.is_file():
                state = "is not a regular file" if path.exists() else "does not exist"
                raise ArchcostError(f"{what}: external data file {quote(location)} {state}")
            size = path.stat().st_size
        except OSError as exc:  # a file we may not look at
            raise ArchcostError(f"{what}: external data file {quote(location)}: {exc.strerror}") from None
        length = size - offset if length is None else length
        if length != need:
            raise ArchcostError(f"{what}: external data length {length:,} bytes, but its dims need {need:,}")
        if offset + length > size:
            raise ArchcostError(f"{what}: external data file {quote(location)} has {size:,} bytes, fewer than "
                                f"offset {offset:,} + length {length:,}")
        return path, offset

    def _array(self, t, what: str) -> np.ndarray:
        """The values of a checked tensor; external data is read here, never by onnx (which
        would resolve the location against the current directory)."""
        raw = None
        if t.data_location == onnx_proto.EXTERNAL:
            need = math.prod(t.dims) * _TENSOR_TYPES[t.data_type][0]
            path, offset = self._external_file(t, what, need)
            try:
                with open(path, "rb") as f:
                    f.seek(offset)
                    raw = f.read(need)
            except OSError as exc:
                raise ArchcostError(f"{what}: cannot read its external data ({exc.strerror})") from None
        try:
            return onnx_proto.tensor_array(t, raw)
        except ValueError as exc:  # values that do not fill the dims, should the checks above miss it
            raise ArchcostError(f"{what}: cannot read its values ({_first_line(exc)})") from None

    def is_const(self, name: str) -> bool:
        return name in self.values or name in self.init

    def const(self, name: str) -> np.ndarray:
        if name not in self.values:
            if name in self.dataless:
                node = getattr(self, "current", None)
                user = f"{self.where(node, self.nodes[node])}: " if node is not None else ""
                raise ArchcostError(f"{user}initializer {quote(name)} has dims "
                                    f"{quote(list(self.init[name].dims))} but no data, and its values are needed")
            self.values[name] = self._array(self.init[name], f"initializer {quote(name)}")
        return self.values[name]

    def const_shape(self, name: str) -> tuple:
        if name in self.init:
            return tuple(self.init[name].dims)
        return tuple(self.values[name].shape)

    def act(self, name: str, where: str) -> str:
        if name not in self.tensors:
            # Listed with every other node that does not convert, not the one error: a constant
            # here means archcost could not fold what computed it, or the op has no constant form.
            raise Unsupported(f"input {quote(name)} is a constant where an activation is expected")
        return self.tensors[name]

    def shape(self, tensor: str) -> tuple:
        return self.g.shape(self.tensors[tensor])

    # ---- the walk
    def run(self) -> Graph:
        graph = self.onnx_graph
        nodes = list(graph.node)
        self.nodes = nodes
        self.names = self._node_names(nodes)
        if not graph.output:  # nothing is asked of the graph: there is nothing to analyse
            raise ArchcostError("the model has no output")
        self._add_inputs(graph)
        order = self._order(nodes)
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(nodes):
            for t in node.input:
                if t:
                    self.consumers.setdefault(t, []).append(i)
        self.producers = {t: i for i, n in enumerate(nodes) for t in n.output if t}
        self.graph_outputs = {o.name for o in graph.output}
        self._fold_constants(nodes, order)
        self._find_patterns(nodes)
        for i in order:
            node = nodes[i]
            if i in self.skip:
                # A node folded into a pattern passes on the poison of its inputs, so that the
                # pattern's last node (which reads it) is skipped too, not misreported as reading a
                # constant.
                if any(t in self.poisoned for t in node.input if t):
                    self.poisoned.update(node.output)
                continue
            if any(t in self.poisoned for t in node.input if t):
                # Downstream of an unsupported node: still name it if it could never convert.
                reason = self._never_converts(node)
                if reason is not None:
                    self.unsupported.append((node.op_type, self.names[i], reason))
                self.poisoned.update(node.output)
                continue
            try:
                self._convert(i, node)
            except Unsupported as exc:
                self.unsupported.append((node.op_type, self.names[i], str(exc)))
                self.poisoned.update(node.output)
        if self.unsupported:
            raise ArchcostError(self._unsupported_message())
        outputs = [o.name for o in graph.output]
        missing = [o for o in outputs if o not in self.tensors and not self.is_const(o)]
        if missing:
            raise ArchcostError(f"graph output {quote(missing[0])} is not produced by any node")
        self._note_folded_batchnorm(nodes)
        self._note_computed_weights()
        constant = [o for o in outputs if o not in self.tensors]
        if constant:
            # Computed from constants and shapes alone (a Shape of the input, say): no layer of the
            # network computes it, so an analysis or a run of the layers would leave it out.
            raise ArchcostError(f"graph output {quote(constant[0])} is a constant, not computed by any layer "
                                f"(archcost analyses the layers from the input to the outputs)")
        return self.g

    def _note_folded_batchnorm(self, nodes) -> None:
        """Say so when the exporter folded BatchNorm into the convs: PyTorch's exporter (with
        do_constant_folding, its default) writes each folded conv's weight and bias as new
        initializers named onnx::Conv_N, and the BN layers are gone, so params count the folded
        weights and biases where the framework counts BN's scale and shift (and no buffers)."""
        folded = [self.names[i] for i, node in enumerate(nodes) if node.op_type == "Conv" and len(node.input) > 2
                  and node.input[2].startswith("onnx::Conv_") and self.is_const(node.input[2])]
        if not folded:
            return
        convs = sum(node.op_type == "Conv" for node in nodes)
        example = ", ".join(_name(n) for n in folded[:2]) + (", ..." if len(folded) > 2 else "")
        self.g.notes.append(
            f"{len(folded)} of {convs} convs carry a weight and bias the exporter folded from BatchNorm "
            f"(initializers onnx::Conv_*: {example}); params count those, not BN's scale, shift and "
            f"statistics, so they differ from the framework's count. Export with "
            f"do_constant_folding=False to keep BatchNorm")

    def _initializers_read(self, tensor: str) -> set:
        """The initializers a constant is computed from, through any chain of folded nodes."""
        found, seen, todo = set(), set(), [tensor]
        while todo:
            t = todo.pop()
            if t in seen or not t:
                continue
            seen.add(t)
            if t in self.init:
                found.add(t)
                continue
            i = self.producers.get(t)
            if i is not None:
                todo.extend(self.nodes[i].input)
        return found

    def _note_computed_weights(self) -> None:
        """Say so when a layer's weight is computed, in the file, from more values than it holds:
        NFNets' ScaledStdConv2d standardises its weight and multiplies it by a learned gain per
        output channel (a BatchNormalization of the weight, then a Mul). archcost folds that
        arithmetic into the conv's weight, so params count the weight, not the gain too."""
        layers, extra, names = [], 0, []
        for layer, sources in self.weight_sources.items():
            more = 0
            for tensor, _layout in sources.values():
                if not tensor or tensor in self.init or tensor not in self.values:
                    continue
                reads = [t for t in sorted(self._initializers_read(tensor))
                         if self.init[t].data_type in _FLOAT_TYPES]
                held = math.prod(self.const_shape(tensor))
                total = sum(math.prod(self.init[t].dims) for t in reads)
                if total > held:
                    more += total - held
                    names.extend(t for t in reads if math.prod(self.init[t].dims) < held)
            if more:
                layers.append(layer)
                extra += more
        if not layers:
            return
        example = ", ".join(_name(n) for n in layers[:2]) + (", ..." if len(layers) > 2 else "")
        read = ", ".join(_name(n) for n in dict.fromkeys(names[:2]))
        subject = ("layers", "compute their weights", "they hold") if len(layers) > 1 else \
            ("layer", "computes its weight", "it holds")
        self.g.notes.append(
            f"{len(layers)} {subject[0]} ({example}) {subject[1]} from {extra:,} more file values than "
            f"{subject[2]} (e.g. {read}: weight standardisation with a learned gain); params count the "
            f"computed weights, not those {extra:,} values, which a framework counts as parameters")

    def _fold_constants(self, nodes, order) -> None:
        """Evaluate, before any pattern is looked for, every Constant node and every foldable
        node whose inputs are all constants, so that the patterns see their values: exporters
        write GELU's sqrt(2), 1 and 0.5 as Constant nodes (or as arithmetic on them), and a Mul by
        a Constant is a scale, not a gate. A node that fails to fold here is left to the walk,
        which reports it naming the node."""
        for i in order:
            node = nodes[i]
            if self._standard(i) is None or node.op_type not in FOLDABLE or node.op_type == "Shape":
                continue
            if node.op_type != "Constant" and not (node.input and all(t and self.is_const(t) for t in node.input)):
                continue
            self.current = i
            try:
                self._fold(node, self.where(i, node))
            except (Unsupported, ArchcostError):
                continue
            self.skip.add(i)

    def _never_converts(self, node) -> str | None:
        """Why ``node`` could not convert whatever its inputs were, or None."""
        if node.domain not in ("", "ai.onnx"):
            return f"domain {_name(node.domain)}"
        if node.op_type == "Erf":  # only inside a pattern (GELU), and those were folded already
            return ""
        known = node.op_type in ACTIVATIONS or node.op_type in FOLDABLE or hasattr(self, f"on_{node.op_type}")
        return None if known else ""

    def _unsupported_message(self) -> str:
        # Names and op types come from the file: each is quoted when odd, and only the first
        # MAX_LISTED nodes are listed, so 10,000 unknown nodes still give one short line.
        by_type: dict[str, list[str]] = {}
        for op_type, name, reason in self.unsupported[:MAX_LISTED]:
            by_type.setdefault(_name(op_type), []).append(f"{_name(name)}{': ' + reason if reason else ''}")
        parts = [f"{op_type} ({'; '.join(items)})" for op_type, items in by_type.items()]
        count = len(self.unsupported)
        more = f" and {count - MAX_LISTED:,} more" if count > MAX_LISTED else ""
        return (f"{count:,} ONNX node{'s' if count > 1 else ''} with no archcost equivalent, so the model is "
                f"not analysed: {', '.join(parts)}{more}")

    def _node_names(self, nodes) -> list[str]:
        # One counter per base name: probing base_2, base_3... from 2 each time would be
        # quadratic in a file of 100,000 nodes that share one name.
        names, seen, next_k = [], set(), {}
        for i, node in enumerate(nodes):
            base = node.name or (node.output[0] if node.output and node.output[0] else f"{node.op_type}_{i}")
            name, k = base, next_k.get(base, 2)
            while name in seen:
                name, k = f"{base}_{k}", k + 1
            next_k[base] = k
            seen.add(name)
            names.append(name)
        return names

    def where(self, i, node) -> str:
        return f"node {quote(self.names[i])} ({_name(node.op_type)})"

    def _add_inputs(self, graph) -> None:
        inputs = [v for v in graph.input if v.name not in self.init]
        if not inputs:
            raise ArchcostError("the model has no input (every graph input is an initializer, or there are none)")
        names = [v.name for v in inputs]
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise ArchcostError(f"input {quote(twice)}: the graph declares it twice")
        if self.input_shape is not None and len(inputs) != 1:
            raise ArchcostError("--input is ambiguous: the model has several inputs")
        for value in inputs:
            what = f"input {quote(value.name)}"
            ttype = value.type.tensor_type
            if not value.type.HasField("tensor_type"):
                raise ArchcostError(f"{what}: not a tensor ({quote(value.type.WhichOneof('value'))}); "
                                    f"only tensor inputs are supported")
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in ttype.shape.dim]
            # The batch the file was exported at: shape arithmetic (a Resize's sizes) writes it.
            self.file_batch = dims[0] if dims and isinstance(dims[0], int) and dims[0] > 0 else None
            if self.input_shape is not None:
                shape = tuple(self.input_shape)
            else:
                if len(dims) < 2:
                    shown = "no shape" if not ttype.HasField("shape") else f"shape {quote(dims)}"
                    raise ArchcostError(f"{what}: expected a batch axis and more, got {shown}; give its size "
                                        f"with --input CxHxW")
                shape = dims[1:]
                dynamic = [d for d in shape if not isinstance(d, int) or d < 1]
                if dynamic:
                    raise ArchcostError(f"{what}: dimension {quote(dynamic[0])} of {quote(dims)} is not a fixed "
                                        f"size; give one with --input CxHxW")
            self.tensors[value.name] = self.g.input(shape, name=value.name)

    def _order(self, nodes) -> list[int]:
        """Node indices in a topological order; unknown tensors, tensors produced twice and
        cycles are errors."""
        producer = {}
        for i, node in enumerate(nodes):
            for t in node.output:
                if not t:
                    continue
                # ONNX is single-assignment: a second producer (or one overwriting a graph input
                # or an initializer) would make which value a consumer reads undefined.
                if t in producer:
                    raise ArchcostError(f"{self.where(i, node)}: output {quote(t)} is also produced by node "
                                        f"{quote(self.names[producer[t]])}")
                if t in self.tensors or t in self.init:
                    kind = "a graph input" if t in self.tensors else "an initializer"
                    raise ArchcostError(f"{self.where(i, node)}: output {quote(t)} has the name of {kind}")
                producer[t] = i
        deps = nx.DiGraph()
        deps.add_nodes_from(range(len(nodes)))
        for i, node in enumerate(nodes):
            if not node.output or not node.output[0]:
                raise ArchcostError(f"{self.where(i, node)}: has no output")
            for t in node.input:
                if not t or t in self.init or t in self.tensors:
                    continue
                if t not in producer:
                    raise ArchcostError(
                        f"{self.where(i, node)}: input {quote(t)} is not a graph input, an "
                        f"initializer or any node's output"
                    )
                deps.add_edge(producer[t], i)
        if not nx.is_directed_acyclic_graph(deps):
            cycle = [_name(self.names[e[0]]) for e in nx.find_cycle(deps)]
            if len(cycle) > MAX_LISTED:
                cycle = cycle[:MAX_LISTED - 1] + [f"... ({len(cycle) - MAX_LISTED + 1:,} more nodes)"] + cycle[-1:]
            raise ArchcostError(f"the graph has a cycle: {' -> '.join(cycle + cycle[:1])}")
        return list(nx.lexicographical_topological_sort(deps))

    def attrs(self, node) -> dict:
        out = {}
        for a in node.attribute:
            try:
                value = onnx_proto.attribute_value(a)
                problem = "it has no type" if value is None else "it is given twice" if a.name in out else None
                if problem is None and node.domain in ("", "ai.onnx"):
                    problem = _attr_problem(a.name, value)
                    problem = problem and f"{problem}, got {quote(value)}"
            except Exception as exc:  # an attribute whose type field is unknown
                problem = _first_line(exc)
            if problem:
                i = next(k for k, n in enumerate(self.nodes) if n is node or n == node)
                raise ArchcostError(f"{self.where(i, node)}: malformed attribute {quote(a.name)} ({problem})")
            out[a.name] = value
        return out

    # ---- patterns spread over several nodes
    # A node of another domain never joins a pattern: a custom 'Sigmoid' is not ONNX's sigmoid.
    def _standard(self, i):
        return i if i is not None and self.nodes[i].domain in ("", "ai.onnx") else None

    def _producer(self, tensor):
        return self._standard(self.producers.get(tensor))

    def _sole_consumer(self, tensor):
        users = self.consumers.get(tensor, [])
        return self._standard(users[0]) if len(users) == 1 and tensor not in self.graph_outputs else None

    def _scalar(self, tensor, value, tol=1e-3) -> bool:
        if not tensor or not self.is_const(tensor):
            return False
        if math.prod(self.const_shape(tensor)) != 1 or tensor in self.dataless:  # not a scalar: do not read
            return False
        v = self.const(tensor)
        if v.dtype.kind not in "iufb":
            return False
        return v.size == 1 and abs(float(v.reshape(-1)[0]) - value) <= tol * max(1.0, abs(value))

    def _find_patterns(self, nodes) -> None:
        for i, node in enumerate(nodes):
            if self._standard(i) is None:
                continue
            try:
                self._find_pattern(i, node, nodes)
            except ArchcostError:
                raise
            except (IndexError, KeyError, TypeError, ValueError):
                # A malformed node (an input or attribute missing or of the wrong type) starts no
                # pattern; converting it on its own reports what is wrong, naming it.
                pass

    def _find_pattern(self, i, node, nodes) -> None:
        if node.op_type == "Mul" and len(node.input) == 2 and not any(self.is_const(t) for t in node.input):
            self._fuse_gated(i, node)
        elif node.op_type == "Erf":
            self._fuse_gelu(i, node)
        elif node.op_type == "MatMul" and len(node.input) == 2 and self.is_const(node.input[1]):
            j = self._sole_consumer(node.output[0])
            if j is not None and nodes[j].op_type == "Add":
                other = [t for t in nodes[j].input if t != node.output[0]]
                w = self.const_shape(node.input[1])
                if len(other) == 1 and self.is_const(other[0]) and len(w) == 2 and \
                        self.const_shape(other[0]) in ((w[1],), (1, w[1])):
                    self.skip.add(i)
                    self.replace[j] = ("linear", (node.input[0], w, True, node.input[1], other[0]))
        elif node.op_type == "Pad":
            if self._pad_into_consumer(node):
                self.skip.add(i)

    def _pad_into_consumer(self, node) -> bool:
        """Fold a Pad into the padding of the one Conv or pool that reads it, if its pads are
        known; True if it did. The pattern pass calls it with the pads of the file; the walk calls
        it again (on_Pad) once shape arithmetic on activations (TF-style SAME padding computes the
        pads from Shape of the Pad's input) has been evaluated."""
        j = self._sole_consumer(node.output[0])
        if j is None or self.nodes[j].op_type not in ("Conv", "MaxPool", "AveragePool"):
            return False
        pads = self._pad_amounts(node)
        # (negative pads crop: they are no padding of the Conv, so they do not fold)
        if pads is None or len(pads) != 8 or any(pads[k] for k in (0, 1, 4, 5)) or min(pads) < 0:
            return False
        if not any(pads):  # pads of zero: the Pad is an identity, whatever its mode and value
            self.replace.setdefault(j, ("padded_input", node.input[0]))
            return True
        if self._pad_changes_meaning(node, self.nodes[j]):
            return False  # on_Pad makes it a Pad layer
        # ONNX: [n, c, h, w begins, n, c, h, w ends] -> (top, bottom, left, right)
        self.extra_pads[j] = (int(pads[2]), int(pads[6]), int(pads[3]), int(pads[7]))
        self.replace.setdefault(j, ("padded_input", node.input[0]))
        return True

    def _pad_changes_meaning(self, pad, consumer) -> str | None:
        """Why folding ``pad`` into ``consumer``'s padding would compute something else (it is then
        a Pad layer of its own, see on_Pad), or None.
        A Conv pads with zeros and a MaxPool with -inf (its padding is never the max), so a
        constant Pad of 0 folds into a Conv and one of -inf (timm's MaxPool2dSame) into a
        MaxPool. An AveragePool counts a Pad's zeros as values of its input: they fold when
        the pool has no padding of its own, as count_include_pad=1. Reflect, edge and wrap
        padding copy the input's border, which no layer's padding does."""
        attrs = self.attrs(pad)
        mode = attrs.get("mode", b"constant")
        mode = mode.decode("utf-8", "replace") if isinstance(mode, bytes) else mode
        if mode != "constant":
            return f"mode {mode!r} (only a constant Pad folds into a layer's padding)"
        value = attrs.get("value", 0.0)  # opset < 11; an input from 11 on
        if len(pad.input) > 2 and pad.input[2]:
            if not self.is_const(pad.input[2]) or pad.input[2] in self.dataless:
                return "a constant_value computed at run time"
            held = self.const(pad.input[2]).reshape(-1)
            if held.size != 1:
                return "a constant_value that is not one value"
            value = float(held[0])
        want = {"Conv": 0.0, "MaxPool": -math.inf, "AveragePool": 0.0}[consumer.op_type]
        if value != want:
            return (f"value {value:g} before a {consumer.op_type} (whose own padding is {want:g}: the "
                    f"padded values would differ)")
        if consumer.op_type == "AveragePool":
            c_attrs = self.attrs(consumer)
            if any(c_attrs.get("pads", [])) or self._auto_pad(c_attrs, "") not in ("NOTSET", "VALID"):
                return "zeros before an AveragePool that pads too (the two paddings average differently)"
        return None

    def _pad_amounts(self, node):
        """The Pad's 8 amounts [n, c, h, w begins, n, c, h, w ends], or None when not known."""
        attrs = self.attrs(node)
        if "pads" in attrs:
            return list(attrs["pads"])
        if len(node.input) > 1 and node.input[1] and self.is_const(node.input[1]) \
                and node.input[1] not in self.dataless:
            value = self.const(node.input[1])
            # (float pads are a broken file: left unfolded, the Pad is reported on its own)
            if value.dtype.kind not in "iu":
                return None
            pads = [int(v) for v in value.reshape(-1)]
            if len(node.input) > 3 and node.input[3]:  # opset 18: the pads are of these axes only
                if not self.is_const(node.input[3]) or self.const(node.input[3]).dtype.kind not in "iu":
                    return None
                # (the rank is known once the walk reaches the Pad: it folds then)
                if node.input[0] not in self.tensors or len(self.shape(node.input[0])) != 4:
                    return None
                axes = [int(a) + 4 if a < 0 else int(a) for a in self.const(node.input[3]).reshape(-1)]
                if len(set(axes)) != len(axes) or len(pads) != 2 * len(axes) or not all(0 <= a < 4 for a in axes):
                    return None
                full = [0] * 8
                for k, a in enumerate(axes):
                    full[a], full[a + 4] = pads[k], pads[k + len(axes)]
                pads = full
            return pads
        return None

    def _fuse_gated(self, i, node) -> None:
        """x * sigmoid(x) -> silu; x * hardsigmoid(x) (alpha 1/6, beta 1/2) -> hardswish."""
        for gate_t, x in ((node.input[1], node.input[0]), (node.input[0], node.input[1])):
            j = self._producer(gate_t)
            if j is None or self._sole_consumer(gate_t) != i or self.nodes[j].input[0] != x:
                continue
            gate = self.nodes[j]
            if gate.op_type == "Sigmoid":
                fn = "silu"
            elif gate.op_type == "HardSigmoid":
                a = self.attrs(gate)
                if abs(a.get("alpha", 0.2) - 1 / 6) > 1e-4 or abs(a.get("beta", 0.5) - 0.5) > 1e-4:
                    continue
                fn = "hardswish"
            else:
                continue
            self.skip.add(j)
            self.replace[i] = ("activation", (x, fn))
            return

    def _fuse_gelu(self, i, erf) -> None:
        """0.5 * x * (1 + erf(x / sqrt(2))) in the orders exporters write it -> gelu."""
        nodes = self.nodes
        pre = self._producer(erf.input[0])
        if pre is None or self._sole_consumer(erf.input[0]) != i:
            return
        p = nodes[pre]
        if p.op_type == "Div" and self._scalar(p.input[1], math.sqrt(2)):
            x = p.input[0]
        elif p.op_type == "Mul" and self._scalar(p.input[1], 1 / math.sqrt(2)):
            x = p.input[0]
        else:
            return
        add = self._sole_consumer(erf.output[0])
        if add is None or nodes[add].op_type != "Add" or not any(self._scalar(t, 1.0) for t in nodes[add].input):
            return
        m1 = self._sole_consumer(nodes[add].output[0])
        if m1 is None or nodes[m1].op_type != "Mul":
            return
        other = [t for t in nodes[m1].input if t != nodes[add].output[0]]
        if len(other) != 1:
            return
        fused = {pre, i, add, m1}
        end = None
        if other[0] == x or self._scalar(other[0], 0.5):
            m2 = self._sole_consumer(nodes[m1].output[0])
            want = 0.5 if other[0] == x else None
            if m2 is not None and nodes[m2].op_type == "Mul":
                rest = [t for t in nodes[m2].input if t != nodes[m1].output[0]]
                if len(rest) == 1 and ((want and self._scalar(rest[0], want)) or (not want and rest[0] == x)):
                    fused.add(m2)
                    end = m2
        else:
            h = self._producer(other[0])
            if h is not None and nodes[h].op_type == "Mul" and self._sole_consumer(other[0]) == m1:
                hin = list(nodes[h].input)
                if x in hin and any(self._scalar(t, 0.5) for t in hin if t != x):
                    fused.add(h)
                    end = m1
        if end is None:
            return
        self.skip.update(fused - {end})
        self.replace[end] = ("activation", (x, "gelu"))

    # ---- attribute checks
    @staticmethod
    def _axes(values, rank: int, where: str, what: str = "axes") -> list[int]:
        """ONNX axes (negative counting from the end) as indices in 0..rank-1. An axis out of
        range or given twice is an error, never wrapped round with ``% rank``."""
        values = list(values)
        if not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in values):
            raise ArchcostError(f"{where}: {what} {quote(values)} are not integers")
        out = [int(a) + rank if a < 0 else int(a) for a in values]
        bad = [a for a, k in zip(values, out) if not 0 <= k < rank]
        if bad:
            raise ArchcostError(f"{where}: {what} {quote([int(a) for a in values])}: {int(bad[0])} is out of range "
                                f"for a {rank}-d tensor")
        if len(set(out)) != len(out):
            raise ArchcostError(f"{where}: {what} {quote(values)} repeat an axis")
        return out

    def _int_const(self, tensor: str, where: str) -> list[int]:
        """The values of an integer constant input (a shape, axes, pads): a float 2.7 is not 2."""
        value = self.const(tensor)
        if value.dtype.kind not in "iu":
            raise ArchcostError(f"{where}: input {quote(tensor)} holds {value.dtype} values where integers are needed")
        return [int(v) for v in value.reshape(-1)]

    # ---- one node
    def add(self, op, inputs, node, suffix: str = "") -> str:
        name = f"{self.names[self.current]}{suffix}"
        try:
            return self.g.add(op, *inputs, name=name)
        except ArchcostError as exc:
            # The Graph names the layer with repr(): a 1-MB or multi-line node name from the file
            # would push what is wrong out of the message. Quote it instead.
            message = str(exc)
            if _name(name) != name:
                message = message.replace(repr(name), quote(name))
            raise ArchcostError(message) from None

    def _convert(self, i, node) -> None:
        where = self.where(i, node)
        self.current = i
        try:
            self._convert_node(i, node, where)
        except Unsupported:
            raise
        except ShapeError as exc:  # an op refusing its fields (stride 0, groups not dividing...)
            raise ArchcostError(f"{where}: {exc}") from None
        except ArchcostError:
            raise
        except (IndexError, KeyError) as exc:  # a required input or attribute is missing
            raise ArchcostError(f"{where}: malformed node, missing input or attribute ({_first_line(exc)})") from None
        except (TypeError, ValueError, OverflowError, ArithmeticError) as exc:
            # an attribute of the wrong type (group given as a string, a float perm...)
            raise ArchcostError(f"{where}: malformed node ({type(exc).__name__}: {_first_line(exc)})") from None

    def _convert_node(self, i, node, where) -> None:
        # The domain first: a custom-domain 'Add' is not ONNX's Add, not even on constants.
        if node.domain not in ("", "ai.onnx"):
            raise Unsupported(f"domain {_name(node.domain)}")
        if i in self.replace:
            kind, data = self.replace[i]
            if kind == "activation":
                x, fn = data
                self.tensors[node.output[0]] = self.add(Activation(fn), [self.act(x, where)], node)
                return
            if kind == "linear":
                x, w, bias, weight_t, bias_t = data
                self._linear(node, where, x, w, bias, weight_t=weight_t, bias_t=bias_t)
                return
        op_type = node.op_type
        inputs = [t for t in node.input]
        if op_type in FOLDABLE and (op_type in ("Constant", "Shape") or all(
                not t or self.is_const(t) for t in inputs)):
            self._fold(node, where)
            return
        if op_type in ACTIVATIONS:
            self._activation(node, where, ACTIVATIONS[op_type])
            return
        if op_type in ("Add", "Sub", "Mul", "Div") and self._identity_element(node, where):
            return
        handler = getattr(self, f"on_{op_type}", None)
        if handler is None:
            raise Unsupported("")
        handler(i, node, where, self.attrs(node))

    def _identity_element(self, node, where) -> bool:
        """x + 0, 0 + x, x - 0, x * 1, 1 * x or x / 1, with a constant that does not enlarge x:
        the output is x itself, no layer (MobileOne and FastViT add a constant 0 where a block has
        no identity branch). True when the node was taken as such. Only a literal (a Constant
        node, or one folded from Constants alone) counts: an initializer of 0 or 1, or a value
        folded from one (Unsqueeze(gamma) in PyTorch's GroupNorm export), may be a learned bias or
        scale at its initial value (HGNetV2's LearnableAffineBlock), parameters to count."""
        if len(node.input) != 2 or not all(node.input):
            return False
        neutral = 0 if node.op_type in ("Add", "Sub") else 1
        orders = [(0, 1), (1, 0)] if node.op_type in ("Add", "Mul") else [(0, 1)]
        for xi, ci in orders:
            x_t, c_t = node.input[xi], node.input[ci]
            if x_t not in self.tensors or not self.is_const(c_t) or self._initializers_read(c_t):
                continue
            shape = self.g.shape(self.tensors[x_t])
            const_shape = tuple(self.const_shape(c_t))
            if len(const_shape) > len(shape) or math.prod(const_shape) > math.prod(shape):
                continue
            full = (1,) * (len(shape) - len(const_shape)) + const_shape
            if any(c not in (1, d) for c, d in zip(full, shape)):
                continue
            value = self.const(c_t)
            if value.dtype.kind in "iuf" and bool(np.all(value == neutral)):
                self.tensors[node.output[0]] = self.act(x_t, where)
                return True
        return False

    def file_weights(self) -> dict:
        """Each layer's weights from the file, in the executor's layout (float32)."""
        from archcost.execute import param_shapes

        for layer in self.g.topological_order():
            op = self.g.op(layer)
            if isinstance(op, Input) or layer in self.weight_sources:
                continue
            cost = op.cost(tuple(self.g.shape(s) for s in self.g.inputs(layer)), self.g.shape(layer))
            if cost.weights or cost.biases or cost.buffers:  # a layer the importer made without its weights
                raise ArchcostError(f"layer {quote(layer)} ({op.label()}): its weights are not read from the file")
        out = {}
        for layer, sources in self.weight_sources.items():
            op, shapes = self.g.op(layer), [self.g.shape(s) for s in self.g.inputs(layer)]
            params = {}
            for param, (tensor, layout) in sources.items():
                where = f"layer {quote(layer)}: {param}"
                if not tensor or not self.is_const(tensor):
                    raise ArchcostError(f"{where} is computed at run time; the file holds no value to run it with")
                value = self.const(tensor)
                if value.dtype.kind not in "iuf":
                    raise ArchcostError(f"{where} {quote(tensor)} holds {value.dtype} values")
                value = value.astype(np.float64)
                if layout == "transposed":
                    value = value.T
                elif layout == "conv1d":  # (M, C/g, k) -> the 1 x k Conv2d's (M, C/g, 1, k)
                    value = value.reshape(value.shape[0], value.shape[1], 1, value.shape[2])
                elif layout == "zeros":
                    value = np.zeros(value.size)
                elif layout == "reciprocal":
                    with np.errstate(divide="ignore"):
                        value = 1.0 / value.reshape(-1)
                elif layout == "flat":
                    value = value.reshape(-1)
                params[param] = np.ascontiguousarray(value, dtype=np.float32)
            expected = param_shapes(op, shapes, self.g.shape(layer))
            for param, value in params.items():
                if value.shape != expected[param]:
                    raise ArchcostError(f"layer {quote(layer)}: {param} {quote(sources[param][0])} holds "
                                        f"{'x'.join(map(str, value.shape))} values, the layer needs "
                                        f"{'x'.join(map(str, expected[param]))}")
            out[layer] = params
        return out

    def output_layers(self) -> dict:
        """{ONNX graph output: the archcost layer that computes it}."""
        return {o.name: self.tensors[o.name] for o in self.onnx_graph.output if o.name in self.tensors}

    def out(self, node, op, inputs, suffix: str = "") -> str:
        name = self.add(op, inputs, node, suffix)
        self.tensors[node.output[0]] = name
        return name

    def source_of(self, i, node, where) -> str:
        """The node's data input, looking through a Pad folded into it."""
        kind = self.replace.get(i, (None, None))
        tensor = kind[1] if kind[0] == "padded_input" else node.input[0]
        return self.act(tensor, where)

    @staticmethod
    def _auto_pad(attrs, where) -> str:
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
            raise ArchcostError(f"{where}: auto_pad {quote(auto)} is not NOTSET, SAME_UPPER, SAME_LOWER or VALID")
        return auto

    def _spatial(self, i, node, where, attrs, kernel, *, allow_dilation=True):
        if len(kernel) != 2:
            raise Unsupported(f"{len(kernel)}-D windows (only 2-D)")
        strides = tuple(attrs.get("strides", (1, 1)))
        dilations = tuple(attrs.get("dilations", (1, 1)))
        pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
        # Check the attributes' lengths and signs here: a pads of length 6 must not be read as
        # its first four, and a stride of 0 must not reach the SAME-padding arithmetic.
        for key, values, size, low in (("kernel_shape", kernel, 2, 1), ("strides", strides, 2, 1),
                                       ("dilations", dilations, 2, 1), ("pads", pads, 4, 0)):
            if len(values) != size or not all(isinstance(v, int) and v >= low for v in values):
                raise ArchcostError(f"{where}: {key} {quote(list(values))}: expected {size} "
                                    f"{'non-negative' if low == 0 else 'positive'} integers")
        if not allow_dilation and dilations != (1, 1):
            raise Unsupported("dilated pooling")
        auto = self._auto_pad(attrs, where)
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            _, _, h, w = self.g.shape(self.source_of(i, node, where))
            padding = (*_same_pads(auto, h, kernel[0], strides[0], dilations[0]),
                       *_same_pads(auto, w, kernel[1], strides[1], dilations[1]))
        elif auto == "VALID":
            padding = (0, 0, 0, 0)
        else:
            padding = (pads[0], pads[2], pads[1], pads[3])  # ONNX: h_begin, w_begin, h_end, w_end
        extra = self.extra_pads.get(i)
        if extra:
            padding = tuple(a + b for a, b in zip(padding, extra))
        return strides, dilations, tuple(int(p) for p in padding)

    # Conv and pools
    def on_Conv(self, i, node, where, attrs):
        weight = node.input[1]
        if not self.is_const(weight):
            raise Unsupported("weights computed at run time")
        w = self.const_shape(weight)
        group = attrs.get("group", 1)
        if not isinstance(group, int) or group < 1:  # (a float 2.5 must not be read as 2)
            raise ArchcostError(f"{where}: group {quote(group)} is not a positive integer")
        if len(w) == 3:
            self._conv1d(node, where, attrs, w, group)
            return
        if len(w) != 4:
            raise Unsupported(f"{len(w) - 2}-D convolution (only 1-D and 2-D)")
        x = self.source_of(i, node, where)
        c = self.g.shape(x)[1] if len(self.g.shape(x)) == 4 else None
        if c is not None and w[1] * group != c:
            raise ArchcostError(f"{where}: weight {'x'.join(map(str, w))} with group {group} needs {w[1] * group} "
                                f"input channels, the input has {c}")
        kernel = tuple(attrs.get("kernel_shape", w[2:]))
        if kernel != tuple(w[2:]):
            raise ArchcostError(f"{where}: kernel_shape {kernel} disagrees with the weight {w}")
        strides, dilations, padding = self._spatial(i, node, where, attrs, kernel)
        bias = len(node.input) > 2 and bool(node.input[2])
        self._check_bias(node, where, int(w[0]))
        name = self.out(node, Conv2d(int(w[0]), kernel, strides, padding, dilations, group, bias), [x])
        self.weight_sources[name] = {"weight": (weight, "as is"), **({"bias": (node.input[2], "flat")} if bias else {})}

    def on_ConvTranspose(self, i, node, where, attrs):
        """A 2-D transposed convolution (decoders, FCN/U-Net upsampling); the weight is
        (C_in, C_out / group, kh, kw) in ONNX, PyTorch and archcost alike."""
        weight = node.input[1]
        if not self.is_const(weight):
            raise Unsupported("weights computed at run time")
        w = self.const_shape(weight)
        if len(w) != 4:
            raise Unsupported(f"{len(w) - 2}-D transposed convolution (only 2-D)")
        if "output_shape" in attrs:
            raise Unsupported("output_shape (archcost takes pads and output_padding)")
        if self._auto_pad(attrs, where) != "NOTSET":
            raise Unsupported(f"auto_pad={self._auto_pad(attrs, where)!r} (archcost takes explicit pads)")
        group = attrs.get("group", 1)
        if not isinstance(group, int) or group < 1:
            raise ArchcostError(f"{where}: group {quote(group)} is not a positive integer")
        x = self.act(node.input[0], where)
        shape = self.g.shape(x)
        if len(shape) != 4 or shape[1] != w[0]:
            raise ArchcostError(f"{where}: weight {'x'.join(map(str, w))} needs {w[0]} input channels, the input "
                                f"is {'x'.join(map(str, shape[1:]))}")
        kernel = tuple(attrs.get("kernel_shape", w[2:]))
        if kernel != tuple(w[2:]):
            raise ArchcostError(f"{where}: kernel_shape {kernel} disagrees with the weight {w}")
        pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
        if len(pads) != 4:
            raise ArchcostError(f"{where}: pads {quote(list(pads))}: expected 4 values")
        bias = len(node.input) > 2 and bool(node.input[2])
        out_channels = int(w[1]) * group
        self._check_bias(node, where, out_channels)
        op = ConvTranspose2d(out_channels, kernel, tuple(attrs.get("strides", (1, 1))),
                             (pads[0], pads[2], pads[1], pads[3]),  # ONNX: h_begin, w_begin, h_end, w_end
                             tuple(attrs.get("output_padding", (0, 0))), tuple(attrs.get("dilations", (1, 1))),
                             group, bias)
        name = self.out(node, op, [x])
        self.weight_sources[name] = {"weight": (weight, "as is"), **({"bias": (node.input[2], "flat")} if bias else {})}

    def _conv1d(self, node, where, attrs, w, group) -> None:
        """A 1-D convolution (ECA-Net's channel attention) on (N, C, L): a 1 x k Conv2d on the
        input viewed as (N, C, 1, L), then viewed back: the same MACs, params and outputs."""
        x = self.act(node.input[0], where)
        shape = self.g.shape(x)
        if len(shape) != 3:
            raise Unsupported(f"a 1-D convolution of a {len(shape)}-d input")
        _, c, length = shape
        if w[1] * group != c:
            raise ArchcostError(f"{where}: weight {'x'.join(map(str, w))} with group {group} needs {w[1] * group} "
                                f"input channels, the input has {c}")
        k = w[2]
        values = {"kernel_shape": tuple(attrs.get("kernel_shape", (k,))), "strides": tuple(attrs.get("strides", (1,))),
                  "dilations": tuple(attrs.get("dilations", (1,))), "pads": tuple(attrs.get("pads", (0, 0)))}
        for key, size, low in (("kernel_shape", 1, 1), ("strides", 1, 1), ("dilations", 1, 1), ("pads", 2, 0)):
            if len(values[key]) != size or not all(isinstance(v, int) and v >= low for v in values[key]):
                raise ArchcostError(f"{where}: {key} {quote(list(values[key]))}: expected {size} "
                                    f"{'non-negative' if low == 0 else 'positive'} integer{'s' if size > 1 else ''}")
        if values["kernel_shape"] != (k,):
            raise ArchcostError(f"{where}: kernel_shape {list(values['kernel_shape'])} disagrees with the weight {w}")
        (stride,), (dilation,), pads = values["strides"], values["dilations"], values["pads"]
        auto = self._auto_pad(attrs, where)
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = _same_pads(auto, length, k, stride, dilation)
        elif auto == "VALID":
            pads = (0, 0)
        bias = len(node.input) > 2 and bool(node.input[2])
        self._check_bias(node, where, int(w[0]))
        as_2d = self.add(Reshape((c, 1, length)), [x], node, suffix="_as_2d")
        conv = self.add(Conv2d(int(w[0]), (1, k), (1, stride), (0, 0, int(pads[0]), int(pads[1])), (1, dilation),
                               group, bias), [as_2d], node)
        self.weight_sources[conv] = {"weight": (node.input[1], "conv1d"),
                                     **({"bias": (node.input[2], "flat")} if bias else {})}
        self.tensors[node.output[0]] = self.add(Reshape((int(w[0]), self.g.shape(conv)[3])), [conv], node,
                                                suffix="_as_1d")

    def _check_bias(self, node, where, count: int) -> None:
        """A constant bias must hold one value per output (a (1, M) row counts too)."""
        if len(node.input) > 2 and node.input[2] and self.is_const(node.input[2]):
            shape = self.const_shape(node.input[2])
            if shape not in ((count,), (1, count)):
                raise ArchcostError(f"{where}: bias {quote(node.input[2])} of shape {quote(shape)} for {count} outputs")

    def _pool(self, cls, i, node, where, attrs, **extra):
        if len(node.output) > 1 and node.output[1]:
            raise Unsupported("pooling indices output")
        kernel = tuple(attrs["kernel_shape"])
        strides, _, padding = self._spatial(i, node, where, attrs, kernel, allow_dilation=False)
        try:
            op = cls(kernel, strides, padding, bool(attrs.get("ceil_mode", 0)), **extra)
        except ArchcostError as exc:
            raise Unsupported(str(exc)) from None
        self.out(node, op, [self.source_of(i, node, where)])

    def on_MaxPool(self, i, node, where, attrs):
        self._pool(MaxPool2d, i, node, where, attrs)

    def on_AveragePool(self, i, node, where, attrs):
        # Zeros of a Pad folded into the pool are values of its input: counted in every average.
        folded = bool(self.extra_pads.get(i))
        self._pool(AvgPool2d, i, node, where, attrs,
                   count_include_pad=folded or bool(attrs.get("count_include_pad", 0)))

    def on_GlobalAveragePool(self, i, node, where, attrs):
        self.out(node, GlobalAvgPool(), [self.act(node.input[0], where)])

    def on_GlobalMaxPool(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        shape = self.g.shape(x)
        if len(shape) != 4:
            raise Unsupported("needs an NCHW input")
        self.out(node, MaxPool2d((shape[2], shape[3]), 1), [x])  # one window over the whole map

    def on_ReduceMean(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self._int_const(node.input[1], where)
        rank = len(self.g.shape(x))
        if not axes and attrs.get("noop_with_empty_axes", 0):  # (opset 18: no axes and this flag: identity)
            raise Unsupported("a ReduceMean that reduces nothing")
        axes = sorted(self._axes(axes, rank, where)) if axes else list(range(rank))
        if rank != 4 or axes != [2, 3]:
            raise Unsupported(f"mean over axes {axes} (only over H and W of NCHW)")
        name = self.out(node, GlobalAvgPool(), [x])
        if not attrs.get("keepdims", 1):
            self.out(node, Flatten(), [name], suffix="_squeeze")

    def on_ReduceSum(self, i, node, where, attrs):
        """A sum over channel-like axes (SKNet's and ResNeSt's branches, stacked on axis 1): one
        ReduceSum layer per axis, the last axis first so that the earlier ones keep their index."""
        x = self.act(node.input[0], where)
        axes = attrs.get("axes")  # opset < 13; an input from 13 on
        if axes is None and len(node.input) > 1 and node.input[1]:
            if not self.is_const(node.input[1]):
                raise Unsupported("axes computed at run time")
            axes = self._int_const(node.input[1], where)
        shape = self.g.shape(x)
        if not axes and attrs.get("noop_with_empty_axes", 0):
            raise Unsupported("a ReduceSum that reduces nothing")
        axes = sorted(self._axes(axes, len(shape), where)) if axes else list(range(len(shape)))
        if 0 in axes:
            raise Unsupported("a sum over the batch axis (it would mix the samples)")
        keepdims = bool(attrs.get("keepdims", 1))
        ops = [ReduceSum(axis, keepdims) for axis in reversed(axes)]
        for op in ops:  # every axis checked before any layer is added
            try:
                shape = op.infer((shape,))
            except ShapeError as exc:
                raise Unsupported(str(exc).removeprefix("ReduceSum: ")) from None
        name = x
        for k, op in enumerate(ops):
            last = k == len(ops) - 1
            name = self.out(node, op, [name]) if last else self.add(op, [name], node, suffix=f"_axis{op.axis}")

    # normalisations over groups of channels
    def on_InstanceNormalization(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        c = self.g.shape(x)[1]
        self._group_norm(node, where, x, c, node.input[1], node.input[2], attrs)

    def on_GroupNormalization(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        groups, c = attrs["num_groups"], self.g.shape(x)[1]
        # Opset 18 and 20 scale and shift per group; 21 per channel (as PyTorch's nn.GroupNorm).
        if self.opset < 21 and groups != c:
            raise Unsupported(f"opset {self.opset}'s per-group scale and bias (archcost's GroupNorm scales per "
                              f"channel, as opset 21 and PyTorch)")
        self._group_norm(node, where, x, groups, node.input[1], node.input[2], attrs)

    def _group_norm(self, node, where, x, groups, scale_t, bias_t, attrs):
        c = self.g.shape(x)[1]
        for t, what in ((scale_t, "scale"), (bias_t, "bias")):
            if not self.is_const(t):
                raise Unsupported(f"a {what} computed at run time")
            if math.prod(self.const_shape(t)) != c:
                raise ArchcostError(f"{where}: {what} of shape {list(self.const_shape(t))} for {c} channels")
        eps = _f(attrs.get("epsilon", 1e-5))
        # PyTorch writes nn.GroupNorm at opset < 18 as InstanceNormalization of (N, groups, -1)
        # with a scale of ones and a bias of zeros (the learned ones follow as Mul and Add):
        # those constants are no parameters of the network.
        identity = (scale_t not in self.dataless and bias_t not in self.dataless
                    and np.all(self.const(scale_t) == 1) and np.all(self.const(bias_t) == 0))
        name = self.out(node, GroupNorm(int(groups), eps, affine=not identity), [x])
        if not identity:
            self.weight_sources[name] = {"gamma": (scale_t, "flat"), "beta": (bias_t, "flat")}

    # resampling
    def on_Resize(self, i, node, where, attrs):
        """Resize of H and W (HRNet's and GhostNetV2's upsampling): nearest with the asymmetric
        map and floor (PyTorch's mode="nearest"), linear with half_pixel, pytorch_half_pixel or
        align_corners (PyTorch's bilinear). Everything else is refused by name: cubic, the other
        nearest rounding modes, tf_crop_and_resize, antialias, exclude_outside, an aspect-ratio
        policy, a resize of the batch or channel axis."""
        if self.opset < 11:
            raise Unsupported(f"Resize of opset {self.opset} (its coordinate mapping is not the one of opset 11 "
                              f"on, which archcost computes)")
        x = self.act(node.input[0], where)
        mode = self._text(attrs, "mode", "nearest")
        coord = self._text(attrs, "coordinate_transformation_mode", "half_pixel")
        if mode == "nearest":
            rounding = self._text(attrs, "nearest_mode", "round_prefer_floor")
            if coord != "asymmetric" or rounding != "floor":
                raise Unsupported(f"nearest with coordinate_transformation_mode={coord!r}, nearest_mode={rounding!r} "
                                  f"(archcost resizes nearest with 'asymmetric' and 'floor', PyTorch's mode)")
        elif mode == "linear":
            if coord not in ("half_pixel", "pytorch_half_pixel", "align_corners"):
                raise Unsupported(f"linear with coordinate_transformation_mode={coord!r} (archcost computes "
                                  f"half_pixel, pytorch_half_pixel and align_corners)")
        else:
            raise Unsupported(f"mode={mode!r} (archcost resizes nearest and linear)")
        for name, default in (("antialias", 0), ("exclude_outside", 0)):
            if attrs.get(name, default) != default:
                raise Unsupported(f"{name}={attrs[name]}")
        if self._text(attrs, "keep_aspect_ratio_policy", "stretch") != "stretch":
            raise Unsupported(f"keep_aspect_ratio_policy={self._text(attrs, 'keep_aspect_ratio_policy', '')!r}")
        shape = self.g.shape(x)
        if len(shape) != 4:
            raise Unsupported(f"a resize of a {len(shape)}-d input (archcost resizes the H and W of NCHW)")
        axes = self._axes(attrs["axes"], 4, where) if "axes" in attrs else [0, 1, 2, 3]
        scales = self._resize_input(node, 2, where, float)
        sizes = self._resize_input(node, 3, where, int)
        if (scales is None) == (sizes is None):
            raise ArchcostError(f"{where}: exactly one of scales and sizes must be given")
        given = scales if scales is not None else sizes
        if len(given) != len(axes):
            raise ArchcostError(f"{where}: {len(given)} {'scales' if scales is not None else 'sizes'} for "
                                f"{len(axes)} axes")
        per_axis = dict(zip(axes, given))
        # Sizes name the batch the file was exported at, or (computed from Shape) the graph's.
        keep = ({0: {1.0}, 1: {1.0}} if scales is not None
                else {0: {getattr(self, "file_batch", None), shape[0]}, 1: {shape[1]}})
        for axis in (0, 1):
            if axis in per_axis and per_axis[axis] not in keep[axis]:
                raise Unsupported(f"a resize of the {'batch' if axis == 0 else 'channel'} axis")
        if scales is not None:
            # ONNX's scales are float32: 10 x 0.3f floors to 3 where the double 0.3 gives 2.
            pair = tuple(float(np.float32(per_axis.get(a, 1.0))) for a in (2, 3))
            op = Resize(scale=pair, mode=mode, coord=coord)
        else:
            op = Resize(size=tuple(int(per_axis.get(a, shape[a])) for a in (2, 3)), mode=mode, coord=coord)
        self.out(node, op, [x])

    def on_Upsample(self, i, node, where, attrs):
        """The deprecated Upsample (opsets 7 to 9): nearest is the asymmetric floor map."""
        mode = self._text(attrs, "mode", "nearest")
        if mode != "nearest":
            raise Unsupported(f"mode={mode!r} (Upsample's linear maps coordinates asymmetrically, which archcost "
                              f"does not compute for linear)")
        x = self.act(node.input[0], where)
        if len(self.g.shape(x)) != 4:
            raise Unsupported("an Upsample of a non-NCHW input")
        scales = list(attrs["scales"]) if "scales" in attrs else self._resize_input(node, 1, where, float)
        if scales is None or len(scales) != 4:
            raise ArchcostError(f"{where}: expected 4 scales, got {quote(scales)}")
        if scales[0] != 1 or scales[1] != 1:
            raise Unsupported("an upsample of the batch or channel axis")
        self.out(node, Resize(scale=(float(np.float32(scales[2])), float(np.float32(scales[3]))), mode="nearest",
                              coord="asymmetric"), [x])

    def _resize_input(self, node, k: int, where: str, kind):
        """Resize's scales (k = 2) or sizes (k = 3) as a list, None when not given (an empty
        input counts as not given, as exporters write it)."""
        if len(node.input) <= k or not node.input[k]:
            return None
        if not self.is_const(node.input[k]):
            raise Unsupported(f"{'scales' if kind is float else 'sizes'} computed at run time")
        value = self.const(node.input[k])
        if value.size == 0:
            return None
        if kind is int:
            return self._int_const(node.input[k], where)
        values = [float(v) for v in value.reshape(-1)]
        if not all(math.isfinite(v) and v > 0 for v in values):
            raise ArchcostError(f"{where}: scales {quote(values)} must be positive and finite")
        return values

    @staticmethod
    def _text(attrs, name: str, default: str) -> str:
        value = attrs.get(name, default)
        return value.decode("utf-8", "replace") if isinstance(value, bytes) else value

    # dense layers
    def _linear(self, node, where, x_tensor, w, bias, trans_b=False, weight_t=None, bias_t=None):
        x = self.act(x_tensor, where)
        if len(w) != 2:
            raise Unsupported(f"weight of rank {len(w)}")
        k, m = (w[1], w[0]) if trans_b else (w[0], w[1])
        have = self.g.shape(x)[-1]
        if have != k:
            raise ArchcostError(f"{where}: weight {w[0]}x{w[1]} needs {k} input features, the input has {have}")
        if node.op_type == "Gemm":
            self._check_bias(node, where, int(m))
        name = self.out(node, Linear(int(m), bias), [x])
        # archcost's fc weight is (out, in): Gemm's B with transB, else B and MatMul's (in, out) transposed.
        weight_t = node.input[1] if weight_t is None else weight_t
        bias_t = (node.input[2] if bias else None) if bias_t is None else bias_t
        self.weight_sources[name] = {"weight": (weight_t, "as is" if trans_b else "transposed"),
                                     **({"bias": (bias_t, "flat")} if bias else {})}

    def on_Gemm(self, i, node, where, attrs):
        if attrs.get("transA", 0):
            raise Unsupported("transA=1")
        # Y = alpha * A @ B + beta * C: an fc layer computes alpha = beta = 1 only (they were
        # imported as a plain fc, and executed wrong, before).
        alpha, beta = _f(attrs.get("alpha", 1.0)), _f(attrs.get("beta", 1.0))
        if alpha != 1.0:
            raise Unsupported(f"alpha={alpha:g} (an fc layer computes alpha = 1)")
        if beta != 1.0 and len(node.input) > 2 and node.input[2]:
            raise Unsupported(f"beta={beta:g} (an fc layer adds its bias with beta = 1)")
        if not self.is_const(node.input[1]):
            raise Unsupported("weights computed at run time")
        if len(self.g.shape(self.act(node.input[0], where))) != 2:
            raise ArchcostError(f"{where}: Gemm needs a 2-D input, got {self.g.shape(self.act(node.input[0], where))}")
        bias = len(node.input) > 2 and bool(node.input[2])
        self._linear(node, where, node.input[0], self.const_shape(node.input[1]), bias, bool(attrs.get("transB", 0)))

    def on_MatMul(self, i, node, where, attrs):
        if not self.is_const(node.input[1]) or node.input[0] not in self.tensors:
            raise Unsupported("a product of two activations")
        self._linear(node, where, node.input[0], self.const_shape(node.input[1]), False)

    # elementwise
    def _activation(self, node, where, fn, **fields):
        self.out(node, Activation(fn, **fields), [self.act(node.input[0], where)])

    def on_LeakyRelu(self, i, node, where, attrs):
        self._activation(node, where, "leaky_relu", slope=_f(attrs.get("alpha", 0.01)))

    def on_Elu(self, i, node, where, attrs):
        self._activation(node, where, "elu", slope=_f(attrs.get("alpha", 1.0)))

    def on_HardSigmoid(self, i, node, where, attrs):
        alpha, beta = attrs.get("alpha", 0.2), attrs.get("beta", 0.5)
        if abs(alpha - 1 / 6) > 1e-4 or abs(beta - 0.5) > 1e-4:
            raise Unsupported(f"alpha {alpha:g}, beta {beta:g} (archcost's hardsigmoid is relu6(x + 3) / 6)")
        self._activation(node, where, "hardsigmoid")

    def on_Clip(self, i, node, where, attrs):
        lo, hi = (None if attrs.get(k) is None else _f(attrs[k]) for k in ("min", "max"))
        for k, bound in ((1, "lo"), (2, "hi")):
            if len(node.input) > k and node.input[k]:
                if not self.is_const(node.input[k]):
                    raise Unsupported("bounds computed at run time")
                value = _f(self.const(node.input[k]).reshape(-1)[0])
                lo, hi = (value, hi) if bound == "lo" else (lo, value)
        if lo == 0 and hi == 6:
            self._activation(node, where, "relu6")
        elif lo == 0 and (hi is None or hi >= 3e38):  # absent, inf or FLT_MAX: no upper bound
            self._activation(node, where, "relu")
        else:
            raise Unsupported(f"min {lo}, max {hi} (only 0..6 = ReLU6 and 0.. = ReLU)")

    def on_Erf(self, i, node, where, attrs):
        raise Unsupported("erf outside the GELU pattern 0.5 * x * (1 + erf(x / sqrt 2))")

    def on_BatchNormalization(self, i, node, where, attrs):
        if attrs.get("training_mode", 0) or any(node.output[1:]):
            raise Unsupported("training mode")
        x = self.act(node.input[0], where)
        c = self.g.shape(x)[1]
        scale = self.const_shape(node.input[1]) if self.is_const(node.input[1]) else (c,)
        if scale != (c,):
            raise ArchcostError(f"{where}: scale of shape {scale} for {c} channels")
        name = self.out(node, BatchNorm(eps=_f(attrs.get("epsilon", 1e-5))), [x])
        self.weight_sources[name] = {k: (t, "flat") for k, t in zip(("gamma", "beta", "mean", "var"), node.input[1:5])}

    def on_LayerNormalization(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        rank = len(self.g.shape(x))
        axis = self._axes([attrs.get("axis", -1)], rank, where, "axis")[0]
        if axis != rank - 1:
            raise Unsupported(f"normalisation over axes {axis}.. (only the last axis)")
        name = self.out(node, LayerNorm(-1, _f(attrs.get("epsilon", 1e-5))), [x])
        has_bias = len(node.input) > 2 and node.input[2]
        self.weight_sources[name] = {"gamma": (node.input[1], "flat"),
                                     "beta": (node.input[2], "flat") if has_bias else (node.input[1], "zeros")}

    def on_LRN(self, i, node, where, attrs):
        self.out(node, LRN(int(attrs["size"]), _f(attrs.get("alpha", 1e-4)), _f(attrs.get("beta", 0.75)),
                           _f(attrs.get("bias", 1.0))), [self.act(node.input[0], where)])

    def on_Dropout(self, i, node, where, attrs):
        if len(node.output) > 1 and node.output[1]:
            raise Unsupported("mask output")
        # Opset 12+: a third input turns on training mode, a random mask at run time; archcost's
        # dropout is inference's identity (it was taken as that, silently, before).
        if len(node.input) > 2 and node.input[2]:
            if not self.is_const(node.input[2]):
                raise Unsupported("training_mode computed at run time")
            if bool(self.const(node.input[2]).reshape(-1)[0]):
                raise Unsupported("training_mode=1 (a random mask at run time)")
        if attrs.get("is_test", 1) == 0 and self.opset < 7:
            raise Unsupported("is_test=0 (training mode)")
        ratio = attrs.get("ratio", 0.5)
        if len(node.input) > 1 and node.input[1] and self.is_const(node.input[1]):
            ratio = _f(self.const(node.input[1]).reshape(-1)[0])
        self.out(node, Dropout(_f(ratio)), [self.act(node.input[0], where)])

    def on_Softmax(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        axis = int(attrs.get("axis", -1 if self.opset >= 13 else 1))
        rank = len(self.g.shape(x))
        if self.opset < 13 and -rank <= axis < rank and axis % rank != rank - 1:
            # Before opset 13, Softmax flattens the input to 2-D at ``axis`` and normalises over
            # every axis from it on together; archcost's softmax is over one axis.
            raise Unsupported(f"opset {self.opset} softmax over all axes from {axis} on (archcost's is over one axis)")
        self.out(node, Softmax(axis), [x])

    def on_Gelu(self, i, node, where, attrs):
        approximate = attrs.get("approximate", b"none")
        approximate = approximate.decode(errors="replace") if isinstance(approximate, bytes) else str(approximate)
        if approximate != "none":
            # archcost's gelu is the exact erf form; the tanh approximation differs by up to ~1e-3.
            raise Unsupported(f"approximate={quote(approximate)} (archcost's gelu is the exact erf form)")
        self._activation(node, where, "gelu")

    # channel slices: ShuffleNet's chunk, CSP/Res2Net/MixNet's split, GhostNet's first-k channels
    def _channels_of(self, x, where, what) -> int:
        shape = self.g.shape(x)
        if len(shape) < 2:
            raise Unsupported(f"{what} of a {len(shape)}-d tensor")
        return shape[1]

    def on_Slice(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        shape = self.g.shape(x)
        if "starts" in attrs:  # opset 1-9: attributes, no steps
            starts, ends = list(attrs["starts"]), list(attrs["ends"])
            axes, steps = list(attrs.get("axes", range(len(starts)))), [1] * len(starts)
        else:
            if len(node.input) < 3 or not all(node.input[k] and self.is_const(node.input[k]) for k in (1, 2)):
                raise Unsupported("starts or ends computed at run time")
            starts, ends = self._int_const(node.input[1], where), self._int_const(node.input[2], where)
            optional = [node.input[k] if len(node.input) > k and node.input[k] else None for k in (3, 4)]
            for t in optional:
                if t is not None and not self.is_const(t):
                    raise Unsupported("axes or steps computed at run time")
            axes = self._int_const(optional[0], where) if optional[0] else list(range(len(starts)))
            steps = self._int_const(optional[1], where) if optional[1] else [1] * len(starts)
        if not len(starts) == len(ends) == len(axes) == len(steps):
            raise ArchcostError(f"{where}: starts, ends, axes and steps differ in length")
        axes = self._axes(axes, len(shape), where)
        if 0 in steps:
            raise ArchcostError(f"{where}: a step is 0")
        channels = None
        for a, start, end, step in zip(axes, starts, ends, steps):
            if a == 0:
                # The graph's shapes are at batch 1: only a slice that keeps every sample of any
                # batch (0 or -inf to +inf, step 1) is known to be whole.
                if step != 1 or not (start == 0 or start <= -(2**62)) or end < 2**62:
                    raise Unsupported("a slice of the batch axis")
                continue
            # ONNX clamps starts and ends as Python's slice does (INT64_MAX = to the end).
            kept = list(range(shape[a]))[slice(start, end, step)]
            if a == 1:
                channels = kept
            elif kept != list(range(shape[a])):
                raise Unsupported(f"a slice of axis {a} (archcost slices channels only)")
        if channels is None:
            self.tensors[node.output[0]] = x  # every axis kept whole: an identity
            return
        if not channels:
            raise Unsupported("a slice that keeps no channel")
        self.out(node, ChannelSelect(tuple(channels)), [x])

    def on_Split(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        c = self._channels_of(x, where, "Split")
        axis = self._axes([attrs.get("axis", 0)], len(self.g.shape(x)), where, "axis")[0]
        if axis != 1:
            raise Unsupported(f"a split of axis {axis} (archcost splits channels only)")
        parts = len(node.output)
        if "split" in attrs:  # opset 1-12: an attribute
            sizes = list(attrs["split"])
        elif len(node.input) > 1 and node.input[1]:
            if not self.is_const(node.input[1]):
                raise Unsupported("split sizes computed at run time")
            sizes = self._int_const(node.input[1], where)
        else:  # equal parts; opset 18's num_outputs lets the last be smaller
            size = -(-c // parts)
            sizes = [min(size, c - k * size) for k in range(parts)]
        if len(sizes) != parts or any(s <= 0 for s in sizes) or sum(sizes) != c:
            raise ArchcostError(f"{where}: split {quote(sizes)} does not cut {c} channels into {parts} outputs")
        start = 0
        for k, (out, size) in enumerate(zip(node.output, sizes)):
            if out:
                self.tensors[out] = self.add(ChannelSelect(tuple(range(start, start + size))), [x], node,
                                             suffix=f"_{k}" if k else "")
            start += size

    def on_Gather(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        c = self._channels_of(x, where, "Gather")
        axis = self._axes([attrs.get("axis", 0)], len(self.g.shape(x)), where, "axis")[0]
        if axis != 1 or len(node.input) < 2 or not self.is_const(node.input[1]):
            raise Unsupported("a gather other than of channels by constant indices")
        indices = self.const(node.input[1])
        if indices.ndim != 1:
            raise Unsupported(f"{indices.ndim}-d indices (archcost keeps the channel axis)")
        picked = self._int_const(node.input[1], where)
        bad = [k for k in picked if not -c <= k < c]
        if bad:
            raise ArchcostError(f"{where}: index {bad[0]} is out of range for {c} channels")
        picked = [k + c if k < 0 else k for k in picked]
        if len(set(picked)) != len(picked) or not picked:
            raise Unsupported("indices that repeat a channel or pick none")
        self.out(node, ChannelSelect(tuple(picked)), [x])

    def on_Expand(self, i, node, where, attrs):
        """``gate.expand_as(x)`` feeding ``x * gate`` (ECA-Net, some SE blocks), or a context
        ``ctx.expand_as(x)`` feeding ``x + ctx`` / ``x - ctx``: the product, sum or difference
        broadcasts it itself, so the Expand is an alias. Any other Expand is listed."""
        x = self.act(node.input[0], where)
        if len(node.input) < 2 or not self.is_const(node.input[1]):
            raise Unsupported("a shape computed at run time")
        target = tuple(self._int_const(node.input[1], where))
        j = self._sole_consumer(node.output[0])
        if j is None or self.nodes[j].op_type not in ("Mul", "Add", "Sub") or len(self.nodes[j].input) != 2:
            raise Unsupported("an Expand that does not feed one Mul, Add or Sub")
        other = [t for t in self.nodes[j].input if t != node.output[0]]
        if len(other) != 1 or other[0] not in self.tensors:
            raise Unsupported("an Expand that does not feed one Mul, Add or Sub")
        shape, full = self.g.shape(x), self.g.shape(self.tensors[other[0]])
        # The product broadcasts the gate to exactly the other operand's shape: the expanded
        # target is that shape (its batch entry may be the export's 1).
        if len(target) != len(full) or target[1:] != full[1:] or target[0] not in (1, full[0]) or \
                len(shape) != len(full) or any(a not in (1, b) for a, b in zip(shape[1:], full[1:])):
            raise Unsupported(f"an Expand to {list(target)} that is not the shape of the "
                              f"{self.nodes[j].op_type}'s other operand")
        self.tensors[node.output[0]] = x

    def on_Identity(self, i, node, where, attrs):
        self.tensors[node.output[0]] = self.act(node.input[0], where)

    # merges and products
    def on_Concat(self, i, node, where, attrs):
        if any(self.is_const(t) for t in node.input):
            raise Unsupported("concatenation with a constant")
        self.out(node, Concat(int(attrs["axis"])), [self.act(t, where) for t in node.input])

    def _same_shape_merge(self, op, node, where):
        xs = [self.act(t, where) for t in node.input]
        shapes = [self.g.shape(x) for x in xs]
        if any(s != shapes[0] for s in shapes):
            raise Unsupported(f"broadcasting {' with '.join('x'.join(map(str, s)) for s in shapes)}")
        self.out(node, op, xs)

    def _broadcast_pair(self, op, node, where):
        """Two activations that broadcast numpy-style on equal ranks (x + (N, C, 1, 1) context): the
        op; more than two inputs must have equal shapes (archcost broadcasts pairs only)."""
        xs = [self.act(t, where) for t in node.input]
        shapes = [self.g.shape(x) for x in xs]
        if len(xs) > 2 or shapes[0] == shapes[1]:
            self._same_shape_merge(op, node, where)
            return
        a, b = shapes
        try:
            op.infer(shapes)  # the op's own broadcast rule
        except ShapeError:
            raise Unsupported(f"broadcasting {'x'.join(map(str, a))} with {'x'.join(map(str, b))}"
                              + (" (ranks differ)" if len(a) != len(b) else "")) from None
        self.out(node, op, xs)

    def on_Add(self, i, node, where, attrs):
        if any(self.is_const(t) for t in node.input):
            # A per-channel constant is a bias, C parameters; archcost's Affine would add C scales
            # and count 2 ops per element, so it is not that op.
            raise Unsupported("adding a constant (a bias outside a Conv or Gemm)")
        self._broadcast_pair(Add(), node, where)

    def on_Sub(self, i, node, where, attrs):
        if any(self.is_const(t) for t in node.input):
            raise Unsupported("subtracting a constant or from one")
        self._broadcast_pair(Sub(), node, where)

    def on_Sum(self, i, node, where, attrs):
        if len(node.input) == 1:
            self.tensors[node.output[0]] = self.act(node.input[0], where)
        else:
            self.on_Add(i, node, where, attrs)

    def on_Mean(self, i, node, where, attrs):
        self._same_shape_merge(Mean(), node, where)

    def on_Mul(self, i, node, where, attrs):
        consts = [t for t in node.input if self.is_const(t)]
        if not consts:
            self.out(node, Mul(), [self.act(t, where) for t in node.input])
            return
        x_t = next(t for t in node.input if not self.is_const(t))
        self._scale(node, where, x_t, consts[0], invert=False)

    def on_Div(self, i, node, where, attrs):
        if not self.is_const(node.input[1]) or self.is_const(node.input[0]):
            raise Unsupported("division by an activation")
        self._scale(node, where, node.input[0], node.input[1], invert=True)

    def _scale(self, node, where, x_t, const_t, invert):
        x = self.act(x_t, where)
        shape = self.g.shape(x)
        # The constant's shape decides; its values are read only for a scalar factor (a per-channel
        # weight may be stored as dims alone, or be large).
        const_shape = self.const_shape(const_t)
        if math.prod(const_shape) == 1:
            value = self.const(const_t).reshape(-1)[0]
            if value.dtype.kind not in "iuf":
                raise ArchcostError(f"{where}: factor {quote(const_t)} of type {value.dtype} is not a number")
            factor = _f(value)
            if invert and factor == 0:
                raise ArchcostError(f"{where}: division by the constant 0 ({quote(const_t)})")
            if not math.isfinite(factor) or not math.isfinite(1.0 / factor if invert and factor else factor):
                raise ArchcostError(f"{where}: factor {factor} of {quote(const_t)} is not a finite number")
            self.out(node, Scale(1.0 / factor if invert else factor), [x])
        elif (axis := self._one_axis(const_shape, shape)) is not None:
            # A learned factor per index of one axis: the channels of NCHW ((C, 1, 1)), or the
            # last axis of a channels-last map ((C,): EdgeNeXt's layer scale after a Permute).
            shift = self._per_channel_shift(node, shape, axis)
            if shift is not None:  # x * a + b: GroupNorm's affine part as PyTorch exports it
                add_i, bias_t = shift
                name = self.out(node, Affine(axis), [x])
                self.weight_sources[name] = {"gamma": (const_t, "reciprocal" if invert else "flat"),
                                             "beta": (bias_t, "flat")}
                self.skip.add(add_i)
                self.tensors[self.nodes[add_i].output[0]] = name
                return
            name = self.out(node, Scale(None, axis), [x])  # a learned per-channel factor
            self.weight_sources[name] = {"gamma": (const_t, "reciprocal" if invert else "flat")}
        else:
            raise Unsupported(f"a constant of shape {tuple(const_shape)}")

    def _per_channel_shift(self, node, shape, axis):
        """(index, constant) of the Add of a constant along ``axis`` alone that alone reads
        ``node``'s output, or None."""
        j = self._sole_consumer(node.output[0])
        if j is None or self.nodes[j].op_type != "Add" or j in self.skip:
            return None
        add = self.nodes[j]
        others = [t for t in add.input if t != node.output[0]]
        if len(add.input) != 2 or len(others) != 1 or not self.is_const(others[0]):
            return None
        return (j, others[0]) if self._one_axis(self.const_shape(others[0]), shape) == axis else None

    @staticmethod
    def _one_axis(const_shape, shape) -> int | None:
        """The one non-batch axis along which a constant varies when it broadcasts into ``shape``
        along that axis alone, numpy-style: 1 for (C,1,1) or (1,C,1,1) on NCHW and (C,) on NC; the
        last for (C,) on a channels-last (N,H,W,C) map. None for any other shape."""
        if len(const_shape) > len(shape) or len(shape) < 2:
            return None
        full = (1,) * (len(shape) - len(const_shape)) + tuple(const_shape)
        varying = [k for k, d in enumerate(full) if d != 1]
        if len(varying) != 1 or varying[0] == 0 or full[varying[0]] != shape[varying[0]]:
            return None
        return varying[0]

    # views
    def on_Flatten(self, i, node, where, attrs):
        if int(attrs.get("axis", 1)) != 1:
            raise Unsupported(f"axis {attrs.get('axis')} (only 1)")
        self.out(node, Flatten(), [self.act(node.input[0], where)])

    def _view(self, node, where, x, per_sample):
        shape = self.g.shape(x)
        if len(per_sample) == 1 and per_sample[0] in (-1, math.prod(shape[1:])):
            self.out(node, Flatten(), [x])
        else:
            self.out(node, Reshape(tuple(int(d) for d in per_sample)), [x])

    def on_Reshape(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        if not self.is_const(node.input[1]):
            raise Unsupported("target shape computed from activations")
        target = self._int_const(node.input[1], where)
        shape = self.g.shape(x)
        if not target:
            raise ArchcostError(f"{where}: the target shape is empty")
        if any(d < -1 for d in target) or target.count(-1) > 1:
            raise ArchcostError(f"{where}: target shape {quote(target)}: entries must be >= 0, with at most one -1")
        if not attrs.get("allowzero", 0) and 0 in target[len(shape):]:
            raise ArchcostError(f"{where}: target shape {quote(target)} copies (0) an axis the "
                                f"{len(shape)}-d input does not have")
        if target[0] not in (0, 1, -1) or (target[0] == -1 and -1 in target[1:]):
            raise Unsupported(f"target {quote(target)} moves the batch axis")
        if target[0] == -1 and math.prod(d for d in target[1:] if d) == 0:
            raise Unsupported(f"target {quote(target)}")
        per_sample = [shape[k + 1] if d == 0 and not attrs.get("allowzero", 0) else d for k, d in enumerate(target[1:])]
        self._view(node, where, x, per_sample)

    def _squeeze(self, node, where, attrs, unsqueeze):
        x = self.act(node.input[0], where)
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self._int_const(node.input[1], where)
        shape = list(self.g.shape(x))
        if unsqueeze:
            if not axes:
                raise ArchcostError(f"{where}: Unsqueeze needs axes")
            axes = self._axes(axes, len(shape) + len(axes), where)
            out = list(shape)
            for a in sorted(axes):
                out.insert(a, 1)
        else:
            axes = self._axes(axes, len(shape), where) if axes else []
            not_one = [a for a in axes if shape[a] != 1]
            if not_one:  # numpy and ONNX refuse it; wrapping or skipping it would invent a shape
                raise ArchcostError(f"{where}: cannot squeeze axis {not_one[0]} of size {shape[not_one[0]]}")
            drop = set(axes) or {k for k, d in enumerate(shape) if d == 1 and k}
            out = [d for k, d in enumerate(shape) if k not in drop]
        if 0 in axes:
            raise Unsupported("squeezing or unsqueezing the batch axis")
        self._view(node, where, x, out[1:])

    def on_Squeeze(self, i, node, where, attrs):
        self._squeeze(node, where, attrs, unsqueeze=False)

    def on_Unsqueeze(self, i, node, where, attrs):
        self._squeeze(node, where, attrs, unsqueeze=True)

    def on_Transpose(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        rank = len(self.g.shape(x))
        perm = attrs.get("perm", range(rank - 1, -1, -1))
        # A perm that is no permutation of the input's axes is a broken file, not an unsupported op.
        if len(perm) != rank or not all(isinstance(p, int) for p in perm) or sorted(perm) != list(range(rank)):
            raise ArchcostError(f"{where}: perm {quote(list(perm))} is not a permutation of the {rank} axes "
                                f"of the input")
        perm = tuple(perm)
        if perm[0] != 0:
            raise Unsupported(f"perm {perm} moves the batch axis")
        self.out(node, Permute(perm), [x])

    def on_Pad(self, i, node, where, attrs):
        """A Pad folds into the padding of the Conv or pool after it where that computes the same
        (``_pad_into_consumer``: cheaper, no copy); any other is a Pad layer, in every mode
        (constant, reflect, edge, wrap), of the spatial axes of an (N, C, H, W) or (N, C, L)
        input. Opset 1's ``paddings`` and opset 2's ``pads`` and ``value`` attributes, opset 11's
        pads and constant_value inputs, opset 18's axes input. Pads of the batch or channel axis,
        a pad of another rank, amounts or a value computed at run time, and what the Pad op
        refuses (negative amounts outside constant mode, reflect of an axis' size or more) are
        refused by name."""
        if self._pad_into_consumer(node):
            return  # the Conv or pool after it reads the Pad's input with the padding added
        x = self.act(node.input[0], where)
        shape = self.g.shape(x)
        rank = len(shape)
        mode = self._text(attrs, "mode", "constant")
        if mode not in PAD_MODES:
            raise Unsupported(f"mode {quote(mode)} (archcost pads {', '.join(map(repr, PAD_MODES))})")
        if mode == "wrap" and self.opset < 19:
            raise ArchcostError(f"{where}: mode 'wrap' is Pad's from opset 19 on; the file's opset is {self.opset}")
        pads = self._pad_list(node, attrs, rank, where)
        if not any(pads):  # an identity, whatever its mode, value and rank
            self.tensors[node.output[0]] = x
            return
        begins, ends = pads[:rank], pads[rank:]
        held = [f"{'N' if a == 0 else 'C'} ({begins[a]}, {ends[a]})" for a in (0, 1) if begins[a] or ends[a]]
        if held:
            raise Unsupported(f"pads of the {' and '.join(held)} axis (archcost pads the spatial axes only)")
        if rank not in (3, 4):
            raise Unsupported(f"a Pad of a {rank}-d input (archcost pads (N, C, H, W) and (N, C, L))")
        for axis in range(2, rank):
            if shape[axis] + begins[axis] + ends[axis] < 1:
                raise ArchcostError(f"{where}: pads ({begins[axis]}, {ends[axis]}) crop axis {axis} of the "
                                    f"{'x'.join(map(str, shape))} input to {shape[axis] + begins[axis] + ends[axis]}")
        spatial = (begins[2], ends[2], begins[3], ends[3]) if rank == 4 else (0, 0, begins[2], ends[2])
        value = self._pad_value(node, attrs, where) if mode == "constant" else 0.0
        try:
            op = Pad(spatial, mode, value)
            op.infer((shape,))
        except ShapeError as exc:  # a crop in another mode, reflect past the size, a crop to nothing
            raise Unsupported(str(exc).removeprefix("Pad: ")) from None
        self.out(node, op, [x])

    def _pad_list(self, node, attrs, rank: int, where: str) -> list[int]:
        """The Pad's 2 * rank amounts [x1_begin, x2_begin, ..., x1_end, ...], every axis."""
        if self.opset < 11:
            name = "paddings" if "paddings" in attrs else "pads"  # opset 1 spelled it paddings
            values = attrs.get(name)
            if values is None:
                raise ArchcostError(f"{where}: no pads attribute")
            if not (isinstance(values, list) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)):
                raise ArchcostError(f"{where}: {name} {quote(values)} must be integers")
            axes = None
        else:
            if len(node.input) < 2 or not node.input[1]:
                raise ArchcostError(f"{where}: no pads input")
            if not self.is_const(node.input[1]):
                raise Unsupported("pads computed at run time")
            values = self._int_const(node.input[1], where)
            axes = None
            if len(node.input) > 3 and node.input[3]:
                if self.opset < 18:
                    raise ArchcostError(f"{where}: an axes input is Pad's from opset 18 on; the file's opset is "
                                        f"{self.opset}")
                if not self.is_const(node.input[3]):
                    raise Unsupported("axes computed at run time")
                axes = self._axes(self._int_const(node.input[3], where), rank, where)
        count = rank if axes is None else len(axes)
        if len(values) != 2 * count:
            what = f"{rank}-d input" if axes is None else f"{count} axes"
            raise ArchcostError(f"{where}: {len(values)} pads for a {what} (expected {2 * count})")
        if axes is None:
            return [int(v) for v in values]
        full = [0] * (2 * rank)
        for k, a in enumerate(axes):
            full[a], full[a + rank] = int(values[k]), int(values[k + count])
        return full

    def _pad_value(self, node, attrs, where: str) -> float:
        """A constant Pad's value, as the float32 the padded map holds: opset 2's ``value``
        attribute or opset 11's constant_value input (one value of any numeric type; 0 when not
        given)."""
        if self.opset < 11:
            value = attrs.get("value", 0.0)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ArchcostError(f"{where}: value {quote(value)} must be a number")
        elif len(node.input) > 2 and node.input[2]:
            if not self.is_const(node.input[2]):
                raise Unsupported("a constant_value computed at run time")
            held = self.const(node.input[2])
            if held.size != 1 or held.dtype.kind not in "biuf":
                raise ArchcostError(f"{where}: constant_value {quote(node.input[2])} must be one number, got "
                                    f"{held.size:,} {held.dtype} values")
            value = held.reshape(-1)[0].item()
        else:
            value = 0.0
        with np.errstate(over="ignore"):
            padded = float(np.float32(value))
        if not math.isfinite(padded):
            raise Unsupported(f"value {value!r} (archcost pads with a finite value)")
        return padded

    # ---- constant folding of shape arithmetic
    def _fold(self, node, where) -> None:
        op = node.op_type
        attrs = self.attrs(node)
        try:
            # np.errstate turns a float division by zero, an overflow or a NaN cast into an
            # exception (reported below, naming the node) instead of a warning and a wrong value;
            # integer arithmetic is exact (see _int_binary), since numpy wraps int64 silently.
            with np.errstate(all="raise"), warnings.catch_warnings():
                warnings.simplefilter("error", RuntimeWarning)
                value = self._fold_value(node, op, attrs, where)
        except (Unsupported, ArchcostError):
            raise
        except Exception as exc:  # numpy refusing the constants: the model is inconsistent
            raise ArchcostError(f"{where}: cannot evaluate on constants ({type(exc).__name__}: "
                                f"{_first_line(exc)})") from None
        value = np.asarray(value)
        if value.dtype == object:  # an exact integer result that was never cast back: a bug, not input
            raise AssertionError(f"{where}: folded to an object array")
        self.values[node.output[0]] = value

    def _fold_value(self, node, op, attrs, where):
        ins = [self.const(t) if t else None for t in node.input] if op != "Shape" else []
        # How many leading inputs must be present: an empty name where ONNX requires an input
        # must not reach numpy as None. (Slice before opset 10 takes starts/ends as attributes.)
        needs = {"Gather": 2, "Reshape": 2, "Mul": 2, "Add": 2, "Sub": 2, "Div": 2, "Range": 3,
                 "Slice": 1 if "starts" in attrs else 3, "Pow": 2, "Where": 3, "Expand": 2, "Tile": 2,
                 "BatchNormalization": 5,
                 **dict.fromkeys(FOLDABLE_COMPARE, 2)}.get(op, 1 if op not in ("Constant", "Shape") else 0)
        if op in ("Concat", "Max", "Min"):
            needs = len(ins) or 1
        if len(ins) < needs or any(v is None for v in ins[:needs]):
            raise ArchcostError(f"{where}: expected {needs} input{'s' if needs > 1 else ''}, got "
                                f"{sum(v is not None for v in ins)}")
        if op == "Constant":
            if "value" not in attrs:
                raise Unsupported(f"attributes {quote(sorted(attrs))}")
            self._check_tensor(attrs["value"], f"{where}: value")
            return self._array(attrs["value"], f"{where}: value")
        if op == "Shape":
            t = node.input[0]
            value = np.array(self.shape(t) if t in self.tensors else self.const_shape(t), dtype=np.int64)
            return value[attrs.get("start", 0):attrs.get("end", len(value))]
        if op == "Gather":
            data, indices = ins
            if indices.dtype.kind not in "iu":
                raise ArchcostError(f"{where}: indices of type {indices.dtype}, expected integers")
            axis = self._axes([attrs.get("axis", 0)], data.ndim, where, "axis")[0]
            per_index = data.size // data.shape[axis] if data.shape[axis] else 0
            _check_fold_size(indices.size * per_index, where)
            bad = [int(k) for k in indices.reshape(-1) if not -data.shape[axis] <= k < data.shape[axis]]
            if bad:
                raise ArchcostError(f"{where}: index {bad[0]} is out of range for an axis of size {data.shape[axis]}")
            return np.take(data, indices, axis=axis)
        second = len(ins) > 1 and ins[1] is not None  # axes as an input (opset 13) rather than an attribute
        if op == "Unsqueeze":
            axes = attrs["axes"] if "axes" in attrs else self._int_const(node.input[1], where) if second else []
            value = ins[0]
            for a in sorted(self._axes(axes, value.ndim + len(axes), where)):
                value = np.expand_dims(value, a)
            return value
        if op == "Squeeze":
            axes = attrs["axes"] if "axes" in attrs else self._int_const(node.input[1], where) if second else None
            return np.squeeze(ins[0], axis=tuple(axes) if axes is not None else None)
        if op == "Concat":
            return np.concatenate([np.atleast_1d(v) for v in ins], axis=int(attrs["axis"]))
        if op == "Cast":
            return self._cast(ins[0], attrs, where)
        if op in ("Identity", "Floor", "Ceil", "Sqrt"):
            return {"Floor": np.floor, "Ceil": np.ceil, "Sqrt": np.sqrt}.get(op, lambda v: v)(ins[0])
        if op == "Slice":
            return self._slice(ins, attrs)
        if op == "Reshape":
            return ins[0].reshape([d if d != 0 else ins[0].shape[k]
                                   for k, d in enumerate(self._int_const(node.input[1], where))])
        if op in ("Mul", "Add", "Sub", "Div"):
            a, b = ins
            _check_fold_size(math.prod(np.broadcast_shapes(a.shape, b.shape)), where)
            if a.dtype.kind in "iu" and b.dtype.kind in "iu":
                return self._int_binary(op, a, b, where)
            return {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[op](a, b)
        if op == "ConstantOfShape":
            shape = self._int_const(node.input[0], where)
            if any(d < 0 for d in shape):
                raise ArchcostError(f"{where}: shape {quote(shape)} has a negative dimension")
            _check_fold_size(math.prod(shape), where)
            if "value" in attrs:
                self._check_tensor(attrs["value"], f"{where}: value")
                fill = self._array(attrs["value"], f"{where}: value")
            else:
                fill = np.zeros(1, np.float32)
            if fill.size != 1:
                raise ArchcostError(f"{where}: value holds {fill.size:,} values, expected one")
            return np.full(shape, fill.reshape(-1)[0], dtype=fill.dtype)
        if op == "Range":
            if any(v.size != 1 for v in ins):
                raise ArchcostError(f"{where}: start, limit and delta must be scalars")
            start, limit, delta = (v.reshape(-1)[0].item() for v in ins)
            if delta == 0:
                raise ArchcostError(f"{where}: delta is 0")
            count = max(math.ceil((limit - start) / delta), 0)
            _check_fold_size(count, where)
            return np.arange(start, limit, delta, dtype=ins[0].dtype)
        return self._fold_more(node, op, ins, attrs, where)

    def _fold_more(self, node, op, ins, attrs, where):
        """The ops of FOLDABLE beyond shape arithmetic, with each opset's attribute-or-input rule.
        Integer results that numpy would wrap (Neg/Abs of the most negative int, Pow, sums) are
        refused, never wrapped."""
        x = ins[0]
        if op in ("Pow", "Exp", "Log", "Reciprocal", "Erf", "ReduceMean", "ReduceSum") and x.dtype.kind in "iu":
            raise Unsupported(f"{op} of integer constants is not evaluated (numpy would wrap or truncate it)")
        if op in ("Neg", "Abs") and x.dtype.kind == "i" and x.size and (x == np.iinfo(x.dtype).min).any():
            raise ArchcostError(f"{where}: integer overflow, {op} of {np.iinfo(x.dtype).min}")
        if op in FOLDABLE_ELEMENTWISE:
            return FOLDABLE_ELEMENTWISE[op](x)
        if op == "Erf":
            return np.vectorize(math.erf, otypes=[x.dtype])(x) if x.size else x
        if op in FOLDABLE_COMPARE or op in ("Pow", "Max", "Min", "Where"):
            _check_fold_size(math.prod(np.broadcast_shapes(*(v.shape for v in ins))), where)
        if op in FOLDABLE_COMPARE:
            a, b = ins
            if op in ("And", "Or", "Xor") and not (a.dtype == bool and b.dtype == bool):
                raise ArchcostError(f"{where}: {op} takes booleans, got {a.dtype} and {b.dtype}")
            return FOLDABLE_COMPARE[op](a, b)
        if op == "Pow":  # the output has the base's type (Pow-12 and on)
            return np.power(x, ins[1]).astype(x.dtype)
        if op in ("Max", "Min"):
            if len({v.dtype for v in ins}) != 1:
                raise ArchcostError(f"{where}: inputs of different types {quote(sorted({str(v.dtype) for v in ins}))}")
            fn = np.maximum if op == "Max" else np.minimum
            out = ins[0]
            for v in ins[1:]:
                out = fn(out, v)
            return out
        if op == "Where":
            cond, a, b = ins
            if cond.dtype != bool:
                raise ArchcostError(f"{where}: condition of type {cond.dtype}, expected bool")
            return np.where(cond, a, b)
        if op == "Transpose":
            perm = attrs.get("perm", list(range(x.ndim))[::-1])
            if sorted(int(p) for p in perm) != list(range(x.ndim)):
                raise ArchcostError(f"{where}: perm {quote(list(perm))} is not a permutation of {x.ndim} axes")
            return np.transpose(x, [int(p) for p in perm])
        if op == "Clip":
            if self.opset < 11:  # min and max are attributes before opset 11
                low, high = attrs.get("min"), attrs.get("max")
            else:
                bounds = [self.const(t) if t else None for t in list(node.input[1:3]) + [""] * 2][:2]
                if any(b is not None and b.size != 1 for b in bounds):
                    raise ArchcostError(f"{where}: min and max must be scalars")
                low, high = (None if b is None else b.reshape(-1)[0] for b in bounds)
            out = x if low is None else np.maximum(x, np.asarray(low, x.dtype))
            # ONNX: where min > max every value becomes max, which the order here gives.
            return out if high is None else np.minimum(out, np.asarray(high, x.dtype))
        if op in FOLDABLE_REDUCE:
            # axes: an attribute up to opset 17 (ReduceSum: 12), then an optional input.
            from_input = self.opset >= (13 if op == "ReduceSum" else 18)
            if from_input:
                axes = self._int_const(node.input[1], where) if len(node.input) > 1 and node.input[1] else []
            else:
                axes = list(attrs.get("axes", []))
            if not axes and from_input and attrs.get("noop_with_empty_axes", 0):
                return x
            axes = tuple(self._axes(axes, x.ndim, where)) if axes else None
            if x.size == 0 and op in ("ReduceMax", "ReduceMin"):
                raise ArchcostError(f"{where}: {op} of an empty tensor")
            return FOLDABLE_REDUCE[op](x, axis=axes, keepdims=bool(attrs.get("keepdims", 1))).astype(x.dtype)
        if op == "Flatten":
            axis = attrs.get("axis", 1)  # in [-r, r]: a negative axis counts from the input's rank
            if isinstance(axis, bool) or not isinstance(axis, int) or not -x.ndim <= axis <= x.ndim:
                raise ArchcostError(f"{where}: axis {quote(axis)} is out of range for a {x.ndim}-d tensor")
            axis = axis + x.ndim if axis < 0 else axis
            return x.reshape(math.prod(x.shape[:axis]), math.prod(x.shape[axis:]))
        if op == "Expand":
            shape = self._int_const(node.input[1], where)
            if any(d < 0 for d in shape):
                raise ArchcostError(f"{where}: shape {quote(shape)} has a negative dimension")
            out = np.broadcast_shapes(x.shape, tuple(shape))
            _check_fold_size(math.prod(out), where)
            return np.broadcast_to(x, out).copy()
        if op == "BatchNormalization":
            return self._fold_batchnorm(node, ins, attrs, where)
        if op == "Tile":
            repeats = self._int_const(node.input[1], where)
            if len(repeats) != x.ndim or any(r < 0 for r in repeats):
                raise ArchcostError(f"{where}: repeats {quote(repeats)} must be {x.ndim} non-negative counts")
            _check_fold_size(x.size * math.prod(repeats), where)
            return np.tile(x, repeats)
        raise Unsupported("")

    def _fold_batchnorm(self, node, ins, attrs, where):
        """BatchNormalization of a constant: timm's ScaledStdConv2d (NFNets) standardises its
        weight with F.batch_norm(w.reshape(1, out, -1), training=True), which exports as a
        training-mode BatchNormalization of the initializer: the batch statistics of the weight."""
        x, scale, bias, mean, var = ins[:5]
        if x.dtype.kind != "f" or x.ndim < 2:
            raise Unsupported(f"BatchNormalization of a {x.ndim}-d {x.dtype} constant is not evaluated")
        used = [t for t in node.output[1:] if t and (t in self.consumers or t in self.graph_outputs)]
        if used:  # the updated running statistics: nothing here computes them
            raise Unsupported(f"its running-statistics output {quote(used[0])} is used")
        c = x.shape[1]
        if any(v.size != c for v in (scale, bias, mean, var)):
            raise ArchcostError(f"{where}: scale, B, mean and var must hold {c} values, one per channel")
        training = attrs.get("training_mode", 0) == 1 if self.opset >= 14 else False
        axes = (0, *range(2, x.ndim))
        per_channel = (1, c) + (1,) * (x.ndim - 2)
        if training:  # ONNX BatchNormalization-15: the batch's mean and (population) variance
            mean, var = x.mean(axis=axes, dtype=np.float64), x.var(axis=axes, dtype=np.float64)
        eps = attrs.get("epsilon", 1e-5)
        y = (x - mean.reshape(per_channel)) / np.sqrt(var.reshape(per_channel) + eps)
        return (y * scale.reshape(per_channel) + bias.reshape(per_channel)).astype(x.dtype)

    @staticmethod
    def _int_binary(op, a, b, where):
        """An integer Mul/Add/Sub/Div on Python ints, then checked against the ONNX type's range:
        numpy's int64 wraps silently (2**62 * 4 == 0), and int64 / 0 is a warning, not an error."""
        dtype = np.result_type(a, b)
        x, y = a.astype(object), b.astype(object)
        if op == "Div":
            if (b == 0).any():
                raise ArchcostError(f"{where}: integer division by zero")
            # ONNX integer division truncates toward zero (as C does); Python's // floors.
            quotient = np.frompyfunc(lambda p, q: abs(p) // abs(q) * (1 if (p < 0) == (q < 0) else -1), 2, 1)
            out = quotient(x, y)
        else:
            out = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract}[op](x, y)
        out = np.asarray(out, dtype=object)
        info = np.iinfo(dtype)
        bad = [v for v in out.reshape(-1) if not info.min <= v <= info.max]
        if bad:
            raise ArchcostError(f"{where}: integer overflow, {quote(bad[0])} does not fit {dtype}")
        return out.astype(dtype)

    def _cast(self, value, attrs, where):
        """Cast to the ONNX type ``to``; a float that does not fit the integer type (NaN, inf,
        1e30 to int64) is an error, never numpy's platform-dependent result."""
        to = attrs.get("to")
        if to not in onnx_proto.NUMPY_DTYPES:  # BFLOAT16 has no numpy type to cast to
            raise ArchcostError(f"{where}: cast to data type {quote(_type_name(to) if isinstance(to, int) else to)} "
                                f"is not supported")
        dtype = onnx_proto.NUMPY_DTYPES[to].newbyteorder("=")
        if dtype.kind in "iu" and value.dtype.kind in "iuf":
            whole = np.trunc(value) if value.dtype.kind == "f" else value
            info = np.iinfo(dtype)
            if value.dtype.kind == "f" and not np.isfinite(value).all():
                raise ArchcostError(f"{where}: cannot cast a non-finite value to {dtype}")
            if whole.size and (int(whole.min()) < info.min or int(whole.max()) > info.max):
                raise ArchcostError(f"{where}: a value does not fit {dtype}")
        return value.astype(dtype)

    @staticmethod
    def _slice(ins, attrs):
        data = ins[0]
        starts = attrs.get("starts", ins[1].tolist() if len(ins) > 1 else None)
        ends = attrs.get("ends", ins[2].tolist() if len(ins) > 2 else None)
        axes = attrs.get("axes", ins[3].tolist() if len(ins) > 3 and ins[3] is not None else range(len(starts)))
        steps = ins[4].tolist() if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
        index = [slice(None)] * data.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            index[a] = slice(int(s), int(max(min(e, 2**62), -2**62)), int(st))
        return data[tuple(index)]
