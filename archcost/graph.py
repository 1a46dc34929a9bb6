"""The layer graph: a networkx DAG of named nodes, each holding a frozen op spec.

Each node keeps its inputs as an ordered tuple (concat order never depends on edge insertion
order). Nodes can only be added after their inputs, so insertion order is a deterministic
topological order. Shapes are checked as the graph is built (at batch 1).

Builder helpers make a model file read like its paper's table::

    g = Graph("vgg16")
    x = g.input((3, 224, 224))
    with g.scope("block1"):
        x = g.seq(x, Conv2d(64, 3, padding=1), ReLU(), Conv2d(64, 3, padding=1), ReLU())
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

import networkx as nx

from archcost.errors import ArchcostError, ShapeError, limit_from_env, quote
from archcost.ops import Add, Concat, Input, Op

Shape = tuple

# The most layers a graph may have (ARCHCOST_MAX_LAYERS overrides it). The largest zoo model,
# ResNet-1202, has ~4,200; a million layers take ~15 s and ~2 GB to build, so a count past
# the limit is a typo (-o depth=100000000000) or a bomb, refused before it is built.
DEFAULT_MAX_LAYERS = 1_000_000

# How the PyTorch twin of a layer computes it, which only the peer tools' conventions care about
# (archcost/conventions.py maps each op to a PyTorch module or function and applies each tool's
# rule to that):
#   "default"     the mapping's own module or function (nn.ReLU, nn.MaxPool2d, torch.flatten, ...);
#   "functional"  a torch.nn.functional call inside its parent module's forward where the mapping
#                 has a module (torchvision's Inception blocks call F.relu and F.avg_pool2d), which
#                 the tools that hook modules (thop, torchscan, ptflops' hooks) do not see;
#   "module"      an nn.Module where the mapping has a function (ConvNeXt's nn.Flatten);
#   "adaptive"    an nn.AdaptiveAvgPool2d whose windows, at this input size, are this AvgPool2d's
#                 (kernel = stride, no padding): torchvision's VGG and AlexNet classifiers.
TORCH_FORMS = ("default", "functional", "module", "adaptive")


def check_torch_form(name: str, op: Op, form) -> None:
    """Refuse a torch form that does not name a way PyTorch computes ``op``."""
    from archcost.ops import AvgPool2d, Flatten

    if form not in TORCH_FORMS:
        raise ArchcostError(f"layer {quote(name)}: torch must be one of {', '.join(TORCH_FORMS)}, got {quote(form)}")
    if form == "module" and not isinstance(op, Flatten):
        raise ArchcostError(f"layer {quote(name)}: torch: module applies to flatten (nn.Flatten), not {op.kind}")
    if form == "adaptive" and not (
        isinstance(op, AvgPool2d) and op.stride == op.kernel and not any(op.padding) and not op.ceil_mode
    ):
        raise ArchcostError(
            f"layer {quote(name)}: torch: adaptive needs an avgpool whose stride equals its kernel, with no "
            f"padding (the windows of nn.AdaptiveAvgPool2d), got {op.label()}"
        )


def max_layers() -> int:
    return limit_from_env("ARCHCOST_MAX_LAYERS", DEFAULT_MAX_LAYERS)


class Graph:
    def __init__(self, name: str = "graph", description: str = ""):
        self.name = name
        self.description = description
        # What a loader knows about where the numbers come from and a reader should be told
        # (an ONNX export's folded BatchNorm): printed under every table, listed in its JSON.
        self.notes: list[str] = []
        self.nx = nx.DiGraph()
        self._order: list[str] = []
        # Plain-dict views of the same data, for the passes' hot loops (networkx's views are slow).
        self._attrs: dict[str, dict] = {}
        self._consumers: dict[str, list[str]] = {}
        self._scopes: list[str] = []
        self._counters: dict[str, int] = {}
        self._max_layers = max_layers()
        # [count, layers before it, still in its first time round?] of each enclosing loop().
        self._loops: list[list] = []

    # --- construction -------------------------------------------------------------------
    def input(self, shape: Iterable[int], name: str = "input") -> str:
        """Add the network input; ``shape`` is per sample, e.g. ``(3, 224, 224)``."""
        try:
            op = Input(tuple(shape))
        except ShapeError as exc:
            raise ArchcostError(f"layer {quote(name)}: {exc}") from None
        return self._insert(name, op, (), op.batched(1))

    def add(self, op: Op, *inputs: str, name: str | None = None, torch: str = "default") -> str:
        """Add ``op`` fed by ``inputs`` (node names, in order); return the new node's name.
        ``torch`` says how the layer's PyTorch twin computes it (``TORCH_FORMS``)."""
        if not isinstance(op, Op) or isinstance(op, Input):
            raise ArchcostError(f"layer {quote(name)}: expected an op spec, got {quote(op)}")
        name = self._full_name(name, op.kind)
        for src in inputs:
            if src not in self.nx:
                raise ArchcostError(f"layer {quote(name)}: unknown input {quote(src)}")
        shapes = tuple(self._attrs[src]["shape"] for src in inputs)
        try:
            shape = op.infer(shapes)
        except ShapeError as exc:
            raise ArchcostError(f"layer {quote(name)} ({op.label()}): {exc}") from None
        if torch != "default":
            check_torch_form(name, op, torch)
        return self._insert(name, op, tuple(inputs), shape, torch)

    def _insert(self, name: str, op: Op, inputs: tuple, shape: Shape, torch: str = "default") -> str:
        if len(self._order) >= self._max_layers:
            # The last guard; builders driven by a count call expect_layers first, so that the
            # refusal comes before the building, with the count.
            raise ArchcostError(self._too_many(f"more than {self._max_layers:,}"))
        if name in self.nx:
            raise ArchcostError(f"layer {quote(name)}: a layer with this name already exists")
        self.nx.add_node(name, op=op, inputs=inputs, shape=shape, torch=torch)
        for src in inputs:
            self.nx.add_edge(src, name)
            self._consumers[src].append(name)
        self._order.append(name)
        self._attrs[name] = self.nx.nodes[name]
        self._consumers[name] = []
        return name

    def _full_name(self, name: str | None, kind: str) -> str:
        prefix = ".".join(self._scopes)
        if name is None:
            key = (prefix, kind)
            count = self._counters.get(key, 0) + 1
            self._counters[key] = count
            name = f"{kind}{count}"
        return f"{prefix}.{name}" if prefix else name

    @contextlib.contextmanager
    def scope(self, name: str | int):
        """Prefix the names of nodes added inside with ``name.`` (nestable)."""
        self._scopes.append(str(name))
        try:
            yield
        finally:
            self._scopes.pop()

    # --- block helpers (stax's serial / FanOut+parallel / FanInSum) ----------------------
    def seq(self, x: str, *layers) -> str:
        """Chain layers after ``x``. Each layer is an op, a ``(name, op)`` pair, or a callable
        ``f(graph, x) -> node`` (a block)."""
        for layer in layers:
            if isinstance(layer, tuple):
                x = self.add(layer[1], x, name=layer[0])
            elif isinstance(layer, Op):
                x = self.add(layer, x)
            elif callable(layer):
                x = layer(self, x)
            else:
                raise ArchcostError(f"seq: cannot add {quote(layer)}")
        return x

    def branches(self, x: str, *paths, names: Iterable[str] | None = None) -> list[str]:
        """Run each path (a list/tuple of layers, or a block callable) from ``x``; return the ends."""
        names = list(names) if names is not None else [f"branch{i + 1}" for i in range(len(paths))]
        ends = []
        for name, path in zip(names, paths):
            with self.scope(name):
                if callable(path) and not isinstance(path, Op):
                    ends.append(path(self, x))
                else:
                    ends.append(self.seq(x, *path) if path else x)
        return ends

    def concat(self, *xs: str, name: str | None = "concat", axis: int = 1) -> str:
        return self.add(Concat(axis), *xs, name=name)

    def sum(self, *xs: str, name: str | None = "add") -> str:
        return self.add(Add(), *xs, name=name)

    def residual(self, x: str, body, shortcut=None, post: Iterable = (), name: str = "add") -> str:
        """``post(body(x) + shortcut(x))``; ``shortcut=None`` is the identity."""
        main = self._path(x, body)
        skip = x if shortcut is None else self._path(x, shortcut, "shortcut")
        out = self.sum(main, skip, name=name)
        return self.seq(out, *post)

    def _path(self, x: str, path, scope: str | None = None) -> str:
        ctx = self.scope(scope) if scope else contextlib.nullcontext()
        with ctx:
            if callable(path) and not isinstance(path, Op):
                return path(self, x)
            return self.seq(x, *path)

    def repeat(self, x: str, count: int, block: Callable[[Graph, str, int], str], prefix: str = "") -> str:
        """Apply ``block(graph, x, i)`` ``count`` times, each inside scope ``{prefix}{i}``.

        Refuses, before building the rest, a count that would take the graph past the layer
        limit: ``count`` itself, then ``count`` times the size of the first block."""
        for i in self.loop(count, "repeated block"):
            with self.scope(f"{prefix}{i}"):
                x = block(self, x, i)
        return x

    def loop(self, count: int, what: str = "loop"):
        """``range(count)`` for a builder loop that adds layers each time round, refusing a
        count past the layer limit up front: ``count`` itself, then, after the first time
        round, ``count`` times the layers it added."""
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ArchcostError(f"{what}: the count must be a non-negative int, got {quote(count)}")
        self.expect_layers(count, f"{count:,} x {what}")
        frame = [count, len(self), True]
        self._loops.append(frame)
        try:
            for i in range(count):
                yield i
                if i == 0:
                    frame[2] = False
                    self.expect_layers((count - 1) * (len(self) - frame[1]), f"{count:,} x {what}")
        finally:
            self._loops.pop()

    def expect_layers(self, count: int, what: str = "") -> None:
        """Say that about ``count`` more layers are coming: past the layer limit, refuse now
        (in one line giving the count) rather than after minutes of building. Builders whose
        loop counts come from options (depth, blocks, columns) call it before their loops."""
        total = len(self) + count
        # An enclosing loop still in its first time round will repeat all of this: a loop of
        # 1,000 around a loop of 1,000 is refused at the inner loop's first block.
        for loop_count, before, first in reversed(self._loops):
            if first:
                total = before + loop_count * (total - before)
        if total > self._max_layers:
            raise ArchcostError(self._too_many(f"{total:,}", what))

    def _too_many(self, count: str, what: str = "") -> str:
        detail = f" ({what})" if what else ""
        return (f"would have {count} layers{detail}, past the limit of "
                f"{self._max_layers:,} (set ARCHCOST_MAX_LAYERS to raise it)")

    # --- queries ------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name: str) -> bool:
        return name in self.nx

    def topological_order(self) -> list[str]:
        """Deterministic: the order the nodes were added in (always a valid topological order)."""
        return list(self._order)

    def op(self, name: str) -> Op:
        return self._attrs[name]["op"]

    def torch_form(self, name: str) -> str:
        """How the layer's PyTorch twin computes it: one of ``TORCH_FORMS``."""
        return self._attrs[name]["torch"]

    def set_torch_form(self, name: str, form: str) -> None:
        """Say how the PyTorch twin computes an existing layer (a builder's afterword, where
        threading the form through shared block helpers would obscure them)."""
        if isinstance(self.op(name), Input):
            raise ArchcostError(f"layer {quote(name)}: the input has no torch form")
        check_torch_form(name, self.op(name), form)
        self._attrs[name]["torch"] = form

    def inputs(self, name: str) -> tuple[str, ...]:
        return self._attrs[name]["inputs"]

    def shape(self, name: str) -> Shape:
        """Output shape at batch 1."""
        return self._attrs[name]["shape"]

    def consumers(self, name: str) -> list[str]:
        """The layers reading ``name``, in the order they were added (a layer reading it twice
        is listed twice)."""
        return list(self._consumers[name])

    def fan_out(self, name: str) -> int:
        """How many times ``name`` is read by later layers."""
        return len(self._consumers[name])

    def input_nodes(self) -> list[str]:
        return [n for n in self._order if isinstance(self.op(n), Input)]

    def output_nodes(self) -> list[str]:
        return [n for n in self._order if not self._consumers[n]]

    def validate(self) -> None:
        """Check the invariants the passes rely on. A graph built through ``add`` is acyclic by
        construction (a layer's inputs must exist before it); what is checked is that nobody
        changed ``self.nx`` behind the builder's back."""
        if self.nx.number_of_nodes() != len(self._order) or self.nx.number_of_edges() != sum(
            len(set(a["inputs"])) for a in self._attrs.values()
        ):
            raise ArchcostError(f"graph {self.name!r}: was changed outside Graph.add; rebuild it with the builder")
        if not self.input_nodes():
            raise ArchcostError(f"graph {self.name!r}: has no input")

    def __repr__(self) -> str:
        return f"Graph({self.name!r}, {len(self)} layers)"
