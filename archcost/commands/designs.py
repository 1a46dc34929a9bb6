"""archcost designs [--format F]: the lectures' design comparisons (naive vs bottleneck inception,
5x5 vs two 3x3, standard vs depthwise-separable conv, basic vs bottleneck residual block, ResNet
vs ResNeXt block, ...), each pair's params, MACs and activations with the ratio alternative/baseline.
The pairs are ``archcost.zoo.examples.DESIGNS``; every number is computed from the two models."""

from archcost.commands._args import positive_int


def add_parser(sub):
    p = sub.add_parser("designs", help="lecture design pairs (e.g. 5x5 vs two 3x3) with computed ratios")
    p.add_argument("--format", choices=("text", "markdown", "csv", "json", "html"), default="text")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size N (default 1)")
    p.set_defaults(run=run)


def run(args) -> int:
    from archcost import zoo
    from archcost.analysis import analyze
    from archcost.report.table import design_table
    from archcost.zoo.examples import DESIGNS

    pairs = [
        (title, source, analyze(zoo.build(base), args.batch), analyze(zoo.build(alt), args.batch))
        for title, base, alt, source in DESIGNS
    ]
    print(design_table(pairs, args.format))
    return 0
