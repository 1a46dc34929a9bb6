"""Design-space sweeps (docs/sweeps.md): every point of a space of architectures, built and
analysed, one row each, with Pareto fronts and empirical distribution functions over them.

    from archcost import sweep

    space = sweep.load_space("wrn_cifar")             # a file, or a built-in space's name
    outcome = sweep.run(space, "wrn.csv", workers=2)  # resumable: rerun to finish or extend it
    front = sweep.pareto(outcome.table(), "params", "accuracy")

Only ``archcost sweep`` imports this package.
"""

from __future__ import annotations

import math
import pathlib
import time
from dataclasses import dataclass

from archcost.errors import ArchcostError, quote
from archcost.sweep.engine import Record, default_workers, evaluate_points, structural_hash
from archcost.sweep.results import check_output, columns, load_records, published, rows, write
from archcost.sweep.space import QUANTITIES, Space, builtin_names, find_space, load_space, parse_space

__all__ = [
    "QUANTITIES", "Outcome", "Record", "Space", "builtin_names", "columns", "default_workers", "edf",
    "evaluate_points", "find_space", "load_space", "pareto", "parse_space", "quantiles", "run", "structural_hash",
]


@dataclass
class Outcome:
    path: pathlib.Path
    columns: tuple
    rows: list  # lists in column order, in point order
    selected: int  # points chosen (enumerated or sampled) this run
    computed: int  # of which computed now (the others were in the file already)
    kept: int  # rows read from the file
    seconds: float

    def table(self) -> list[dict]:
        return [dict(zip(self.columns, row)) for row in self.rows]

    def counts(self) -> dict:
        j = self.columns.index("status")
        out = {s: 0 for s in ("ok", "duplicate", "rejected", "skipped")}
        for row in self.rows:
            out[row[j]] += 1
        return out


class Progress:
    """A progress bar on a terminal (redrawn at most 10 times a second); elsewhere (a log file)
    one line every 30 seconds."""

    def __init__(self, stream, total: int, done: int, label: str):
        self.stream, self.total, self.done, self.label = stream, total, done, label
        self.start_done, self.start = done, time.monotonic()
        self.tty = bool(stream is not None and getattr(stream, "isatty", lambda: False)())
        self.last = 0.0 if self.tty else self.start
        self.drawn = False

    def advance(self, k: int) -> None:
        self.done += k
        if self.stream is None:
            return
        now = time.monotonic()
        if now - self.last < (0.1 if self.tty else 30.0) and self.done < self.total:
            return
        self.last = now
        rate = (self.done - self.start_done) / max(now - self.start, 1e-9)
        left = (self.total - self.done) / rate if rate > 0 else math.inf
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        bar = "#" * filled + "." * (width - filled)
        eta = f", {_duration(left)} left" if self.done < self.total and math.isfinite(left) else ""
        text = f"{self.label} [{bar}] {self.done:,}/{self.total:,} points, {rate:,.1f} points/s{eta}"
        if self.tty:
            self.stream.write("\r" + text + "\x1b[K")
            self.drawn = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


class _Checkpoint:
    """Rewrites the results file (atomically) while a long sweep runs, so that an interrupted
    one resumes from there: first after 10 s, then at intervals 20 times as long as the last
    write took (at least 10 s), which keeps the writing under 5% of the run."""

    def __init__(self, path, space, models):
        self.path, self.space, self.models = path, space, models
        self.next = time.monotonic() + 10.0
        self.dirty = False

    def maybe(self, records) -> None:
        self.dirty = True
        if time.monotonic() >= self.next:
            self.save(records)

    def save(self, records) -> None:
        if not self.dirty:
            return
        start = time.monotonic()
        write(self.path, self.space, rows(self.space, records, self.models))
        took = time.monotonic() - start
        self.next = time.monotonic() + max(10.0, 20 * took)
        self.dirty = False


def run(space: Space, output, *, n: int | None = None, seed: int | None = None, workers: int | None = None,
        dask: str | None = None, chunk: int | None = None, progress=None) -> Outcome:
    """Compute the points of ``space`` (all, or ``n`` sampled with ``seed``) not yet in the results
    file ``output``, and write it with every row, in point order. ``workers``: processes (default
    all cores; 1 computes in this process); ``dask``: a scheduler address, or 'local' for a
    LocalCluster of ``workers`` processes. ``progress``: a stream for the progress bar, or None."""
    start = time.monotonic()
    path = check_output(output)
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ArchcostError(f"--workers: expected a positive integer, got {quote(workers)}")
    if chunk is not None and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1):
        raise ArchcostError(f"--chunk: expected a positive integer, got {quote(chunk)}")
    if dask is not None and dask != "local" and "://" not in dask and ":" not in dask:
        raise ArchcostError(f"--dask: expected a scheduler address such as tcp://host:8786, or local; "
                            f"got {quote(dask)}")
    selected = space.select(n, seed)
    records: dict = {}
    if path.exists() and path.stat().st_size > 0:
        records = load_records(space, path)
    kept = len(records)
    pending = [i for i in selected if i not in records]
    models = published(space)
    bar = Progress(progress, len(selected), len(selected) - len(pending), f"sweep {space.name}")
    checkpoint = _Checkpoint(path, space, models)

    def on_records(batch: list[Record]) -> None:
        for r in batch:
            records[r.index] = r
        bar.advance(len(batch))
        checkpoint.maybe(records)

    try:
        if not pending:
            pass
        elif dask is not None:
            from archcost.sweep.engine import run_dask

            run_dask(space, pending, dask, workers, chunk, on_records)
        else:
            from archcost.sweep.engine import run_local

            run_local(space, pending, workers, chunk, on_records)
    except BaseException:
        bar.close()
        checkpoint.save(records)  # what is done is kept: rerun to resume
        if progress is not None and len(records) > kept:
            print(f"archcost: note: {len(records):,} points saved in {path}; rerun the same command to resume",
                  file=progress)
        raise
    bar.close()
    table = rows(space, records, models)
    write(path, space, table)
    return Outcome(path, columns(space), table, len(selected), len(pending), kept, time.monotonic() - start)


# --- reports over results ---------------------------------------------------------------------------
def direction(name: str) -> tuple[str, bool]:
    """('macs', False) for 'macs' or 'min:macs'; ('accuracy', True) for 'accuracy' or 'max:NAME':
    quantities are minimised, accuracy maximised, unless the name says."""
    if name.startswith("max:"):
        return name[4:], True
    if name.startswith("min:"):
        return name[4:], False
    return name, name == "accuracy"


def pareto(table: list[dict], x: str, y: str, *more: str) -> list[dict]:
    """The rows of status ok that no other ok row beats on every one of the columns (``x``, ``y``
    and any ``more``; each minimised, or maximised as ``direction`` says), ordered by ``x``; rows
    lacking a value are left out. Ties: of rows with equal values, the one of the lowest point index."""
    columns = [direction(c) for c in (x, y, *more)]
    found = []
    for row in table:
        if row.get("status") != "ok" or any(row.get(name) in (None, "") for name, _ in columns):
            continue
        key = tuple(float(row[name]) * (-1 if maximise else 1) for name, maximise in columns)
        found.append((key, int(row["point"]), row))
    found.sort(key=lambda t: (t[0], t[1]))
    if len(columns) == 2:  # one sweep: sorted by x, a row is on the front when it improves y
        front, best = [], math.inf
        for (_, yv), _, row in found:
            if yv < best:
                front.append(row)
                best = yv
        return front
    # More columns: sorted by all of them, a row can only be beaten by one before it, and only a
    # row on the front can beat it better than the rows the front already beats.
    front_keys: list[tuple] = []
    front = []
    for key, _, row in found:
        if any(all(f <= k for f, k in zip(other, key)) for other in front_keys):
            continue  # beaten, or equal to a row kept before it
        front_keys.append(key)
        front.append(row)
    return front


def quantiles(values: list[float], qs=(0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0)) -> list[tuple[float, float]]:
    """(q, value) for each q: the smallest value v with EDF(v) >= q (q = 0: the minimum)."""
    data = sorted(values)
    if not data:
        return []
    return [(q, data[max(0, math.ceil(q * len(data)) - 1)]) for q in qs]


def edf(values: list[float]) -> tuple[list[float], list[float]]:
    """The empirical distribution function F(v) = (points with value <= v) / n as steps: the
    sorted values and F at each (Radosavovic et al. 2020, "Designing Network Design Spaces")."""
    data = sorted(values)
    n = len(data)
    return data, [(i + 1) / n for i in range(n)]
