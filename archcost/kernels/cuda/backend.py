"""The ``cuda`` backend module that ``archcost.execute`` loads (see archcost/kernels/__init__.py).

Activations live on the device from the input copy to the outputs: the arena allocates its flat
buffers with ``cuda.device_array`` following the same buffer plan as on the cpu, in-place ops get
views of their input's buffer, and nothing returns to the host between layers unless a caller
asks (``to_host``). Weights are packed on the host and uploaded once, in ``prepare``. Per-layer
times come from CUDA events recorded on the default stream around each launch (``layer_timer``),
read after one synchronize at the end of the forward.

Importing this module without a usable device (no numba-cuda, or no GPU and no simulator)
raises one ``ArchcostError`` line saying which.
"""

import numpy as np

from archcost.errors import ArchcostError
from archcost.kernels.cuda._numba import device_name, simulating, unavailable_reason

_reason = unavailable_reason()
if _reason is not None:
    raise ArchcostError(f"backend 'cuda': {_reason}")

from archcost.kernels.adapters import adapter_table  # noqa: E402
from archcost.kernels.cuda._numba import cuda  # noqa: E402
from archcost.kernels.cuda.peak import measure_peak  # noqa: E402, F401 (backend interface)

NAME = "cuda"
DEVICE = device_name()

ADAPTERS = adapter_table("archcost.kernels.cuda")  # the op list both backends share: adapters.KERNELS


def empty(size: int, dtype=np.float32):
    """A flat device buffer of ``size`` elements (the arena's allocation)."""
    return cuda.device_array(size, dtype)


def to_device(array: np.ndarray):
    return cuda.to_device(np.ascontiguousarray(array))


def to_host(array) -> np.ndarray:
    return array.copy_to_host()


def copy_into(dst, src: np.ndarray) -> None:
    """Write host array ``src`` into device array ``dst`` (same shape)."""
    dst.copy_to_device(np.ascontiguousarray(src))


def nbytes(array) -> int:
    return int(array.nbytes)


def synchronize() -> None:
    cuda.synchronize()


class EventTimer:
    """Per-layer device time from a pair of CUDA events around each layer's launches."""

    def __init__(self):
        self._events: dict = {}

    def start(self, node) -> None:
        event = cuda.event()  # timing events by default
        event.record()
        self._events[node] = [event, None]

    def stop(self, node) -> None:
        event = cuda.event()  # timing events by default
        event.record()
        self._events[node][1] = event

    def seconds(self) -> dict:
        cuda.synchronize()
        return {node: a.elapsed_time(b) / 1e3 for node, (a, b) in self._events.items()}


def layer_timer():
    """CUDA events on a GPU; host wall-clock under the simulator, whose kernels run synchronously
    on the CPU and whose events carry no time."""
    if simulating():
        from archcost.execute import WallTimer

        return WallTimer()
    return EventTimer()
