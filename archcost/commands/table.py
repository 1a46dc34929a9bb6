"""archcost table MODEL: the per-layer table (shapes, memory, weights, params, MACs) and totals."""

from archcost.cli import add_model_args, build_model


def add_parser(sub):
    p = sub.add_parser("table", help="per-layer table: shapes, memory, params, MACs")
    add_model_args(p)
    p.add_argument("--format", choices=("text", "markdown", "csv", "json", "html"), default="text")
    p.add_argument("--all-layers", action="store_true", help="one row per node (no folding of ReLU/dropout)")
    p.set_defaults(run=run)


def run(args) -> int:
    from archcost.analysis import analyze
    from archcost.report.table import layer_table

    graph = build_model(args.model, args.input, args.option)
    report = analyze(graph, batch=args.batch, dtype=args.dtype)
    print(layer_table(report, args.format, fold=not args.all_layers).rstrip("\n"))
    return 0
