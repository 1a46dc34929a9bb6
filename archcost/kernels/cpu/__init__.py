"""The CPU backend: Numba kernels on host numpy float32 arrays.

``ADAPTERS`` maps each op type to its adapter (``prepare`` once per graph, ``run`` per forward,
``count`` for conv and linear), built from the op list both backends share
(``archcost.kernels.adapters.KERNELS``). Every kernel is ``@njit(cache=True)``: nothing compiles
at import; the first call compiles and caches to disk.
"""

import hashlib
import pathlib

import numpy as np


def _drop_stale_cache() -> None:
    """Numba keys a cached kernel on its own source file only, not on the formulas it inlines
    (archcost/kernels/formulas.py): after a formula changes, the cached kernels would go on
    running the old one. So the cache is stamped with the formulas' hash and cleared when it
    differs. Nothing compiles at import, so this runs before any cached kernel is loaded. On a
    read-only install the cache cannot be written either, and nothing is done."""
    here = pathlib.Path(__file__).parent
    cache = here / "__pycache__"
    formulas = here.parent / "formulas.py"
    try:
        digest = hashlib.sha256(formulas.read_bytes()).hexdigest()
        stamp = cache / "formulas.sha256"
        if stamp.exists() and stamp.read_text() == digest:
            return
        cache.mkdir(exist_ok=True)
        for path in [*cache.glob("*.nbi"), *cache.glob("*.nbc")]:
            path.unlink()
        stamp.write_text(digest)
    except OSError:
        pass


_drop_stale_cache()

from archcost.kernels.adapters import adapter_table  # noqa: E402
from archcost.kernels.cpu.peak import measure_peak  # noqa: E402, F401 (backend interface)

NAME = "cpu"

ADAPTERS = adapter_table(__name__)


def empty(size: int, dtype=np.float32) -> np.ndarray:
    """A flat buffer of ``size`` elements (the arena's allocation)."""
    return np.empty(size, dtype)


def to_device(array: np.ndarray) -> np.ndarray:
    return array


def to_host(array) -> np.ndarray:
    return np.asarray(array)


def copy_into(dst, src: np.ndarray) -> None:
    """Write host array ``src`` into backend array ``dst`` (same shape)."""
    np.copyto(dst, src)


def nbytes(array) -> int:
    return array.nbytes
