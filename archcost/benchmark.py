"""Time a graph's forward pass per layer on a backend (archcost bench): the RESULTS.json data
the roofline chart reads (schema: archcost/roofline.py), plus totals.

Per layer: the median of ``repeat`` forwards' kernel times, after one warm-up forward that JIT
compiles and packs weights (so neither is timed); FLOPs are the analyzer's (``2 x MACs +
other``); bytes moved are every input read + parameters read + output written, at 4 bytes
per float32 element; intensity = FLOPs / bytes. The machine's ceilings come from the
backend's ``measure_peak()`` (CPU: a register-blocked FMA loop and a parallel copy, measured
once per process).
"""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics

from archcost import ops
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.execute import Executor

BYTES = 4  # the kernels run float32


def machine_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()} ({os.cpu_count()} cores)"


def layer_bytes(record, shapes: dict) -> int:
    reads = sum(math.prod(shapes[src]) for src in record.inputs)
    return BYTES * (reads + record.params + math.prod(record.output_shape))


def benchmark(graph, batch: int = 1, backend: str = "cpu", repeat: int = 5, progress=None) -> dict:
    """RESULTS.json as a dict (see archcost/roofline.py), with extra keys: ``batch``,
    ``backend``, ``repeat``, ``threads``, ``totals`` and per layer ``label`` and
    ``index`` (graph order), ``fraction_of_peak`` (GFLOP/s over the compute ceiling) and ``fraction_of_roofline`` (over
    the attainable rate at its intensity). ``progress(done, total)`` is called after each forward."""
    if repeat < 1:
        raise ArchcostError(f"bench: --repeat must be >= 1, got {repeat}")
    report = analyze(graph, batch=batch)
    executor = Executor(graph, batch, backend)
    if not hasattr(executor.backend, "measure_peak"):
        raise ArchcostError(f"bench: backend {backend!r} cannot measure its peak (no measure_peak())")
    inputs = executor.random_inputs()
    executor.forward(inputs)  # warm-up: JIT compile, weight packing, BN calibration
    if progress:
        progress(1, repeat + 1)
    times: dict[str, list[float]] = {}
    for i in range(repeat):
        for node, seconds in executor.forward(inputs).seconds.items():
            times.setdefault(node, []).append(seconds)
        if progress:
            progress(i + 2, repeat + 1)
    peak = executor.backend.measure_peak()
    shapes = {r.name: r.output_shape for r in report.records}
    layers = []
    for record in report.records:
        if record.name not in times:
            continue  # the input
        seconds = max(statistics.median(times[record.name]), 1e-9)
        flops = record.flops
        nbytes = layer_bytes(record, shapes)
        gflops = flops / seconds / 1e9
        attainable = min(peak["peak_gflops"], peak["bandwidth_gbs"] * flops / nbytes)
        layers.append({
            "index": len(layers), "name": record.name, "op": record.op, "label": record.label, "macs": record.macs, "flops": flops,
            "bytes": nbytes, "seconds": seconds, "gflops": gflops,
            "fraction_of_peak": gflops / peak["peak_gflops"],
            "fraction_of_roofline": gflops / attainable if attainable > 0 else 0.0,
        })
    total_s = sum(layer["seconds"] for layer in layers)
    total_flops = sum(layer["flops"] for layer in layers)
    # By the ops' own kinds: a literal "linear" here (the kind is "fc") once left every FC layer out.
    conv = [layer for layer in layers if layer["op"] in (ops.Conv2d.kind, ops.ConvTranspose2d.kind, ops.Linear.kind)]
    conv_s = sum(layer["seconds"] for layer in conv)
    totals = {
        "seconds": total_s, "flops": total_flops, "gflops": total_flops / total_s / 1e9,
        "fraction_of_peak": total_flops / total_s / 1e9 / peak["peak_gflops"],
        "conv_linear_seconds": conv_s,
        "conv_linear_gflops": sum(layer["flops"] for layer in conv) / conv_s / 1e9 if conv_s else 0.0,
    }
    return {
        "machine": getattr(executor.backend, "DEVICE", None) or machine_name(), "date": datetime.date.today().isoformat(), "model": graph.name,
        "dtype": "float32", "batch": batch, "backend": backend, "repeat": repeat, "threads": peak.get("threads"),
        "peak_gflops": peak["peak_gflops"], "bandwidth_gbs": peak["bandwidth_gbs"], "totals": totals,
        "layers": [layer for layer in layers if layer["flops"] > 0],
        "other_layers": [layer for layer in layers if layer["flops"] == 0],
    }


def all_layers(data: dict) -> list[dict]:
    """Every timed layer in graph order (flop-free views and copies included)."""
    return sorted(data["layers"] + data["other_layers"], key=lambda layer: layer["index"])


def benchmark_training(graph, batch: int = 1, repeat: int = 3, optimizer: str = "sgd", progress=None, **options) -> dict:
    """Time one training step per layer on the cpu kernels (archcost.training_execute): the
    median over ``repeat`` steps, after a warm-up step (compiles). Per layer: forward and backward
    seconds and the backward's FLOPs (2 x backward MACs + other); totals: the loss, the optimizer
    and the whole step. (With checkpointing, a layer's recomputation counts in its forward.)"""
    from archcost.training_execute import TrainingExecutor

    ex = TrainingExecutor(graph, batch, optimizer=optimizer, **options)
    inputs, labels = ex.random_batch()
    ex.step(inputs, labels)
    runs = []
    for i in range(repeat):
        runs.append(ex.step(inputs, labels).seconds)
        if progress is not None:
            progress(i + 1, repeat)
    def median(key):
        return statistics.median(r.get(key, 0.0) for r in runs)

    records = {r.name: r for r in ex.report.records}
    layers = []
    for node in ex.plan.order:
        rec = records[node]
        if rec.op == "input":
            continue
        fwd = median(("forward", node)) + median(("recompute", node))
        bwd = median(("backward", node))
        flops = 2 * rec.backward_macs + rec.backward_other
        layers.append({"name": node, "op": rec.op, "label": rec.label, "forward_s": fwd, "backward_s": bwd,
                       "backward_macs": rec.backward_macs, "backward_flops": flops,
                       "backward_gflops": flops / bwd / 1e9 if bwd > 0 else None})
    step_s = statistics.median(sum(r.values()) for r in runs)
    t = ex.report.totals
    return {
        "model": graph.name, "batch": batch, "optimizer": optimizer, "machine": machine_name(),
        "threads": _threads(), "repeat": repeat, "layers": layers,
        "totals": {"forward_s": sum(l["forward_s"] for l in layers), "backward_s": sum(l["backward_s"] for l in layers),
                   "loss_s": median(("loss_forward", "")) + median(("loss_backward", "")),
                   "optimizer_s": median(("optimizer", "")), "step_s": step_s,
                   "train_step_macs": t["train_step_macs"], "train_step_flops": t["train_step_flops"],
                   "train_peak_bytes": t["train_peak_bytes"]},
    }


def _threads() -> int:
    import numba

    return numba.get_num_threads()
