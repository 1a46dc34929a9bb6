"""The zoo: every architecture of the lectures, one module per family.

Importing this package imports each family module, whose ``register`` calls fill the registry.
"""

import importlib
import pkgutil

from archcost.registry import build, entries, names, resolve

for _module in pkgutil.iter_modules(__path__):
    if not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["build", "entries", "names", "resolve"]
