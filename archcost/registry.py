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

from archcost.errors import ArchcostError, quote


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
    raise ArchcostError(f"unknown model {quote(name)}{hint}")


def options_of(builder: Callable) -> list[str]:
    return [p for p in inspect.signature(builder).parameters if p != "input_shape"]


# What an option must be, judged by the builder's default: (type of the default, what to call it,
# which values fit). bool before int: True is an int to Python, not to a user.
_OPTION_KINDS = (
    (bool, "true or false", lambda v: isinstance(v, bool)),
    (int, "an integer", lambda v: isinstance(v, int) and not isinstance(v, bool)),
    (float, "a number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)),
    (str, "a word", lambda v: isinstance(v, str)),
)


def _option_kind(default):
    """(word, fits) for a default of a known kind, else None (anything goes)."""
    return next(((word, fits) for kind, word, fits in _OPTION_KINDS if isinstance(default, kind)), None)


def check_options(name: str, builder: Callable, options: dict) -> None:
    """Refuse an option the builder does not take, or one whose value is not the kind its
    default is (``-o num_classes=none``), naming the option, before the builder runs."""
    known = options_of(builder)
    unknown = [key for key in options if key not in known]
    if unknown:
        raise ArchcostError(
            f"model {quote(name)}: unknown option {quote(unknown[0])}; options: {', '.join(known) or 'none'}"
        )
    params = inspect.signature(builder).parameters
    for key, value in options.items():
        default = params[key].default
        if default is inspect.Parameter.empty:
            continue
        if default is None:
            if value is None or str(params[key].annotation).replace(" ", "") != "int|None":
                continue
            word, fits = _option_kind(0)
            if not fits(value):
                raise ArchcostError(f"model {quote(name)}: option {key} must be {word} or none, got {quote(value)}")
            continue
        kind = _option_kind(default)
        if kind is not None and not kind[1](value):
            raise ArchcostError(
                f"model {quote(name)}: option {key} must be {kind[0]} (like its default "
                f"{default!r}), got {quote(value)}"
            )


# What a family builder raises when an option it was given makes no sense to its arithmetic
# (depth=0 dividing by zero, a negative width in range()): reported as bad options, not as a bug.
_OPTION_FAILURES = (ArithmeticError, TypeError, ValueError, IndexError, KeyError)


def build(name: str, input_shape=None, **options):
    """Build the graph of a named model; ``options`` override the family builder's arguments."""
    builder, bound, description = resolve(name)
    check_options(name, builder, options)
    kwargs = {**bound, **options}
    if input_shape is not None:
        kwargs["input_shape"] = tuple(input_shape)
    given = ", ".join(f"{k}={quote(v)}" for k, v in options.items())
    asked = ", ".join(([f"input {'x'.join(map(str, input_shape))}"] if input_shape is not None else [])
                      + ([given] if given else []))
    try:
        graph = builder(**kwargs)
    except ArchcostError as exc:
        # Name the model and the options that led here: a builder's message names a layer
        # field ("Linear: out_features ...") or its family, not what the user typed.
        raise ArchcostError(f"model {quote(name)}{' with ' + given if given else ''}: {exc}") from None
    except _OPTION_FAILURES as exc:
        if not asked:
            raise  # the builder's own defaults failed: a bug, not bad input
        # e.g. a vector --input for a model that reads its height and width from it
        raise ArchcostError(f"model {quote(name)} with {asked}: cannot build ({type(exc).__name__}: {exc})") from None
    # With options, the graph is not the registered variant: say what was built, in the name
    # every report prints ("resnet50 (depth=18)"), not the registered name over other numbers.
    graph.name = f"{name} ({given})" if options else name
    description = graph.description or description
    graph.description = f"{description}; changed by {given}" if options else description
    return graph
