"""Activation buffers under the topological schedule: which buffer each layer writes, when
each buffer dies, and the peak of live activation memory.

The executor allocates from the same plan, so its measured peak can be compared with
``peak_live_elements`` computed here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from archcost.graph import Graph


@dataclass(frozen=True)
class BufferPlan:
    order: tuple[str, ...]
    buffer_of: dict  # node -> buffer id it writes (an in-place node writes its input's buffer)
    allocates: dict  # node -> True if it allocates a fresh buffer
    free_after: dict  # node -> tuple of buffer ids that die once the node has run
    size_of: dict  # buffer id -> elements at batch 1


def runs_in_place(graph: Graph, node: str) -> bool:
    """An in-place op reuses its input's buffer, but only when nothing else reads that input:
    otherwise overwriting it would corrupt the other reader (then it gets a fresh buffer)."""
    inputs = graph.inputs(node)
    return graph.op(node).inplace and len(inputs) == 1 and graph.fan_out(inputs[0]) == 1


def plan_buffers(graph: Graph) -> BufferPlan:
    order = graph.topological_order()
    end = len(order)
    buffer_of, allocates, size_of, last_use = {}, {}, {}, {}
    for position, node in enumerate(order):
        inputs = graph.inputs(node)
        if runs_in_place(graph, node):
            buf = buffer_of[inputs[0]]
            allocates[node] = False
        else:
            buf = len(size_of)
            size_of[buf] = math.prod(graph.shape(node))
            allocates[node] = True
        buffer_of[node] = buf
        # A buffer lives until the last reader of any node aliasing it (nodes come in order, so
        # the latest position is the last); outputs live to the end (set last: an in-place
        # output aliases its input's buffer).
        for src in inputs:
            last_use[buffer_of[src]] = position
        last_use[buf] = position if graph.fan_out(node) else end
    free_after = {node: [] for node in order}
    for buf, pos in last_use.items():
        if pos < end:
            free_after[order[pos]].append(buf)
    return BufferPlan(
        tuple(order), buffer_of, allocates, {k: tuple(v) for k, v in free_after.items()}, size_of
    )


def live_elements(plan: BufferPlan, batch: int = 1) -> list[int]:
    """Live activation elements while each layer runs (its inputs and its output all held)."""
    live, steps = 0, []
    for node in plan.order:
        if plan.allocates[node]:
            live += plan.size_of[plan.buffer_of[node]] * batch
        steps.append(live)
        for buf in plan.free_after[node]:
            live -= plan.size_of[buf] * batch
    return steps
