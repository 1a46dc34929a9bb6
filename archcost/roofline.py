"""Benchmark results for the roofline chart: the RESULTS.json schema, its reader and the
roofline arithmetic (arithmetic intensity, attainable performance).

RESULTS.json, as the benchmark writes it (one file per model and machine)::

    {
      "machine": "Intel Xeon 8480+ (1 core), numba 0.60",   # free text
      "date": "2026-11-25",                                # free text, ISO date preferred
      "model": "vgg16",                                    # optional: the zoo name benchmarked
      "dtype": "float32",                                  # optional
      "peak_gflops": 150.0,                                # compute ceiling, GFLOP/s (> 0)
      "bandwidth_gbs": 20.0,                               # memory ceiling, GB/s (> 0)
      "layers": [                                          # at least one
        {"name": "conv1_1",        # layer name in the archcost graph
         "op": "conv",             # op kind
         "macs": 86704128,         # multiply-accumulates (int >= 0)
         "flops": 173408256,       # optional: FLOPs counted for the intensity; default 2 * macs
         "bytes": 13045248,        # bytes moved: inputs + weights read, output written (> 0)
         "seconds": 0.0031,        # measured time per call (> 0)
         "gflops": 55.9}           # optional: measured GFLOP/s; default flops / seconds / 1e9
      ]
    }

Arithmetic intensity is ``flops / bytes`` (FLOP per byte); the attainable performance at
intensity I is ``min(peak_gflops, bandwidth_gbs * I)`` (Williams et al. 2009).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from archcost.errors import ArchcostError


@dataclass(frozen=True)
class LayerResult:
    name: str
    op: str
    macs: int
    flops: float
    bytes: float
    seconds: float
    gflops: float

    @property
    def intensity(self) -> float:
        """FLOP per byte moved."""
        return self.flops / self.bytes


@dataclass(frozen=True)
class Results:
    machine: str
    date: str
    peak_gflops: float
    bandwidth_gbs: float
    layers: tuple[LayerResult, ...]
    model: str = ""
    dtype: str = ""

    @property
    def ridge(self) -> float:
        """The intensity where the bandwidth ceiling meets the compute ceiling."""
        return self.peak_gflops / self.bandwidth_gbs

    def attainable(self, intensity: float) -> float:
        return min(self.peak_gflops, self.bandwidth_gbs * intensity)

    def ceiling(self) -> tuple[list[float], list[float]]:
        """The roofline as a polyline (xs, ys) spanning the layers' intensities and the ridge."""
        xs = [layer.intensity for layer in self.layers] + [self.ridge]
        lo, hi = min(xs) / 4, max(xs) * 4
        points = [lo, self.ridge, hi]
        return points, [self.attainable(x) for x in points]


def _number(where: str, value, *, positive: bool = True, integer: bool = False):
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and integer:
        ok = isinstance(value, int) or float(value).is_integer()
    if not ok or value < 0 or (positive and value == 0):
        kind = "an int" if integer else "a number"
        raise ArchcostError(f"{where}: must be {kind} {'> 0' if positive else '>= 0'}, got {value!r}")
    return int(value) if integer else float(value)


def parse_results(data, source: str = "RESULTS.json") -> Results:
    """Check ``data`` (a parsed RESULTS.json) against the schema; one-line errors name the field."""
    if not isinstance(data, dict):
        raise ArchcostError(f"{source}: expected a JSON object")
    for key in ("machine", "date", "peak_gflops", "bandwidth_gbs", "layers"):
        if key not in data:
            raise ArchcostError(f"{source}: missing field {key!r}")
    layers = data["layers"]
    if not isinstance(layers, list) or not layers:
        raise ArchcostError(f"{source}: layers must be a non-empty list")
    parsed = []
    for i, layer in enumerate(layers):
        where = f"{source}: layers[{i}]"
        if not isinstance(layer, dict):
            raise ArchcostError(f"{where}: expected an object")
        for key in ("name", "op", "macs", "bytes", "seconds"):
            if key not in layer:
                raise ArchcostError(f"{where}: missing field {key!r}")
        macs = _number(f"{where}.macs", layer["macs"], positive=False, integer=True)
        flops = _number(f"{where}.flops", layer.get("flops", 2 * macs))
        seconds = _number(f"{where}.seconds", layer["seconds"])
        gflops = _number(f"{where}.gflops", layer.get("gflops", flops / seconds / 1e9), positive=False)
        parsed.append(LayerResult(str(layer["name"]), str(layer["op"]), macs, flops,
                                  _number(f"{where}.bytes", layer["bytes"]), seconds, gflops))
    return Results(
        machine=str(data["machine"]),
        date=str(data["date"]),
        peak_gflops=_number(f"{source}: peak_gflops", data["peak_gflops"]),
        bandwidth_gbs=_number(f"{source}: bandwidth_gbs", data["bandwidth_gbs"]),
        layers=tuple(parsed),
        model=str(data.get("model", "")),
        dtype=str(data.get("dtype", "")),
    )


def load_results(path: str | Path) -> Results:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ArchcostError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise ArchcostError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
    return parse_results(data, str(path))
