"""Design spaces: a YAML (or TOML/JSON) file naming a family builder, parameter grids, tied
parameters, constraints and a sampling rule, read into a ``Space`` (docs/sweeps.md).

A space is a finite grid: every parameter has a finite, ordered list of values, and the points
are the product of those lists in the file's order, the last parameter varying fastest (as
``itertools.product``). Each point therefore has a canonical index, which names it in the
results and fixes their order, however the points were chosen (enumerated or sampled), however
many workers computed them, and across resumed runs.

Every mistake in a space file is one ArchcostError naming the field (``parameters.depth``,
``constraints[1]``, ``model``...).
"""

from __future__ import annotations

import ast
import difflib
import inspect
import math
import pathlib
import random
from dataclasses import dataclass, field

from archcost.errors import ArchcostError, limit_from_env, quote

TOP_KEYS = ("name", "description", "model", "spec", "input", "batch", "dtype", "fixed", "parameters", "tied",
            "constraints", "sample", "accuracy")
# The computed quantities of a point: every total of archcost.analysis, two of
# archcost.training (one SGD step under the archcost saving policy: its MACs and its exact peak
# bytes) and the receptive field of the graph's output. Constraints may name them; every
# results file has a column for each.
TOTALS = ("layers", "params", "weights", "biases", "buffers", "macs", "other", "flops", "activations",
          "activation_bytes", "param_bytes", "buffer_bytes", "peak_activation_bytes")
TRAIN_TOTALS = ("train_step_macs", "train_peak_bytes")
QUANTITIES = (*TOTALS, *TRAIN_TOTALS, "rf_h", "rf_w")
# Columns every results file has besides the parameters (see results.columns()).
RESERVED = ("point", "status", "model", "accuracy", "same_as", "hash", "reason", *QUANTITIES)
# The most values one parameter may list, and the most points a sweep may enumerate or sample
# (ARCHCOST_MAX_SWEEP_POINTS overrides the latter): past these a space is a typo.
MAX_VALUES = 100_000
DEFAULT_MAX_POINTS = 10_000_000
_FUNCTIONS = ("min", "max", "int", "round")  # the calls archcost.formats.spec.evaluate allows


def max_points() -> int:
    return limit_from_env("ARCHCOST_MAX_SWEEP_POINTS", DEFAULT_MAX_POINTS)


@dataclass(frozen=True)
class Parameter:
    name: str
    values: tuple


@dataclass(frozen=True)
class Constraint:
    text: str
    names: frozenset  # the names it reads
    pre: bool  # reads parameters only: checked before the point is built


@dataclass(frozen=True)
class Space:
    name: str
    description: str
    source: str  # the file it came from (or "<space>")
    model: str | None  # a zoo name (registered or parametric), or None for a spec template
    spec_doc: dict | None  # the parsed spec template
    spec_source: str
    input_shape: tuple | None
    batch: int
    dtype: str
    fixed: dict
    parameters: tuple  # of Parameter, in the file's order
    tied: tuple  # of (name, expression text), evaluated in order
    constraints: tuple  # of Constraint
    sample: tuple | None  # (n, seed) from the file, or None: enumerate
    dataset: str
    metric: str
    accuracy_models: tuple | None  # explicit published models to match, or None: the family's
    total: int = field(init=False)

    def __post_init__(self):
        object.__setattr__(self, "total", math.prod(len(p.values) for p in self.parameters))

    @property
    def names(self) -> tuple:
        """The parameter columns: free parameters, then tied ones."""
        return tuple(p.name for p in self.parameters) + tuple(name for name, _ in self.tied)

    def decode(self, index: int) -> tuple:
        """The free parameters' values at a point's index."""
        out = []
        for p in reversed(self.parameters):
            index, r = divmod(index, len(p.values))
            out.append(p.values[r])
        return tuple(reversed(out))

    def encode(self, values) -> int:
        index = 0
        for p, v in zip(self.parameters, values):
            index = index * len(p.values) + p.values.index(v)
        return index

    def env(self, free: tuple) -> dict:
        """Fixed options, free and tied parameters of a point (tied ones evaluated in order)."""
        from archcost.formats.spec import substitute

        env = {**self.fixed, **dict(zip((p.name for p in self.parameters), free))}
        for name, text in self.tied:
            env[name] = substitute("$" + text, env, f"tied.{name}")
        return env

    def options(self, env: dict) -> dict:
        """What the builder is given for a point."""
        keep = set(self.fixed) | set(self.names)
        return {k: v for k, v in env.items() if k in keep}

    def select(self, n: int | None = None, seed: int | None = None) -> list[int]:
        """The indices of the points to compute, ascending: every point, or ``n`` distinct points
        drawn uniformly with a ``random.Random(seed)`` (the same for the same seed)."""
        if n is None and self.sample is not None:
            n, seed = self.sample[0], self.sample[1] if seed is None else seed
        limit = max_points()
        if n is None or n >= self.total:
            if self.total > limit:
                raise ArchcostError(
                    f"{self.source}: the space has {self.total:,} points, more than {limit:,} to enumerate; "
                    "sample some with -n N (or set ARCHCOST_MAX_SWEEP_POINTS)")
            return list(range(self.total))
        if n > limit:
            raise ArchcostError(f"-n {n:,}: more than {limit:,} points (set ARCHCOST_MAX_SWEEP_POINTS to raise it)")
        rng = random.Random(0 if seed is None else seed)
        if 2 * n >= self.total:
            return sorted(rng.sample(range(self.total), n))
        chosen: set = set()
        while len(chosen) < n:  # the total may be far past what range() can sample from
            chosen.add(rng.randrange(self.total))
        return sorted(chosen)


def cell(value) -> str:
    """A value as a CSV cell: how parameters are written and matched when a sweep resumes."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


# --- reading ---------------------------------------------------------------------------------
def builtin_dir():
    from importlib import resources

    return resources.files("archcost.data").joinpath("spaces")


def builtin_names() -> list[str]:
    try:
        return sorted(p.name[:-5] for p in builtin_dir().iterdir() if p.name.endswith(".yaml"))
    except (FileNotFoundError, NotADirectoryError):
        return []


def find_space(text: str) -> pathlib.Path:
    """A space file: an existing path, or the name of a built-in space (archcost/data/spaces)."""
    path = pathlib.Path(text)
    if path.is_file():
        return path
    if path.suffix.lower() in (".yaml", ".yml", ".toml", ".json") or "/" in text:
        raise ArchcostError(f"space {quote(text)}: no such file")
    names = builtin_names()
    if text in names:
        return pathlib.Path(str(builtin_dir().joinpath(f"{text}.yaml")))
    close = difflib.get_close_matches(text, names, n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    raise ArchcostError(f"space {quote(text)}: not a file nor a built-in space; {hint}built-in: {', '.join(names)}")


def load_space(text_or_path) -> Space:
    """Read a space file (a path, or a built-in space's name) into a Space."""
    from archcost.formats.spec import check_document_size, read_document

    path = find_space(str(text_or_path)) if not isinstance(text_or_path, pathlib.Path) else text_or_path
    doc = read_document(path)
    check_document_size(doc, str(path))
    return parse_space(doc, str(path), base=path.parent)


def parse_space(doc, source: str = "<space>", base: pathlib.Path | None = None) -> Space:
    try:
        return _parse(doc, source, base or pathlib.Path("."))
    except ArchcostError as exc:
        message = str(exc)
        raise ArchcostError(message if message.startswith(source) else f"{source}: {message}") from None


def _parse(doc, source: str, base: pathlib.Path) -> Space:
    if not isinstance(doc, dict):
        raise ArchcostError(f"a space is a mapping with 'parameters', got {type(doc).__name__}")
    for key in doc:
        if key not in TOP_KEYS:
            close = difflib.get_close_matches(str(key), TOP_KEYS, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ArchcostError(f"unknown key {quote(key)}{hint}; keys: {', '.join(TOP_KEYS)}")
    name = doc.get("name", pathlib.Path(source).stem)
    if not isinstance(name, str) or not name:
        raise ArchcostError(f"name: expected a word, got {quote(name)}")
    description = doc.get("description") or ""
    if not isinstance(description, str):
        raise ArchcostError(f"description: expected text, got {quote(description)}")

    model, spec_doc, spec_source, known, defaults = _family(doc, base)
    input_shape = _input(doc.get("input"))
    batch = doc.get("batch", 1)
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ArchcostError(f"batch: expected a positive integer, got {quote(batch)}")
    dtype = doc.get("dtype", "float32")
    from archcost.analysis import DTYPE_BYTES

    if dtype not in DTYPE_BYTES:
        raise ArchcostError(f"dtype: unknown {quote(dtype)}; known: {', '.join(DTYPE_BYTES)}")

    family = f"model {model!r}" if model else "the spec template"
    fixed = doc.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise ArchcostError("fixed: expected a mapping of option: value")
    for key, value in fixed.items():
        _check_name(f"fixed.{key}", key, known, family)
        _check_value(model, f"fixed.{key}", key, value)

    raw = doc.get("parameters")
    if not isinstance(raw, dict) or not raw:
        raise ArchcostError("parameters: expected a mapping of name: values (choices, range or log_range)")
    parameters = []
    for key, spec in raw.items():
        where = f"parameters.{key}"
        _check_name(where, key, known, family)
        if key in fixed:
            raise ArchcostError(f"{where}: also given in fixed")
        values = _values(where, spec)
        for value in {type(v): v for v in reversed(values)}.values():  # the check is by type: one each
            _check_value(model, where, key, value)
        parameters.append(Parameter(key, values))

    tied = []
    raw_tied = doc.get("tied") or {}
    if not isinstance(raw_tied, dict):
        raise ArchcostError("tied: expected a mapping of name: expression of other parameters")
    env_names = set(fixed) | set(raw)
    for key, expr in raw_tied.items():
        where = f"tied.{key}"
        _check_name(where, key, known, family)
        if key in env_names:
            raise ArchcostError(f"{where}: {quote(key)} is already a parameter or fixed option")
        if isinstance(expr, bool) or not isinstance(expr, (str, int, float)):
            raise ArchcostError(f"{where}: expected an expression such as 'round(128 / cardinality)', "
                                f"got {quote(expr)}")
        text = expr[1:] if isinstance(expr, str) and expr.startswith("$") else str(expr)
        _names_in(where, text, env_names, "parameter")
        tied.append((key, text))
        env_names.add(key)

    missing = [k for k, v in defaults.items() if v is None and k not in env_names]
    if missing:
        raise ArchcostError(f"spec: parameter {quote(missing[0])} has no value; give it in parameters, tied or fixed")

    constraints = []
    raw_constraints = doc.get("constraints") or []
    if isinstance(raw_constraints, str):
        raw_constraints = [raw_constraints]
    if not isinstance(raw_constraints, list):
        raise ArchcostError("constraints: expected a list of comparisons such as 'macs <= 600e6'")
    for i, text in enumerate(raw_constraints):
        where = f"constraints[{i}]"
        if not isinstance(text, str) or not text.strip():
            raise ArchcostError(f"{where}: expected a comparison such as 'macs <= 600e6', got {quote(text)}")
        names = _names_in(where, text, env_names | set(QUANTITIES), "quantity", comparison=True)
        constraints.append(Constraint(text.strip(), frozenset(names), pre=not (names & set(QUANTITIES))))

    sample = _sample(doc.get("sample"))
    dataset, metric, accuracy_models = _accuracy(doc.get("accuracy"))
    space = Space(name, description, source, model, spec_doc, spec_source, input_shape, batch, dtype, fixed,
                  tuple(parameters), tuple(tied), tuple(constraints), sample, dataset, metric, accuracy_models)
    return space


def _family(doc, base: pathlib.Path):
    """(model, spec_doc, spec_source, option names, {option: default or None if required})."""
    has_model, has_spec = "model" in doc, "spec" in doc
    if has_model == has_spec:
        raise ArchcostError("give either 'model' (a zoo name such as wrn) or 'spec' (a spec template), not "
                            + ("both" if has_model else "neither"))
    if has_model:
        model = doc["model"]
        if not isinstance(model, str) or not model:
            raise ArchcostError(f"model: expected a zoo name such as wrn or resnext50_32x4d, got {quote(model)}")
        from archcost import registry, zoo  # noqa: F401  (importing the zoo fills the registry)

        try:
            builder, bound, _ = registry.resolve(model)
        except ArchcostError as exc:
            raise ArchcostError(f"model: {exc}") from None
        params = inspect.signature(builder).parameters
        known = {k: (None if params[k].default is inspect.Parameter.empty else params[k].default)
                 for k in registry.options_of(builder)}
        return model, None, "", known, {}
    spec = doc["spec"]
    from archcost.formats.spec import _parse_params, check_document_size, read_document

    if isinstance(spec, str):
        path = pathlib.Path(spec)
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            raise ArchcostError(f"spec: no such file {quote(str(path))}")
        spec_doc, spec_source = read_document(path), str(path)
        check_document_size(spec_doc, spec_source)
    elif isinstance(spec, dict):
        spec_doc, spec_source = spec, "spec"
    else:
        raise ArchcostError(f"spec: expected a spec file name or an inline spec mapping, got {quote(spec)}")
    if not isinstance(spec_doc, dict):
        raise ArchcostError("spec: the template must be a mapping with 'params' and 'layers'")
    try:
        defaults = _parse_params(spec_doc.get("params"), "spec.params")
    except ArchcostError as exc:
        raise ArchcostError(str(exc)) from None
    if not defaults:
        raise ArchcostError("spec: the template has no 'params' to sweep over")
    return None, spec_doc, spec_source, dict(defaults), defaults


def _check_name(where: str, key, known: dict, family: str) -> None:
    if not isinstance(key, str) or not key.isidentifier():
        raise ArchcostError(f"{where}: a parameter name is a word like depth, got {quote(key)}")
    if key in RESERVED:
        raise ArchcostError(f"{where}: {quote(key)} names a results column; rename the parameter")
    if key not in known:
        close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ArchcostError(f"{where}: unknown parameter {quote(key)} of {family}; {hint}"
                            f"parameters: {', '.join(known) or 'none'}")


def _check_value(model, where: str, key: str, value) -> None:
    """A value the family builder refuses by type (width: 2.5 for an int option) fails here,
    once, rather than at every point."""
    if model is None:
        return
    from archcost import registry

    builder, _, _ = registry.resolve(model)
    try:
        registry.check_options(model, builder, {key: value})
    except ArchcostError as exc:
        raise ArchcostError(f"{where}: {exc}") from None


def _number(where: str, what: str, value):
    if isinstance(value, str):  # YAML 1.1 reads 1e6 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ArchcostError(f"{where}: {what} must be a finite number, got {quote(value)}")
    return int(value) if isinstance(value, float) and value.is_integer() and what == "step" else value


def _pair(where: str, key: str, value) -> tuple:
    if not isinstance(value, list) or len(value) != 2:
        raise ArchcostError(f"{where}: {key} must be [low, high], got {quote(value)}")
    return _number(where, f"{key} low", value[0]), _number(where, f"{key} high", value[1])


def _values(where: str, spec) -> tuple:
    if isinstance(spec, list):
        spec = {"choices": spec}
    if not isinstance(spec, dict):
        raise ArchcostError(f"{where}: expected a list of values, or a mapping with choices, range or log_range; "
                            f"got {quote(spec)}")
    kinds = [k for k in ("choices", "range", "log_range") if k in spec]
    if len(kinds) != 1:
        raise ArchcostError(f"{where}: give exactly one of choices, range, log_range")
    kind = kinds[0]
    allowed = {"choices": (), "range": ("step",), "log_range": ("num", "factor")}[kind]
    for key in spec:
        if key != kind and key not in allowed:
            raise ArchcostError(f"{where}: unknown key {quote(key)} for {kind}; keys: {', '.join((kind, *allowed))}")
    if kind == "choices":
        values = spec["choices"]
        if not isinstance(values, list):
            raise ArchcostError(f"{where}: choices must be a list, got {quote(values)}")
        if not values:
            raise ArchcostError(f"{where}: empty choices")
        for v in values:
            if not isinstance(v, (bool, int, float, str)) or (isinstance(v, float) and not math.isfinite(v)):
                raise ArchcostError(f"{where}: a value must be a number, a word or true/false, got {quote(v)}")
        if len(values) > MAX_VALUES:
            raise ArchcostError(f"{where}: more than {MAX_VALUES:,} choices")
        values = tuple(values)
    elif kind == "range":
        lo, hi = _pair(where, "range", spec["range"])
        step = _number(where, "step", spec.get("step", 1))
        if not all(isinstance(v, int) for v in (lo, hi, step)) or step < 1:
            raise ArchcostError(f"{where}: range takes integers and a positive integer step, got "
                                f"{quote(spec['range'])} step {quote(step)}")
        if lo > hi:
            raise ArchcostError(f"{where}: empty range [{lo}, {hi}]")
        if (hi - lo) // step + 1 > MAX_VALUES:
            raise ArchcostError(f"{where}: range [{lo}, {hi}] has more than {MAX_VALUES:,} values")
        values = tuple(range(lo, hi + 1, step))
    else:
        values = _log_range(where, spec)
    if kind == "choices":  # equal values (1 and 1.0), or values written alike in a CSV, are ambiguous
        seen: set = set()
        cells: set = set()
        for v in values:
            if cell(v) in cells or v in seen:
                raise ArchcostError(f"{where}: value {quote(v)} is listed twice")
            seen.add(v)
            cells.add(cell(v))
    return values


def _log_range(where: str, spec) -> tuple:
    lo, hi = _pair(where, "log_range", spec["log_range"])
    if lo <= 0:
        raise ArchcostError(f"{where}: log_range needs a low end > 0, got {lo}")
    if lo > hi:
        raise ArchcostError(f"{where}: empty range [{lo}, {hi}]")
    integer = isinstance(lo, int) and isinstance(hi, int)
    if ("num" in spec) == ("factor" in spec):
        raise ArchcostError(f"{where}: log_range needs either num (how many values) or factor (the ratio), not both")
    if "num" in spec:
        num = spec["num"]
        if isinstance(num, bool) or not isinstance(num, int) or not 1 <= num <= MAX_VALUES:
            raise ArchcostError(f"{where}: num must be an integer from 1 to {MAX_VALUES:,}, got {quote(num)}")
        if num == 1:
            raw = [lo]
        else:
            ratio = math.log(hi / lo) / (num - 1)
            raw = [lo * math.exp(ratio * i) for i in range(num)]
            raw[-1] = hi
    else:
        factor = _number(where, "factor", spec["factor"])
        if factor <= 1:
            raise ArchcostError(f"{where}: factor must be > 1, got {factor}")
        if math.log(hi / lo) / math.log(factor) + 1 > MAX_VALUES:
            raise ArchcostError(f"{where}: log_range has more than {MAX_VALUES:,} values")
        raw, v = [], lo
        while v <= hi * (1 + 1e-12):
            raw.append(v)
            v = v * factor
        integer = integer and isinstance(factor, int)
    if integer:  # integer ends: integer values (rounded, repeats dropped)
        values = tuple(dict.fromkeys(int(round(v)) for v in raw))
    else:  # six significant digits, so that files and messages show 0.353553, not 0.35355339059327373
        values = tuple(dict.fromkeys(float(f"{v:.6g}") for v in raw))
    return values


def _names_in(where: str, text: str, known: set, word: str, comparison: bool = False) -> set:
    """The names an expression reads; an unknown one is an error naming the field."""
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise ArchcostError(f"{where}: bad expression {quote(text)}") from None
    if comparison and not (isinstance(tree.body, (ast.Compare, ast.BoolOp))
                           or (isinstance(tree.body, ast.UnaryOp) and isinstance(tree.body.op, ast.Not))):
        raise ArchcostError(f"{where}: expected a comparison such as 'macs <= 600e6', got {quote(text)}")
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            if id(node) in calls:
                if node.id not in _FUNCTIONS:
                    raise ArchcostError(f"{where}: {quote(text)} calls {node.id}(); only {', '.join(_FUNCTIONS)}")
                continue
            if node.id not in known:
                close = difflib.get_close_matches(node.id, sorted(known), n=1, cutoff=0.6)
                hint = f"did you mean {close[0]}? " if close else ""
                raise ArchcostError(f"{where}: unknown {word} {quote(node.id)} in {quote(text)}; {hint}"
                                    f"known: {', '.join(sorted(known))}")
            names.add(node.id)
    return names


def _input(value):
    if value is None:
        return None
    if isinstance(value, str):
        from archcost.loading import parse_input_shape

        try:
            return parse_input_shape(value)
        except ArchcostError as exc:
            raise ArchcostError(f"input: {str(exc).removeprefix('--input: ')}") from None
    if (isinstance(value, list) and len(value) in (1, 3)
            and all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in value)):
        return tuple(value)
    raise ArchcostError(f"input: expected [C, H, W] like [3, 32, 32], got {quote(value)}")


def _sample(value):
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"n", "seed"} or "n" not in value:
        raise ArchcostError(f"sample: expected {{n: POINTS, seed: SEED}}, got {quote(value)}")
    n, seed = value["n"], value.get("seed", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ArchcostError(f"sample.n: expected a positive integer, got {quote(n)}")
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ArchcostError(f"sample.seed: expected a non-negative integer, got {quote(seed)}")
    return n, seed


def _accuracy(value):
    from archcost.accuracy import DATASETS

    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ArchcostError("accuracy: expected {dataset: D, metric: top1|top5, models: [...]}")
    for key in value:
        if key not in ("dataset", "metric", "models"):
            raise ArchcostError(f"accuracy: unknown key {quote(key)}; keys: dataset, metric, models")
    dataset, metric = value.get("dataset", "imagenet"), value.get("metric", "top1")
    if dataset not in DATASETS:
        raise ArchcostError(f"accuracy.dataset: expected one of {', '.join(DATASETS)}, got {quote(dataset)}")
    if metric not in ("top1", "top5"):
        raise ArchcostError(f"accuracy.metric: expected top1 or top5, got {quote(metric)}")
    models = value.get("models")
    if models is not None:
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ArchcostError("accuracy.models: expected a list of zoo names")
        models = tuple(models)
    return dataset, metric, models
