"""How fast is `archcost table`?

1. Cold wall time of `archcost table vgg16` (a fresh process) as a ratio to
   `python -c "import pandas, networkx"` measured in the same run (target <= 2x: numba and
   matplotlib must stay off this path).
2. Analysis time of every zoo model (target < 50 ms each, < 2 s for the whole zoo) and of the
   largest graph in the repo (target < 100 ms).
3. With ``--onnx ZOO=FILE``: cold `archcost table FILE` against `archcost table ZOO`, the same
   network from the zoo, in the same run (target <= 2x; issue 13). Export FILE first, e.g.
   torch.onnx.export(torchvision.models.resnet18(), x, "resnet18.onnx", dynamo=False).

Run: PYTHONPATH=. python benchmarks/bench_table_startup.py [--repeat 5] [--onnx resnet18=resnet18.onnx]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def cold(argv: list[str], repeat: int) -> float:
    env = dict(os.environ, PYTHONDONTWRITEBYTECODE="0")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--onnx", action="append", default=[], metavar="ZOO=FILE",
                        help="time `archcost table FILE` against `archcost table ZOO`")
    args = parser.parse_args()

    for pair in args.onnx:
        zoo_name, _, path = pair.partition("=")
        # Interleaved, so that both see the same machine load.
        from_zoo, from_file = [], []
        for _ in range(args.repeat):
            from_zoo.append(cold([sys.executable, "-m", "archcost.cli", "table", zoo_name], 1))
            from_file.append(cold([sys.executable, "-m", "archcost.cli", "table", path], 1))
        a, b = statistics.median(from_zoo), statistics.median(from_file)
        print(f"archcost table {zoo_name} {a * 1e3:.0f} ms, table {path} {b * 1e3:.0f} ms: "
              f"ratio {b / a:.2f}x (target <= 2x; median of {args.repeat})")

    base = cold([sys.executable, "-c", "import pandas, networkx"], args.repeat)
    table = cold([sys.executable, "-m", "archcost.cli", "table", "vgg16"], args.repeat)
    print(f"cold start (median of {args.repeat}):")
    print(f"  python -c 'import pandas, networkx'  {base * 1e3:8.1f} ms")
    print(f"  archcost table vgg16                 {table * 1e3:8.1f} ms   ratio {table / base:.2f}x (target <= 2x)")

    from archcost import zoo
    from archcost.analysis import analyze

    rows = []
    for name in zoo.names():
        start = time.perf_counter()
        graph = zoo.build(name)
        built = time.perf_counter()
        analyze(graph)
        done = time.perf_counter()
        rows.append((name, len(graph), built - start, done - built))
    rows.sort(key=lambda r: -r[1])
    total = sum(r[2] + r[3] for r in rows)
    slowest = max(rows, key=lambda r: r[3])
    print(f"\nzoo: {len(rows)} models, build + analyze all {total:.2f} s (target < 2 s)")
    print(f"  slowest analysis: {slowest[0]} {slowest[3] * 1e3:.1f} ms (target < 50 ms)")
    print("  largest graphs (layers, build ms, analyze ms; target < 100 ms):")
    for name, size, build, analysis in rows[:5]:
        print(f"    {name:24s} {size:6d} {build * 1e3:8.1f} {analysis * 1e3:8.1f}")


if __name__ == "__main__":
    main()
