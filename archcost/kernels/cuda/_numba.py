"""The one place archcost imports ``numba.cuda``; every CUDA module takes ``cuda`` from here.

numba-cuda decides between a real GPU and its simulator when ``numba.cuda`` is first imported, from
``NUMBA_ENABLE_CUDASIM``; numba reads its environment when numba itself is imported, so the
configuration is reloaded first: a variable set after ``import numba`` (as a test conftest does)
still counts. Without the ``numba_cuda`` package, numba may still ship its deprecated built-in CUDA
target; archcost does not use it and reports numba-cuda as missing.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

cuda = None
IMPORT_ERROR: str | None = None
SIMULATOR = False  # numba.cuda was imported in simulator mode

if importlib.util.find_spec("numba_cuda") is None:
    IMPORT_ERROR = "numba-cuda is not installed (pip install 'archcost[cuda]')"
else:
    try:
        import numba_cuda  # noqa: F401  (a stub that blocks it in sys.modules must count as missing)
        from numba.core import config as _config

        _config.reload_config()
        from numba import cuda

        SIMULATOR = bool(_config.ENABLE_CUDASIM)
        # Small layers (a classifier at batch 1, validation at small inputs) launch small grids on
        # purpose; numba-cuda would warn on each launch.
        warnings.filterwarnings("ignore", message=r"Grid size \d+ will likely result in GPU under-utilization")
    except ImportError as exc:  # a broken install: say what failed, in one line
        cuda = None
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        IMPORT_ERROR = f"numba-cuda could not be imported ({first_line})"


def simulating() -> bool:
    """True when kernels run on numba-cuda's CPU simulator (NUMBA_ENABLE_CUDASIM=1)."""
    return cuda is not None and SIMULATOR


def unavailable_reason() -> str | None:
    """None when CUDA kernels can run (a GPU, or the simulator); else one line saying why not."""
    if cuda is None:
        return IMPORT_ERROR
    if not cuda.is_available():
        sim = os.environ.get("NUMBA_ENABLE_CUDASIM", "0")
        hint = "set NUMBA_ENABLE_CUDASIM=1 to use the simulator" if sim in ("", "0") else "simulator not active"
        return f"no CUDA GPU found (numba-cuda installed; {hint})"
    return None


def is_available() -> bool:
    return unavailable_reason() is None


def device_address(array) -> int:
    """Start address of a device array (simulator arrays wrap a host numpy array)."""
    wrapped = getattr(array, "_ary", None)
    if wrapped is not None:
        return wrapped.__array_interface__["data"][0]
    return array.__cuda_array_interface__["data"][0]


def device_name() -> str:
    if simulating():
        return "numba-cuda simulator on the CPU"
    name = cuda.get_current_device().name
    return name.decode() if isinstance(name, bytes) else str(name)
