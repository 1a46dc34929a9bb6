"""Receptive field of every layer: size, jump (stride in input pixels) and start (centre of the
first output unit's field, in input pixel coordinates), per axis.

Recurrence for a window op with kernel k, stride s, padding p, dilation d:
``size' = size + (k - 1) * d * jump``, ``jump' = jump * s``,
``start' = start + ((k - 1) * d / 2 - p) * jump``.
A merge (concat, add) takes the largest field over its inputs: the field over all paths.
"""

from __future__ import annotations

from typing import NamedTuple

from archcost.graph import Graph


class Field(NamedTuple):
    size_h: int
    size_w: int
    jump_h: int
    jump_w: int
    start_h: float
    start_w: float


def receptive_fields(graph: Graph, shapes: dict) -> dict[str, Field]:
    fields: dict[str, Field] = {}
    for node in graph.topological_order():
        inputs = graph.inputs(node)
        if not inputs:
            fields[node] = Field(1, 1, 1, 1, 0.0, 0.0)
            continue
        if len(inputs) == 1:
            f = fields[inputs[0]]
        else:
            parents = [fields[src] for src in inputs]
            f = Field(
                max(p.size_h for p in parents),
                max(p.size_w for p in parents),
                max(p.jump_h for p in parents),
                max(p.jump_w for p in parents),
                min(p.start_h for p in parents),
                min(p.start_w for p in parents),
            )
        window = graph.op(node).window(tuple(shapes[src] for src in inputs))
        if window is not None:
            f = Field(
                f.size_h + (window.kh - 1) * window.dh * f.jump_h,
                f.size_w + (window.kw - 1) * window.dw * f.jump_w,
                f.jump_h * window.sh,
                f.jump_w * window.sw,
                f.start_h + ((window.kh - 1) * window.dh / 2 - window.pad_top) * f.jump_h,
                f.start_w + ((window.kw - 1) * window.dw / 2 - window.pad_left) * f.jump_w,
            )
        fields[node] = f
    return fields
