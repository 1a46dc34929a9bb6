"""archcost fit MODEL --memory 24GB [--train ...]: the largest batch whose peak fits in the given
memory, found by bisection on the exact analysis (forward inference, or one training step with
--train), with the breakdown at that batch."""

import re

from archcost.commands._args import add_model_args, add_training_args, training_options, uses_training_options
from archcost.errors import ArchcostError, quote

_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
          "kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}
_SIZE = re.compile(r"([0-9]{1,15}(?:\.[0-9]{1,9})?)\s*([a-zA-Z]{0,3})")
# The largest batch fit looks at: past it the answer is "more than this" (a model whose peak does
# not grow with the batch would otherwise search forever).
MAX_BATCH = 2**40


def memory_size(text: str) -> int:
    """'24GB' (decimal), '24GiB' (binary), '512MB', '4096B': bytes as an int. A unit is required
    ('24' alone is more likely a typo for 24GB than 24 bytes)."""
    m = _SIZE.fullmatch(text.strip())
    unit = m.group(2).lower() if m else None
    if not m or unit not in _UNITS:
        raise ArchcostError(f"fit: --memory expects a size such as 24GB, 16GiB or 512MB, got {quote(text)}")
    value = int(float(m.group(1)) * _UNITS[unit])
    if value < 1:
        raise ArchcostError(f"fit: --memory must be positive, got {quote(text)}")
    return value


def add_parser(sub):
    p = sub.add_parser("fit", help="largest batch whose peak memory fits, inference or (--train) one training step")
    add_model_args(p)
    p.add_argument("--memory", required=True, metavar="SIZE", help="memory available, e.g. 24GB, 16GiB, 512MB")
    add_training_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from archcost.loading import build_model
    from archcost.report.table import human_bytes

    budget = memory_size(args.memory)
    if not args.train and uses_training_options(args):
        raise ArchcostError("fit: the training options need --train")
    if args.batch != 1:
        raise ArchcostError("fit: --batch is what fit finds; leave it out")
    graph = build_model(args.model, args.input, args.option)
    if args.train:
        from archcost.training import analyze_training

        options = training_options(args)

        def peak(batch):
            r = analyze_training(graph, batch=batch, dtype=args.dtype, **options)
            return r.totals["train_peak_bytes"], r
    else:
        from archcost.analysis import analyze

        def peak(batch):
            r = analyze(graph, batch=batch, dtype=args.dtype)
            t = r.totals
            return t["param_bytes"] + t["buffer_bytes"] + t["peak_activation_bytes"], r

    need, report = peak(1)
    what = "one training step" if args.train else "inference (params, buffers, peak live activations)"
    if need > budget:
        print(f"{graph.name}: batch 1 needs {human_bytes(need)} ({need:,} bytes) for {what}; "
              f"{human_bytes(budget)} is not enough")
        return 1
    # The peak grows with the batch (every term is a constant or a multiple of it): double, then bisect.
    lo, hi = 1, 2
    while hi <= MAX_BATCH and peak(hi)[0] <= budget:
        lo, hi = hi, hi * 2
    if hi > MAX_BATCH:
        print(f"{graph.name}: more than {MAX_BATCH:,} samples fit in {human_bytes(budget)}")
        return 0
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if peak(mid)[0] <= budget:
            lo = mid
        else:
            hi = mid
    need, report = peak(lo)
    over, _ = peak(lo + 1)
    print(f"{graph.name}: largest batch {lo:,} for {what} in {human_bytes(budget)} ({budget:,} bytes)")
    print(f"  batch {lo:,} needs {human_bytes(need)} ({need:,} bytes); batch {lo + 1:,} would need "
          f"{human_bytes(over)} ({over:,} bytes)")
    if args.train:
        from archcost.report.table import train_summary_lines

        for line in train_summary_lines(report):
            print(f"  {line}")
    else:
        t = report.totals
        print(f"  params {human_bytes(t['param_bytes'])}, buffers {human_bytes(t['buffer_bytes'])}, "
              f"peak live activations {human_bytes(t['peak_activation_bytes'])} ({args.dtype})")
    return 0
