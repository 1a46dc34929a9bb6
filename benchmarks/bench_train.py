"""Our conv backward kernels and whole training step vs PyTorch (oneDNN) on VGG16 and ResNet-50.

    /work/torchenv/bin/python benchmarks/bench_train.py [--models vgg16 resnet50_tv] [--batch 8]
        [--input 224] [--repeat 5] [--step-repeat 3] [--threads 2] [--no-layers] [--no-step]
        [--layers conv4_2 conv5_x.1] [--json PATH]

(run with PYTHONPATH=<repo root> in an environment that has torch and torchvision beside
archcost's dependencies; without torch the script says so and exits 0.)

**Per conv layer** (each distinct geometry once, at the batch and input size asked): our data
gradient (``Conv2dKernel.backward`` with only ``grad_inputs``) and weight gradient (only
``param_grads["weight"]``) vs ``torch.ops.aten.convolution_backward`` on the same shapes with
``output_mask`` (True, False, False) and (False, True, False). The four run interleaved, round
after round, in one process, so they see the same load on a shared machine; the median of each
is kept (the min and the spread, (max - min) / median, go to the JSON). A layer fed by the
network input has no data gradient in training: only its weight gradient is timed. Ratios are
torch time / our time (> 1: ours is faster); a layer's backward ratio is (torch data + weight) /
(ours data + weight); the geometric mean of those over the conv layers is the number to read
(goal >= 0.5).

**Whole step**: archcost's ``TrainingExecutor`` (forward, softmax cross-entropy, backward, SGD
with momentum 0.9) vs the torchvision twin in train mode (forward, ``CrossEntropyLoss``,
``backward``, ``torch.optim.SGD(momentum=0.9)``), interleaved step by step, median of
``--step-repeat`` steps after one warm-up step each (goal: ours <= 2x torch's time).

Both sides run ``--threads`` threads (``torch.set_num_threads``, ``numba.set_num_threads``).
Writes benchmarks/results/bench_train.json (git-ignored). torch is a baseline only; archcost
never imports it.
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

# Both sides run GNU OpenMP thread pools (torch's and numba's "omp" layer). On a shared machine
# an actively spinning pool whose other thread was descheduled waits out whole scheduler slices
# (torch's conv backward on a 64x16x16 map: 32 ms spinning vs 1.1 ms passive, measured here), so
# both are made to sleep instead of spin: torch's best setting on a shared 2-core machine. Set
# before torch or numba is imported; an explicit OMP_WAIT_POLICY in the environment wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
TWINS = {"vgg16": "vgg16", "resnet50_tv": "resnet50", "resnet50": "resnet50"}  # zoo name -> torchvision


def conv_layers(graph, batch):
    """(name, op, input shape, fed by the network input) of every Conv2d of a graph."""
    from archcost import ops
    from archcost.analysis import infer_shapes

    shapes = infer_shapes(graph, batch)
    inputs = set(graph.input_nodes())
    for node in graph.topological_order():
        op = graph.op(node)
        if isinstance(op, ops.Conv2d):
            src = graph.inputs(node)[0]
            yield node, op, tuple(shapes[src]), src in inputs


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def spread(times):
    """(max - min) / median: how much one contender's rounds disagreed."""
    return (max(times) - min(times)) / statistics.median(times)


def torch_conv_backward(torch, op, x, weight, gy, mask):
    """A closure running aten.convolution_backward for one conv (asymmetric padding: on an
    explicitly padded input, which costs the same multiplies)."""
    top, bottom, left, right = op.pads(*x.shape[2:])
    if (top, left) == (bottom, right):
        tx, pad = x, [top, left]
    else:
        tx, pad = torch.nn.functional.pad(x, (left, right, top, bottom)), [0, 0]
    args = (gy, tx, weight, None, list(op.stride), pad, list(op.dilation), False, [0, 0], op.groups, mask)
    return lambda: torch.ops.aten.convolution_backward(*args)


def bench_layers(models, batch, input_size, repeat, torch, only=None):
    from archcost import ops, zoo
    from archcost.execute import init_params
    from archcost.kernels.cpu import ADAPTERS

    adapter = ADAPTERS[ops.Conv2d]
    rng = np.random.default_rng(0)
    rows, measured = [], {}
    for model in models:
        graph = zoo.build(model, input_shape=(3, input_size, input_size))
        for name, op, shape, first in conv_layers(graph, batch):
            if only and not any(part in name for part in only):
                continue
            key = (op, shape, first)
            out_shape = op.infer((shape,))
            macs = op.cost((shape,), out_shape).macs
            if key not in measured:
                params = init_params(op, (shape,), out_shape, rng)
                x = rng.standard_normal(shape, dtype=np.float32)
                gy = rng.standard_normal(out_shape, dtype=np.float32)
                dx = np.zeros(shape, np.float32)
                dw = {"weight": np.empty_like(params["weight"])}
                tx, tw, tgy = (torch.from_numpy(a) for a in (x, params["weight"], gy))
                contenders = {}
                if not first:
                    contenders["ours_data"] = lambda: adapter.backward(op, params, [None], None, {}, gy, [dx], {})
                    contenders["torch_data"] = torch_conv_backward(torch, op, tx, tw, tgy, [True, False, False])
                contenders["ours_weight"] = lambda: adapter.backward(op, params, [x], None, {}, gy, [None], dw)
                contenders["torch_weight"] = torch_conv_backward(torch, op, tx, tw, tgy, [False, True, False])
                for fn in contenders.values():
                    fn()  # warm-up: JIT (or the on-disk cache), allocator, oneDNN primitive cache
                times = {k: [] for k in contenders}
                for _ in range(repeat):
                    for k, fn in contenders.items():
                        times[k].append(timed(fn))
                measured[key] = times
            times = measured[key]
            med = {k: statistics.median(v) for k, v in times.items()}
            row = {"model": model, "layer": name, "label": op.label(), "input": "x".join(map(str, shape[1:])),
                   "macs": macs, "first": first}
            for k, v in times.items():
                row[f"{k}_s"] = med[k]
                row[f"{k}_min_s"] = min(v)
                row[f"{k}_spread"] = spread(v)
            for part in ("data", "weight"):
                if f"ours_{part}" in med:
                    row[f"{part}_ratio"] = med[f"torch_{part}"] / med[f"ours_{part}"]
                    row[f"ours_{part}_gflops"] = 2 * macs / med[f"ours_{part}"] / 1e9
                    row[f"torch_{part}_gflops"] = 2 * macs / med[f"torch_{part}"] / 1e9
            ours = sum(med[k] for k in med if k.startswith("ours"))
            theirs = sum(med[k] for k in med if k.startswith("torch"))
            row["backward_ratio"] = theirs / ours
            rows.append(row)
            cells = []
            for part in ("data", "weight"):
                if f"{part}_ratio" in row:
                    cells.append(f"{part} ours {row[f'ours_{part}_gflops']:6.1f} "
                                 f"torch {row[f'torch_{part}_gflops']:6.1f} GFLOP/s {row[f'{part}_ratio']:5.2f}x")
                else:
                    cells.append(f"{part} (not needed: network input)".ljust(47))
            print(f"{model:12s} {name:26s} {op.label():20s} {row['input']:>12s}  {'  '.join(cells)}  "
                  f"backward {row['backward_ratio']:5.2f}x", flush=True)
    return rows


def geomean(values):
    values = list(values)
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def torch_step(torch, torchvision, name, batch, input_size, seed):
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randn(batch, 3, input_size, input_size)
    y = torch.randint(0, 1000, (batch,))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def bench_steps(models, batch, input_size, repeat, torch, torchvision):
    from archcost import zoo
    from archcost.training_execute import TrainingExecutor

    result = {}
    for model in models:
        graph = zoo.build(model, input_shape=(3, input_size, input_size))
        ex = TrainingExecutor(graph, batch=batch, seed=0, optimizer="sgd", lr=0.01)
        inputs, labels = ex.random_batch()
        contenders = {"ours": lambda: ex.step(inputs, labels),
                      "torch": torch_step(torch, torchvision, TWINS[model], batch, input_size, 0)}
        for fn in contenders.values():
            fn()  # warm-up
        times = {k: [] for k in contenders}
        for _ in range(repeat):
            for k, fn in contenders.items():
                times[k].append(timed(fn))
        entry = {k: statistics.median(v) for k, v in times.items()}
        entry = {"ours_s": entry["ours"], "torch_s": entry["torch"], "ratio": entry["ours"] / entry["torch"],
                 "ours_times": times["ours"], "torch_times": times["torch"],
                 "ours_spread": spread(times["ours"]), "torch_spread": spread(times["torch"])}
        result[model] = entry
        print(f"step {model:12s} batch {batch}: ours {entry['ours_s']:.3f} s, torch {entry['torch_s']:.3f} s, "
              f"ours/torch time {entry['ratio']:.2f} (spread ours {entry['ours_spread']:.0%}, "
              f"torch {entry['torch_spread']:.0%}; times ours {', '.join(f'{t:.2f}' for t in times['ours'])}; "
              f"torch {', '.join(f'{t:.2f}' for t in times['torch'])})", flush=True)
    return result


def machine_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["vgg16", "resnet50_tv"], choices=sorted(TWINS))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--input", type=int, default=224, help="input height = width")
    p.add_argument("--repeat", type=int, default=5, help="interleaved rounds per layer (median kept)")
    p.add_argument("--step-repeat", type=int, default=3, help="interleaved whole steps per model (median kept)")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both sides")
    p.add_argument("--no-layers", action="store_true", help="skip the per-layer backward timings")
    p.add_argument("--no-step", action="store_true", help="skip the whole training step")
    p.add_argument("--layers", nargs="+", help="only the conv layers whose names contain one of these")
    p.add_argument("--json", type=Path, default=RESULTS / "bench_train.json")
    args = p.parse_args(argv)
    try:
        import torch
        import torchvision
    except ImportError as exc:
        print(f"bench_train: torch/torchvision not importable ({exc}); nothing to compare against, skipping.")
        return 0
    import numba

    numba.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    started = time.time()
    load = os.getloadavg()
    meta = {"machine": machine_name(), "date": datetime.date.today().isoformat(), "threads": args.threads,
            "batch": args.batch, "input": args.input, "repeat": args.repeat, "step_repeat": args.step_repeat,
            "numpy": np.__version__, "numba": numba.__version__, "torch": torch.__version__,
            "load_before": load, "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")}
    print(f"{meta['machine']}, {args.threads} threads, batch {args.batch}, {args.input}x{args.input}, "
          f"torch {torch.__version__}, numba {numba.__version__}, load average {load[0]:.1f}", flush=True)
    summary, rows, steps = {}, [], {}
    if not args.no_layers:
        rows = bench_layers(args.models, args.batch, args.input, args.repeat, torch, args.layers)
        print()
        for model in [*args.models, None]:
            sub = [r for r in rows if model is None or r["model"] == model]
            s = {"layers": len(sub),
                 "geomean_backward": geomean(r["backward_ratio"] for r in sub),
                 "geomean_data": geomean(r["data_ratio"] for r in sub if "data_ratio" in r),
                 "geomean_weight": geomean(r["weight_ratio"] for r in sub if "weight_ratio" in r),
                 "median_spread": statistics.median(r[k] for r in sub for k in r if k.endswith("_spread")),
                 "ours_backward_s": sum(r.get("ours_data_s", 0) + r["ours_weight_s"] for r in sub),
                 "torch_backward_s": sum(r.get("torch_data_s", 0) + r["torch_weight_s"] for r in sub)}
            worst = min(sub, key=lambda r: r["backward_ratio"])
            s["worst"] = {"model": worst["model"], "layer": worst["layer"], "ratio": worst["backward_ratio"]}
            summary[model or "all"] = s
            print(f"{model or 'all models':12s}: {s['layers']} conv layers, geomean torch/ours backward "
                  f"{s['geomean_backward']:.2f} (data {s['geomean_data']:.2f}, weight {s['geomean_weight']:.2f}); "
                  f"summed conv backward ours {s['ours_backward_s']:.2f} s vs torch {s['torch_backward_s']:.2f} s; "
                  f"worst {worst['layer']} ({worst['model']}) {worst['backward_ratio']:.2f}; "
                  f"median spread (max-min)/median of a contender's rounds {s['median_spread']:.0%}", flush=True)
    if not args.no_step:
        steps = bench_steps(args.models, args.batch, args.input, args.step_repeat, torch, torchvision)
    meta["load_after"] = os.getloadavg()
    meta["seconds"] = time.time() - started
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({**meta, "summary": summary, "steps": steps, "layers": rows}, indent=1))
    print(f"wrote {args.json} ({meta['seconds']:.0f} s; load average before {load[0]:.1f}, "
          f"after {meta['load_after'][0]:.1f})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
