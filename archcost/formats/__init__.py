"""Files in and out: architecture specs (YAML, TOML, JSON), networkx node-link JSON, Graphviz DOT
and ONNX import. ``load(path)`` picks the reader by the file's suffix.

PyYAML is imported inside the functions that read or write specs, so building a zoo model never
imports it; ONNX files are decoded by archcost.formats.onnx_proto, without the onnx package.
"""

from __future__ import annotations

import pathlib

from archcost.errors import ArchcostError

SPEC_SUFFIXES = (".yaml", ".yml", ".toml", ".json")
ONNX_SUFFIXES = (".onnx",)
SUFFIXES = SPEC_SUFFIXES + ONNX_SUFFIXES


def is_model_file(text: str) -> bool:
    """True when ``text`` names a file archcost can read (by its suffix)."""
    return pathlib.Path(text).suffix.lower() in SUFFIXES


def load(path, input_shape=None, options: dict | None = None):
    """Build the Graph described by ``path`` (.yaml/.yml/.toml/.json spec, node-link .json,
    or .onnx). ``input_shape`` overrides the input size; ``options`` set the spec's ``params``."""
    path = pathlib.Path(path)
    if not path.is_file():
        # Say what is there instead: a directory named x.onnx is not a missing file.
        if path.is_dir():
            raise ArchcostError(f"{path}: is a directory, not a file")
        if path.exists():
            raise ArchcostError(f"{path}: not a regular file")
        raise ArchcostError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        from archcost.formats.onnx_import import load_onnx

        if options:
            raise ArchcostError(f"{path}: an ONNX model takes no -o options (got {', '.join(options)})")
        return load_onnx(path, input_shape=input_shape)
    if suffix in SPEC_SUFFIXES:
        from archcost.formats.spec import load_spec

        return load_spec(path, input_shape=input_shape, options=options or {})
    raise ArchcostError(f"{path}: unknown file type {suffix!r}; expected one of {', '.join(SUFFIXES)}")
