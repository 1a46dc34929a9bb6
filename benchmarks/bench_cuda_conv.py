"""archcost's CUDA conv2d against cuDNN (through PyTorch) on VGG16's 13 conv layers, side by side.

    PYTHONPATH=$PWD python benchmarks/bench_cuda_conv.py                # batch 32, FP32, on the GPU
    PYTHONPATH=$PWD python benchmarks/bench_cuda_conv.py --batch 8 --repeats 20 --out results/h100
    NUMBA_ENABLE_CUDASIM=1 PYTHONPATH=$PWD python benchmarks/bench_cuda_conv.py --tiny   # no GPU

Needs a CUDA device and numba-cuda (``pip install 'archcost[cuda]'``, plus ``numba-cuda[cu12]`` or
``[cu13]`` for the toolkit). PyTorch is optional: when ``torch.cuda`` is usable, every layer is
also run as ``torch.nn.functional.conv2d`` with ``cudnn.benchmark`` on (cuDNN picks its fastest
algorithm), the two outputs are compared, and the table gets cuDNN's time and our time / cuDNN's.

The layers are VGG16's (archcost's zoo, 224x224 input), in FP32, on random inputs and He-normal
weights (archcost.execute.init_params). Each layer: ``--warmup`` untimed runs (the first one
compiles the kernel), then ``--repeats`` runs between two CUDA events; the time is their mean.
GFLOP/s = 2 x MACs / time. Prints a table and writes ``<out>.csv`` and ``<out>.json``
(default ``bench_cuda_conv.*`` in the current directory) with the device, the launch config and
one row per layer.

``--tiny`` runs the same code path at a size numba-cuda's simulator finishes in seconds (batch 1,
VGG16's layers with channels divided by 64 and map sides by 32, one repeat, small blocks): it
checks the script, not the GPU, and tests/kernels/test_cuda_kernels.py runs it so in CI. Under
the simulator events carry no time, so times come from the host clock and mean nothing.
GPU numbers are not yet measured: no GPU was lent to the task that wrote this script.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from archcost import ops, zoo  # noqa: E402
from archcost.analysis import infer_shapes  # noqa: E402
from archcost.execute import init_params  # noqa: E402
from archcost.validation import relative_error  # noqa: E402


def vgg16_convs(batch: int, size: int, channel_divisor: int = 1, map_divisor: int = 1) -> list[dict]:
    """VGG16's conv layers (name, op, input and output shape at ``batch``), channels divided by
    ``channel_divisor`` and map sides by ``map_divisor`` (1 and 1 for the real net)."""
    g = zoo.build("vgg16", input_shape=(3, size, size))
    shapes = infer_shapes(g, batch)
    layers = []
    for node in g.topological_order():
        op = g.op(node)
        if isinstance(op, ops.Conv2d):
            (src,) = g.inputs(node)
            n, c, h, w = shapes[src]
            c = c if c == 3 else max(1, c // channel_divisor)
            h, w = max(1, h // map_divisor), max(1, w // map_divisor)
            op = ops.Conv2d(max(1, op.out_channels // channel_divisor), op.kernel, op.stride, op.padding,
                            op.dilation, op.groups, op.bias)
            in_shape = (n, c, h, w)
            out_shape = op.infer((in_shape,))
            layers.append(dict(name=node, op=op, in_shape=in_shape, out_shape=out_shape,
                               macs=op.cost((in_shape,), out_shape).macs))
    return layers


class Clock:
    """CUDA events on a GPU; the host clock after a synchronize under the simulator."""

    def __init__(self, cuda, simulated: bool):
        self.cuda, self.simulated = cuda, simulated

    def time(self, fn, repeats: int) -> float:
        if self.simulated:
            start = time.perf_counter()
            for _ in range(repeats):
                fn()
            return (time.perf_counter() - start) / repeats
        begin, end = self.cuda.event(), self.cuda.event()
        begin.record()
        for _ in range(repeats):
            fn()
        end.record()
        end.synchronize()
        return begin.elapsed_time(end) / 1e3 / repeats


def torch_conv(verbose=print):
    """(torch, None) when cuDNN is usable through PyTorch, else (None, why not)."""
    try:
        import torch
    except ImportError:
        return None, "PyTorch not installed: cuDNN columns left empty"
    if not torch.cuda.is_available():
        return None, "torch.cuda not available: cuDNN columns left empty"
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False  # FP32 arithmetic on both sides
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch, None


def run(args) -> list[dict]:
    from archcost.kernels.cuda import _numba, config

    reason = _numba.unavailable_reason()
    if reason is not None:
        raise SystemExit(f"bench_cuda_conv: {reason}")
    cuda = _numba.cuda
    from archcost.kernels.cuda.conv import Conv2dKernel, uses_direct

    if args.tiny:
        args.batch, args.size, args.divisor, args.map_divisor, args.repeats, args.warmup = 1, 224, 64, 32, 1, 1
        config.GEMM_BLOCK, config.GEMM_WORK, config.GEMM_DEPTH = (4, 4), (2, 2), 16
    clock = Clock(cuda, _numba.simulating())
    torch, why_not = (None, "simulator: no cuDNN") if _numba.simulating() else torch_conv()
    device = _numba.device_name()
    print(f"device: {device}; batch {args.batch}, {args.size}x{args.size} input, FP32; "
          f"GEMM block {config.GEMM_BLOCK} x work {config.GEMM_WORK}, depth {config.GEMM_DEPTH}")
    if why_not:
        print(f"note: {why_not}")
    rng = np.random.default_rng(0)
    rows = []
    for layer in vgg16_convs(args.batch, args.size, args.divisor, args.map_divisor):
        op, in_shape, out_shape = layer["op"], layer["in_shape"], layer["out_shape"]
        params = init_params(op, (in_shape,), out_shape, rng)
        x = rng.standard_normal(in_shape).astype(np.float32)
        state = Conv2dKernel.prepare(op, (in_shape,), out_shape, params)
        dx, dout = cuda.to_device(x), cuda.device_array(out_shape, np.float32)

        def ours():
            Conv2dKernel.run(op, state, [dx], dout)

        for _ in range(args.warmup):
            ours()
        ours_s = clock.time(ours, args.repeats)
        row = dict(layer=layer["name"], input="x".join(map(str, in_shape)), output="x".join(map(str, out_shape)),
                   kernel="x".join(map(str, op.kernel)), macs=layer["macs"],
                   path="direct" if uses_direct(in_shape[1] // op.groups) else "implicit-gemm",
                   ours_ms=ours_s * 1e3, ours_gflops=2 * layer["macs"] / ours_s / 1e9,
                   cudnn_ms=None, cudnn_gflops=None, ours_over_cudnn=None, rel_error_vs_cudnn=None)
        if torch is not None:
            tx = torch.from_numpy(x).cuda()
            tw = torch.from_numpy(params["weight"]).cuda()
            tb = torch.from_numpy(params["bias"]).cuda() if op.bias else None
            top, bottom, left, right = op.pads(in_shape[2], in_shape[3])
            assert top == bottom and left == right, "VGG pads symmetrically"

            def cudnn():
                return torch.nn.functional.conv2d(tx, tw, tb, op.stride, (top, left), op.dilation, op.groups)

            for _ in range(args.warmup):
                reference = cudnn()
            cudnn_s = clock.time(cudnn, args.repeats)
            row.update(cudnn_ms=cudnn_s * 1e3, cudnn_gflops=2 * layer["macs"] / cudnn_s / 1e9,
                       ours_over_cudnn=ours_s / cudnn_s,
                       rel_error_vs_cudnn=relative_error(dout.copy_to_host(),
                                                         reference.cpu().numpy().astype(np.float64)))
        rows.append(row)
        print(_line(row), flush=True)
    total_macs = sum(r["macs"] for r in rows)
    ours_total = sum(r["ours_ms"] for r in rows) / 1e3
    summary = dict(device=device, batch=args.batch, size=args.size, channel_divisor=args.divisor,
                   map_divisor=args.map_divisor,
                   repeats=args.repeats, warmup=args.warmup, simulator=_numba.simulating(),
                   config=dict(GEMM_BLOCK=config.GEMM_BLOCK, GEMM_WORK=config.GEMM_WORK, GEMM_DEPTH=config.GEMM_DEPTH,
                               THREADS=config.THREADS, CONV_DIRECT_DEPTHWISE=config.CONV_DIRECT_DEPTHWISE),
                   total_macs=total_macs, ours_ms=ours_total * 1e3, ours_gflops=2 * total_macs / ours_total / 1e9)
    if torch is not None:
        cudnn_total = sum(r["cudnn_ms"] for r in rows) / 1e3
        summary.update(cudnn_ms=cudnn_total * 1e3, cudnn_gflops=2 * total_macs / cudnn_total / 1e9,
                       ours_over_cudnn=ours_total / cudnn_total)
    print(f"all convs: {summary['ours_ms']:.2f} ms, {summary['ours_gflops']:.1f} GFLOP/s"
          + (f"; cuDNN {summary['cudnn_ms']:.2f} ms, {summary['cudnn_gflops']:.1f} GFLOP/s, "
             f"ours/cuDNN {summary['ours_over_cudnn']:.2f}x" if torch is not None else ""))
    write(args.out, summary, rows)
    return rows


def _fmt(value, spec):
    return "" if value is None else format(value, spec)


def _line(r) -> str:
    return (f"{r['layer']:<12} {r['input']:>16} -> {r['output']:<16} {r['path']:<13} "
            f"ours {_fmt(r['ours_ms'], '9.3f')} ms {_fmt(r['ours_gflops'], '9.1f')} GFLOP/s | "
            f"cuDNN {_fmt(r['cudnn_ms'], '9.3f')} ms {_fmt(r['cudnn_gflops'], '9.1f')} GFLOP/s | "
            f"ratio {_fmt(r['ours_over_cudnn'], '6.2f')} | err {_fmt(r['rel_error_vs_cudnn'], '.1e')}")


def write(prefix: str, summary: dict, rows: list[dict]) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
    with open(prefix + ".csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    with open(prefix + ".json", "w") as f:
        json.dump(dict(summary=summary, layers=rows), f, indent=2, default=str)
    print(f"wrote {prefix}.csv and {prefix}.json")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=224, help="input height and width (default 224)")
    p.add_argument("--divisor", type=int, default=1, help="divide every channel count (default 1: the real VGG16)")
    p.add_argument("--map-divisor", type=int, default=1, help="divide every map side (default 1: the real VGG16)")
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--out", default="bench_cuda_conv", help="output prefix for .csv and .json")
    p.add_argument("--tiny", action="store_true", help="a size the simulator runs in seconds (checks the code path)")
    args = p.parse_args(argv)
    if min(args.batch, args.repeats, args.divisor, args.map_divisor) < 1:
        p.error("--batch, --repeats, --divisor and --map-divisor must be positive")
    run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
