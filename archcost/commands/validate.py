"""archcost validate MODEL: execute the model on archcost's own kernels and check, per layer,
the output shape, the counted multiplies against the analytic MACs, and the output against a
float64 reference; and the measured peak activation memory against the predicted one."""

from archcost.commands._args import add_model_args, add_training_args, check_fits_memory, training_options, uses_training_options
from archcost.loading import build_model


def add_parser(sub):
    p = sub.add_parser("validate", help="execute the model and check shapes, MACs, outputs and peak memory")
    add_model_args(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights and input (default 0)")
    p.add_argument("--weights", choices=("random", "file"), default="random",
                   help="random: weights drawn from --seed (default); file: an ONNX file's own initializers, "
                        "and, when onnxruntime is installed, every output compared with onnxruntime's")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                   help="run on the cpu kernels (default) or the CUDA kernels (needs numba-cuda and a GPU, "
                        "or NUMBA_ENABLE_CUDASIM=1 for numba-cuda's simulator)")
    add_training_args(p)
    p.set_defaults(run=run)


def _fmt_shape(shape) -> str:
    """The executed array's shape, batch first (NCHW for maps), as numpy holds it."""
    return "x".join(str(d) for d in shape)


def run(args) -> int:
    import sys

    from archcost.errors import ArchcostError
    from archcost.validation import validate

    if not 0 <= args.seed < 2**32:
        # numpy's seeds are 0 .. 2**32-1; anything else is a ValueError deep in the executor.
        raise ArchcostError(f"validate: --seed must be between 0 and {2**32 - 1}, got {args.seed}")
    if args.dtype != "float32":
        raise ArchcostError(f"validate: --dtype {args.dtype}: the kernels execute float32 only")
    from archcost.kernels import unavailable_reason

    reason = unavailable_reason(args.device)
    if reason is not None:
        raise ArchcostError(f"--device {args.device}: {reason}")
    device = args.device
    if args.device == "cuda":
        from archcost.kernels.cuda._numba import device_name

        device = f"cuda ({device_name()})"
    if not args.train and uses_training_options(args):
        raise ArchcostError("validate: the training options need --train")
    params = outputs = None
    if args.weights == "file":
        from archcost.loading import load_onnx_with_weights

        if args.train:
            raise ArchcostError("validate: --weights file runs the forward pass; leave out --train")
        graph, params, outputs = load_onnx_with_weights(args.model, args.input, args.option, "validate")
    else:
        graph = build_model(args.model, args.input, args.option)
    if args.train:
        return _run_training(args, graph)
    # The float64 reference of each layer is kept beside its float32 output: about three copies.
    check_fits_memory(graph, args.batch, "validate", copies=3)
    result = validate(graph, batch=args.batch, seed=args.seed, backend=args.device, params=params)
    name_w = max(len(c.name) for c in result.layers)
    label_w = max(len(c.label) for c in result.layers)
    print(f"{args.model}: input {'x'.join(map(str, result.input_shape))}, batch {result.batch}, float32, "
          f"device {device}")
    print(f"{'layer'.ljust(name_w)}  {'op'.ljust(label_w)}  {'array shape':>14}  {'MACs':>14}  {'counted':>14}  "
          f"{'rel.err':>8}  check")
    for c in result.layers:
        counted = "" if c.counted is None else f"{c.counted:,}"
        macs = f"{c.macs:,}" if c.macs else ""
        print(f"{c.name.ljust(name_w)}  {c.label.ljust(label_w)}  {_fmt_shape(c.shape):>14}  {macs:>14}  "
              f"{counted:>14}  {c.rel_error:8.1e}  {'ok' if c.ok else 'FAIL: ' + c.problem}")
    passed = sum(c.ok for c in result.layers)
    print(f"peak activation memory: measured {result.peak_bytes:,} B, predicted {result.predicted_peak_bytes:,} B"
          f" -> {'ok' if result.peak_ok else 'FAIL'}")
    print(f"{passed}/{len(result.layers)} layers validated in {result.seconds:.1f} s")
    runtime_ok = True
    if params is not None:
        x = result.inputs[graph.input_nodes()[0]]  # onnxruntime is fed the input our kernels ran on
        runtime_ok = _compare_with_onnxruntime(args.model, x, result.outputs, outputs)
    if result.failures:
        first = result.failures[0]
        print(f"archcost: validate: layer {first.name!r} failed: {first.problem}", file=sys.stderr)
        return 1
    if not result.peak_ok:
        print(f"archcost: validate: measured peak {result.peak_bytes} B != predicted {result.predicted_peak_bytes} B",
              file=sys.stderr)
        return 1
    if not runtime_ok:
        print("archcost: validate: an output differs from onnxruntime's", file=sys.stderr)
        return 1
    return 0


def _compare_with_onnxruntime(path, x, ours: dict, output_layers: dict) -> bool:
    """Print each graph output's difference from onnxruntime's on the same input; True if all agree."""
    from archcost.formats import onnx_runtime

    if not onnx_runtime.available():
        print("onnxruntime: not installed (pip install 'archcost[ort]'): outputs not compared")
        return True
    theirs = onnx_runtime.run_onnxruntime(path, x)
    ok = True
    for name, layer in output_layers.items():
        if layer not in ours or name not in theirs:
            continue
        diff = onnx_runtime.relative_difference(ours[layer], theirs[name])
        agree = diff <= onnx_runtime.TOLERANCE
        ok &= agree
        print(f"onnxruntime: output {name!r} (layer {layer!r}): max difference {diff:.1e} of its largest value "
              f"-> {'ok' if agree else f'FAIL (> {onnx_runtime.TOLERANCE:.0e})'}")
    return ok


def _run_training(args, graph) -> int:
    import sys

    from archcost.errors import ArchcostError
    from archcost.validation import TRAIN_TOLERANCE, validate_training

    if args.device != "cpu":
        raise ArchcostError("validate --train: the backward kernels run on the cpu only (--device cpu)")
    if args.policy != "archcost":
        raise ArchcostError("validate --train: the executor keeps what the archcost policy keeps; "
                            "--policy pytorch is an analysis (archcost table --train --policy pytorch)")
    if args.mixed_precision:
        raise ArchcostError("validate --train: the kernels execute float32 only (no --mixed-precision)")
    options = training_options(args)
    for key in ("policy", "mixed_precision"):
        options.pop(key)
    # The float64 copies of every layer's output and gradient: about four copies of the step.
    check_fits_memory(graph, args.batch, "validate", copies=4)
    result = validate_training(graph, batch=args.batch, seed=args.seed, **options)
    name_w = max(len(c.name) for c in result.layers)
    print(f"{args.model}: one training step, input {'x'.join(map(str, result.input_shape))}, batch {result.batch}, "
          f"float32, {args.optimizer}, loss {result.loss:.4f}")
    print(f"{'layer'.ljust(name_w)}  {'data MACs':>14}  {'counted':>14}  {'weight MACs':>14}  {'counted':>14}  "
          f"{'fwd err':>8}  {'grad err':>8}  check")
    for c in result.layers:
        def n(v):
            return "" if not v else f"{v:,}"

        print(f"{c.name.ljust(name_w)}  {n(c.data_macs):>14}  {n(c.counted_data):>14}  {n(c.weight_macs):>14}  "
              f"{n(c.counted_weight):>14}  {c.forward_error:8.1e}  {c.grad_error:8.1e}  "
              f"{'ok' if c.ok else 'FAIL: ' + c.problem}")
    print(f"loss gradient: relative error {result.loss_error:.1e} -> {'ok' if result.loss_error < TRAIN_TOLERANCE else 'FAIL'}")
    print(f"peak training memory: measured {result.peak_bytes:,} B, predicted {result.predicted_peak_bytes:,} B"
          f" -> {'ok' if result.peak_ok else 'FAIL'}")
    passed = sum(c.ok for c in result.layers)
    print(f"{passed}/{len(result.layers)} layers validated in {result.seconds:.1f} s")
    if result.failures:
        first = result.failures[0]
        print(f"archcost: validate: layer {first.name!r} failed: {first.problem}", file=sys.stderr)
        return 1
    if not result.ok:
        print("archcost: validate: the loss gradient or the measured peak does not match", file=sys.stderr)
        return 1
    return 0
