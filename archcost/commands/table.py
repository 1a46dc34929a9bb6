"""archcost table MODEL: the per-layer table (shapes, memory, weights, params, MACs, receptive
field) and totals; one schema in every --format (docs/reports.md, "The per-layer table")."""

from archcost.commands._args import add_model_args, add_training_args, training_options, uses_training_options
from archcost.errors import ArchcostError
from archcost.loading import build_model


def add_parser(sub):
    p = sub.add_parser("table", help="per-layer table: shapes, memory, params, MACs, receptive field")
    add_model_args(p)
    p.add_argument("--format", choices=("text", "markdown", "csv", "json", "html"), default="text")
    p.add_argument("--all-layers", action="store_true", help="one row per node (no folding of ReLU/dropout)")
    p.add_argument("--by", choices=("op-type", "stage"), help="shares of MACs/params/activations per layer type or stage")
    p.add_argument(
        "--convention", action="append", default=[], metavar="NAME",
        help="add a column with a peer tool's count, e.g. ptflops, thop, torchinfo (see 'archcost conventions')",
    )
    add_training_args(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from archcost.analysis import analyze
    from archcost.conventions import table_columns
    from archcost.report.table import layer_table

    if not args.train and uses_training_options(args):
        raise ArchcostError("table: --optimizer, --policy, --mixed-precision, --freeze, --freeze-until and "
                            "--checkpoint describe a training step; add --train")
    graph = build_model(args.model, args.input, args.option)
    train = None
    if args.train:
        from archcost.training import analyze_training

        if args.by:
            raise ArchcostError("table: --by and --train cannot be combined")
        train = analyze_training(graph, batch=args.batch, dtype=args.dtype, **training_options(args))
        report = train.forward
    else:
        report = analyze(graph, batch=args.batch, dtype=args.dtype)
    if args.by:
        from archcost.grouping import group
        from archcost.report.table import group_table

        print(group_table(report, group(report, args.by), args.by, args.format).rstrip("\n"))
        return 0
    fold = not args.all_layers
    extra = table_columns(report, args.convention, fold=fold)
    print(layer_table(report, args.format, fold=fold, extra=extra, train=train).rstrip("\n"))
    return 0
