"""archcost: what a CNN architecture costs (shapes, params, memory, MACs, peak memory, time),
computed from a layer graph and proven by running it on archcost's own kernels."""

from archcost.analysis import Report, analyze
from archcost.errors import ArchcostError
from archcost.graph import Graph

__all__ = ["ArchcostError", "Graph", "Report", "analyze", "zoo"]
__version__ = "0.1.0"


def __getattr__(name):  # archcost.zoo loads on first use
    if name == "zoo":
        import importlib

        return importlib.import_module("archcost.zoo")
    raise AttributeError(name)
