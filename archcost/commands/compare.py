"""archcost compare A B ...: totals side by side, with ratios to the first model."""

from archcost.commands._args import add_model_args
from archcost.loading import build_model
from archcost.errors import ArchcostError


def add_parser(sub):
    p = sub.add_parser("compare", help="totals of several models side by side, with ratios")
    add_model_args(p, many=True)
    p.add_argument("--format", choices=("text", "markdown", "csv", "json", "html"), default="text")
    p.set_defaults(run=run)


def run(args) -> int:
    from archcost.analysis import analyze
    from archcost.report.table import compare_table

    if len(args.model) < 2:
        raise ArchcostError("compare: give at least two models")
    reports = [analyze(build_model(m, args.input, args.option), args.batch, args.dtype) for m in args.model]
    print(compare_table(reports, args.format).rstrip("\n"))
    return 0
