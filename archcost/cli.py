"""The ``archcost`` command line. Each command imports what it needs inside its handler, so
``archcost table`` never imports numba or matplotlib."""

from __future__ import annotations

import argparse
import re
import sys

from archcost.errors import ArchcostError


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2, no usage dump
        raise ArchcostError(f"{self.prog}: {message}")


def parse_input_shape(text: str) -> tuple[int, ...]:
    """'3x224x224' or '3,224,224' -> (3, 224, 224); 'x' or ',' separated positive ints."""
    parts = re.split(r"[x,×]", text.strip().lower())
    if not parts or not all(p.isdigit() and int(p) > 0 for p in parts) or len(parts) not in (1, 3):
        raise ArchcostError(f"--input: expected CxHxW like 3x224x224 (or F for a vector), got {text!r}")
    return tuple(int(p) for p in parts)


def parse_option(text: str) -> tuple[str, object]:
    """'depth=28' -> ('depth', 28); values may be ints, floats, true/false, or strings."""
    if "=" not in text:
        raise ArchcostError(f"--option: expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    lowered = value.lower()
    if lowered in ("true", "false"):
        return key, lowered == "true"
    if lowered in ("none", "null"):
        return key, None
    for cast in (int, float):
        try:
            return key, cast(value)
        except ValueError:
            pass
    return key, value


def build_model(name: str, input_text: str | None, options: list[str]):
    """A zoo name, or a file (.yaml/.yml/.toml/.json spec, node-link .json, .onnx), with --input
    and -o options applied (for a spec file, -o sets its params)."""
    input_shape = parse_input_shape(input_text) if input_text else None
    option_values = dict(parse_option(o) for o in options)
    from archcost import formats

    if formats.is_model_file(name):
        return formats.load(name, input_shape=input_shape, options=option_values)
    from archcost import zoo

    return zoo.build(name, input_shape=input_shape, **option_values)


def add_model_args(p: argparse.ArgumentParser, many: bool = False) -> None:
    p.add_argument("model", nargs="+" if many else None, help="model name (see 'archcost list') or a .yaml/.toml/.json/.onnx file")
    p.add_argument("--input", metavar="CxHxW", help="input size per sample, e.g. 3x299x299")
    p.add_argument("--batch", type=int, default=1, help="batch size N (default 1)")
    p.add_argument("--dtype", default="float32", help="float32 (default), float16, bfloat16, float64, int8")
    p.add_argument(
        "-o", "--option", action="append", default=[], metavar="KEY=VALUE",
        help="family option, e.g. -o depth=28 -o width=10 (repeatable)",
    )


def make_parser() -> argparse.ArgumentParser:
    import importlib
    import pkgutil

    from archcost import commands

    parser = _Parser(prog="archcost", description="What a CNN architecture costs, computed and proven.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for module in pkgutil.iter_modules(commands.__path__):
        importlib.import_module(f"archcost.commands.{module.name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    try:
        args = make_parser().parse_args(argv)
        return args.run(args)
    except ArchcostError as exc:
        print(f"archcost: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
