"""How fast does `archcost sweep` go? Points per second on 1 and 2 local worker processes and on
a 2-worker dask LocalCluster, and the sweep's overhead per point against plain build + analyze
calls, over a sample of an AnyNetX-style space (the built-in anynet_cifar template, with every
point buildable: bottleneck ratio 1 or 2, group width 8, no constraints; 16,000 points).

    PYTHONPATH=$PWD python benchmarks/bench_sweep.py [--points 10000] [--seed 0]

Writes its results files in a temporary folder (and checks that the three runs wrote the same
bytes); prints a table. Numbers in docs/sweeps.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import resource
import tempfile
import time


def bench_space():
    from archcost.formats.spec import read_document
    from archcost.sweep.space import builtin_dir, parse_space

    doc = read_document(builtin_dir().joinpath("anynet_cifar.yaml"))
    doc = dict(doc, name="anynet_bench", constraints=[], sample=None)
    doc["parameters"] = dict(doc["parameters"], b=[1, 2], g=[8])
    return parse_space(doc, "anynet_bench")


def plain(space, indices) -> float:
    """What a hand-written loop does: build each point, analyze it."""
    from archcost.analysis import analyze
    from archcost.sweep.engine import build

    start = time.perf_counter()
    for i in indices:
        env = space.env(space.decode(i))
        analyze(build(space, space.options(env)))
    return time.perf_counter() - start


def cpu_seconds() -> float:
    """CPU time of this process and of every finished child (pool workers, dask's nannies and
    their workers): what the points cost, whatever else shares the machine."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="repeats of the overhead measurement")
    parser.add_argument("--workers", type=int, default=2, help="also run this many workers, if more than 2")
    args = parser.parse_args()

    import archcost.zoo  # noqa: F401
    from archcost import sweep
    from archcost.sweep import engine

    space = bench_space()
    indices = space.select(args.points, args.seed)
    n = len(indices)
    print(f"space {space.name}: {space.total:,} points, {n:,} sampled (seed {args.seed})")
    print(f"load average at start: {', '.join(f'{v:.1f}' for v in os.getloadavg())} (on {os.cpu_count()} CPUs)")
    # The overhead: the plain loop and the in-process sweep, alternated on the same points,
    # best of --repeat each (the machine may be shared).
    subset = space.select(min(n, 2000), args.seed)  # the points sweep.run(n=len(subset)) computes
    plain_best = sweep_best = float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(args.repeat):
            plain_best = min(plain_best, plain(space, subset))
            engine._cache.clear()
            start = time.perf_counter()
            sweep.run(space, os.path.join(tmp, f"o{k}.csv"), n=len(subset), seed=args.seed, workers=1)
            sweep_best = min(sweep_best, time.perf_counter() - start)
    m = len(subset)
    print(f"overhead, {m:,} points, best of {args.repeat}: plain build + analyze {plain_best / m * 1e3:.2f} ms/point, "
          f"sweep (1 worker) {sweep_best / m * 1e3:.2f} ms/point: {(sweep_best - plain_best) / m * 1e3:+.2f} ms/point "
          f"({(sweep_best / plain_best - 1) * 100:+.1f}%)")
    print(f"\n  {'run':36s} {'wall':>8s} {'points/s':>10s} {'CPU ms/point':>13s}")
    cpu = cpu_seconds()
    base = plain(space, indices)
    print(f"  {'plain build + analyze loop':36s} {base:7.1f}s {n / base:10.1f} {(cpu_seconds() - cpu) / n * 1e3:13.2f}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("sweep, 1 worker (in-process)", dict(workers=1)),
                ("sweep, 2 local worker processes", dict(workers=2))]
        if args.workers > 2:
            runs.append((f"sweep, {args.workers} local worker processes", dict(workers=args.workers)))
        if importlib.util.find_spec("distributed") is not None:
            runs.append(("sweep, dask LocalCluster, 2 workers", dict(workers=2, dask="local")))
            if args.workers > 2:
                runs.append((f"sweep, dask LocalCluster, {args.workers} workers",
                             dict(workers=args.workers, dask="local")))
        else:
            print("  (dask.distributed is not installed: no LocalCluster run)")
        files = []
        for label, kwargs in runs:
            engine._cache.clear()
            path = os.path.join(tmp, f"run{len(files)}.csv")
            cpu = cpu_seconds()
            start = time.perf_counter()
            sweep.run(space, path, n=args.points, seed=args.seed, **kwargs)
            took = time.perf_counter() - start
            used = cpu_seconds() - cpu
            with open(path, "rb") as f:
                files.append(f.read())
            rows.append((label, took))
            print(f"  {label:36s} {took:7.1f}s {n / took:10.1f} {used / n * 1e3:13.2f}")
        print("the runs wrote byte-identical files:", all(f == files[0] for f in files))
        if len(rows) > 2:
            start = time.perf_counter()
            sweep.run(space, os.path.join(tmp, "tiny.csv"), n=2, seed=0, workers=2, dask="local")
            print(f"dask LocalCluster start + stop (a 2-point sweep): {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
