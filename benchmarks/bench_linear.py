"""Linear at batch 1 (a matrix-vector product, memory-bound) against the machine's copy
bandwidth, measured in the same run, interleaved.

    PYTHONPATH=$PWD python benchmarks/bench_linear.py [--repeat 9] [--batch 1]

Cases: VGG16's fc6/fc7/fc8 and AlexNet's fc6. For each, ours (archcost's Numba kernel) and,
as baselines only, numpy (``x @ W.T``, BLAS) and a numpy copy of the same number of bytes; our
own parallel copy loop (archcost.kernels.cpu.peak) gives the bandwidth. Effective bandwidth of
a linear layer = weight bytes (+ input and output) / time. Best of ``--repeat`` interleaved
rounds (a shared machine). Writes benchmarks/results/bench_linear.json (git-ignored).
"""

import argparse
import datetime
import json
import sys
import time
from pathlib import Path

import numpy as np

CASES = [("vgg16 fc6", 25088, 4096), ("vgg16 fc7", 4096, 4096), ("vgg16 fc8", 4096, 1000),
         ("alexnet fc6", 9216, 4096)]
RESULTS = Path(__file__).resolve().parent / "results"


def best(fn, times):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--repeat", type=int, default=9)
    p.add_argument("--batch", type=int, default=1)
    args = p.parse_args(argv)
    from archcost import ops
    from archcost.benchmark import machine_name
    from archcost.execute import init_params
    from archcost.kernels.cpu import ADAPTERS
    from archcost.kernels.cpu.peak import _copy

    rng = np.random.default_rng(0)
    rows = []
    for name, f, o in CASES:
        op = ops.Linear(o)
        shape = (args.batch, f)
        params = init_params(op, (shape,), (args.batch, o), rng)
        state = ADAPTERS[ops.Linear].prepare(op, (shape,), (args.batch, o), params)
        x = rng.standard_normal(shape).astype(np.float32)
        out = np.empty((args.batch, o), np.float32)
        src = params["weight"].ravel()
        dst = np.empty_like(src)
        nbytes = 4 * (f * o + o + args.batch * (f + o))
        contenders = {
            "ours": lambda: ADAPTERS[ops.Linear].run(op, state, [x], out),
            "numpy_blas": lambda: x @ params["weight"].T,
            "copy_ours": lambda: _copy(src, dst),
            "copy_numpy": lambda: np.copyto(dst, src),
        }
        for fn in contenders.values():
            fn()
        times = {k: [] for k in contenders}
        for _ in range(args.repeat):
            for k, fn in contenders.items():
                best(fn, times[k])
        t = {k: min(v) for k, v in times.items()}
        copy_gbs = 2 * src.nbytes / t["copy_ours"] / 1e9  # read + write
        row = {"case": name, "in": f, "out": o, "batch": args.batch, "bytes": nbytes,
               "ours_gbs": nbytes / t["ours"] / 1e9, "numpy_blas_gbs": nbytes / t["numpy_blas"] / 1e9,
               "copy_ours_gbs": copy_gbs, "copy_numpy_gbs": 2 * src.nbytes / t["copy_numpy"] / 1e9}
        row["ours_vs_copy"] = row["ours_gbs"] / copy_gbs
        rows.append(row)
        print(f"{name:12s} {f:6d}->{o:5d}  ours {row['ours_gbs']:6.1f} GB/s  numpy/BLAS {row['numpy_blas_gbs']:6.1f}"
              f"  copy (ours) {copy_gbs:6.1f}  copy (numpy) {row['copy_numpy_gbs']:6.1f}  "
              f"ours = {100 * row['ours_vs_copy']:.0f}% of copy bandwidth", flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_linear.json").write_text(json.dumps(
        {"machine": machine_name(), "date": datetime.date.today().isoformat(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
