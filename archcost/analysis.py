"""The analysis passes: shapes at batch N, per-layer costs, totals, peak live memory and
receptive fields. Pure functions of the graph; formatting lives in archcost/report/."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from archcost.errors import ArchcostError, quote
from archcost.graph import Graph
from archcost.memory import live_elements, plan_buffers
from archcost.receptive import receptive_fields

DTYPE_BYTES = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int8": 1}


def dtype_bytes(dtype: str) -> int:
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise ArchcostError(f"dtype: unknown {quote(dtype)}; known: {', '.join(DTYPE_BYTES)}")
    return DTYPE_BYTES[dtype]


def check_graph(graph, where: str) -> None:
    """The public passes take an archcost Graph: anything else is one clear error, not an
    AttributeError three calls down."""
    if not isinstance(graph, Graph):
        raise ArchcostError(f"{where}: expected an archcost Graph (zoo.build(name), formats.load(path) or "
                            f"Graph(...)), got {type(graph).__name__}")


@dataclass(frozen=True, slots=True)
class LayerRecord:
    name: str
    op: str  # the op kind, e.g. "conv"
    label: str  # e.g. "conv 3x3/1, 64"
    inputs: tuple
    output_shape: tuple
    activations: int  # elements of the fresh buffer this layer writes (0 when in place)
    activation_bytes: int
    weights: int
    biases: int
    params: int
    buffers: int
    macs: int
    other: int
    flops: int  # 2 * macs + other
    live_bytes: int  # activation bytes live while this layer runs
    rf_h: int | float  # a float only where a resize made the field fractional (receptive.py)
    rf_w: int | float
    jump_h: int | float
    jump_w: int | float
    start_h: float
    start_w: float
    inplace: bool
    layout: str = "NCHW"  # axis letters of output_shape, e.g. "NHWC" after a Permute


def infer_shapes(graph: Graph, batch: int = 1) -> dict[str, tuple]:
    """Output shape of every layer at batch ``batch``.

    The graph ran every op's shape rule at batch 1 as it was built; every rule keeps axis 0 as
    the batch axis and is otherwise independent of it, so batch N only replaces that axis."""
    check_graph(graph, "infer_shapes")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ArchcostError(f"batch must be a positive int, got {quote(batch)}")
    return {node: (batch, *graph.shape(node)[1:]) for node in graph.topological_order()}


class Report:
    """What ``analyze`` returns: ``records`` (one per layer), ``layers`` (a DataFrame of them)
    and ``totals`` (a dict of ints)."""

    def __init__(self, graph: Graph, batch: int, dtype: str, records: list[LayerRecord], totals: dict):
        self.graph = graph
        self.model = graph.name
        self.batch = batch
        self.dtype = dtype
        self.records = records
        self.totals = totals
        self.input_shape = tuple(graph.op(graph.input_nodes()[0]).shape)

    @property
    def layers(self):
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.records]).set_index("name", drop=False)

    def folded(self) -> list[LayerRecord]:
        """Records with each in-place layer (ReLU, dropout, flatten) merged into the row that
        produced its input, as the lectures' tables print them (one "CONV3-64" row per
        conv+ReLU). A merged row keeps its producer's name and output shape."""
        rows: list[LayerRecord] = []
        members: set[str] = set()  # the nodes folded into rows[-1]
        for rec in self.records:
            if rec.inplace and rows and rec.inputs[0] in members:
                rows.append(_merge(rows.pop(), rec))
                members.add(rec.name)
            else:
                rows.append(rec)
                members = {rec.name}
        return rows

    def __repr__(self) -> str:
        return f"Report({self.model!r}, batch={self.batch}, {len(self.records)} layers)"


def _merge(prev: LayerRecord, rec: LayerRecord) -> LayerRecord:
    fields = asdict(prev)
    fields.update(
        label=f"{prev.label} + {rec.label}",
        other=prev.other + rec.other,
        flops=prev.flops + rec.flops,
        live_bytes=max(prev.live_bytes, rec.live_bytes),
    )
    return LayerRecord(**fields)


def analyze(graph: Graph, batch: int = 1, dtype: str = "float32") -> Report:
    """Run every pass over ``graph`` for ``batch`` samples stored as ``dtype``."""
    check_graph(graph, "analyze")
    itemsize = dtype_bytes(dtype)
    graph.validate()
    shapes = infer_shapes(graph, batch)
    plan = plan_buffers(graph)
    live = live_elements(plan, batch)
    fields = receptive_fields(graph, shapes)
    records = []
    layouts: dict[str, str] = {}
    for node, live_now in zip(plan.order, live):
        op = graph.op(node)
        inputs = graph.inputs(node)
        out = shapes[node]
        in_shapes = tuple(shapes[src] for src in inputs)
        layout = layouts[node] = op.layout(tuple(layouts[src] for src in inputs), out)
        cost = op.cost(in_shapes, out)
        allocates = plan.allocates[node]
        elems = math.prod(out) if allocates else 0
        f = fields[node]
        records.append(
            LayerRecord(
                name=node,
                op=op.kind,
                label=op.label(),
                inputs=inputs,
                output_shape=out,
                activations=elems,
                activation_bytes=elems * itemsize,
                weights=cost.weights,
                biases=cost.biases,
                params=cost.params,
                buffers=cost.buffers,
                macs=cost.macs,
                other=cost.other,
                flops=cost.flops,
                live_bytes=live_now * itemsize,
                rf_h=f.size_h,
                rf_w=f.size_w,
                jump_h=f.jump_h,
                jump_w=f.jump_w,
                start_h=f.start_h,
                start_w=f.start_w,
                inplace=not allocates,
                layout=layout,
            )
        )
    return Report(graph, batch, dtype, records, _totals(records, live, itemsize))


def _totals(records: list[LayerRecord], live: list[int], itemsize: int) -> dict:
    def total(key):
        return sum(getattr(r, key) for r in records)

    params = total("params")
    activations = total("activations")
    buffers = total("buffers")
    return {
        "layers": sum(1 for r in records if r.op != "input"),
        "params": params,
        "weights": total("weights"),
        "biases": total("biases"),
        "buffers": buffers,
        "macs": total("macs"),
        "other": total("other"),
        "flops": total("flops"),
        "activations": activations,
        "activation_bytes": activations * itemsize,
        "param_bytes": params * itemsize,
        "buffer_bytes": buffers * itemsize,
        "peak_activation_bytes": max(live) * itemsize,
    }
