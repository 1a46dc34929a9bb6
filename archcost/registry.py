"""Model registry: names -> builders. Registration is a dict insert, nothing more.

A family module calls ``register(name, builder, description=..., source=..., **bound)`` for each
named variant, and may add ``register_pattern`` for parametric names such as ``wrn-28-10``.
"""

from __future__ import annotations

import difflib
import fnmatch
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from archcost.errors import ArchcostError


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable
    description: str
    source: str
    bound: dict = field(default_factory=dict)
    family: str = ""


@dataclass(frozen=True)
class PatternEntry:
    pattern: str  # a regular expression matched against the whole name
    example: str
    builder: Callable
    parse: Callable  # re.Match -> dict of builder options
    description: str
    source: str
    family: str = ""


MODELS: dict[str, ModelEntry] = {}
PATTERNS: list[PatternEntry] = []


def register(name: str, builder: Callable, *, description: str, source: str, **bound) -> None:
    if name in MODELS:
        raise ValueError(f"model {name!r} registered twice")
    family = builder.__module__.rsplit(".", 1)[-1]
    MODELS[name] = ModelEntry(name, builder, description, source, bound, family)


def register_pattern(
    pattern: str, builder: Callable, parse: Callable, *, example: str, description: str, source: str
) -> None:
    family = builder.__module__.rsplit(".", 1)[-1]
    PATTERNS.append(PatternEntry(pattern, example, builder, parse, description, source, family))


def _natural_key(name: str):
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def names(pattern: str | None = None) -> list[str]:
    """Registered names, naturally sorted (vgg11 before vgg16), filtered by a shell wildcard."""
    found = [n for n in MODELS if pattern is None or fnmatch.fnmatchcase(n, pattern)]
    return sorted(found, key=_natural_key)


def entries(pattern: str | None = None) -> list[ModelEntry]:
    return [MODELS[n] for n in names(pattern)]


def resolve(name: str) -> tuple[Callable, dict, str]:
    """(builder, bound options, description) for a registered or parametric name."""
    if name in MODELS:
        entry = MODELS[name]
        return entry.builder, dict(entry.bound), entry.description
    for entry in PATTERNS:
        match = re.fullmatch(entry.pattern, name)
        if match:
            return entry.builder, entry.parse(match), entry.description
    close = difflib.get_close_matches(name, list(MODELS) + [p.example for p in PATTERNS], n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see 'archcost list'"
    raise ArchcostError(f"unknown model {name!r}{hint}")


def options_of(builder: Callable) -> list[str]:
    return [p for p in inspect.signature(builder).parameters if p != "input_shape"]


def build(name: str, input_shape=None, **options):
    """Build the graph of a named model; ``options`` override the family builder's arguments."""
    builder, bound, description = resolve(name)
    known = options_of(builder)
    unknown = [key for key in options if key not in known]
    if unknown:
        raise ArchcostError(
            f"model {name!r}: unknown option {unknown[0]!r}; options: {', '.join(known) or 'none'}"
        )
    kwargs = {**bound, **options}
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    graph = builder(**kwargs)
    graph.name = name
    graph.description = graph.description or description
    return graph
