"""What the commands share: argparse types for counts and dtypes, the model arguments
(MODEL, --input, --batch, --dtype, -o), and the memory check before a model is executed.
(A module whose name starts with "_" is not a command.)"""

from __future__ import annotations

import argparse

from archcost.errors import ArchcostError, quote
from archcost.loading import ASCII_DIGITS, MAX_SIZE_DIGITS

def available_memory_bytes() -> int | None:
    """Memory the kernels may still take: MemAvailable from /proc/meminfo (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def positive_int(text: str) -> int:
    """argparse type of counts such as --batch and --repeat: ASCII digits, at least 1."""
    if not ASCII_DIGITS.fullmatch(text.strip()) or len(text.strip()) > MAX_SIZE_DIGITS or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {quote(text)}")
    return int(text)


def dtype_name(text: str) -> str:
    """argparse type of --dtype: one of the analysis's storage types."""
    from archcost.analysis import DTYPE_BYTES

    if text not in DTYPE_BYTES:
        raise argparse.ArgumentTypeError(f"unknown dtype {quote(text)}; known: {', '.join(DTYPE_BYTES)}")
    return text


def check_fits_memory(graph, batch: int, command: str, copies: int = 1) -> None:
    """Refuse, in one line, a run whose arrays cannot fit in this machine's free memory: the
    peak of live float32 activations (``copies`` times: 3 for validate, which keeps a float64
    reference beside each) plus the parameters, predicted by the analysis before anything is allocated.
    Without this, an enormous --batch is a MemoryError deep in numpy, or the OOM killer."""
    from archcost.analysis import analyze

    totals = analyze(graph, batch=batch).totals
    need = copies * totals["peak_activation_bytes"] + 2 * totals["param_bytes"]
    free = available_memory_bytes()
    if free is not None and need > free:
        raise ArchcostError(
            f"{command}: --batch {batch} with input {'x'.join(map(str, graph.shape(graph.input_nodes()[0])[1:]))} "
            f"needs about {need / 2**30:,.1f} GiB for activations and weights; {free / 2**30:,.1f} GiB is free "
            "(use a smaller --batch or --input)"
        )


def add_model_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    p.add_argument("model", nargs="+" if many else None, help="model name (see 'archcost list') or a .yaml/.toml/.json/.onnx file")
    p.add_argument("--input", metavar="CxHxW", help="input size per sample, e.g. 3x299x299")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size N (default 1)")
    p.add_argument("--dtype", type=dtype_name, default="float32", help="float32 (default), float16, bfloat16, float64, int8")
    p.add_argument(
        "-o", "--option", action="append", default=[], metavar="KEY=VALUE",
        help="family option, e.g. -o depth=28 -o width=10 (repeatable)",
    )
