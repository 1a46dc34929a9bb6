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


def add_training_args(p: argparse.ArgumentParser, flag: bool = True) -> None:
    """The options of one training step (archcost.training.analyze_training); ``flag``: add
    ``--train`` itself (the command also works without it)."""
    from archcost.ops import POLICIES
    from archcost.training import OPTIMIZERS

    g = p.add_argument_group("training (docs/training.md)")
    if flag:
        g.add_argument("--train", action="store_true",
                       help="one training step: backward MACs, kept bytes, gradients, optimizer state, exact peak")
    g.add_argument("--optimizer", choices=tuple(OPTIMIZERS), default="sgd",
                   help="sgd (no state, default), momentum (1 x params), adam or adamw (2 x params)")
    g.add_argument("--policy", choices=POLICIES, default="archcost",
                   help="what is kept for backward: archcost's own executor (default) or PyTorch autograd's")
    g.add_argument("--mixed-precision", action="store_true",
                   help="float16/bfloat16 params and gradients (--dtype) with float32 master weights and optimizer state")
    g.add_argument("--freeze", default="", metavar="PATTERNS",
                   help="comma-separated layer-name patterns whose params are not trained, e.g. 'conv1*,layer1.*'")
    g.add_argument("--freeze-until", metavar="LAYER", help="freeze every layer up to and including LAYER")
    g.add_argument("--checkpoint", default="none", metavar="MODE",
                   help="activation recomputation: none (default), sqrt (segments of ceil(sqrt(n)) layers), every:K, "
                        "or optimal:F (the least peak recomputing at most F x the forward MACs, e.g. optimal:0.3)")


def training_options(args) -> dict:
    return {"policy": args.policy, "optimizer": args.optimizer, "mixed_precision": args.mixed_precision,
            "freeze": args.freeze, "freeze_until": args.freeze_until, "checkpoint": args.checkpoint}


def uses_training_options(args) -> bool:
    """Whether any training option differs from its default (they mean nothing without --train)."""
    return bool(args.optimizer != "sgd" or args.policy != "archcost" or args.mixed_precision or args.freeze
                or args.freeze_until or args.checkpoint != "none")
