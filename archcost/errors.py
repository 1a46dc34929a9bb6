"""The one exception type users see.

Every error caused by bad input (a layer argument, a shape, a model name, a spec file,
a CLI flag) is an ``ArchcostError`` whose message is a single line naming the layer or
field and what is wrong. The CLI prints it and exits with status 2, without a traceback.
"""


class ArchcostError(ValueError):
    """Bad input: the message is one line that names the culprit."""


class ShapeError(ArchcostError):
    """An op's shape rule rejected its inputs; the graph adds the layer name."""
