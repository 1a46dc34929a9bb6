"""archcost bench MODEL: time each layer of a forward pass on archcost's own kernels.

Per layer: median kernel time of ``--repeat`` forwards after a warm-up forward (JIT compile and
weight packing are not timed), GFLOP/s, the fraction of the machine's measured compute peak and
of the roofline's attainable rate; totals; a progress bar on stderr. ``-o RESULTS.json`` writes
the data in the schema ``archcost plot roofline`` reads (archcost/roofline.py). ``--device``
names the executor backend (archcost.kernels.BACKENDS). Family options are ``--option KEY=VALUE``
here, since ``-o`` is the output file. numba is imported only inside ``run``.
"""

from archcost.commands._args import add_training_args, check_fits_memory, positive_int, training_options, uses_training_options
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
    add_training_args(p)
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
    from archcost.errors import ArchcostError

    if not args.train and uses_training_options(args):
        raise ArchcostError("bench: the training options need --train")
    graph = build_model(args.model, args.input, args.option)
    if args.train:
        return _run_training(args, graph)
    check_fits_memory(graph, args.batch, "bench")
    data = benchmark(graph, batch=args.batch, backend=args.device, repeat=args.repeat,
                     progress=_progress_bar(sys.stderr))
    if args.output is not None:
        write_atomic(args.output, json.dumps(data, indent=1) + "\n")
    sys.stdout.write(bench_table(data, args.format))
    return 0


def _run_training(args, graph) -> int:
    import json
    import sys

    from archcost.benchmark import benchmark_training
    from archcost.errors import ArchcostError
    from archcost.outputs import write_atomic
    from archcost.report.bench import train_bench_table
    from archcost.training import analyze_training

    if args.device != "cpu":
        raise ArchcostError("bench --train: the backward kernels run on the cpu only (--device cpu)")
    if args.policy != "archcost" or args.mixed_precision:
        raise ArchcostError("bench --train: the executor runs float32 under the archcost policy "
                            "(no --policy pytorch, no --mixed-precision)")
    options = training_options(args)
    for key in ("policy", "mixed_precision", "optimizer"):
        options.pop(key)
    need = analyze_training(graph, batch=args.batch, optimizer=args.optimizer, **options).totals["train_peak_bytes"]
    from archcost.commands._args import available_memory_bytes

    free = available_memory_bytes()
    if free is not None and need > free:
        raise ArchcostError(f"bench: a training step at --batch {args.batch} needs {need / 2**30:,.1f} GiB; "
                            f"{free / 2**30:,.1f} GiB is free (use a smaller --batch or --input)")
    data = benchmark_training(graph, batch=args.batch, repeat=args.repeat, optimizer=args.optimizer,
                              progress=_steps_bar(sys.stderr), **options)
    if args.output is not None:
        write_atomic(args.output, json.dumps(data, indent=1) + "\n")
    sys.stdout.write(train_bench_table(data, args.format))
    return 0


def _steps_bar(stream):
    def show(done, total):
        stream.write(f"\rbench --train: {done}/{total} steps")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show
