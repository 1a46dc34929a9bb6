"""First-call JIT compile time of every CPU kernel, and the start-up time when the kernels load
from Numba's on-disk cache in a fresh process.

    PYTHONPATH=$PWD python benchmarks/bench_jit.py

Runs two child processes sharing an empty, temporary NUMBA_CACHE_DIR: the first compiles every
kernel (first call minus a second, warm call), the second loads them from that cache. Prints a
table; writes nothing to the repository.
"""

import json
import os
import subprocess
import sys
import tempfile
import time

CASES = [  # (label, op expression, input shapes)
    ("conv2d_blocked (+pad_copy)", "ops.Conv2d(8, 3, padding=1)", [(1, 4, 8, 8)]),
    ("conv2d_blocked_count", "ops.Conv2d(8, 3, padding=1)", [(1, 4, 8, 8)]),
    ("conv2d rows (depthwise)", "ops.Conv2d(4, 3, padding=1, groups=4)", [(1, 4, 8, 8)]),
    ("conv2d rows_count", "ops.Conv2d(4, 3, padding=1, groups=4)", [(1, 4, 8, 8)]),
    ("linear", "ops.Linear(16)", [(2, 32)]),
    ("linear_count", "ops.Linear(16)", [(2, 32)]),
    ("max_pool2d", "ops.MaxPool2d(3, 2, 1)", [(1, 4, 8, 8)]),
    ("avg_pool2d", "ops.AvgPool2d(3, 2, 1)", [(1, 4, 8, 8)]),
    ("global_avg_pool", "ops.GlobalAvgPool()", [(1, 4, 8, 8)]),
    ("activation", "ops.Activation('gelu')", [(1, 4, 8, 8)]),
    ("channel_affine (bn)", "ops.BatchNorm()", [(1, 4, 8, 8)]),
    ("layer_norm", "ops.LayerNorm(-1)", [(1, 8, 8, 4)]),
    ("lrn", "ops.LRN()", [(1, 4, 8, 8)]),
    ("softmax", "ops.Softmax(-1)", [(2, 10)]),
    ("add2", "ops.Add()", [(1, 4, 8, 8), (1, 4, 8, 8)]),
    ("add2+scale_inplace (mean)", "ops.Mean()", [(1, 4, 8, 8), (1, 4, 8, 8)]),
    ("mul4d", "ops.Mul()", [(1, 4, 8, 8), (1, 4, 1, 1)]),
    ("copy_channels (concat)", "ops.Concat(1)", [(1, 4, 8, 8), (1, 2, 8, 8)]),
    ("channel_pad", "ops.ChannelPad(8, 2)", [(1, 4, 8, 8)]),
    ("copy4d (permute)", "ops.Permute((0, 2, 3, 1))", [(1, 4, 8, 8)]),
    ("copy1d (flatten copy)", "ops.Flatten()", [(1, 4, 8, 8)]),
]

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import numpy as np
from archcost import ops
from archcost.execute import init_params
from archcost.kernels import cpu
import_s = time.perf_counter() - t0
rows = []
for label, expr, shapes in json.loads(sys.argv[1]):
    op = eval(expr)
    shapes = [tuple(s) for s in shapes]
    out_shape = op.infer(tuple(shapes))
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    adapter = cpu.ADAPTERS[type(op)]
    state = adapter.prepare(op, shapes, out_shape, init_params(op, shapes, out_shape, rng))
    out = np.empty(out_shape, np.float32)
    step = adapter.count if label.endswith("_count") else adapter.run
    call = lambda: step(op, state, xs, out)
    t = time.perf_counter(); call(); first = time.perf_counter() - t
    t = time.perf_counter(); call(); second = time.perf_counter() - t
    rows.append((label, first - second))
print(json.dumps({"import_s": import_s, "rows": rows}))
"""


def child(cache_dir: str) -> dict:
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(CASES)], env=env, capture_output=True, text=True,
                         check=True)
    data = json.loads(out.stdout)
    data["process_s"] = time.perf_counter() - start
    return data


def main() -> None:
    with tempfile.TemporaryDirectory() as cache_dir:
        cold = child(cache_dir)
        warm = child(cache_dir)
    width = max(len(label) for label, _, _ in CASES)
    print(f"{'kernel'.ljust(width)}  {'compile s':>9}  {'cached s':>8}")
    for (label, compile_s), (_, cached_s) in zip(cold["rows"], warm["rows"]):
        print(f"{label.ljust(width)}  {compile_s:9.2f}  {cached_s:8.3f}")
    print(f"{'total'.ljust(width)}  {sum(r[1] for r in cold['rows']):9.2f}  {sum(r[1] for r in warm['rows']):8.3f}")
    print(f"\nfresh process, empty cache: {cold['process_s']:.1f} s (import {cold['import_s']:.2f} s)")
    print(f"fresh process, cached:      {warm['process_s']:.1f} s (import {warm['import_s']:.2f} s)")


if __name__ == "__main__":
    main()
