"""archcost sweep SPACE -o RESULTS.csv|json|parquet: build and analyse every point of a design
space (docs/sweeps.md), one row each; resumable; Pareto fronts and EDFs over the results.

Nothing of archcost.sweep (nor dask, nor matplotlib) is imported until the command runs.
"""

import argparse
import sys

from archcost.commands._args import positive_int
from archcost.errors import ArchcostError, quote


def _seed(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or len(text) > 30:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {quote(text)}")
    return int(text)


def add_parser(sub):
    p = sub.add_parser("sweep", help="every point of a design space (a YAML file): costs, Pareto front, EDF")
    p.add_argument("space", metavar="SPACE", help="a space file (.yaml), or a built-in space: wrn_cifar, "
                   "resnext_complexity, mobilenet_alpha_resolution, anynet_cifar")
    p.add_argument("-o", "--output", required=True, metavar="RESULTS",
                   help="results file: .csv, .json or .parquet (pyarrow); an existing one is resumed")
    p.add_argument("-n", type=positive_int, metavar="N", help="sample N points at random (default: every point, "
                   "or the space's sample)")
    p.add_argument("--seed", type=_seed, metavar="S", help="seed of the sampling (default: the space's, else 0)")
    p.add_argument("--workers", type=positive_int, metavar="W", help="worker processes (default: every core; 1: "
                   "in this process)")
    p.add_argument("--dask", metavar="ADDRESS", help="run on dask.distributed: a scheduler address "
                   "(tcp://host:8786), or local for a LocalCluster of --workers processes")
    p.add_argument("--chunk", type=positive_int, metavar="K",
                   help="points per task (default: about 16 tasks per worker)")
    p.add_argument("--front", metavar="X,Y[,Z]", help="print the Pareto front over two or three columns, e.g. "
                   "macs,params or params,macs,accuracy (quantities minimised, accuracy maximised; max:NAME / "
                   "min:NAME to say)")
    p.add_argument("--front-plot", metavar="FILE", help="scatter of the first two --front columns with the front "
                   "points marked: .png/.svg/.pdf")
    p.add_argument("--edf", metavar="Q", help="print the empirical distribution of a column (e.g. macs) over the "
                   "space's ok points")
    p.add_argument("--edf-plot", metavar="FILE", help="plot the --edf distribution: .png/.svg/.pdf")
    p.add_argument("--edf-with", action="append", default=[], metavar="RESULTS",
                   help="another sweep's results to draw on the same EDF plot (repeatable)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or summary on stderr")
    p.set_defaults(run=run)


def _front_names(text: str, allowed: set) -> tuple[str, ...]:
    from archcost.sweep import direction

    parts = [t.strip() for t in text.split(",")]
    if len(parts) not in (2, 3) or not all(parts):
        raise ArchcostError(f"--front: expected two or three columns such as macs,params, got {quote(text)}")
    for part in parts:
        name, _ = direction(part)
        if name not in allowed:
            raise ArchcostError(f"--front: unknown column {quote(name)}; choose from {', '.join(sorted(allowed))}")
    return tuple(parts)


def run(args) -> int:
    from archcost import sweep
    from archcost.report.table import human

    space = sweep.load_space(args.space)
    numeric = set(sweep.QUANTITIES) | {"accuracy"} | set(space.names)
    front = _front_names(args.front, numeric) if args.front else None
    if args.edf is not None and args.edf not in numeric:
        raise ArchcostError(f"--edf: unknown column {quote(args.edf)}; choose from {', '.join(sorted(numeric))}")
    if args.front_plot and not front:
        raise ArchcostError("--front-plot: give the columns with --front X,Y")
    if (args.edf_plot or args.edf_with) and args.edf is None:
        raise ArchcostError(f"{'--edf-plot' if args.edf_plot else '--edf-with'}: give the column with --edf Q")
    if args.edf_with and not args.edf_plot:
        raise ArchcostError("--edf-with: draws on the --edf-plot figure; give --edf-plot FILE")
    plots = None
    if args.front_plot or args.edf_plot:
        from archcost.report import plots

        for path in (args.front_plot, args.edf_plot):
            if path:
                plots.check_output(path)
    others = []
    for path in args.edf_with:  # read before the sweep, so that a bad file fails first
        from archcost.sweep.results import numbers

        others.append((path, numbers(path, args.edf, "--edf-with")))
    sweep.check_output(args.output)
    if args.seed is not None and args.n is None and space.sample is None:
        raise ArchcostError("--seed: the space is enumerated, not sampled; give -n N too")

    outcome = sweep.run(space, args.output, n=args.n, seed=args.seed, workers=args.workers, dask=args.dask,
                        chunk=args.chunk, progress=None if args.quiet else sys.stderr)
    counts = outcome.counts()
    if not args.quiet:
        detail = ", ".join(f"{v:,} {k}" for k, v in counts.items() if v)
        print(f"archcost: sweep {space.name}: {len(outcome.rows):,} rows ({detail}); {outcome.computed:,} points "
              f"computed, {outcome.kept:,} kept from the file; {outcome.seconds:.1f} s", file=sys.stderr)
    print(outcome.path)
    table = outcome.table()
    if front:
        rows = sweep.pareto(table, *front)
        print(_front_table(space, rows, front))
        if args.front_plot:
            (xn, _), (yn, _) = sweep.direction(front[0]), sweep.direction(front[1])
            ok = [r for r in table if r["status"] == "ok" and r[xn] is not None and r[yn] is not None]
            fig = plots.sweep_front([r[xn] for r in ok], [r[yn] for r in ok], [r[xn] for r in rows],
                                    [r[yn] for r in rows], x_label=_axis(space, xn), y_label=_axis(space, yn),
                                    labels=[_label(space, r) for r in rows],
                                    title=f"{space.name}: {len(ok):,} points, Pareto front of {xn} and {yn}")
            print(plots.save(fig, args.front_plot))
    if args.edf is not None:
        values = [float(r[args.edf]) for r in table if r["status"] == "ok" and r[args.edf] is not None]
        print(_edf_lines(space.name, args.edf, values, human))
        for path, other in others:
            print(_edf_lines(str(path), args.edf, other, human))
        if args.edf_plot:
            series = [(space.name, values)] + [(str(path), other) for path, other in others]
            fig = plots.edf_plot(series, x_label=args.edf, title=f"EDF of {args.edf} over each space's points")
            print(plots.save(fig, args.edf_plot))
    return 0


def _axis(space, name: str) -> str:
    if name == "accuracy":
        return f"{space.metric} accuracy on {space.dataset} (%, published)"
    return name


def _label(space, row) -> str:
    return row["model"] or ", ".join(f"{name}={row[name]}" for name in space.names)


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:g}"
    return f"{int(value):,}" if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


def _front_table(space, rows, front) -> str:
    from archcost.sweep import direction

    names = [direction(column)[0] for column in front]
    header = ["point", *space.names, *dict.fromkeys(names), "model"]
    if "accuracy" not in names:
        header.append("accuracy")
    body = [[_fmt(r[c]) for c in header] for r in rows]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = [f"Pareto front of {', '.join(front[:-1])} and {front[-1]}: {len(rows)} points"]
    if not rows:
        return lines[0] + " (no ok point has both values)"
    lines.append("  ".join(h.rjust(w) for h, w in zip(header, widths)))
    lines += ["  ".join(v.rjust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


def _edf_lines(label, quantity, values, human) -> str:
    from archcost.sweep import quantiles

    if not values:
        return f"EDF of {quantity} over {label}: no ok point"
    parts = [f"{'min' if q == 0 else 'max' if q == 1 else f'{q:.0%}'} {human(v)}" for q, v in quantiles(values)]
    return f"EDF of {quantity} over {label} ({len(values):,} points): " + ", ".join(parts)
