"""Published accuracies of the zoo's models, read from ``archcost/data/accuracy.csv``.

These are the only numbers archcost ships that it cannot compute: each row states where it was
published. Columns:

- ``model``: a zoo name (``wrn-28-10`` style parametric names included).
- ``dataset``: ``imagenet`` (ILSVRC-2012 / ImageNet-1K val unless the protocol says otherwise),
  ``cifar10``, ``cifar100``, ``mnist``.
- ``metric``: ``top1``/``top5`` (accuracy, %) or ``top1_err``/``top5_err`` (error, %), as published;
  CIFAR and MNIST errors are ``top1_err``.
- ``value``: the number as the source prints it, in percent.
- ``crops``: test-time views per image (1, 10, 12, 144); empty when the source does not say.
- ``models``: 1 for a single network, n for an ensemble of n.
- ``protocol``: how it was measured (split, resize/crop, augmentation, variant).
- ``source``: paper and table, or the torchvision weights whose metadata states it.

``best(model, metric, dataset)`` picks the row a chart uses: single models only, the fewest
stated crops first (unstated crops last), then the earlier row in the file. Rows are ordered so
that torchvision's numbers (one training recipe, one single-crop protocol) come before a
paper's, which keeps a chart across families comparable, as Canziani et al. (2017) did with
single central-crop accuracies.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from archcost.errors import ArchcostError

DATASETS = ("imagenet", "cifar10", "cifar100", "mnist")
METRICS = ("top1", "top5", "top1_err", "top5_err")
COLUMNS = ("model", "dataset", "metric", "value", "crops", "models", "protocol", "source")


@dataclass(frozen=True)
class AccuracyRow:
    model: str
    dataset: str
    metric: str
    value: float
    crops: int | None
    models: int
    protocol: str
    source: str
    line: int  # line in accuracy.csv, for messages

    @property
    def k(self) -> str:
        """"top1" or "top5", whichever the row measures."""
        return self.metric.removesuffix("_err")

    @property
    def accuracy(self) -> float:
        """Accuracy in percent (100 - error for the error rows)."""
        return 100.0 - self.value if self.metric.endswith("_err") else self.value


def parse(text: str) -> tuple[AccuracyRow, ...]:
    """Parse the CSV text; a malformed row raises ArchcostError naming its line and field."""
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ArchcostError(f"accuracy.csv: expected columns {', '.join(COLUMNS)}, got {reader.fieldnames}")
    rows = []
    for line, raw in enumerate(reader, start=2):
        def fail(field, why):
            raise ArchcostError(f"accuracy.csv line {line}: {field} {raw.get(field)!r}: {why}")

        if raw["dataset"] not in DATASETS:
            fail("dataset", f"not one of {', '.join(DATASETS)}")
        if raw["metric"] not in METRICS:
            fail("metric", f"not one of {', '.join(METRICS)}")
        try:
            value = float(raw["value"])
        except ValueError:
            fail("value", "not a number")
        if not 0 < value < 100:
            fail("value", "a percentage must lie strictly between 0 and 100")
        crops = raw["crops"]
        if crops and not (crops.isdigit() and int(crops) > 0):
            fail("crops", "must be a positive int or empty")
        if not (raw["models"].isdigit() and int(raw["models"]) > 0):
            fail("models", "must be a positive int")
        for field in ("model", "source", "protocol"):
            if not raw[field].strip():
                fail(field, "is empty")
        rows.append(AccuracyRow(raw["model"], raw["dataset"], raw["metric"], value, int(crops) if crops else None,
                                int(raw["models"]), raw["protocol"], raw["source"], line))
    return tuple(rows)


@lru_cache(maxsize=1)
def rows() -> tuple[AccuracyRow, ...]:
    """Every row of the shipped accuracy.csv."""
    return parse(resources.files("archcost.data").joinpath("accuracy.csv").read_text(encoding="utf-8"))


def best(model: str, metric: str = "top1", dataset: str = "imagenet") -> AccuracyRow | None:
    """The row a chart uses for ``model`` (see the module docstring), or None."""
    if metric not in ("top1", "top5"):
        raise ArchcostError(f"--metric: expected top1 or top5, got {metric!r}")
    if dataset not in DATASETS:
        raise ArchcostError(f"--dataset: expected one of {', '.join(DATASETS)}, got {dataset!r}")
    found = [r for r in rows() if r.model == model and r.dataset == dataset and r.k == metric and r.models == 1]
    if not found:
        return None
    return min(found, key=lambda r: (r.crops is None, r.crops or 0, r.line))


def models_with(metric: str = "top1", dataset: str = "imagenet") -> list[str]:
    """Models with a single-model row for ``metric`` on ``dataset``, in file order."""
    seen: dict[str, None] = {}
    for r in rows():
        if r.dataset == dataset and r.k == metric and r.models == 1:
            seen.setdefault(r.model)
    return list(seen)


def pareto_front(costs, scores) -> list[int]:
    """Indices of the points no other point beats (lower or equal cost and higher score),
    ordered by cost: the accuracy-vs-cost frontier."""
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -scores[i]))
    front, best_score = [], float("-inf")
    for i in order:
        if scores[i] > best_score:
            front.append(i)
            best_score = scores[i]
    return front
