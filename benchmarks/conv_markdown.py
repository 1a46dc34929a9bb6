"""Markdown tables from benchmarks/results/bench_conv.json (as written by bench_conv.py), for
docs/performance.md: one row per distinct layer geometry (layers of the same geometry share one
measurement), per batch size, and the summary.

    PYTHONPATH=$PWD python benchmarks/conv_markdown.py [RESULTS.json]
"""

import json
import sys
from pathlib import Path


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    path = Path(argv[0]) if argv else Path(__file__).resolve().parent / "results" / "bench_conv.json"
    data = json.loads(path.read_text())
    print(f"Machine: {data['machine']}; {data['date']}; {data['threads']} thread(s); numpy {data['numpy']}, "
          f"numba {data['numba']}, torch {data['torch']}; best of {data['repeat']} interleaved rounds.\n")
    for batch in sorted({r["batch"] for r in data["layers"]}):
        s = data["summary"][f"batch{batch}"]
        print(f"**Batch {batch}** ({s['layers']} conv layers): geomean ours/torch "
              f"**{s.get('geomean_ours_vs_torch', float('nan')):.2f}**, worst "
              f"{s['worst_ours_vs_torch']['ratio']:.2f} ({s['worst_ours_vs_torch']['model']} "
              f"{s['worst_ours_vs_torch']['layer']}); geomean ours/im2col "
              f"{s.get('geomean_ours_vs_im2col', float('nan')):.2f}.\n")
        print("| model | layers | op | input | ours GFLOP/s | im2col+BLAS | torch | ours/torch |")
        print("|---|---|---|---|---:|---:|---:|---:|")
        groups = {}
        for r in data["layers"]:
            if r["batch"] == batch:
                groups.setdefault((r["model"], r["label"], r["input"]), []).append(r)
        for (model, label, inp), rows in groups.items():
            r = rows[0]
            names = r["layer"] if len(rows) == 1 else f"{r['layer']} (+{len(rows) - 1})"
            cell = lambda k: f"{r[k]:.1f}" if k in r else "-"
            ratio = f"{r['ours_vs_torch']:.2f}" if "ours_vs_torch" in r else "-"
            print(f"| {model} | {names} | {label} | {inp} | {cell('ours_gflops')} | {cell('im2col_gflops')} | "
                  f"{cell('torch_gflops')} | {ratio} |")
        print()
    for model, w in data.get("whole", {}).items():
        line = f"- whole {model}, batch 1: ours {w['ours_s'] * 1e3:.1f} ms"
        if "torch_s" in w:
            line += f", torch {w['torch_s'] * 1e3:.1f} ms (ours/torch time {w['ours_s'] / w['torch_s']:.2f})"
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
