"""Results files: one row per point, in point order, written atomically as CSV, JSON or Parquet
(Parquet only where pyarrow is installed), and read back to resume a sweep.

Columns: ``point`` (the point's index in the space), the free and tied parameters, ``status``,
every quantity (archcost.sweep.space.QUANTITIES), ``model`` and ``accuracy`` (where the point's
graph is a published model's: accuracy.csv, matched by structural hash), ``same_as`` (for a
duplicate: the point whose graph it repeats), ``hash`` (the structural hash) and ``reason`` (why
a point was rejected or skipped).

Statuses: ``ok`` (built, passes the constraints, the first point with its graph), ``duplicate``
(the same graph as an earlier point, ``same_as``; its quantities are repeated), ``rejected``
(fails a constraint, ``reason``; no quantities when a constraint on parameters alone failed, as
the point was never built) and ``skipped`` (could not be built: ``reason``, one line).

Which of two identical graphs is the original, and whether a point passes the constraints, is
decided here, from the records, every time a file is written: so the file depends on the space
and the points only, never on workers, batches or how often the sweep was resumed.
"""

from __future__ import annotations

import csv
import io
import json
import pathlib

from archcost.errors import ArchcostError, quote
from archcost.sweep.engine import BUILT, REJECTED, SKIPPED, Record, _reason, check_constraints, verdict
from archcost.sweep.space import QUANTITIES, Space, cell

SUFFIXES = (".csv", ".json", ".parquet")
STATUSES = ("ok", "duplicate", "rejected", "skipped")
NUMERIC = (*QUANTITIES, "point", "accuracy", "same_as")


def columns(space: Space) -> tuple:
    return ("point", *space.names, "status", *QUANTITIES, "model", "accuracy", "same_as", "hash", "reason")


def check_output(path) -> pathlib.Path:
    """The results path, checked before any work: a writable place, a known suffix, and pyarrow
    importable for .parquet."""
    from archcost.outputs import check_output_path

    path = check_output_path(path, "-o", SUFFIXES)
    if path.suffix.lower() == ".parquet":
        _pyarrow("-o " + quote(str(path)))
    return path


def _pyarrow(where: str):
    try:
        import pyarrow
        import pyarrow.parquet
    except ImportError:
        raise ArchcostError(f"{where}: writing Parquet needs pyarrow (pip install pyarrow); "
                            "use .csv or .json") from None
    return pyarrow


# --- records -> rows ----------------------------------------------------------------------------
def published(space: Space) -> dict:
    """{structural hash: (model, accuracy %)} of the published models (accuracy.csv) a point of
    this space can be: by default the ones built by the space's family builder, each built with
    the space's input and fixed options (a CIFAR-100 space's WRN-28-10 has 100 classes)."""
    from archcost import accuracy, registry, zoo
    from archcost.sweep.engine import structural_hash

    if space.accuracy_models is None and space.model is None:
        return {}
    own = registry.resolve(space.model)[0] if space.model is not None else None
    names = space.accuracy_models
    if names is None:
        names = accuracy.models_with(space.metric, space.dataset)
    table: dict = {}
    for name in names:
        try:
            builder, bound, _ = registry.resolve(name)
        except ArchcostError:
            if space.accuracy_models is not None:
                raise ArchcostError(f"accuracy.models: unknown model {quote(name)}") from None
            continue  # listed in accuracy.csv, not in the zoo
        if space.accuracy_models is None and builder is not own:
            continue
        row = accuracy.best(name, space.metric, space.dataset)
        if row is None:
            continue
        known = registry.options_of(builder)
        options = {k: v for k, v in space.fixed.items() if k in known and k not in bound}
        try:
            graph = zoo.build(name, input_shape=space.input_shape, **options)
        except ArchcostError:
            continue
        table.setdefault(structural_hash(graph), (name, row.accuracy))
    return table


def rows(space: Space, records: dict, models: dict) -> list[list]:
    """The results rows, in point order."""
    out = []
    first: dict = {}
    blank = (None,) * len(QUANTITIES)
    for index in sorted(records):
        r = records[index]
        status, same_as = r.code, None
        if r.code == BUILT:
            same_as = first.setdefault(r.hash, index)
            status, same_as = ("ok", None) if same_as == index else ("duplicate", same_as)
        model, acc = models.get(r.hash, ("", None)) if r.hash else ("", None)
        out.append([index, *r.values, status, *(r.quantities or blank), model, acc, same_as, r.hash, r.reason])
    return out


# --- writing --------------------------------------------------------------------------------------
def write(path, space: Space, table: list[list]) -> pathlib.Path:
    from archcost.outputs import write_atomic

    path = pathlib.Path(path)
    cols = columns(space)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(cols)
        for row in table:
            w.writerow([cell(v) for v in row])
        return write_atomic(path, buf.getvalue())
    if suffix == ".json":
        lines = [f'{{"space": {json.dumps(space.name)}, "columns": {json.dumps(list(cols))}, "rows": [']
        body = [json.dumps(dict(zip(cols, row))) for row in table]
        text = "\n".join(lines + [",\n".join(body), "]}"]) + "\n"
        return write_atomic(path, text)
    pa = _pyarrow("-o " + quote(str(path)))
    import pyarrow.parquet as pq

    arrays = []
    for j, name in enumerate(cols):
        values = [row[j] for row in table]
        arrays.append(_arrow_column(pa, name, values, exact=name in space.names))
    data = pa.table(arrays, names=list(cols))
    sink = io.BytesIO()
    pq.write_table(data, sink)
    return write_atomic(path, sink.getvalue())


def _arrow_column(pa, name: str, values: list, exact: bool):
    """A typed column; a parameter column (``exact``) whose values mix ints and floats is
    written as text, so that 1 reads back as 1 (not 1.0) when the sweep resumes."""
    present = [v for v in values if v is not None]
    if present and all(isinstance(v, bool) for v in present):
        kind = pa.bool_()
    elif present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        if any(v.bit_length() > 63 for v in present):
            raise ArchcostError(f"-o: column {name} holds an integer past 64 bits; write .csv or .json")
        kind = pa.int64()
    elif present and all(isinstance(v, float) if exact else isinstance(v, (int, float)) and not isinstance(v, bool)
                         for v in present):
        kind, values = pa.float64(), [None if v is None else float(v) for v in values]
    elif not present and (name in NUMERIC):
        kind = pa.int64() if name != "accuracy" else pa.float64()
    else:
        kind, values = pa.string(), [None if v is None else cell(v) for v in values]
    return pa.array(values, type=kind)


# --- reading --------------------------------------------------------------------------------------
def read_table(path, flag: str = "-o") -> tuple[tuple, list[dict]]:
    """(columns, rows as dicts) of a results file; values are strings for CSV, typed otherwise."""
    path = pathlib.Path(path)
    where = f"{flag} {quote(str(path))}"
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            with open(path, newline="", encoding="utf-8") as f:
                reader = csv.DictReader(f)
                table = list(reader)
                return tuple(reader.fieldnames or ()), table
        if suffix == ".json":
            doc = json.loads(path.read_text(encoding="utf-8"))
            if (not isinstance(doc, dict) or not isinstance(doc.get("columns"), list)
                    or not isinstance(doc.get("rows"), list) or not all(isinstance(r, dict) for r in doc["rows"])):
                raise ArchcostError(f"{where}: not a sweep results file (expected columns and rows)")
            return tuple(doc["columns"]), doc["rows"]
        if suffix == ".parquet":
            _pyarrow(where)
            import pyarrow.parquet as pq

            data = pq.read_table(path)
            return tuple(data.column_names), data.to_pylist()
    except ArchcostError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, csv.Error) as exc:
        raise ArchcostError(f"{where}: cannot read it as sweep results: {' '.join(str(exc).split())}") from None
    except Exception as exc:  # noqa: BLE001 -- pyarrow's own errors
        raise ArchcostError(f"{where}: cannot read it as sweep results: {type(exc).__name__}: {exc}") from None
    raise ArchcostError(f"{where}: expected a file name ending in {', '.join(SUFFIXES)}")


def load_records(space: Space, path) -> dict:
    """The records of a results file written for this space, to resume from: every row is
    checked against the space (its parameters are points of it, at the index the file says) and
    given the current constraints' verdict. A row rejected by a constraint on parameters that
    now passes is left out, to be computed."""
    path = pathlib.Path(path)
    where = f"-o {quote(str(path))}"
    cols, table = read_table(path)
    expected = columns(space)
    if tuple(cols) != expected:
        raise ArchcostError(f"{where}: holds other columns than this space's results ({', '.join(map(str, cols[:8]))}"
                            f"{', ...' if len(cols) > 8 else ''}); give another file name, or delete it")
    lookup = [{cell(v): v for v in p.values} for p in space.parameters]
    records: dict = {}
    for line, row in enumerate(table, start=2):
        at = f"{where} row {line - 1}"
        free = []
        for p, values in zip(space.parameters, lookup):
            text = cell(row.get(p.name))
            if text not in values:
                raise ArchcostError(f"{at}: {p.name}={quote(text)} is not a value of parameters.{p.name}; the file "
                                    "holds another sweep: give another file name, or delete it")
            free.append(values[text])
        free = tuple(free)
        index = space.encode(free)
        if cell(row.get("point")) != str(index):
            raise ArchcostError(f"{at}: point {quote(cell(row.get('point')))} is not where this space puts "
                                f"{', '.join(f'{p.name}={v!r}' for p, v in zip(space.parameters, free))} "
                                f"(point {index}); give another file name, or delete it")
        if index in records:
            raise ArchcostError(f"{at}: point {index} is listed twice")
        status = cell(row.get("status"))
        if status not in STATUSES:
            raise ArchcostError(f"{at}: unknown status {quote(status)}")
        digest, reason = cell(row.get("hash")), cell(row.get("reason"))
        try:
            found = tuple(int(cell(row.get(q))) for q in QUANTITIES) if digest else None
        except ValueError:
            raise ArchcostError(f"{at}: the quantities are not integers") from None
        try:
            env = space.env(free)
        except ArchcostError as exc:
            records[index] = Record(index, free + (None,) * len(space.tied), SKIPPED, _reason(exc), "", None)
            continue
        values = free + tuple(env[name] for name, _ in space.tied)
        if status == "skipped":
            records[index] = Record(index, values, SKIPPED, reason, digest, found)
            continue
        try:
            why = check_constraints(space, env, pre=True)
        except ArchcostError as exc:
            records[index] = Record(index, values, SKIPPED, _reason(exc), "", None)
            continue
        if why:
            records[index] = Record(index, values, REJECTED, why, "", None)
            continue
        if found is None:
            if status != "rejected":
                raise ArchcostError(f"{at}: status {status} without a hash and quantities")
            continue  # rejected before by a constraint on parameters that now passes: compute it
        records[index] = verdict(space, index, values, env, digest, found)
    return records


def numbers(path, quantity: str, flag: str) -> list[float]:
    """The values of one column over the ok rows of a results file (for an EDF)."""
    cols, table = read_table(path, flag)
    if quantity not in cols:
        raise ArchcostError(f"{flag} {quote(str(path))}: no column {quote(quantity)}")
    out = []
    for row in table:
        if cell(row.get("status")) != "ok":
            continue
        text = cell(row.get(quantity))
        if text == "":
            continue
        try:
            out.append(float(text))
        except ValueError:
            raise ArchcostError(f"{flag} {quote(str(path))}: column {quantity} holds {quote(text)}, "
                                "not a number") from None
    return out
