"""The one exception type users see, and the limits that keep bad input from running away.

Every error caused by bad input (a layer argument, a shape, a model name, a spec file,
a CLI flag) is an ``ArchcostError`` whose message is a single line naming the layer or
field and what is wrong. The CLI prints it and exits with status 2, without a traceback.
Values from the user are quoted with :func:`quote`, so a name holding a newline or a
20-MB string still gives one short line; :func:`one_line` is the CLI's last guard.
"""

from __future__ import annotations

import os

# The longest error line the CLI prints; longer messages are cut with a note of how much.
MAX_MESSAGE_CHARS = 500
# The longest user value quoted inside a message.
MAX_QUOTE_CHARS = 80


class ArchcostError(ValueError):
    """Bad input: the message is one line that names the culprit."""


class ShapeError(ArchcostError):
    """An op's shape rule rejected its inputs; the graph adds the layer name."""


def quote(value, limit: int = MAX_QUOTE_CHARS) -> str:
    """``repr(value)`` on one line (newlines escaped, as repr does for strings), cut to ``limit``
    characters with the number of characters left out. Never builds the whole repr of a huge
    string or container."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + f"... ({len(value):,} characters)"
    if isinstance(value, (list, tuple, dict, set)) and len(value) > 32:
        kind = type(value).__name__
        return f"<{kind} of {len(value):,} items>"
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ (or an int too large to print) must not raise here
        return f"<{type(value).__name__}>"
    text = " ".join(text.split("\n"))
    if len(text) > limit:
        return text[:limit] + f"... ({len(text):,} characters)"
    return text


def one_line(message: str, limit: int = MAX_MESSAGE_CHARS) -> str:
    """A message as one line of at most ``limit`` characters (plus the note of what was cut)."""
    message = str(message)
    if len(message) > 4 * limit:  # do not split a 20-MB message just to cut it
        cut = len(message) - limit
        message = message[:limit]
    else:
        cut = 0
    text = " ".join(message.split())
    if len(text) > limit:
        cut += len(text) - limit
        text = text[:limit]
    return text + (f" ... ({cut:,} more characters)" if cut else "")


def limit_from_env(name: str, default: int) -> int:
    """A limit read from the environment variable ``name`` (a positive integer), else ``default``."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise ArchcostError(f"environment variable {name}: expected a positive integer, got {quote(raw)}")
    return int(raw)
