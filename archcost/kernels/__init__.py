"""Kernels that execute a graph: a float64 numpy reference and per-backend kernel adapters.

Backend interface (what ``archcost.execute`` needs from a backend module, e.g.
``archcost.kernels.cpu``; a CUDA backend provides the same names):

- ``NAME: str``
- ``ADAPTERS: dict[type[Op], Adapter]`` - one row per op type. An adapter has
    ``prepare(op, in_shapes, out_shape, params) -> state``: once per graph; ``params`` is a dict
    of host float32 arrays (see ``archcost.execute.init_params``); pack/upload weights here.
    ``run(op, state, inputs, out) -> None``: writes the op's output into ``out``, an array the
    arena handed out (for an in-place op it is its input's buffer, viewed at the output shape).
    ``count(op, state, inputs, out) -> (performed, padded)``: conv and linear only.
- ``empty(size, dtype) -> array``: a flat buffer of ``size`` elements (arena allocation).
- ``to_device(host_array) -> array``, ``to_host(array) -> numpy.ndarray``,
  ``copy_into(dst, host_array)``, ``nbytes(array) -> int``.
- optional ``measure_peak() -> {"peak_gflops", "bandwidth_gbs", "threads"}``: the machine's
  ceilings for ``archcost bench`` (measured once per process).
Arrays must support ``reshape`` to a view and ``.shape``.

Optional (``archcost.execute`` falls back to host wall-clock timing and a no-op):

- ``layer_timer() -> timer`` with ``start(node)``, ``stop(node)`` around each layer's ``run`` and
  ``seconds() -> {node: seconds}`` once after the forward (the cuda backend records CUDA events,
  so kernel launches stay asynchronous; the fallback is ``time.perf_counter``).
- ``synchronize()``: wait until the device has finished all queued work (for wall-clock timing).

``BACKENDS`` names the module of each backend; it is imported only when first used. What both
backends share is written once: the formulas (``formulas``: plain Python, compiled by each
backend) and the op -> adapter table with the host half of the adapters (``adapters``).
"""

import importlib

from archcost.errors import ArchcostError

BACKENDS = {
    "cpu": "archcost.kernels.cpu",
    "cuda": "archcost.kernels.cuda.backend",  # needs numba-cuda and a GPU or NUMBA_ENABLE_CUDASIM=1
}


def unavailable_reason(name: str) -> str | None:
    """None when backend ``name`` can run here; else one line saying why not (for a CLI's
    ``--device``: the cuda backend needs numba-cuda and a GPU or NUMBA_ENABLE_CUDASIM=1)."""
    if name not in BACKENDS:
        return f"unknown backend {name!r}; known: {', '.join(BACKENDS)}"
    if name == "cuda":
        from archcost.kernels.cuda._numba import unavailable_reason as cuda_reason

        return cuda_reason()
    return None


def load_backend(name: str):
    if name not in BACKENDS:
        raise ArchcostError(f"backend: unknown {name!r}; known: {', '.join(BACKENDS)}")
    return importlib.import_module(BACKENDS[name])
