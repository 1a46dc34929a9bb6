"""Every zoo model against the published numbers in tests/zoo/cited/*.json.

Each row names its source. Exact counts are compared exactly; rounded ones within half the
source's last unit (``abs_tol``). Where the literature cannot be met, the row records the value
archcost computes (``computed``) and why (``note``): the test pins that value and checks that it
really differs from the stated one, so a silent fix or regression both fail.
"""

import json
import pathlib
from functools import lru_cache

import pytest

from archcost import zoo
from archcost.analysis import analyze

CITED = pathlib.Path(__file__).parent / "cited"
ROWS = [row for path in sorted(CITED.glob("*.json")) for row in json.loads(path.read_text())]


@lru_cache(maxsize=None)
def _totals(model: str, options: str) -> dict:
    return analyze(zoo.build(model, **json.loads(options))).totals


@pytest.mark.parametrize(
    "row", ROWS, ids=[f"{r['model']}{r.get('options') or ''}-{r['quantity']}" for r in ROWS]
)
def test_cited_number(row):
    assert row["source"], "every cited number needs its source"
    got = _totals(row["model"], json.dumps(row.get("options") or {}, sort_keys=True))[row["quantity"]]
    if row.get("computed") is not None:
        assert row["note"], "a number that departs from the literature needs an explanation"
        assert got == row["computed"]
        assert abs(got - row["value"]) > row["abs_tol"]
    else:
        assert abs(got - row["value"]) <= row["abs_tol"], f"{row['stated']} ({row['source']})"


def test_rows_are_well_formed():
    keys = {"model", "quantity", "stated", "value", "abs_tol", "source"}
    for row in ROWS:
        assert keys <= set(row), row
        assert row["model"] in zoo.names() or zoo.resolve(row["model"])
