"""What the peer-tool benchmarks share: silencing the tools, and writing their results (JSON, and
the generated block of a Markdown file between two marker comments)."""

from __future__ import annotations

import contextlib
import io
import sys
import warnings
from pathlib import Path


def quiet(fn):
    """Call ``fn`` with the tools' prints and warnings silenced."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("ignore")
        return fn()


def write_outputs(text: str, rows: list, versions: dict, json_path: str | None, docs_path: str | None,
                  begin: str, end: str) -> int:
    """Write ``rows`` (with ``versions``) as JSON to ``json_path`` and ``text`` between ``begin``
    and ``end`` of ``docs_path``, each when given; 2 (said on stderr) if the file has no block."""
    import json

    if json_path:
        Path(json_path).write_text(json.dumps({"versions": versions, "rows": rows}, indent=1))
    if docs_path:
        doc = Path(docs_path).read_text()
        if begin not in doc or end not in doc:
            print(f"{docs_path}: no {begin} ... {end} block", file=sys.stderr)
            return 2
        before, rest = doc.split(begin, 1)
        _, after = rest.split(end, 1)
        Path(docs_path).write_text(f"{before}{begin}\n{text}\n{end}{after}")
    return 0
