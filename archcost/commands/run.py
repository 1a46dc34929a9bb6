"""archcost run MODEL --input X.npy -o Y.npy: the model's outputs on your input, computed by
archcost's own kernels (an ONNX file with its own weights by default; other models with weights
drawn from --seed)."""


def add_parser(sub):
    p = sub.add_parser("run", help="compute the model's outputs on an input array (.npy) with archcost's kernels")
    p.add_argument("model", help="model name (see 'archcost list') or a .yaml/.toml/.json/.onnx file")
    p.add_argument("--input", required=True, metavar="X.npy",
                   help="the input batch, a float array of shape N x C x H x W (its size sets the model's input)")
    p.add_argument("-o", "--output", required=True, metavar="Y.npy|Y.npz",
                   help="where the output goes (.npz: every output of the graph, by name)")
    p.add_argument("--weights", choices=("file", "random"), default=None,
                   help="file: an ONNX file's own initializers (the default for .onnx); random: drawn from --seed "
                        "(the default, and the only choice, for zoo models and spec files)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random weights (default 0)")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="family option, e.g. --option depth=28 (repeatable)")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="cpu kernels (default) or CUDA kernels")
    p.set_defaults(run=run)


def _read_input(path: str):
    """The input batch from a .npy file, checked before it is read whole."""
    import numpy as np

    from archcost.errors import ArchcostError, quote

    if not path.lower().endswith(".npy"):
        raise ArchcostError(f"--input {quote(path)}: expected a .npy file (numpy.save)")
    try:
        # Memory-mapped: the header (shape, dtype) is checked before any data is read.
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except FileNotFoundError:
        raise ArchcostError(f"--input {quote(path)}: no such file") from None
    except IsADirectoryError:
        raise ArchcostError(f"--input {quote(path)}: is a directory") from None
    except (OSError, ValueError) as exc:  # not a .npy, truncated, or holding Python objects
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ArchcostError(f"--input {quote(path)}: not a readable .npy array ({first})") from None
    if array.dtype.kind != "f":
        raise ArchcostError(f"--input {quote(path)}: holds {array.dtype} values; the kernels take floats")
    if array.ndim < 2 or 0 in array.shape:
        raise ArchcostError(f"--input {quote(path)}: shape {'x'.join(map(str, array.shape))}; expected a batch "
                            f"N x C x H x W (N x features for a flat input)")
    x = np.ascontiguousarray(array, dtype=np.float32)
    if not np.isfinite(x).all():
        raise ArchcostError(f"--input {quote(path)}: holds NaN or infinite values")
    return x


def run(args) -> int:
    import io
    import pathlib

    import numpy as np

    from archcost.errors import ArchcostError
    from archcost.outputs import check_output_path, write_atomic

    if not 0 <= args.seed < 2**32:
        raise ArchcostError(f"run: --seed must be between 0 and {2**32 - 1}, got {args.seed}")
    out_path = check_output_path(args.output, "-o", (".npy", ".npz"))
    from archcost.kernels import unavailable_reason

    reason = unavailable_reason(args.device)
    if reason is not None:
        raise ArchcostError(f"--device {args.device}: {reason}")
    x = _read_input(args.input)
    batch, sample = x.shape[0], x.shape[1:]
    from archcost.formats import ONNX_SUFFIXES
    from archcost.loading import build_model, load_onnx_with_weights

    is_onnx = pathlib.Path(args.model).suffix.lower() in ONNX_SUFFIXES
    weights = args.weights or ("file" if is_onnx else "random")
    size = "x".join(map(str, sample))
    params = names = None
    if weights == "file":
        graph, params, by_output = load_onnx_with_weights(args.model, size, args.option, "run")
        names = {layer: name for name, layer in by_output.items()}
    else:
        graph = build_model(args.model, size, args.option)
    if len(graph.input_nodes()) != 1:
        raise ArchcostError(f"run: the model has {len(graph.input_nodes())} inputs; --input gives one")
    from archcost.commands._args import check_fits_memory
    from archcost.execute import Executor

    check_fits_memory(graph, batch, "run")
    result = Executor(graph, batch, args.device, args.seed, params=params).forward(x)
    outputs = {(names or {}).get(layer, layer): value for layer, value in result.outputs.items()}
    buffer = io.BytesIO()
    if out_path.suffix.lower() == ".npz":
        np.savez(buffer, **outputs)
    else:
        if len(outputs) != 1:
            raise ArchcostError(f"-o {args.output}: the model has {len(outputs)} outputs; write them to a .npz file")
        np.save(buffer, next(iter(outputs.values())), allow_pickle=False)
    write_atomic(out_path, buffer.getvalue())
    shapes = ", ".join(f"{name} {'x'.join(map(str, v.shape))}" for name, v in outputs.items())
    print(f"{args.model}: input {size}, batch {batch}, {weights} weights, device {args.device} -> {out_path} "
          f"({shapes})")
    return 0
