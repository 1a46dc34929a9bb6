"""The ``archcost`` command line. Each command imports what it needs inside its handler, so
``archcost table`` never imports numba or matplotlib."""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import sys

from archcost.errors import ArchcostError, one_line, quote


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        # "table: ..." rather than "archcost table: ...": main() already prints "archcost: error:".
        prog = self.prog.removeprefix("archcost").strip()
        raise ArchcostError(f"{prog}: {message}" if prog else message)

    def add_argument(self, *args, **kwargs):
        # argparse %-formats help texts ("%(default)s"): a literal % ("% of peak") would crash
        # `--help`. No help text here uses %-formatting, so every % is literal.
        if isinstance(kwargs.get("help"), str):
            kwargs["help"] = kwargs["help"].replace("%", "%%")
        return super().add_argument(*args, **kwargs)


class _SubParsers(argparse._SubParsersAction):
    def add_parser(self, name, **kwargs):
        if isinstance(kwargs.get("help"), str):
            kwargs["help"] = kwargs["help"].replace("%", "%%")
        return super().add_parser(name, **kwargs)


# Sizes: ASCII digits only (str.isdigit admits '²' and other scripts' digits, which int() refuses).
_DIGITS = re.compile(r"[0-9]+")
# The most input axes a size may have, and the largest value a size entry may take: beyond this,
# nothing can be analysed usefully and numbers would only slow every pass down.
MAX_SIZE_DIGITS = 30


def parse_input_shape(text: str) -> tuple[int, ...]:
    """'3x224x224' or '3,224,224' -> (3, 224, 224); 'x' or ',' separated positive ints."""
    if not isinstance(text, str) or not text.strip():
        raise ArchcostError("--input: expected CxHxW like 3x224x224 (or F for a vector), got an empty value")
    parts = re.split(r"[x,×]", text.strip().lower())
    ok = len(parts) in (1, 3) and all(_DIGITS.fullmatch(p) and len(p) <= MAX_SIZE_DIGITS and int(p) > 0
                                      for p in parts)
    if not ok:
        raise ArchcostError(f"--input: expected CxHxW like 3x224x224 (or F for a vector), "
                            f"each a positive integer of at most {MAX_SIZE_DIGITS} digits; got {quote(text)}")
    return tuple(int(p) for p in parts)


def parse_option(text: str) -> tuple[str, object]:
    """'depth=28' -> ('depth', 28); values may be ints, floats, true/false, none, or strings."""
    if "=" not in text:
        raise ArchcostError(f"--option: expected KEY=VALUE, got {quote(text)}")
    key, value = text.split("=", 1)
    if not key.isidentifier():
        raise ArchcostError(f"--option {quote(text)}: the key must be a name like depth, got {quote(key)}")
    lowered = value.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    if lowered in ("none", "null"):
        return key, None
    if _DIGITS.fullmatch(value.lstrip("+-")) and value.isascii():
        if len(value.lstrip("+-")) > MAX_SIZE_DIGITS:
            raise ArchcostError(f"--option {key}: {len(value):,}-digit integer; at most {MAX_SIZE_DIGITS} digits")
        return key, int(value)
    if value.isascii():
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if not math.isfinite(number):
                raise ArchcostError(f"--option {key}: expected a finite number, got {quote(value)}")
            return key, number
    return key, value


def build_model(name: str, input_text: str | None, options: list[str]):
    """A zoo name, or a file (.yaml/.yml/.toml/.json spec, node-link .json, .onnx), with --input
    and -o options applied (for a spec file, -o sets its params)."""
    input_shape = parse_input_shape(input_text) if input_text is not None else None
    option_values = {}
    for text in options:
        key, value = parse_option(text)
        if key in option_values:
            raise ArchcostError(f"--option {key}: given twice ({quote(option_values[key])} and {quote(value)})")
        option_values[key] = value
    from archcost import formats

    if formats.is_model_file(name):
        return formats.load(name, input_shape=input_shape, options=option_values)
    from archcost import zoo

    return zoo.build(name, input_shape=input_shape, **option_values)


def available_memory_bytes() -> int | None:
    """Memory the kernels may still take: MemAvailable from /proc/meminfo (Linux), else None."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def positive_int(text: str) -> int:
    """argparse type of counts such as --batch and --repeat: ASCII digits, at least 1."""
    if not _DIGITS.fullmatch(text.strip()) or len(text.strip()) > MAX_SIZE_DIGITS or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {quote(text)}")
    return int(text)


def dtype_name(text: str) -> str:
    """argparse type of --dtype: one of the analysis's storage types."""
    from archcost.analysis import DTYPE_BYTES

    if text not in DTYPE_BYTES:
        raise argparse.ArgumentTypeError(f"unknown dtype {quote(text)}; known: {', '.join(DTYPE_BYTES)}")
    return text


def check_fits_memory(graph, batch: int, command: str, copies: int = 1) -> None:
    """Refuse, in one line, a run whose arrays cannot fit in this machine's free memory: the
    peak of live float32 activations (``copies`` times, e.g. 2 when a float64 reference is kept
    beside each) plus the parameters, predicted by the analysis before anything is allocated.
    Without this, an enormous --batch is a MemoryError deep in numpy, or the OOM killer."""
    from archcost.analysis import analyze

    totals = analyze(graph, batch=batch).totals
    need = copies * totals["peak_activation_bytes"] + 2 * totals["param_bytes"]
    free = available_memory_bytes()
    if free is not None and need > free:
        raise ArchcostError(
            f"{command}: --batch {batch} with input {'x'.join(map(str, graph.shape(graph.input_nodes()[0])[1:]))} "
            f"needs about {need / 2**30:,.1f} GiB for activations and weights; {free / 2**30:,.1f} GiB is free "
            "(use a smaller --batch or --input)"
        )


def add_model_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    p.add_argument("model", nargs="+" if many else None, help="model name (see 'archcost list') or a .yaml/.toml/.json/.onnx file")
    p.add_argument("--input", metavar="CxHxW", help="input size per sample, e.g. 3x299x299")
    p.add_argument("--batch", type=positive_int, default=1, help="batch size N (default 1)")
    p.add_argument("--dtype", type=dtype_name, default="float32", help="float32 (default), float16, bfloat16, float64, int8")
    p.add_argument(
        "-o", "--option", action="append", default=[], metavar="KEY=VALUE",
        help="family option, e.g. -o depth=28 -o width=10 (repeatable)",
    )


def make_parser() -> argparse.ArgumentParser:
    import importlib
    import pkgutil

    from archcost import commands

    from importlib.metadata import PackageNotFoundError, version

    parser = _Parser(prog="archcost", description="What a CNN architecture costs, computed and proven.")
    try:
        own_version = version("archcost")
    except PackageNotFoundError:  # run from a source tree that was never installed
        own_version = "unknown (not installed)"
    parser.add_argument("--version", action="version", version=f"archcost {own_version}")
    parser.register("action", "parsers", _SubParsers)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser, metavar="COMMAND")
    for module in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"archcost.commands.{module.name}").add_parser(sub)
    return parser


def _error(message: str, code: int = 2) -> int:
    print(f"archcost: error: {one_line(message)}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    """Run one command. Bad input: one line on stderr and exit 2, never a traceback."""
    if hasattr(signal, "SIGXFSZ"):
        # Past a file-size limit, a write should fail with EFBIG (and be reported), not kill us.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        parser = make_parser()
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return _error("no command given; choose one of the commands above")
        return args.run(args)
    except ArchcostError as exc:
        return _error(str(exc))
    except BrokenPipeError:
        # The reader went away (`archcost list | head`): stop quietly, and keep Python from
        # complaining again while it flushes stdout at exit.
        with _suppress():
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return _error("interrupted", 130)
    except RecursionError:
        return _error("the input nests too deeply to read")
    except MemoryError:
        return _error("out of memory: the model (or --batch/--input) is too large for this machine")
    except OSError as exc:  # a file we were asked to read or write
        where = f"{exc.filename}: " if exc.filename else ""
        return _error(f"{where}{exc.strerror or exc}")
    except Exception as exc:  # a bug in archcost, not in the input: say so, in one line
        if os.environ.get("ARCHCOST_DEBUG"):
            raise
        return _error(f"internal error ({type(exc).__name__}: {exc}); please report it, "
                      "and rerun with ARCHCOST_DEBUG=1 for the traceback", 3)


def _suppress():
    import contextlib

    return contextlib.suppress(OSError)


if __name__ == "__main__":
    sys.exit(main())
