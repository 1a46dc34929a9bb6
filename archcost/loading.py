"""Loading a model the way the commands are asked for one: a zoo name or a model file (spec,
node-link JSON, ONNX), with ``--input CxHxW`` and ``-o KEY=VALUE`` options parsed and checked.

Data flows cli -> commands -> loading -> zoo / formats; nothing here knows about argparse."""

from __future__ import annotations

import math
import pathlib
import re

from archcost.errors import ArchcostError, quote

# Sizes: ASCII digits only (str.isdigit admits '²' and other scripts' digits, which int() refuses).
ASCII_DIGITS = re.compile(r"[0-9]+")
# The most input axes a size may have, and the largest value a size entry may take: beyond this,
# nothing can be analysed usefully and numbers would only slow every pass down.
MAX_SIZE_DIGITS = 30


def parse_input_shape(text: str) -> tuple[int, ...]:
    """'3x224x224' or '3,224,224' -> (3, 224, 224); 'x' or ',' separated positive ints."""
    if not isinstance(text, str) or not text.strip():
        raise ArchcostError("--input: expected CxHxW like 3x224x224 (or F for a vector), got an empty value")
    parts = re.split(r"[x,×]", text.strip().lower())
    ok = len(parts) in (1, 3) and all(ASCII_DIGITS.fullmatch(p) and len(p) <= MAX_SIZE_DIGITS and int(p) > 0
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
    if ASCII_DIGITS.fullmatch(value.lstrip("+-")) and value.isascii():
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


def load_onnx_with_weights(name: str, input_text: str | None, options: list[str], command: str):
    """An ONNX file's graph, its own weights per layer and {graph output: layer}, for
    ``--weights file``: --input applies as for any model; -o options do not exist for ONNX."""
    from archcost import formats

    if pathlib.Path(name).suffix.lower() not in formats.ONNX_SUFFIXES:
        raise ArchcostError(f"{command}: --weights file reads an ONNX file's initializers; {quote(name)} is not "
                            f"an .onnx file")
    if options:
        raise ArchcostError(f"{name}: an ONNX model takes no -o options (got {', '.join(options)})")
    from archcost.formats.onnx_import import load_onnx_weights

    input_shape = parse_input_shape(input_text) if input_text is not None else None
    return load_onnx_weights(name, input_shape)


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
