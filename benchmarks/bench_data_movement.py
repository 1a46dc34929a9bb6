"""The data-movement kernels issue 13 added (Pad in every mode, broadcasting Add, Sub, Permutes of
5 and 6 axes) against numpy doing the same on the same input, in one run: numpy.pad, numpy
broadcasting, numpy.transpose + copy. Prints the median time of each and the ratio
(archcost / numpy; below 1 archcost is faster). archcost's time is the layer's own time in a
forward of a one-layer graph (Executor.forward(...).seconds), after a forward that compiles.

    PYTHONPATH=. python benchmarks/bench_data_movement.py [--repeat 30] [--batch 8]

Results and how to read them: docs/performance.md, "Data-movement kernels".
"""

import argparse
import statistics
import time

import numpy as np

from archcost.execute import Executor
from archcost.graph import Graph
from archcost.ops import Add, Pad, Permute, Reshape, Sub

C, H, W = 64, 56, 56


def cases():
    """(name, graph builder, numpy function of the graph's input)."""
    def single(op):
        def build():
            g = Graph("one")
            g.add(op, g.input((C, H, W)), name="layer")
            return g
        return build

    def pair(op, other):
        def build():
            g = Graph("pair")
            g.add(op, g.input((C, H, W), name="x"), g.input(other, name="y"), name="layer")
            return g
        return build

    out = []
    for mode in ("constant", "reflect", "edge", "wrap"):
        out.append((f"pad {mode} 2", single(Pad(2, mode=mode)),
                    lambda x, mode=mode: np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)), mode=mode)))
    out.append(("add (N,C,H,W) + (N,C,1,1)", pair(Add(), (C, 1, 1)), lambda x, y: x + y))
    out.append(("add (N,C,H,W) + (N,1,H,W)", pair(Add(), (1, H, W)), lambda x, y: x + y))
    out.append(("sub (N,C,H,W) - (N,C,1,1)", pair(Sub(), (C, 1, 1)), lambda x, y: x - y))
    out.append(("add (N,C,H,W) + (N,C,H,W)", pair(Add(), (C, H, W)), lambda x, y: x + y))

    def space_to_depth():
        g = Graph("s2d")
        x = g.add(Reshape((C, H // 4, 4, W // 4, 4)), g.input((C, H, W)), name="split")
        g.add(Permute((0, 3, 5, 1, 2, 4)), x, name="layer")
        return g
    out.append(("permute 6-D space-to-depth", space_to_depth,
                lambda x: np.ascontiguousarray(x.reshape(x.shape[0], C, H // 4, 4, W // 4, 4)
                                               .transpose(0, 3, 5, 1, 2, 4))))
    return out


def median(f, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    print(f"batch {args.batch}, maps {C}x{H}x{W}, median of {args.repeat}")
    print(f"{'layer':32} {'archcost ms':>12} {'numpy ms':>10} {'ratio':>6}")
    for name, build, numpy_fn in cases():
        ex = Executor(build(), args.batch)
        inputs = ex.random_inputs()
        result = ex.forward(inputs)  # compile, pack
        arrays = [inputs[k] for k in ex.graph.input_nodes()]
        expected = numpy_fn(*arrays)
        got = result.outputs["layer"]
        assert np.array_equal(got.reshape(expected.shape), expected), name  # a copy: exact
        ours = statistics.median(ex.forward(inputs).seconds["layer"] for _ in range(args.repeat))
        theirs = median(lambda: numpy_fn(*arrays), args.repeat)
        print(f"{name:32} {ours * 1e3:12.3f} {theirs * 1e3:10.3f} {ours / theirs:6.2f}")


if __name__ == "__main__":
    main()
