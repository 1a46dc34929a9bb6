"""The machine's ceilings for the roofline, measured with our own Numba loops (no BLAS):

- compute: ``fma_gflops`` runs, on every thread, 16 independent chains of 16-lane fused
  multiply-adds held in registers (the same stack-tile trick as the conv micro-kernel), so
  the FMA units, not latency or memory, bound it; FLOPs = 2 per lane per step.
- memory: ``copy_gbs`` copies a 128 MiB float32 array in parallel; bytes = read + written.

``measure_peak()`` measures both once per process and caches them (best of a few runs, since
the machine may be shared).
"""

import time

import numpy as np
from numba import carray, get_num_threads, njit, prange

from archcost.kernels.cpu.stack import stack_array_intrinsic

LANES = 16
CHAINS = 16
_stack = stack_array_intrinsic(CHAINS * LANES)
_CACHE: dict = {}


@njit(parallel=True, fastmath=True, cache=True)
def _fma_loop(steps, threads, out):
    for task in prange(threads):
        acc = carray(_stack(np.float32), CHAINS * LANES)
        for i in range(CHAINS * LANES):
            acc[i] = np.float32(i) * np.float32(1e-3)
        m = np.float32(0.9999) + np.float32(task) * np.float32(1e-9)
        a = np.float32(1e-4)
        for _ in range(steps):
            for i in range(CHAINS * LANES):
                acc[i] = acc[i] * m + a
        s = np.float32(0.0)
        for i in range(CHAINS * LANES):
            s += acc[i]
        out[task] = s


@njit(parallel=True, cache=True)
def _copy(src, dst):
    n = src.shape[0]
    chunk = 1 << 16
    for c in prange((n + chunk - 1) // chunk):
        lo = c * chunk
        hi = min(lo + chunk, n)
        dst[lo:hi] = src[lo:hi]


def fma_gflops(steps: int = 2_000_000, rounds: int = 5) -> float:
    threads = get_num_threads()
    out = np.empty(threads, np.float32)
    _fma_loop(10, threads, out)  # compile
    best = np.inf
    for _ in range(rounds):
        start = time.perf_counter()
        _fma_loop(steps, threads, out)
        best = min(best, time.perf_counter() - start)
    return 2.0 * CHAINS * LANES * steps * threads / best / 1e9


def copy_gbs(mib: int = 128, rounds: int = 5) -> float:
    src = np.ones(mib << 18, np.float32)
    dst = np.empty_like(src)
    _copy(src, dst)  # compile, and fault the pages in
    best = np.inf
    for _ in range(rounds):
        start = time.perf_counter()
        _copy(src, dst)
        best = min(best, time.perf_counter() - start)
    return 2.0 * src.nbytes / best / 1e9


def measure_peak() -> dict:
    """{"peak_gflops", "bandwidth_gbs", "threads"}: measured on the first call, then cached."""
    if not _CACHE:
        _CACHE.update(peak_gflops=fma_gflops(), bandwidth_gbs=copy_gbs(), threads=get_num_threads())
    return dict(_CACHE)
