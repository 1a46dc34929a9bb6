"""Computing points: what a worker does with a batch of point indices, and the two ways of
running batches (a local process pool, or dask.distributed).

A worker decodes each index into parameter values, evaluates the tied parameters and the
constraints on parameters, builds the graph, hashes it, analyses it (once per hash: a worker
keeps the quantities of the graphs it has seen) and checks the constraints on quantities. It
returns one small record per point. The coordinator only collects records; which of two
identical graphs counts as the original is decided afterwards, by point index (results.py), so
the output does not depend on how points were split among workers or in which order batches
came back.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from archcost.errors import ArchcostError, one_line, quote
from archcost.sweep.space import TRAIN_TOTALS, QUANTITIES, TOTALS, Space

BUILT, REJECTED, SKIPPED = "built", "rejected", "skipped"
MAX_REASON = 300
_CACHE_SIZE = 4096  # graphs' quantities a worker remembers, by structural hash


class Record(NamedTuple):
    index: int
    values: tuple  # free parameters, then tied ones (Space.names order)
    code: str  # BUILT, REJECTED or SKIPPED
    reason: str  # why rejected or skipped
    hash: str  # structural hash ("" when not built)
    quantities: tuple | None  # QUANTITIES order, None when not built


def structural_hash(graph) -> str:
    """A hash of the graph's structure: each node's op (its kind and every field, as the op's
    repr) and its inputs, in the graph's (deterministic) order. Inputs are named by their position
    in that order, so two graphs that differ only in layer names hash alike; anything that can
    change a count (a width, a stride, the input shape, the number of classes, how layers are
    wired) changes the hash."""
    h = hashlib.blake2b(digest_size=16)
    position: dict[str, int] = {}
    for i, node in enumerate(graph.topological_order()):
        position[node] = i
        h.update(repr(graph.op(node)).encode())
        h.update(b"<" + ",".join(str(position[src]) for src in graph.inputs(node)).encode() + b"\n")
    return h.hexdigest()


def build(space: Space, options: dict):
    """The graph of one point."""
    if space.model is not None:
        from archcost import registry

        return registry.build(space.model, input_shape=space.input_shape, **options)
    from archcost.formats.spec import build_spec

    return build_spec(space.spec_doc, space.spec_source, input_shape=space.input_shape, options=options)


def quantities(graph, space: Space) -> tuple:
    from archcost.training import analyze_training

    train = analyze_training(graph, batch=space.batch, dtype=space.dtype)
    report = train.forward
    out = graph.output_nodes()[-1]
    rec = next(r for r in reversed(report.records) if r.name == out)
    return (tuple(report.totals[k] for k in TOTALS) + tuple(train.totals[k] for k in TRAIN_TOTALS)
            + (rec.rf_h, rec.rf_w))


def check_constraints(space: Space, env: dict, pre: bool) -> str:
    """'' if the point passes the constraints (those on parameters only when ``pre``), else the
    first failing one, quoted."""
    from archcost.formats.spec import evaluate

    for c in space.constraints:
        if c.pre != pre:
            continue
        if not evaluate(c.text, env, "constraint"):
            return f"fails {c.text}"
    return ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ArchcostError):
        return one_line(str(exc), MAX_REASON)
    if isinstance(exc, RecursionError):
        return "the graph nests too deeply to build"
    if isinstance(exc, MemoryError):
        return "out of memory while building"
    return one_line(f"cannot build ({type(exc).__name__}: {exc})", MAX_REASON)


_cache: OrderedDict = OrderedDict()  # worker-local: structural hash -> quantities


def evaluate_point(space: Space, index: int) -> Record:
    free = space.decode(index)
    try:
        env = space.env(free)
    except ArchcostError as exc:
        return Record(index, free + (None,) * len(space.tied), SKIPPED, _reason(exc), "", None)
    values = free + tuple(env[name] for name, _ in space.tied)
    try:
        why = check_constraints(space, env, pre=True)
    except ArchcostError as exc:
        return Record(index, values, SKIPPED, _reason(exc), "", None)
    if why:
        return Record(index, values, REJECTED, why, "", None)
    try:
        graph = build(space, space.options(env))
        digest = structural_hash(graph)
        found = _cache.get(digest)
        if found is None:
            found = quantities(graph, space)
            _cache[digest] = found
            if len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
        else:
            _cache.move_to_end(digest)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 -- a point that cannot be built is recorded, not fatal
        return Record(index, values, SKIPPED, _reason(exc), "", None)
    return verdict(space, index, values, env, digest, found)


def verdict(space: Space, index: int, values: tuple, env: dict, digest: str, found: tuple) -> Record:
    """The record of a built point: BUILT, or REJECTED by a constraint on quantities."""
    try:
        why = check_constraints(space, {**env, **dict(zip(QUANTITIES, found))}, pre=False)
    except ArchcostError as exc:
        return Record(index, values, SKIPPED, _reason(exc), digest, found)
    return Record(index, values, REJECTED if why else BUILT, why, digest, found)


def evaluate_points(space: Space, indices: Iterable[int]) -> list[Record]:
    """A batch: one record per index, in the order given."""
    return [evaluate_point(space, i) for i in indices]


# --- a local process pool -----------------------------------------------------------------------
_space: Space | None = None


def _init_worker(space: Space) -> None:
    global _space
    _space = space
    import archcost.zoo  # noqa: F401  (fills the registry)


def _pool_batch(indices) -> list[Record]:
    return evaluate_points(_space, indices)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def batches(indices: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(indices), size):
        yield indices[start:start + size]


def batch_size(pending: int, workers: int, chunk: int | None, largest: int) -> int:
    """Points per task: about 16 tasks per worker, at most ``largest`` points each."""
    if chunk is not None:
        return chunk
    return max(1, min(largest, -(-pending // (16 * workers))))


def run_local(space: Space, pending: list[int], workers: int, chunk: int | None,
              on_records: Callable[[list[Record]], None]) -> None:
    """Compute ``pending`` with ``workers`` processes (1: in this process), passing each batch's
    records to ``on_records`` as it arrives."""
    size = batch_size(len(pending), workers, chunk, 64)
    if workers == 1 or len(pending) <= size:
        import archcost.zoo  # noqa: F401

        for batch in batches(pending, size):
            on_records(evaluate_points(space, batch))
        return
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    todo = batches(pending, size)
    window = 4 * workers
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_init_worker, initargs=(space,))
    try:
        running = set()
        for batch in todo:
            running.add(pool.submit(_pool_batch, batch))
            if len(running) >= window:
                break
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                on_records(future.result())
                batch = next(todo, None)
                if batch is not None:
                    running.add(pool.submit(_pool_batch, batch))
    except BrokenProcessPool:
        raise ArchcostError("sweep: a worker process died (out of memory?); the points done so far are "
                            "saved, rerun to resume (with fewer --workers)") from None
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


# --- dask.distributed ---------------------------------------------------------------------------
def run_dask(space: Space, pending: list[int], address: str, workers: int, chunk: int | None,
             on_records: Callable[[list[Record]], None]) -> None:
    """The same on dask.distributed: ``address`` is a scheduler's (tcp://host:8786), or 'local'
    for a LocalCluster of ``workers`` single-threaded worker processes on this machine."""
    try:
        import distributed
    except ImportError:
        raise ArchcostError("--dask: needs dask.distributed (pip install 'dask[distributed]')") from None
    import logging

    cluster = client = None
    try:
        if address == "local":
            cluster = distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                               dashboard_address=None, silence_logs=logging.ERROR)
            client = distributed.Client(cluster)
        else:
            try:
                client = distributed.Client(address, timeout=30)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ArchcostError(f"--dask {quote(address)}: cannot reach the scheduler: {exc}") from None
        total_threads = max(1, sum(client.nthreads().values()))
        size = batch_size(len(pending), total_threads, chunk, 256)
        shared = client.scatter(space, broadcast=True, hash=False)
        todo = batches(pending, size)
        window = 4 * total_threads

        def submit(batch):
            return client.submit(evaluate_points, shared, batch, pure=False)

        first = [submit(b) for b in itertools.islice(todo, window)]
        results = distributed.as_completed(first)
        for future in results:
            try:
                records = future.result()
            except Exception as exc:  # noqa: BLE001 -- a task the cluster lost: one line
                raise ArchcostError(f"--dask: a task failed ({type(exc).__name__}: {one_line(str(exc), 200)}); "
                                    "the points done so far are saved, rerun to resume") from None
            on_records(records)
            future.release()
            batch = next(todo, None)
            if batch is not None:
                results.add(submit(batch))
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
