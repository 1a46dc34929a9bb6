"""Ops <-> plain values: how an op is spelt in a file.

An op is written as its ``kind`` (``conv``, ``maxpool``, ``fc``, ...) with its dataclass fields;
the lower-cased class name (``conv2d``, ``linear``) is accepted too, and every activation
function is an op name of its own (``relu`` is ``act: {fn: relu}``). The names are read from
``archcost.ops.OPS`` when asked for, so an op added there is readable and writable at once.
"""

from __future__ import annotations

import dataclasses
import difflib

from archcost import ops as ops_module
from archcost.errors import ArchcostError

_TYPES = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "tuple": lambda v: isinstance(v, (tuple, list)),
    "None": lambda v: v is None,
}


def op_names() -> dict[str, tuple[type, dict]]:
    """Every name an op may be written as -> (op class, fields it implies)."""
    names: dict[str, tuple[type, dict]] = {}
    for cls in ops_module.OPS:
        names.setdefault(cls.__name__.lower(), (cls, {}))
    for cls in ops_module.OPS:  # kinds win over class names
        names[cls.kind] = (cls, {})
    for fn in getattr(ops_module, "ACTIVATIONS", ()):
        names[fn] = (ops_module.Activation, {"fn": fn})
    return names


def _fields(cls) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if f.init]


def _check_type(cls, f: dataclasses.Field, value, where: str):
    """Check ``value`` against the field's annotation (e.g. ``int | tuple``) where it is simple."""
    annotation = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", "")
    kinds = [k.strip() for k in str(annotation).split("|")]
    if not kinds or any(k not in _TYPES for k in kinds):
        return value
    if isinstance(value, str) and "float" in kinds and "str" not in kinds:
        try:  # YAML 1.1 reads 1e-4 (no dot) as a string
            value = float(value)
        except ValueError:
            pass
    if not any(_TYPES[k](value) for k in kinds):
        raise ArchcostError(f"{where}: field {f.name!r} must be {' or '.join(kinds)}, got {value!r}")
    return value


def _tuples(value):
    if isinstance(value, (list, tuple)):
        return tuple(_tuples(v) for v in value)
    return value


def _lists(value):
    if isinstance(value, (list, tuple)):
        return [_lists(v) for v in value]
    return value


def make_op(name: str, fields, where: str):
    """Build the op written as ``name`` with ``fields`` (a mapping, a bare first-field value, or
    None). Errors name ``where`` and the problem in one line."""
    names = op_names()
    if name not in names:
        close = difflib.get_close_matches(name, list(names), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ArchcostError(f"{where}: unknown op {name!r}{hint}")
    cls, implied = names[name]
    declared = _fields(cls)
    if fields is None:
        fields = {}
    elif not isinstance(fields, dict):  # `conv: 64`, `input: [3, 32, 32]`: the first field
        free = [f for f in declared if f.name not in implied]
        if not free:
            raise ArchcostError(f"{where}: {name} has no fields, got {fields!r}")
        fields = {free[0].name: fields}
    known = {f.name: f for f in declared}
    for key in fields:
        if key not in known or key in implied:
            options = [k for k in known if k not in implied]
            raise ArchcostError(
                f"{where}: unknown field {key!r} for {name}; fields: {', '.join(options) or 'none'}"
            )
    kwargs = dict(implied)
    for key, value in fields.items():
        kwargs[key] = _tuples(_check_type(cls, known[key], value, where))
    missing = [f.name for f in declared if f.name not in kwargs and f.default is dataclasses.MISSING
               and f.default_factory is dataclasses.MISSING]
    if missing:
        raise ArchcostError(f"{where}: {name} needs field {missing[0]!r}")
    try:
        return cls(**kwargs)
    except ArchcostError as exc:
        raise ArchcostError(f"{where}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ArchcostError(f"{where}: bad fields for {name}: {exc}") from None


def _compact(value):
    """Shortest spelling of a normalised value: (3, 3) -> 3; (1, 1, 2, 2) -> [1, 2]."""
    if isinstance(value, tuple) and len(value) == 2 and value[0] == value[1]:
        return value[0]
    if isinstance(value, tuple) and len(value) == 4 and value[0] == value[1] and value[2] == value[3]:
        return value[0] if value[0] == value[2] else [value[0], value[2]]
    return _lists(value)


def op_to_fields(op, *, compact: bool = True) -> tuple[str, dict]:
    """(name, fields) that ``make_op`` turns back into an op equal to ``op``. ``compact`` leaves
    out fields at their default and shortens pairs; it is checked, never trusted."""
    cls = type(op)
    name = op.fn if isinstance(op, ops_module.Activation) else cls.kind
    implied = {"fn"} if isinstance(op, ops_module.Activation) else set()
    declared = [f for f in _fields(cls) if f.name not in implied]
    full = {f.name: _lists(getattr(op, f.name)) for f in declared}
    if not compact:
        return name, full
    try:
        fields = {}
        required = {f.name: getattr(op, f.name) for f in declared
                    if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
        base = cls(**{**{k: getattr(op, k) for k in implied}, **required})
        for f in declared:
            value = getattr(op, f.name)
            if f.name not in required and getattr(base, f.name) == value:
                continue
            short = _compact(value)
            trial = cls(**{**{k: getattr(op, k) for k in implied}, **required, f.name: _tuples(short)})
            fields[f.name] = short if getattr(trial, f.name) == value else _lists(value)
        if make_op(name, fields, "export") == op:
            return name, fields
    except (ArchcostError, TypeError, ValueError):
        pass
    return name, full


def op_to_dict(op) -> dict:
    """``{"op": name, **fields}`` with every field spelt out (node-link JSON)."""
    name, fields = op_to_fields(op, compact=False)
    return {"op": name, **fields}


def op_from_dict(data, where: str):
    if not isinstance(data, dict) or not isinstance(data.get("op"), str):
        raise ArchcostError(f"{where}: op must be a mapping with an 'op' name, got {data!r}")
    fields = {k: v for k, v in data.items() if k != "op"}
    return make_op(data["op"], fields, where)
