"""archcost conventions MODEL: the model's cost as every peer tool counts it, from one analysis."""

from archcost.commands._args import add_model_args
from archcost.loading import build_model


def add_parser(sub):
    p = sub.add_parser(
        "conventions", help="totals under every tool's convention (thop, ptflops, fvcore, torchinfo, ...)"
    )
    add_model_args(p)
    p.add_argument("--format", choices=("text", "markdown", "csv", "json", "html"), default="text")
    p.set_defaults(run=run)


def run(args) -> int:
    from archcost.analysis import analyze
    from archcost.conventions import summary
    from archcost.report.table import conventions_table

    report = analyze(build_model(args.model, args.input, args.option), batch=args.batch, dtype=args.dtype)
    print(conventions_table(report, summary(report), args.format))
    return 0
