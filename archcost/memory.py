"""Activation buffers under the topological schedule: which buffer each layer writes, when
each buffer dies, and the peak of live activation memory.

The executor allocates from the same plan, so its measured peak can be compared with
``peak_live_elements`` computed here.
"""

from __future__ import annotations

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
    op = graph.op(node)
    inputs = graph.inputs(node)
    return op.inplace and len(inputs) == 1 and len(graph.consumers(inputs[0])) == 1


def plan_buffers(graph: Graph) -> BufferPlan:
    order = graph.topological_order()
    position = {node: i for i, node in enumerate(order)}
    buffer_of, allocates, size_of, last_use = {}, {}, {}, {}
    for node in order:
        if runs_in_place(graph, node):
            buf = buffer_of[graph.inputs(node)[0]]
            allocates[node] = False
        else:
            buf = len(size_of)
            size_of[buf] = _numel(graph.shape(node))
            allocates[node] = True
        buffer_of[node] = buf
        # A buffer lives until the last reader of any node aliasing it; outputs live to the end.
        last_use[buf] = max(last_use.get(buf, -1), position[node])
        for src in graph.inputs(node):
            last_use[buffer_of[src]] = max(last_use[buffer_of[src]], position[node])
        if not graph.consumers(node):
            last_use[buf] = len(order)
    free_after = {node: [] for node in order}
    for buf, pos in last_use.items():
        if pos < len(order):
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


def _numel(shape) -> int:
    n = 1
    for d in shape:
        n *= d
    return n
