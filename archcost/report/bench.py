"""Text/CSV/JSON output of ``archcost bench`` (the numbers come from archcost.benchmark)."""

from __future__ import annotations

import csv
import io
import json

from archcost.benchmark import all_layers

COLUMNS = ("layer", "op", "ms", "GFLOP/s", "% peak", "% roofline", "MB moved", "FLOP/B")


def _cells(layer: dict) -> tuple[str, ...]:
    flops = layer["flops"]
    return (
        layer["name"], layer["label"], f"{layer['seconds'] * 1e3:.3f}",
        f"{layer['gflops']:.1f}" if flops else "", f"{100 * layer['fraction_of_peak']:.1f}" if flops else "",
        f"{100 * layer['fraction_of_roofline']:.1f}" if flops else "", f"{layer['bytes'] / 1e6:.2f}",
        f"{flops / layer['bytes']:.1f}" if flops else "",
    )


def bench_table(data: dict, fmt: str = "text") -> str:
    layers = all_layers(data)
    if fmt == "json":
        return json.dumps(data, indent=1) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        keys = ("name", "op", "label", "macs", "flops", "bytes", "seconds", "gflops", "fraction_of_peak",
                "fraction_of_roofline")
        writer = csv.DictWriter(out, keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(layers)
        return out.getvalue()
    rows = [_cells(layer) for layer in layers]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(COLUMNS)]

    def line(cells):
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    t = data["totals"]
    head = [
        f"{data['model']}: batch {data['batch']}, float32, backend {data['backend']}, {data['threads']} threads, "
        f"median of {data['repeat']} forwards after a warm-up",
        f"machine: {data['machine']}; measured peak {data['peak_gflops']:.1f} GFLOP/s (FMA loop), "
        f"copy bandwidth {data['bandwidth_gbs']:.1f} GB/s",
        line(COLUMNS),
    ]
    tail = [
        f"total: {t['seconds'] * 1e3:.2f} ms per forward, {t['gflops']:.1f} GFLOP/s "
        f"({100 * t['fraction_of_peak']:.1f}% of peak); conv+linear {t['conv_linear_seconds'] * 1e3:.2f} ms at "
        f"{t['conv_linear_gflops']:.1f} GFLOP/s",
    ]
    return "\n".join(head + [line(r) for r in rows] + tail) + "\n"


TRAIN_COLUMNS = ("layer", "type", "fwd ms", "bwd ms", "bwd/fwd", "bwd MACs", "bwd GFLOP/s")


def train_bench_table(data: dict, fmt: str = "text") -> str:
    """The per-layer times of one training step (archcost.benchmark.benchmark_training)."""
    layers = data["layers"]
    if fmt == "json":
        return json.dumps(data, indent=1) + "\n"
    if fmt == "csv":
        out = io.StringIO()
        keys = ("name", "op", "label", "forward_s", "backward_s", "backward_macs", "backward_flops", "backward_gflops")
        writer = csv.DictWriter(out, keys, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(layers)
        return out.getvalue()

    def cells(layer):
        fwd, bwd = layer["forward_s"], layer["backward_s"]
        ratio = f"{bwd / fwd:.2f}" if fwd > 0 else ""
        rate = "" if layer["backward_gflops"] is None else f"{layer['backward_gflops']:.1f}"
        return (layer["name"], layer["label"], f"{fwd * 1e3:.3f}", f"{bwd * 1e3:.3f}", ratio,
                f"{layer['backward_macs']:,}" if layer["backward_macs"] else "", rate)

    rows = [cells(layer) for layer in layers]
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(TRAIN_COLUMNS)]

    def line(cells_):
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(cells_, widths)))

    t = data["totals"]
    head = [f"{data['model']}: one training step, batch {data['batch']}, float32, {data['optimizer']}, cpu, "
            f"{data['threads']} threads, median of {data['repeat']} steps after a warm-up",
            f"machine: {data['machine']}", line(TRAIN_COLUMNS)]
    tail = [f"total: {t['step_s'] * 1e3:.2f} ms per step: forward {t['forward_s'] * 1e3:.2f} ms, backward "
            f"{t['backward_s'] * 1e3:.2f} ms, loss {t['loss_s'] * 1e3:.2f} ms, optimizer {t['optimizer_s'] * 1e3:.2f} ms; "
            f"{t['train_step_flops'] / t['step_s'] / 1e9:.1f} GFLOP/s over the step; "
            f"peak {t['train_peak_bytes']:,} bytes"]
    return "\n".join([*head, *(line(r) for r in rows), *tail]) + "\n"
