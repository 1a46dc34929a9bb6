"""Prove a graph's computed numbers by executing it (archcost validate).

Per layer: (1) the executed output shape equals the inferred one; (2) the multiplies counted by
the conv/linear counting variants (performed + padded taps, which the MAC convention counts as
multiplies by zero) equal the analytic MACs; (3) the float32 output is within ``TOLERANCE``
relative error (norm of the difference over the norm of the reference) of the float64
reference of the same layer, computed from the layer's executed inputs upcast to float64, so
each layer is judged on its own kernel and float32 rounding does not compound along the net;
(4) the parameters the executor allocated for the layer (trainable arrays, and separately the
buffers it keeps but never trains: BN running statistics, fixed RBF centres) equal the analysis's
``params`` and ``buffers``; and, for the graph, (5) the arena's measured peak equals the predicted
``peak_activation_bytes``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from archcost import ops
from archcost.analysis import analyze
from archcost.execute import Executor, buffer_names
from archcost.errors import ArchcostError, quote
from archcost.graph import Graph
from archcost.kernels import reference

TOLERANCE = 1e-4  # float32 rounding over a 25k-term dot product stays near 1e-5


@dataclass
class LayerCheck:
    name: str
    label: str
    shape: tuple
    expected_shape: tuple
    macs: int
    counted: int | None  # performed + padded multiplies, conv/linear only
    padded: int | None
    rel_error: float
    problem: str  # "" when the layer passes

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass
class Validation:
    model: str
    input_shape: tuple
    batch: int
    layers: list[LayerCheck]
    peak_bytes: int
    predicted_peak_bytes: int
    seconds: float

    @property
    def peak_ok(self) -> bool:
        return self.peak_bytes == self.predicted_peak_bytes

    @property
    def failures(self) -> list[LayerCheck]:
        return [c for c in self.layers if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failures and self.peak_ok


def allocated_params(op, arrays: dict) -> tuple[int, int]:
    """(trainable, buffer) elements among the arrays the executor allocated for ``op``
    (execute.init_params; execute.buffer_names says which are buffers)."""
    buffers = buffer_names(op)
    trainable = sum(int(a.size) for k, a in arrays.items() if k not in buffers)
    return trainable, sum(int(a.size) for k, a in arrays.items() if k in buffers)


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    diff = float(np.linalg.norm((out.astype(np.float64) - ref).ravel()))
    norm = float(np.linalg.norm(ref.ravel()))
    return diff / norm if norm > 0 else diff


def validate(graph: Graph, batch: int = 1, seed: int = 0, backend: str = "cpu") -> Validation:
    start = time.perf_counter()
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ArchcostError(f"validate: seed must be an int from 0 to {2**32 - 1}, got {quote(seed)}")
    report = analyze(graph, batch=batch)
    record = {r.name: r for r in report.records}
    executor = Executor(graph, batch, backend, seed)
    remaining = {node: len(graph.consumers(node)) for node in graph.topological_order()}
    refs: dict[str, np.ndarray] = {}
    checks: list[LayerCheck] = []

    def check(node, out):
        host = executor.backend.to_host(out)
        op = graph.op(node)
        if isinstance(op, ops.Input):
            refs[node] = host.astype(np.float64)
            return
        rec = record[node]
        srcs = graph.inputs(node)
        ref = reference.forward(op, [refs[s] for s in srcs], executor.params[node], rec.output_shape)
        for src in srcs:
            remaining[src] -= 1
            if remaining[src] == 0:
                del refs[src]
        if remaining[node]:  # copied now: an in-place consumer will overwrite the buffer
            refs[node] = host.astype(np.float64)
        problems = []
        params, buffers = allocated_params(op, executor.params[node])
        if (params, buffers) != (rec.params, rec.buffers):
            problems.append(f"the executor allocated {params} parameters and {buffers} buffer elements, "
                            f"the analysis counts {rec.params} and {rec.buffers}")
        if tuple(host.shape) != tuple(rec.output_shape):
            problems.append(f"output shape {host.shape} != inferred {rec.output_shape}")
        error = relative_error(host, ref) if host.shape == ref.shape else float("inf")
        if not np.isfinite(host).all():
            problems.append("non-finite output")
        elif not error < TOLERANCE:
            problems.append(f"relative error {error:.2e} vs float64 reference exceeds {TOLERANCE:.0e}")
        checks.append(LayerCheck(node, rec.label, tuple(host.shape), rec.output_shape, rec.macs, None, None, error,
                                 "; ".join(problems)))

    result = executor.forward(count=True, on_output=check)
    for c in checks:
        if c.name in result.counts:
            performed, padded = result.counts[c.name]
            c.counted, c.padded = performed + padded, padded
        elif c.macs:
            c.counted = 0
        if c.counted is not None and c.counted != c.macs:
            mismatch = f"counted multiplies {c.counted} != analytic MACs {c.macs}"
            c.problem = f"{c.problem}; {mismatch}" if c.problem else mismatch
    return Validation(
        graph.name, report.input_shape, batch, checks, result.peak_bytes,
        report.totals["peak_activation_bytes"], time.perf_counter() - start,
    )
