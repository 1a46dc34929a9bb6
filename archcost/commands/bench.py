"""archcost bench MODEL: time each layer of a forward pass on archcost's own kernels.

Per layer: median kernel time of ``--repeat`` forwards after a warm-up forward (JIT compile and
weight packing are not timed), GFLOP/s, the fraction of the machine's measured compute peak and
of the roofline's attainable rate; totals; a progress bar on stderr. ``-o RESULTS.json`` writes
the data in the schema ``archcost plot roofline`` reads (archcost/roofline.py). ``--device``
names the executor backend (archcost.kernels.BACKENDS). Family options are ``--option KEY=VALUE``
here, since ``-o`` is the output file. numba is imported only inside ``run``.
"""

from archcost.commands._args import check_fits_memory, positive_int
from archcost.loading import build_model


def add_parser(sub):
    p = sub.add_parser("bench", help="time each layer on archcost's kernels: GFLOP/s, % of measured peak, roofline")
    p.add_argument("model", help="model name (see 'archcost list') or a model file")
    p.add_argument("--input", metavar="CxHxW", help="input size per sample, e.g. 3x299x299")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE", help="family option (repeatable)")
    p.add_argument("--device", default="cpu", help="executor backend (default cpu)")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size N (default 1)")
    p.add_argument("--repeat", type=positive_int, default=5, help="timed forwards; the median is reported (default 5)")
    p.add_argument("--format", choices=("text", "json", "csv"), default="text")
    p.add_argument("-o", "--output", metavar="RESULTS.json", help="also write the results as JSON (roofline schema)")
    p.set_defaults(run=run)


def _progress_bar(stream):
    def show(done, total):
        width = 30
        filled = width * done // total
        stream.write(f"\rbench [{'#' * filled}{'.' * (width - filled)}] {done}/{total} forwards")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show


def run(args) -> int:
    import json
    import sys

    from archcost.benchmark import benchmark
    from archcost.report.bench import bench_table

    from archcost.outputs import check_output_path, write_atomic

    if args.output is not None:
        check_output_path(args.output, "-o", (".json",))
    graph = build_model(args.model, args.input, args.option)
    check_fits_memory(graph, args.batch, "bench")
    data = benchmark(graph, batch=args.batch, backend=args.device, repeat=args.repeat,
                     progress=_progress_bar(sys.stderr))
    if args.output is not None:
        write_atomic(args.output, json.dumps(data, indent=1) + "\n")
    sys.stdout.write(bench_table(data, args.format))
    return 0
