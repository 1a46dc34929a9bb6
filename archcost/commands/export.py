"""archcost export MODEL --to yaml|json|dot [-o FILE]: write a model (zoo name or file) as a spec
that loads back to the same graph, as networkx node-link JSON, or as Graphviz DOT."""

from archcost.errors import ArchcostError, quote

FORMATS = ("yaml", "json", "dot")


def add_parser(sub):
    p = sub.add_parser("export", help="write a model as a YAML spec, node-link JSON or Graphviz DOT")
    p.add_argument("model", help="model name (see 'archcost list') or a .yaml/.toml/.json/.onnx file")
    p.add_argument("--to", choices=FORMATS, help="output format (default: from -o's suffix, else yaml)")
    p.add_argument("-o", "--output", metavar="FILE", help="write here (default: standard output)")
    p.add_argument("--input", metavar="CxHxW", help="input size per sample, e.g. 3x299x299")
    # -o is the output file here, so the model options have only the long spelling.
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="family option or spec parameter, e.g. --option depth=28 (repeatable)")
    p.set_defaults(run=run)


def run(args) -> int:
    import pathlib

    from archcost.loading import build_model
    from archcost.formats.export import SUFFIX_FORMATS, export_text, write_atomic

    if args.output is not None:
        from archcost.outputs import check_output_path

        check_output_path(args.output)
    fmt = args.to
    if fmt is None and args.output is not None:
        suffix = pathlib.Path(args.output).suffix.lower()
        if suffix not in SUFFIX_FORMATS:
            raise ArchcostError(f"export: cannot tell the format from {quote(args.output)}; give --to {'|'.join(FORMATS)}")
        fmt = SUFFIX_FORMATS[suffix]
    graph = build_model(args.model, args.input, args.option)
    text = export_text(graph, fmt or "yaml")
    if args.output is not None:
        write_atomic(args.output, text)
    else:
        print(text, end="")
    return 0
