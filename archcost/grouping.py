"""Grouping pass: a model's layers gathered by layer type or by stage, with each group's share of
MACs, params and activations (MobileNet v1's Table 2, "resource per layer type", for any model).

Pure functions of an analysis ``Report``; formatting lives in archcost/report/table.py.

- by layer type: the op kind plus, for convolutions, the kernel and whether it is depthwise
  ("conv 1x1", "conv 3x3", "conv dw 3x3", "conv g32 3x3" for other grouped convs), "fc" for linear
  layers, the op kind for everything else ("maxpool", "bn", "add", ...).
- by stage: the top-level graph scope of each layer (the part of its name before the first dot):
  the zoo puts each row or stage of a paper's table in one scope (``conv2_x``, ``inception_3a``).
  A layer outside any scope is its own group.

Rows are computed from the folded records (in-place ReLU/dropout merged into their producer), so
a conv+ReLU counts as a conv; groups keep the order in which they first appear in the network.
"""

from __future__ import annotations

from dataclasses import dataclass

from archcost.analysis import LayerRecord, Report
from archcost.errors import ArchcostError
from archcost.ops import Conv2d

GROUPINGS = ("op-type", "stage")


@dataclass(frozen=True)
class GroupRow:
    group: str
    layers: int
    macs: int
    params: int
    activations: int
    macs_share: float  # fraction of the model's total, 0..1
    params_share: float
    activations_share: float


def layer_type(report: Report, record: LayerRecord) -> str:
    """The layer-type key of one record, e.g. "conv dw 3x3"."""
    op = report.graph.op(record.name)
    if isinstance(op, Conv2d):
        kh, kw = op.kernel
        if op.groups == 1:
            return f"conv {kh}x{kw}"
        in_channels = report.graph.shape(record.inputs[0])[1]
        if op.groups == in_channels:
            return f"conv dw {kh}x{kw}"
        return f"conv g{op.groups} {kh}x{kw}"
    return op.kind


def stage(report: Report, record: LayerRecord) -> str:
    """The top-level scope of one record's name ("conv2_x.0.conv1" -> "conv2_x")."""
    return record.name.split(".", 1)[0]


def group(report: Report, by: str = "op-type") -> list[GroupRow]:
    """One row per group, in order of first appearance, with shares of the model's totals."""
    if by not in GROUPINGS:
        raise ArchcostError(f"--by: unknown grouping {by!r}; known: {', '.join(GROUPINGS)}")
    key_of = layer_type if by == "op-type" else stage
    sums: dict[str, list[int]] = {}
    for rec in report.folded():
        counts = sums.setdefault(key_of(report, rec), [0, 0, 0, 0])
        counts[0] += 1
        counts[1] += rec.macs
        counts[2] += rec.params
        counts[3] += rec.activations
    totals = [sum(c[i] for c in sums.values()) for i in range(4)]

    def share(value: int, total: int) -> float:
        return value / total if total else 0.0

    return [
        GroupRow(name, layers, macs, params, acts,
                 share(macs, totals[1]), share(params, totals[2]), share(acts, totals[3]))
        for name, (layers, macs, params, acts) in sums.items()
    ]
