"""The CUDA device's ceilings for ``archcost bench``: FP32 FMA throughput and device-memory copy
bandwidth, measured once per process with two small kernels timed by CUDA events.

- FMA: every thread runs ``CHAINS`` independent ``a = a * b + c`` chains for ``steps`` rounds, so
  the warp schedulers always have independent FMAs to issue; 2 FLOPs per FMA.
- Copy: a grid-stride copy of a large device array; a copy moves each byte twice (read + write).
Where the device also reports its clock and memory attributes, the datasheet ceilings computed
from them are returned beside the measured ones (``attr_*``). Under numba-cuda's simulator the
same kernels run on tiny sizes and are timed by the wall clock: the numbers are the simulator's,
useful only to exercise this code path.
"""

from __future__ import annotations

import math
import time

import numpy as np

from archcost.kernels.cuda._numba import cuda, simulating

CHAINS = 8
_CACHE: dict = {}

# FP32 FMA results per clock per SM by compute capability (CUDA C++ Programming Guide,
# "Arithmetic Instructions" throughput table).
FMA_PER_SM_CLOCK = {(6, 0): 64, (7, 0): 64, (7, 2): 64, (7, 5): 64, (8, 0): 64}
FMA_PER_SM_CLOCK_DEFAULT = 128  # 5.x, 6.1, 6.2, 8.6, 8.7, 8.9, 9.0, 10.x, 12.x


@cuda.jit
def _fma(out, steps):
    i = cuda.grid(1)
    a0 = a1 = a2 = a3 = a4 = a5 = a6 = a7 = np.float32(i) * np.float32(1e-9)
    b = np.float32(0.999999)
    c = np.float32(1e-7)
    for _ in range(steps):
        a0 = a0 * b + c
        a1 = a1 * b + c
        a2 = a2 * b + c
        a3 = a3 * b + c
        a4 = a4 * b + c
        a5 = a5 * b + c
        a6 = a6 * b + c
        a7 = a7 * b + c
    if i < out.size:  # the store keeps the chains alive
        out[i] = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7


@cuda.jit
def _copy(src, dst):
    start = cuda.grid(1)
    stride = cuda.gridsize(1)
    for i in range(start, src.size, stride):
        dst[i] = src[i]


def _timed(launch, rounds: int) -> float:
    """Best time of ``rounds`` launches after a warm-up (CUDA events on a GPU, wall clock on the
    simulator, whose events carry no time)."""
    launch()
    cuda.synchronize()
    best = math.inf
    for _ in range(rounds):
        if simulating():
            start = time.perf_counter()
            launch()
            best = min(best, time.perf_counter() - start)
        else:
            begin, end = cuda.event(), cuda.event()
            begin.record()
            launch()
            end.record()
            end.synchronize()
            best = min(best, cuda.event_elapsed_time(begin, end) / 1e3)
    return best


def measure_peak() -> dict:
    """{"peak_gflops", "bandwidth_gbs", "threads", ...}: measured on the first call, then cached."""
    if _CACHE:
        return dict(_CACHE)
    if simulating():
        blocks, threads, steps, elems, rounds = 2, 32, 16, 1 << 12, 1
    else:
        sms = cuda.get_current_device().MULTIPROCESSOR_COUNT
        blocks, threads, steps, elems, rounds = sms * 16, 256, 4096, 1 << 26, 5
    out = cuda.device_array(blocks * threads, np.float32)
    seconds = _timed(lambda: _fma[blocks, threads](out, steps), rounds)
    peak = 2.0 * CHAINS * steps * blocks * threads / seconds / 1e9
    src = cuda.to_device(np.ones(elems, np.float32))
    dst = cuda.device_array_like(src)
    seconds = _timed(lambda: _copy[blocks, threads](src, dst), rounds)
    bandwidth = 2.0 * src.nbytes / seconds / 1e9
    _CACHE.update(peak_gflops=peak, bandwidth_gbs=bandwidth, threads=blocks * threads)
    _CACHE.update(_attributes())
    return dict(_CACHE)


def _attributes() -> dict:
    """Datasheet ceilings from the device's attributes, where the driver reports them."""
    if simulating():
        return {}
    device = cuda.get_current_device()
    try:
        fma = FMA_PER_SM_CLOCK.get(tuple(device.compute_capability), FMA_PER_SM_CLOCK_DEFAULT)
        peak = 2.0 * fma * device.MULTIPROCESSOR_COUNT * device.CLOCK_RATE * 1e3 / 1e9
        bandwidth = 2.0 * device.MEMORY_CLOCK_RATE * 1e3 * device.GLOBAL_MEMORY_BUS_WIDTH / 8 / 1e9
    except (AttributeError, KeyError, TypeError):  # attributes a newer driver no longer reports
        return {}
    return {"attr_peak_gflops": peak, "attr_bandwidth_gbs": bandwidth}
