"""Our conv2d kernel vs numpy im2col + BLAS vs torch (oneDNN, when importable) on every conv
layer of VGG16 and ResNet-50, at batch 1 and 8, in one run.

    PYTHONPATH=$PWD python benchmarks/bench_conv.py [--models vgg16 resnet50_tv] [--batch 1 8]
                                                     [--repeat 7] [--threads 2] [--whole]

The machine may be shared: each distinct layer geometry is timed ours / im2col / torch
interleaved, at least ``--repeat`` rounds and more for small layers (until ours has run
``--budget`` seconds, at most 200 rounds), so the three see the same load; the best (minimum) time of
each is kept, the usual estimate of the unloaded time on a noisy machine (medians are written
to the JSON too); ratios are the numbers to read. Layers of the same geometry share one measurement.
Prints per-layer GFLOP/s (2 x MACs / s) and ratios, the geometric mean of ours/torch (and
ours/im2col) per batch size over all conv layers, and the worst layer. ``--whole`` also times
each network's forward pass (ours: archcost's executor; torch: the same graph built from
torch.nn ops with the same weights) at batch 1. Writes benchmarks/results/bench_conv.{csv,json}
(git-ignored). numpy/BLAS and torch are baselines only; archcost never imports torch.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
MAX_ROUNDS = 200


def conv_layers(model: str):
    """(name, op, input shape per sample) of every Conv2d of a zoo model."""
    from archcost import ops, zoo
    from archcost.analysis import infer_shapes

    graph = zoo.build(model)
    shapes = infer_shapes(graph, 1)
    for node in graph.topological_order():
        op = graph.op(node)
        if isinstance(op, ops.Conv2d):
            yield node, op, shapes[graph.inputs(node)[0]][1:]


def im2col_conv(x, weight, op):
    """numpy baseline: explicit padding, strided windows copied to a matrix, one BLAS GEMM."""
    from numpy.lib.stride_tricks import sliding_window_view

    n, c, h, w = x.shape
    top, bottom, left, right = op.pads(h, w)
    (kh, kw), (sh, sw) = op.kernel, op.stride
    xp = np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # N, C, OH, OW, kh, kw
    oh, ow = win.shape[2], win.shape[3]
    cols = np.ascontiguousarray(win.transpose(0, 2, 3, 1, 4, 5)).reshape(n * oh * ow, c * kh * kw)
    out = cols @ weight.reshape(weight.shape[0], -1).T
    return out.reshape(n, oh, ow, -1).transpose(0, 3, 1, 2)


def median_time(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["vgg16", "resnet50_tv"])
    p.add_argument("--batch", nargs="+", type=int, default=[1, 8])
    p.add_argument("--repeat", type=int, default=7, help="interleaved rounds per layer (median kept)")
    p.add_argument("--budget", type=float, default=0.3,
                   help="keep adding rounds (up to %d) until ours has run this many seconds" % 200)
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for every contender")
    p.add_argument("--no-im2col", action="store_true", help="skip the numpy im2col baseline")
    p.add_argument("--whole", action="store_true", help="also time whole forward passes at batch 1")
    args = p.parse_args(argv)

    import numba

    from archcost import ops
    from archcost.execute import init_params
    from archcost.kernels.cpu import ADAPTERS

    numba.set_num_threads(args.threads)
    try:
        import torch

        torch.set_num_threads(args.threads)
        torch_version = torch.__version__
    except ImportError:
        torch, torch_version = None, None
    rng = np.random.default_rng(0)
    adapter = ADAPTERS[ops.Conv2d]
    rows, measured, medians = [], {}, {}
    for batch in args.batch:
        for model in args.models:
            for name, op, in_shape in conv_layers(model):
                shape = (batch, *in_shape)
                key = (op, shape)
                out_shape = op.infer((shape,))
                macs = op.cost((shape,), out_shape).macs
                if key not in measured:
                    params = init_params(op, (shape,), out_shape, rng)
                    state = adapter.prepare(op, (shape,), out_shape, params)
                    x = rng.standard_normal(shape).astype(np.float32)
                    out = np.empty(out_shape, np.float32)
                    contenders = {"ours": lambda: adapter.run(op, state, [x], out)}
                    if not args.no_im2col:
                        contenders["im2col"] = lambda: im2col_conv(x, params["weight"], op)
                    if torch is not None:
                        tx, tw = torch.from_numpy(x), torch.from_numpy(params["weight"])
                        tb = torch.from_numpy(params["bias"]) if op.bias else None
                        top, bottom, left, right = op.pads(*shape[2:])
                        if (top, left) == (bottom, right):
                            tconv = lambda: torch.nn.functional.conv2d(tx, tw, tb, op.stride, (top, left), op.dilation, op.groups)
                        else:
                            tconv = lambda: torch.nn.functional.conv2d(
                                torch.nn.functional.pad(tx, (left, right, top, bottom)), tw, tb, op.stride, 0,
                                op.dilation, op.groups)
                        contenders["torch"] = lambda: torch.inference_mode()(tconv)()
                    for fn in contenders.values():
                        fn()  # warm-up: JIT compile, allocator, oneDNN primitive cache
                    times = {k: [] for k in contenders}
                    rounds = 0  # interleaved rounds: all contenders see the same load; small layers
                    while rounds < args.repeat or (rounds < MAX_ROUNDS and sum(times["ours"]) < args.budget):
                        for k, fn in contenders.items():  # get more rounds, so their best is a fair one
                            times[k].append(median_time(fn, 1))
                        rounds += 1
                    measured[key] = {k: min(v) for k, v in times.items()}
                    medians[key] = {k: statistics.median(v) for k, v in times.items()}
                m = measured[key]
                row = {"batch": batch, "model": model, "layer": name, "label": op.label(),
                       "input": "x".join(map(str, in_shape)), "macs": macs}
                for k, seconds in m.items():
                    row[f"{k}_s"] = seconds
                    row[f"{k}_median_s"] = medians[key][k]
                    row[f"{k}_gflops"] = 2 * macs / seconds / 1e9
                if "torch" in m:
                    row["ours_vs_torch"] = m["torch"] / m["ours"]
                if "im2col" in m:
                    row["ours_vs_im2col"] = m["im2col"] / m["ours"]
                rows.append(row)
                ratio = f"{row['ours_vs_torch']:6.2f}x torch" if "torch" in m else ""
                others = "  ".join(f"{k} {row[k + '_gflops']:6.1f}" for k in m if k != "ours")
                print(f"b{batch} {model:12s} {name:28s} {op.label():26s} ours {row['ours_gflops']:6.1f} GFLOP/s  "
                      f"{others}  {ratio}", flush=True)

    summary = {}
    print()
    for batch in args.batch:
        sub = [r for r in rows if r["batch"] == batch]
        s = {"layers": len(sub)}
        for key in ("ours_vs_torch", "ours_vs_im2col"):
            vals = [r[key] for r in sub if key in r]
            if vals:
                s[f"geomean_{key}"] = math.exp(sum(math.log(v) for v in vals) / len(vals))
                worst = min(sub, key=lambda r: r.get(key, math.inf))
                s[f"worst_{key}"] = {"model": worst["model"], "layer": worst["layer"], "label": worst["label"],
                                     "ratio": worst[key]}
        s["geomean_ours_gflops"] = math.exp(sum(math.log(r["ours_gflops"]) for r in sub) / len(sub))
        summary[f"batch{batch}"] = s
        line = f"batch {batch}: {len(sub)} conv layers, geomean ours {s['geomean_ours_gflops']:.1f} GFLOP/s"
        for key in ("ours_vs_torch", "ours_vs_im2col"):
            if f"geomean_{key}" in s:
                w = s[f"worst_{key}"]
                line += (f"; {key} geomean {s[f'geomean_{key}']:.2f}, worst {w['ratio']:.2f} "
                         f"({w['model']} {w['layer']}, {w['label']})")
        print(line)

    whole = {}
    if args.whole:
        whole = time_whole(args.models, torch, args.repeat)
        for model, w in whole.items():
            line = f"whole {model} batch 1: ours {w['ours_s'] * 1e3:.1f} ms"
            if "torch_s" in w:
                line += f", torch {w['torch_s'] * 1e3:.1f} ms, ours/torch time {w['ours_s'] / w['torch_s']:.2f}"
            print(line)

    RESULTS.mkdir(exist_ok=True)
    meta = {"machine": machine_name(), "date": datetime.date.today().isoformat(), "threads": args.threads,
            "numpy": np.__version__, "numba": numba.__version__, "torch": torch_version, "repeat": args.repeat}
    (RESULTS / "bench_conv.json").write_text(json.dumps({**meta, "summary": summary, "whole": whole, "layers": rows},
                                                         indent=1))
    import csv

    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(RESULTS / "bench_conv.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, keys)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {RESULTS / 'bench_conv.json'} and .csv", file=sys.stderr)
    return 0


def machine_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def time_whole(models, torch, repeat):
    """Forward time at batch 1: archcost's executor vs the same graph as torch.nn.functional
    calls with the same weights (a straight translation of the op list, not torchvision)."""
    from archcost import ops, zoo
    from archcost.execute import Executor

    result = {}
    for model in models:
        graph = zoo.build(model)
        ex = Executor(graph, 1)
        x = ex.random_inputs()
        ex.forward(x)  # warm-up: JIT and packing
        entry = {}
        if torch is not None:
            fwd = torch_forward(graph, ex, torch, ops)
            tx = {k: torch.from_numpy(v) for k, v in x.items()}
            with torch.inference_mode():
                fwd(tx)
        times = {"ours": [], "torch": []}
        for _ in range(repeat):
            times["ours"].append(median_time(lambda: ex.forward(x), 1))
            if torch is not None:
                with torch.inference_mode():
                    times["torch"].append(median_time(lambda: fwd(tx), 1))
        entry["ours_s"] = min(times["ours"])
        entry["ours_median_s"] = statistics.median(times["ours"])
        if torch is not None:
            entry["torch_s"] = min(times["torch"])
            entry["torch_median_s"] = statistics.median(times["torch"])
        result[model] = entry
    return result


def torch_forward(graph, ex, torch, ops):
    F = torch.nn.functional
    order = [n for n in graph.topological_order()]
    params = {n: {k: torch.from_numpy(v) for k, v in p.items()} for n, p in ex.params.items()}

    def fwd(inputs):
        vals = dict(inputs)
        for node in order:
            op = graph.op(node)
            if isinstance(op, ops.Input):
                continue
            xs = [vals[s] for s in graph.inputs(node)]
            p = params.get(node, {})
            if isinstance(op, ops.Conv2d):
                top, bottom, left, right = op.pads(*xs[0].shape[2:])
                x = xs[0] if (top, left) == (bottom, right) else F.pad(xs[0], (left, right, top, bottom))
                pad = (top, left) if (top, left) == (bottom, right) else 0
                y = F.conv2d(x, p["weight"], p.get("bias"), op.stride, pad, op.dilation, op.groups)
            elif isinstance(op, ops.BatchNorm):
                y = F.batch_norm(xs[0], p["mean"], p["var"], p.get("gamma"), p.get("beta"), False, 0.0, op.eps)
            elif isinstance(op, ops.Activation) and op.fn == "relu":
                y = F.relu(xs[0], inplace=True)
            elif isinstance(op, ops.MaxPool2d):
                t, b, l, r = op.padding
                y = F.max_pool2d(xs[0], op.kernel, op.stride, (t, l), ceil_mode=op.ceil_mode)
            elif isinstance(op, ops.AvgPool2d):
                t, b, l, r = op.padding
                y = F.avg_pool2d(xs[0], op.kernel, op.stride, (t, l), op.ceil_mode, op.count_include_pad)
            elif isinstance(op, ops.GlobalAvgPool):
                y = xs[0].mean(dim=(2, 3), keepdim=True)
            elif isinstance(op, ops.Flatten):
                y = xs[0].flatten(1)
            elif isinstance(op, ops.Linear):
                y = F.linear(xs[0], p["weight"], p.get("bias"))
            elif isinstance(op, ops.Dropout):
                y = xs[0]
            elif isinstance(op, ops.Add):
                y = xs[0]
                for z in xs[1:]:
                    y = y + z
            elif isinstance(op, ops.Softmax):
                y = F.softmax(xs[0], op.axis)
            else:
                raise NotImplementedError(f"bench_conv whole-net torch translation: {type(op).__name__}")
            vals[node] = y
        return [vals[n] for n in graph.output_nodes()]

    return fwd


if __name__ == "__main__":
    sys.exit(main())
