"""ONNX models -> archcost Graphs (needs the optional ``onnx`` package: ``pip install archcost[onnx]``).

Each ONNX node maps to the IR op that computes the same thing; weight shapes come from the
initializers (a Conv or Gemm has a bias when its bias input is given). Patterns that exporters
spell out of several nodes are folded back into one layer: a Pad before a Conv or pool becomes
its padding, ``x * sigmoid(x)`` is SiLU, ``x * hardsigmoid(x)`` is hard-swish, the erf form of
GELU is GELU, MatMul + bias Add is one Linear, and shape arithmetic (Shape -> Gather -> Concat
-> Reshape) is evaluated on the known shapes. Nodes with no IR equivalent are reported all
together in one error: nothing is ever counted as zero silently.
"""

from __future__ import annotations

import math
import pathlib

import networkx as nx
import numpy as np

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import (
    LRN, Activation, Add, AvgPool2d, BatchNorm, Concat, Conv2d, Dropout, Flatten, GlobalAvgPool, LayerNorm,
    Linear, MaxPool2d, Mean, Mul, Permute, Reshape, Scale, Softmax,
)


class Unsupported(Exception):
    """A node this importer cannot express in the IR (collected, then reported together)."""


def load_onnx(path, input_shape=None) -> Graph:
    try:
        import onnx
    except ModuleNotFoundError:
        raise ArchcostError(f"{path}: reading ONNX needs the onnx package: pip install 'archcost[onnx]'") from None
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises its own DecodeError (and others) on a bad file
        raise ArchcostError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {_first_line(exc)})") from None
    return import_model(model, str(path), input_shape)


def import_model(model, source: str = "<onnx>", input_shape=None) -> Graph:
    try:
        return _Importer(model, source, input_shape).run()
    except ArchcostError as exc:
        message = str(exc)
        raise ArchcostError(message if message.startswith(source) else f"{source}: {message}") from None


def _f(value) -> float:
    """An ONNX float attribute (float32) as the decimal it was written as: 0.2, not 0.20000000298."""
    return float(f"{float(value):.7g}")


def _first_line(exc) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else "no details"


ACTIVATIONS = {"Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh", "HardSwish": "hardswish", "Gelu": "gelu"}
# Shape arithmetic evaluated when every input is known (Constant/Shape are always evaluated).
FOLDABLE = {"Constant", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice", "Reshape",
            "Mul", "Div", "Add", "Sub", "Identity", "ConstantOfShape", "Range", "Floor", "Ceil", "Sqrt"}


class _Importer:
    def __init__(self, model, source: str, input_shape):
        from onnx import helper, numpy_helper

        self.helper, self.numpy_helper = helper, numpy_helper
        self.source = source
        self.input_shape = input_shape
        self.onnx_graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        self.init = {t.name: t for t in model.graph.initializer}
        self.values: dict[str, np.ndarray] = {}  # constant tensors, evaluated on demand
        self.tensors: dict[str, str] = {}  # activation tensor -> archcost node
        self.g = Graph(model.graph.name or pathlib.Path(source).stem)
        self.unsupported: list[tuple[str, str, str]] = []
        self.poisoned: set[str] = set()
        self.skip: set[int] = set()  # nodes folded into another one
        self.replace: dict[int, tuple] = {}  # node index -> (handler name, data)
        self.extra_pads: dict[int, tuple] = {}

    # ---- tensors
    def is_const(self, name: str) -> bool:
        return name in self.values or name in self.init

    def const(self, name: str) -> np.ndarray:
        if name not in self.values:
            self.values[name] = self.numpy_helper.to_array(self.init[name])
        return self.values[name]

    def const_shape(self, name: str) -> tuple:
        if name in self.init:
            return tuple(self.init[name].dims)
        return tuple(self.values[name].shape)

    def act(self, name: str, where: str) -> str:
        if name not in self.tensors:
            raise ArchcostError(f"{where}: input {name!r} is a constant where an activation is expected")
        return self.tensors[name]

    def shape(self, tensor: str) -> tuple:
        return self.g.shape(self.tensors[tensor])

    # ---- the walk
    def run(self) -> Graph:
        graph = self.onnx_graph
        nodes = list(graph.node)
        self.nodes = nodes
        self.names = self._node_names(nodes)
        self._add_inputs(graph)
        order = self._order(nodes)
        self.consumers: dict[str, list[int]] = {}
        for i, node in enumerate(nodes):
            for t in node.input:
                if t:
                    self.consumers.setdefault(t, []).append(i)
        self.producers = {t: i for i, n in enumerate(nodes) for t in n.output if t}
        self.graph_outputs = {o.name for o in graph.output}
        self._find_patterns(nodes)
        for i in order:
            node = nodes[i]
            if i in self.skip:
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
            raise ArchcostError(f"graph output {missing[0]!r} is not produced by any node")
        return self.g

    def _never_converts(self, node) -> str | None:
        """Why ``node`` could not convert whatever its inputs were, or None."""
        if node.domain not in ("", "ai.onnx"):
            return f"domain {node.domain}"
        if node.op_type in ("Erf", "Pad"):  # only inside patterns, and those were folded already
            return ""
        known = node.op_type in ACTIVATIONS or node.op_type in FOLDABLE or hasattr(self, f"on_{node.op_type}")
        return None if known else ""

    def _unsupported_message(self) -> str:
        by_type: dict[str, list[str]] = {}
        for op_type, name, reason in self.unsupported:
            by_type.setdefault(op_type, []).append(f"{name}{': ' + reason if reason else ''}")
        parts = [f"{op_type} ({'; '.join(items)})" for op_type, items in by_type.items()]
        count = len(self.unsupported)
        return (f"{count} ONNX node{'s' if count > 1 else ''} with no archcost equivalent, so the model is "
                f"not analysed: {', '.join(parts)}")

    def _node_names(self, nodes) -> list[str]:
        names, seen = [], set()
        for i, node in enumerate(nodes):
            base = node.name or (node.output[0] if node.output and node.output[0] else f"{node.op_type}_{i}")
            name, k = base, 2
            while name in seen:
                name, k = f"{base}_{k}", k + 1
            seen.add(name)
            names.append(name)
        return names

    def _add_inputs(self, graph) -> None:
        inputs = [v for v in graph.input if v.name not in self.init]
        if not inputs:
            raise ArchcostError("the model has no input")
        if self.input_shape is not None and len(inputs) != 1:
            raise ArchcostError("--input is ambiguous: the model has several inputs")
        for value in inputs:
            ttype = value.type.tensor_type
            dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in ttype.shape.dim]
            if self.input_shape is not None:
                shape = tuple(self.input_shape)
            else:
                if len(dims) < 2:
                    raise ArchcostError(f"input {value.name!r}: expected a batch axis and more, got {dims}")
                shape = dims[1:]
                dynamic = [d for d in shape if not isinstance(d, int) or d < 1]
                if dynamic:
                    raise ArchcostError(
                        f"input {value.name!r}: dimension {dynamic[0]!r} of {dims} is not fixed; give --input"
                    )
            self.tensors[value.name] = self.g.input(shape, name=value.name)

    def _order(self, nodes) -> list[int]:
        """Node indices in a topological order; unknown tensors and cycles are errors."""
        producer = {}
        for i, node in enumerate(nodes):
            for t in node.output:
                if t:
                    producer[t] = i
        deps = nx.DiGraph()
        deps.add_nodes_from(range(len(nodes)))
        for i, node in enumerate(nodes):
            if not node.output or not node.output[0]:
                raise ArchcostError(f"node {self.names[i]!r} ({node.op_type}): has no output")
            for t in node.input:
                if not t or t in self.init or t in self.tensors:
                    continue
                if t not in producer:
                    raise ArchcostError(
                        f"node {self.names[i]!r} ({node.op_type}): input {t!r} is not a graph input, an "
                        f"initializer or any node's output"
                    )
                deps.add_edge(producer[t], i)
        if not nx.is_directed_acyclic_graph(deps):
            cycle = [self.names[e[0]] for e in nx.find_cycle(deps)]
            raise ArchcostError(f"the graph has a cycle: {' -> '.join(cycle + cycle[:1])}")
        return list(nx.lexicographical_topological_sort(deps))

    def attrs(self, node) -> dict:
        return {a.name: self.helper.get_attribute_value(a) for a in node.attribute}

    # ---- patterns spread over several nodes
    def _producer(self, tensor):
        return self.producers.get(tensor)

    def _sole_consumer(self, tensor):
        users = self.consumers.get(tensor, [])
        return users[0] if len(users) == 1 and tensor not in self.graph_outputs else None

    def _scalar(self, tensor, value, tol=1e-3) -> bool:
        if not tensor or not self.is_const(tensor):
            return False
        v = self.const(tensor)
        return v.size == 1 and abs(float(v.reshape(-1)[0]) - value) <= tol * max(1.0, abs(value))

    def _find_patterns(self, nodes) -> None:
        for i, node in enumerate(nodes):
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
                        self.replace[j] = ("linear", (node.input[0], w, True))
            elif node.op_type == "Pad":
                j = self._sole_consumer(node.output[0])
                if j is not None and nodes[j].op_type in ("Conv", "MaxPool", "AveragePool"):
                    pads = self._pad_amounts(node)
                    if pads is not None and len(pads) == 8 and not any(pads[k] for k in (0, 1, 4, 5)):
                        self.skip.add(i)
                        # ONNX: [n, c, h, w begins, n, c, h, w ends] -> (top, bottom, left, right)
                        self.extra_pads[j] = (int(pads[2]), int(pads[6]), int(pads[3]), int(pads[7]))
                        self.replace.setdefault(j, ("padded_input", node.input[0]))

    def _pad_amounts(self, node):
        attrs = self.attrs(node)
        if "pads" in attrs:
            return list(attrs["pads"])
        if len(node.input) > 1 and node.input[1] and self.is_const(node.input[1]):
            return [int(v) for v in self.const(node.input[1]).reshape(-1)]
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

    # ---- one node
    def add(self, op, inputs, node, suffix: str = "") -> str:
        return self.g.add(op, *inputs, name=f"{self.names[self.current]}{suffix}")

    def _convert(self, i, node) -> None:
        where = f"node {self.names[i]!r} ({node.op_type})"
        self.current = i
        if i in self.replace:
            kind, data = self.replace[i]
            if kind == "activation":
                x, fn = data
                self.tensors[node.output[0]] = self.add(Activation(fn), [self.act(x, where)], node)
                return
            if kind == "linear":
                x, w, bias = data
                self._linear(node, where, x, w, bias)
                return
        op_type = node.op_type
        inputs = [t for t in node.input]
        if op_type in FOLDABLE and (op_type in ("Constant", "Shape") or all(
                not t or self.is_const(t) for t in inputs)):
            self._fold(node, where)
            return
        if node.domain not in ("", "ai.onnx"):
            raise Unsupported(f"domain {node.domain}")
        if op_type in ACTIVATIONS:
            self._activation(node, where, ACTIVATIONS[op_type])
            return
        handler = getattr(self, f"on_{op_type}", None)
        if handler is None:
            raise Unsupported("")
        try:
            handler(i, node, where, self.attrs(node))
        except (IndexError, KeyError) as exc:  # a required input or attribute is missing
            raise ArchcostError(f"{where}: malformed node, missing input or attribute ({exc})") from None

    def out(self, node, op, inputs, suffix: str = "") -> str:
        name = self.add(op, inputs, node, suffix)
        self.tensors[node.output[0]] = name
        return name

    def source_of(self, i, node, where) -> str:
        """The node's data input, looking through a Pad folded into it."""
        kind = self.replace.get(i, (None, None))
        tensor = kind[1] if kind[0] == "padded_input" else node.input[0]
        return self.act(tensor, where)

    def _spatial(self, i, node, where, attrs, kernel, *, allow_dilation=True):
        if len(kernel) != 2:
            raise Unsupported(f"{len(kernel)}-D windows (only 2-D)")
        strides = tuple(attrs.get("strides", (1, 1)))
        dilations = tuple(attrs.get("dilations", (1, 1)))
        if not allow_dilation and dilations != (1, 1):
            raise Unsupported("dilated pooling")
        auto = attrs.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        pads = tuple(attrs.get("pads", (0, 0, 0, 0)))
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            from archcost.shapes import same_padding

            _, _, h, w = self.g.shape(self.source_of(i, node, where))
            ph = same_padding(h, kernel[0], strides[0], dilations[0])
            pw = same_padding(w, kernel[1], strides[1], dilations[1])
            if auto == "SAME_LOWER":
                ph, pw = ph[::-1], pw[::-1]
            padding = (*ph, *pw)
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
        if len(w) != 4:
            raise Unsupported(f"{len(w) - 2}-D convolution (only 2-D)")
        group = int(attrs.get("group", 1))
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
        self.out(node, Conv2d(int(w[0]), kernel, strides, padding, dilations, group, bias), [x])

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
        self._pool(AvgPool2d, i, node, where, attrs, count_include_pad=bool(attrs.get("count_include_pad", 0)))

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
            axes = self.const(node.input[1]).reshape(-1).tolist()
        rank = len(self.g.shape(x))
        axes = sorted(int(a) % rank for a in axes or [])
        if rank != 4 or axes != [2, 3]:
            raise Unsupported(f"mean over axes {axes} (only over H and W of NCHW)")
        name = self.out(node, GlobalAvgPool(), [x])
        if not attrs.get("keepdims", 1):
            self.out(node, Flatten(), [name], suffix="_squeeze")

    # dense layers
    def _linear(self, node, where, x_tensor, w, bias, trans_b=False):
        x = self.act(x_tensor, where)
        if len(w) != 2:
            raise Unsupported(f"weight of rank {len(w)}")
        k, m = (w[1], w[0]) if trans_b else (w[0], w[1])
        have = self.g.shape(x)[-1]
        if have != k:
            raise ArchcostError(f"{where}: weight {w[0]}x{w[1]} needs {k} input features, the input has {have}")
        self.out(node, Linear(int(m), bias), [x])

    def on_Gemm(self, i, node, where, attrs):
        if attrs.get("transA", 0):
            raise Unsupported("transA=1")
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
        self.out(node, BatchNorm(eps=_f(attrs.get("epsilon", 1e-5))), [x])

    def on_LayerNormalization(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        axis = int(attrs.get("axis", -1))
        rank = len(self.g.shape(x))
        if axis % rank != rank - 1:
            raise Unsupported(f"normalisation over axes {axis}.. (only the last axis)")
        self.out(node, LayerNorm(-1, _f(attrs.get("epsilon", 1e-5))), [x])

    def on_LRN(self, i, node, where, attrs):
        self.out(node, LRN(int(attrs["size"]), _f(attrs.get("alpha", 1e-4)), _f(attrs.get("beta", 0.75)),
                           _f(attrs.get("bias", 1.0))), [self.act(node.input[0], where)])

    def on_Dropout(self, i, node, where, attrs):
        if len(node.output) > 1 and node.output[1]:
            raise Unsupported("mask output")
        ratio = attrs.get("ratio", 0.5)
        if len(node.input) > 1 and node.input[1] and self.is_const(node.input[1]):
            ratio = _f(self.const(node.input[1]).reshape(-1)[0])
        self.out(node, Dropout(_f(ratio)), [self.act(node.input[0], where)])

    def on_Softmax(self, i, node, where, attrs):
        self.out(node, Softmax(int(attrs.get("axis", -1 if self.opset >= 13 else 1))), [self.act(node.input[0], where)])

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

    def on_Add(self, i, node, where, attrs):
        if any(self.is_const(t) for t in node.input):
            raise Unsupported("adding a constant (a bias outside a Conv or Gemm)")
        self._same_shape_merge(Add(), node, where)

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
        self._scale(node, where, x_t, self.const(consts[0]), invert=False)

    def on_Div(self, i, node, where, attrs):
        if not self.is_const(node.input[1]) or self.is_const(node.input[0]):
            raise Unsupported("division by an activation")
        self._scale(node, where, node.input[0], self.const(node.input[1]), invert=True)

    def _scale(self, node, where, x_t, value, invert):
        x = self.act(x_t, where)
        shape = self.g.shape(x)
        if value.size == 1:
            factor = _f(value.reshape(-1)[0])
            self.out(node, Scale(1.0 / factor if invert else factor), [x])
        elif self._per_channel(value.shape, shape):
            self.out(node, Scale(None, 1), [x])  # a learned per-channel factor
        else:
            raise Unsupported(f"a constant of shape {value.shape}")

    @staticmethod
    def _per_channel(const_shape, shape) -> bool:
        """True when a constant broadcasts along axis 1 only: (C,1,1) or (1,C,1,1) on NCHW, (C,) on NC."""
        if len(const_shape) > len(shape) or len(shape) < 2:
            return False
        full = (1,) * (len(shape) - len(const_shape)) + tuple(const_shape)
        return full[1] == shape[1] and all(d == 1 for k, d in enumerate(full) if k != 1)

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
        target = [int(d) for d in self.const(node.input[1]).reshape(-1)]
        shape = self.g.shape(x)
        if not target or target[0] not in (0, 1, -1) or (target[0] == -1 and -1 in target[1:]):
            raise Unsupported(f"target {target} moves the batch axis")
        if target[0] == -1 and math.prod(d for d in target[1:] if d) == 0:
            raise Unsupported(f"target {target}")
        per_sample = [shape[k + 1] if d == 0 and not attrs.get("allowzero", 0) else d for k, d in enumerate(target[1:])]
        self._view(node, where, x, per_sample)

    def _squeeze(self, node, where, attrs, unsqueeze):
        x = self.act(node.input[0], where)
        axes = attrs.get("axes")
        if axes is None and len(node.input) > 1 and node.input[1]:
            axes = self.const(node.input[1]).reshape(-1).tolist()
        shape = list(self.g.shape(x))
        if unsqueeze:
            out = list(shape)
            for a in sorted(int(a) % (len(shape) + len(axes)) for a in axes):
                out.insert(a, 1)
        else:
            rank = len(shape)
            drop = {int(a) % rank for a in axes} if axes else {k for k, d in enumerate(shape) if d == 1 and k}
            out = [d for k, d in enumerate(shape) if k not in drop]
        if 0 in ({int(a) % (len(shape) + (len(axes) if unsqueeze else 0)) for a in axes} if axes else set()):
            raise Unsupported("squeezing or unsqueezing the batch axis")
        self._view(node, where, x, out[1:])

    def on_Squeeze(self, i, node, where, attrs):
        self._squeeze(node, where, attrs, unsqueeze=False)

    def on_Unsqueeze(self, i, node, where, attrs):
        self._squeeze(node, where, attrs, unsqueeze=True)

    def on_Transpose(self, i, node, where, attrs):
        x = self.act(node.input[0], where)
        perm = tuple(int(p) for p in attrs.get("perm", range(len(self.g.shape(x)) - 1, -1, -1)))
        if perm[0] != 0:
            raise Unsupported(f"perm {perm} moves the batch axis")
        self.out(node, Permute(perm), [x])

    def on_Pad(self, i, node, where, attrs):
        raise Unsupported("a Pad that cannot fold into the padding of the Conv or pool after it")

    # ---- constant folding of shape arithmetic
    def _fold(self, node, where) -> None:
        op = node.op_type
        attrs = self.attrs(node)
        ins = [self.const(t) if t else None for t in node.input] if op != "Shape" else []
        try:
            if op == "Constant":
                if "value" not in attrs:
                    raise Unsupported(f"attributes {sorted(attrs)}")
                value = self.numpy_helper.to_array(attrs["value"])
            elif op == "Shape":
                t = node.input[0]
                value = np.array(self.shape(t) if t in self.tensors else self.const_shape(t), dtype=np.int64)
                value = value[attrs.get("start", 0):attrs.get("end", len(value))]
            elif op == "Gather":
                value = np.take(ins[0], ins[1], axis=int(attrs.get("axis", 0)))
            elif op == "Unsqueeze":
                axes = attrs.get("axes", ins[1].tolist() if len(ins) > 1 else [])
                value = ins[0]
                for a in sorted(int(a) % (value.ndim + len(axes)) for a in axes):
                    value = np.expand_dims(value, a)
            elif op == "Squeeze":
                axes = attrs.get("axes", ins[1].tolist() if len(ins) > 1 and ins[1] is not None else None)
                value = np.squeeze(ins[0], axis=tuple(axes) if axes is not None else None)
            elif op == "Concat":
                value = np.concatenate([np.atleast_1d(v) for v in ins], axis=int(attrs["axis"]))
            elif op in ("Cast", "Identity", "Floor", "Ceil", "Sqrt"):
                value = {"Floor": np.floor, "Ceil": np.ceil, "Sqrt": np.sqrt}.get(op, lambda v: v)(ins[0])
            elif op == "Slice":
                value = self._slice(ins, attrs)
            elif op == "Reshape":
                value = ins[0].reshape([d if d != 0 else ins[0].shape[k] for k, d in enumerate(ins[1].tolist())])
            elif op in ("Mul", "Add", "Sub"):
                value = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract}[op](ins[0], ins[1])
            elif op == "Div":
                a, b = ins
                value = np.trunc(a / b).astype(a.dtype) if a.dtype.kind == "i" else a / b
            elif op == "ConstantOfShape":
                fill = self.numpy_helper.to_array(attrs["value"]) if "value" in attrs else np.zeros(1, np.float32)
                value = np.full(ins[0].astype(np.int64).tolist(), fill.reshape(-1)[0], dtype=fill.dtype)
            elif op == "Range":
                value = np.arange(ins[0].item(), ins[1].item(), ins[2].item())
            else:
                raise Unsupported("")
        except Unsupported:
            raise
        except Exception as exc:  # numpy refusing the constants: the model is inconsistent
            raise ArchcostError(f"{where}: cannot evaluate on constants: {_first_line(exc)}") from None
        self.values[node.output[0]] = np.asarray(value)

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
