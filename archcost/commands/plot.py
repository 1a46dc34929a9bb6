"""archcost plot bubble|layers|roofline ... -o FILE.{png,svg,pdf}: figures from the analyzer's numbers.

- ``plot bubble [MODELS...] [--x macs|params|activations] [--metric top1|top5] [--dataset D]``:
  accuracy (archcost/data/accuracy.csv) against cost, bubble area proportional to params, the
  Pareto frontier (Canziani et al. 2017). No models: every zoo model with an accuracy row.
- ``plot layers MODEL [--log]``: per-layer activation memory and params (folded rows).
- ``plot roofline RESULTS.json``: measured GFLOP/s per layer against arithmetic intensity
  under the compute and bandwidth ceilings (schema: archcost/roofline.py).

matplotlib is imported inside ``run`` only.
"""

import sys

from archcost.errors import ArchcostError

X_SHORT = {"macs": "MACs", "params": "params", "activations": "activations"}
X_AXES = {"macs": "MACs (multiply-accumulates, conv + FC)", "params": "params", "activations": "activations (elements)"}


def add_parser(sub):
    p = sub.add_parser("plot", help="figures: accuracy-vs-cost bubbles, per-layer memory/params, roofline")
    kinds = p.add_subparsers(dest="kind", required=True, metavar="{bubble,layers,roofline,train-memory,checkpoint}")

    b = kinds.add_parser("bubble", help="accuracy vs cost, bubble area = params (Canziani et al. 2017)")
    b.add_argument("models", nargs="*", help="zoo names (default: every model with an accuracy row)")
    b.add_argument("--x", choices=tuple(X_AXES), default="macs", help="cost on the x axis (default macs)")
    b.add_argument("--metric", choices=("top1", "top5"), default="top1")
    b.add_argument("--dataset", choices=("imagenet", "cifar10", "cifar100", "mnist"), default="imagenet")
    b.add_argument("--linear", action="store_true", help="linear x axis (default log)")
    b.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.png, .svg or .pdf")
    b.set_defaults(run=run_bubble)

    la = kinds.add_parser("layers", help="per-layer activation memory and params")
    la.add_argument("model")
    la.add_argument("--input", metavar="CxHxW", help="input size per sample, e.g. 3x299x299")
    la.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="family option (repeatable)")
    la.add_argument("--log", action="store_true", help="log-scale y axes")
    la.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.png, .svg or .pdf")
    la.set_defaults(run=run_layers)

    from archcost.commands._args import add_training_args, positive_int

    tm = kinds.add_parser("train-memory", help="live bytes over one training step, by kind (docs/training.md)")
    tm.add_argument("model")
    tm.add_argument("--input", metavar="CxHxW", help="input size per sample, e.g. 3x299x299")
    tm.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="family option (repeatable)")
    tm.add_argument("--batch", type=positive_int, default=1, help="batch size N (default 1)")
    tm.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.png, .svg or .pdf")
    add_training_args(tm, flag=False)
    tm.set_defaults(run=run_train_memory)

    ck = kinds.add_parser("checkpoint", help="training peak vs recomputed MACs under checkpointing")
    ck.add_argument("models", nargs="+", help="zoo names or model files, one panel each")
    ck.add_argument("--batch", type=positive_int, default=1, help="batch size N (default 1)")
    ck.add_argument("--optimizer", choices=("sgd", "momentum", "adam", "adamw"), default="sgd")
    ck.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.png, .svg or .pdf")
    ck.set_defaults(run=run_checkpoint)

    r = kinds.add_parser("roofline", help="measured GFLOP/s per layer vs arithmetic intensity")
    r.add_argument("results", metavar="RESULTS.json")
    r.add_argument("-o", "--output", required=True, metavar="FILE", help="FILE.png, .svg or .pdf")
    r.set_defaults(run=run_roofline)


def bubble_points(models, x="macs", metric="top1", dataset="imagenet", warn=None):
    """(points, front): the bubbles the chart draws, from the analyzer and accuracy.csv."""
    from archcost import accuracy, registry, zoo
    from archcost.analysis import analyze
    from archcost.report.plots import Bubble

    if not models:
        models = []
        for name in accuracy.models_with(metric, dataset):
            try:
                registry.resolve(name)
            except ArchcostError:
                continue  # listed in accuracy.csv, not (yet) in the zoo
            models.append(name)
    else:
        for name in models:
            registry.resolve(name)  # unknown names fail here, before any work
    points = []
    for name in models:
        row = accuracy.best(name, metric, dataset)
        if row is None:
            if warn:
                warn(f"archcost: note: skipping {name}: no {metric} accuracy on {dataset} in accuracy.csv")
            continue
        totals = analyze(zoo.build(name)).totals
        points.append(Bubble(name, totals[x], row.accuracy, totals["params"]))
    if not points:
        raise ArchcostError(f"plot bubble: none of the models has a {metric} accuracy on {dataset}")
    front = accuracy.pareto_front([p.x for p in points], [p.y for p in points])
    return points, front


def run_bubble(args) -> int:
    from archcost.report import plots

    plots.check_output(args.output)
    points, front = bubble_points(args.models, args.x, args.metric,
                                  args.dataset, warn=lambda msg: print(msg, file=sys.stderr))
    label = {"top1": "top-1", "top5": "top-5"}[args.metric]
    fig = plots.bubble(points, x_label=X_AXES[args.x], y_label=f"{label} accuracy on {args.dataset} (%)",
                       front=front, log_x=not args.linear,
                       title=f"{label} accuracy vs {X_SHORT[args.x]} (bubble area: params)")
    print(plots.save(fig, args.output))
    return 0


def layer_series(report):
    """(names, activations, params) of the folded per-layer rows."""
    rows = report.folded()
    return [r.name for r in rows], [r.activations for r in rows], [r.params for r in rows]


def run_layers(args) -> int:
    from archcost.analysis import analyze
    from archcost.loading import build_model
    from archcost.report import plots

    plots.check_output(args.output)
    report = analyze(build_model(args.model, args.input, args.option))
    names, activations, params = layer_series(report)
    fig = plots.layers(names, activations, params, log=args.log,
                       title=f"{report.model}: activation memory and params per layer")
    print(plots.save(fig, args.output))
    return 0


def roofline_points(results):
    from archcost.report.plots import RooflinePoint

    return [RooflinePoint(layer.name, layer.op, layer.intensity, layer.gflops) for layer in results.layers]


def run_roofline(args) -> int:
    from archcost.report import plots
    from archcost.roofline import load_results

    plots.check_output(args.output)
    results = load_results(args.results)
    xs, ys = results.ceiling()
    title = f"{results.model or 'layers'} on {results.machine} ({results.date})"
    fig = plots.roofline(roofline_points(results), xs, ys, peak_gflops=results.peak_gflops,
                         bandwidth_gbs=results.bandwidth_gbs, title=title)
    print(plots.save(fig, args.output))
    return 0


def run_train_memory(args) -> int:
    from archcost.commands._args import training_options
    from archcost.loading import build_model
    from archcost.report import plots
    from archcost.report.table import human_bytes
    from archcost.training import CURVE_GROUPS, analyze_training

    plots.check_output(args.output)
    report = analyze_training(build_model(args.model, args.input, args.option), batch=args.batch,
                              **training_options(args))
    t = report.totals
    fig = plots.train_memory(report.curve, list(CURVE_GROUPS),
                             title=f"{report.model}: one training step, batch {report.batch}, {args.optimizer}, "
                                   f"{args.policy} policy, checkpoint {args.checkpoint}",
                             peak_label=f"peak {human_bytes(t['train_peak_bytes'])} at {t['peak_step']}")
    print(plots.save(fig, args.output))
    return 0


def run_checkpoint(args) -> int:
    from archcost.loading import build_model
    from archcost.report import plots
    from archcost.training import checkpoint_tradeoff

    plots.check_output(args.output)
    series = {}
    for name in args.models:
        graph = build_model(name, None, [])
        series[graph.name] = checkpoint_tradeoff(graph, batch=args.batch, optimizer=args.optimizer)
    fig = plots.checkpoint_tradeoff(series, title=f"checkpointing: batch {args.batch}, {args.optimizer}")
    print(plots.save(fig, args.output))
    return 0
