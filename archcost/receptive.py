"""Receptive field of every layer: size, jump (stride in input pixels) and start (centre of the
first output unit's field, in input pixel coordinates), per axis.

Recurrence for a window op with kernel k, stride s, padding p, dilation d:
``size' = size + (k - 1) * d * jump``, ``jump' = jump * s``,
``start' = start + ((k - 1) * d / 2 - p) * jump``.
A merge (concat, add) takes the largest field over its inputs: the field over all paths.
"""

from __future__ import annotations

import math
from typing import NamedTuple

from archcost.graph import Graph


class Field(NamedTuple):
    size_h: int
    size_w: int
    jump_h: int
    jump_w: int
    start_h: float
    start_w: float


def _half(n: int) -> float:
    """``n / 2`` as a float; +-inf past float's range (true division of a huge int overflows)."""
    try:
        return n / 2
    except OverflowError:
        return math.inf if n > 0 else -math.inf


def receptive_fields(graph: Graph, shapes: dict) -> dict[str, Field]:
    # Sizes, jumps and twice the starts are exact ints: float arithmetic here raised
    # OverflowError ("int too large to convert to float") on valid graphs of huge strides or
    # sizes, e.g. twelve stride-10^30 convs, whose jump is 10^360. The starts become floats
    # (exact halves, as before, wherever a float can hold them) only in the returned fields.
    exact: dict[str, tuple] = {}  # node -> (size_h, size_w, jump_h, jump_w, 2*start_h, 2*start_w)
    fields: dict[str, Field] = {}
    for node in graph.topological_order():
        inputs = graph.inputs(node)
        if not inputs:
            f = exact[node] = (1, 1, 1, 1, 0, 0)
            fields[node] = Field(*f[:4], 0.0, 0.0)
            continue
        if len(inputs) == 1:
            f = exact[inputs[0]]
        else:
            parents = [exact[src] for src in inputs]
            f = tuple(max(p[i] for p in parents) for i in range(4)) + tuple(
                min(p[i] for p in parents) for i in (4, 5)
            )
        window = graph.op(node).window(tuple(shapes[src] for src in inputs))
        if window is not None:
            size_h, size_w, jump_h, jump_w, start2_h, start2_w = f
            f = (
                size_h + (window.kh - 1) * window.dh * jump_h,
                size_w + (window.kw - 1) * window.dw * jump_w,
                jump_h * window.sh,
                jump_w * window.sw,
                start2_h + ((window.kh - 1) * window.dh - 2 * window.pad_top) * jump_h,
                start2_w + ((window.kw - 1) * window.dw - 2 * window.pad_left) * jump_w,
            )
        exact[node] = f
        fields[node] = Field(*f[:4], _half(f[4]), _half(f[5]))
    return fields
