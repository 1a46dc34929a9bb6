"""Where a parallel region stops paying: each layer type at growing sizes, run with every thread
and with one (numba.set_num_threads), in one process on the same input. Prints the median kernel
time of both and the ratio (one thread / all); where the ratio is below 1 the layer is too small
to split. This is the measurement a serial threshold for small layers (issue 18) is to be set from.

Measured (2-core EPYC, omp threading layer, quiet machine): conv 3x3 0.6-0.7 up to ~1.2 MFLOP,
1.1 at 19 MFLOP, 2.0 at 1.2 GFLOP; max/avg pool 0.5-0.8 up to ~5 KFLOP, 1.25-2.1 from 33 KFLOP;
fc 0.9 at 8 KFLOP, 1.2-2.4 from 131 KFLOP; tanh ~1 everywhere (not a parallel kernel).
Acting on it was tried twice and measured on whole forwards, and neither is in:
- numba.set_num_threads(1) around small layers: slower than not switching (LeNet-5's forward
  0.35 -> 0.55 ms, MobileNet v1 at 64x64 4.0 -> 8.0 ms).
- serially compiled twins of the parallel conv, pool and fc kernels (same Python function
  without parallel=True, own cache entry) below thresholds set from the table: A/B in one process,
  interleaved, median of 15 whole forwards, twins / all-parallel: lenet5 1.10 (0.31 vs 0.28 ms),
  resnet18 at 32x32 1.05, mobilenet_v1 at 64x64 1.10, squeezenet1_1 at 64x64 1.09, resnet50
  at 224 1.02. In a whole forward the worker threads stay awake between layers, so a parallel
  region on a small layer costs little; the single-layer timings above include waking them.
So every layer runs parallel.

    PYTHONPATH=. python benchmarks/bench_small_layers.py [--repeat 50]
"""

import argparse
import statistics

import numba

from archcost.analysis import analyze
from archcost.execute import Executor
from archcost.graph import Graph
from archcost.ops import Activation, AvgPool2d, Conv2d, Linear, MaxPool2d


def layer(kind, c, s):
    g = Graph(kind)
    x = g.input((c, s, s) if kind != "fc" else (c * s * s,))
    op = {"tanh": Activation("tanh"), "conv3x3": Conv2d(c, 3, padding=1), "maxpool": MaxPool2d(2),
          "avgpool": AvgPool2d(2), "fc": Linear(c)}[kind]
    g.add(op, x, name="layer")
    return g


def median_seconds(executor, inputs, threads, repeat):
    numba.set_num_threads(threads)
    times = [executor.forward(inputs).seconds["layer"] for _ in range(repeat)]
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    most = numba.config.NUMBA_NUM_THREADS
    print(f"threads: {most} vs 1")
    print(f"{'layer':8} {'shape':>10} {'work':>12} {'ms all':>8} {'ms 1':>8} {'1/all':>6}")
    for kind in ("tanh", "maxpool", "avgpool", "conv3x3", "fc"):
        for c, s in ((4, 4), (8, 8), (16, 16), (32, 32), (64, 32), (64, 64), (128, 64)):
            g = layer(kind, c, s)
            rec = analyze(g).records[-1]
            work = rec.flops + rec.activations
            ex = Executor(g)
            inputs = ex.random_inputs()
            ex.forward(inputs)  # compile, pack
            many = median_seconds(ex, inputs, most, args.repeat)
            one = median_seconds(ex, inputs, 1, args.repeat)
            numba.set_num_threads(most)
            print(f"{kind:8} {f'{c}x{s}x{s}':>10} {work:>12,} {many * 1e3:8.3f} {one * 1e3:8.3f} {one / many:6.2f}")


if __name__ == "__main__":
    main()
