"""Figures: the accuracy-vs-cost bubble chart (Canziani et al. 2017), per-layer memory and
params, and the roofline. Headless (matplotlib's object API on the Agg canvas, no pyplot state).

This module computes nothing: each function receives the analyzer's (or the benchmark's)
numbers and only lays them out. Scaling a bubble's area to its params and placing labels are
presentation. Only archcost/commands/plot.py imports this module, so matplotlib never loads
for the other commands.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from archcost.errors import ArchcostError
from archcost.report.table import human

FORMATS = ("png", "svg", "pdf")
MAX_BUBBLE_AREA = 1600.0  # points^2 of the largest bubble


def check_output(path: str | Path) -> Path:
    """The output path, if its extension is one we write and a file can be created there; else
    a one-line error (before any figure is drawn)."""
    from archcost.outputs import check_output_path

    return check_output_path(path, "-o", tuple(f".{f}" for f in FORMATS))


def save(fig: Figure, path: str | Path) -> Path:
    """Save through a temp file and a rename (archcost.outputs.write_atomic)."""
    from archcost.outputs import write_atomic

    path = check_output(path)
    fmt = path.suffix.lower().lstrip(".")
    write_atomic(path, writer=lambda f: fig.savefig(f, format=fmt, dpi=fig.dpi, bbox_inches="tight",
                                                     metadata=_metadata(path)))
    return path


def _metadata(path: Path) -> dict:
    # Keep output byte-stable across runs (no creation dates, no software version in the file).
    return {"png": {"Software": None}, "svg": {"Date": None, "Creator": None},
            "pdf": {"CreationDate": None, "Creator": None, "Producer": None}}[path.suffix.lower().lstrip(".")]


def _figure(width: float, height: float, dpi: int = 100) -> Figure:
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _human_axis(unit: str = "") -> FuncFormatter:
    return FuncFormatter(lambda v, _pos: human(v, unit) if v > 0 else "0")


@dataclass(frozen=True)
class Bubble:
    name: str
    x: float  # e.g. MACs
    y: float  # accuracy, %
    size: float  # e.g. params: the bubble's area is proportional to it


def bubble(points: list[Bubble], *, x_label: str, y_label: str, size_label: str = "params",
           front: list[int] = (), title: str = "", log_x: bool = True) -> Figure:
    """Accuracy against cost, one bubble per model, area proportional to ``size``; ``front``
    (indices into ``points``, ordered by cost) is drawn as the Pareto frontier."""
    if not points:
        raise ArchcostError("plot bubble: no model to plot")
    fig = _figure(10, 6.5)
    ax = fig.add_subplot()
    scale = MAX_BUBBLE_AREA / max(p.size for p in points)
    ax.scatter([p.x for p in points], [p.y for p in points], s=[p.size * scale for p in points],
               c=[f"C{i % 10}" for i in range(len(points))], alpha=0.55, edgecolors="k", linewidths=0.6,
               zorder=3, gid="bubbles")
    if front:
        ax.plot([points[i].x for i in front], [points[i].y for i in front], drawstyle="steps-post", color="0.35",
                linestyle="--", linewidth=1.2, zorder=2, label="Pareto frontier", gid="pareto")
    if log_x:
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(_human_axis())
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(True, which="major", alpha=0.3)
    if title:
        ax.set_title(title)
    _pad_limits(ax, points, log_x)
    labels = [
        ax.annotate(p.name, (p.x, p.y), xytext=(0, 0), textcoords="offset points", fontsize=8, ha="center",
                    va="center", zorder=4, arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5,
                                                       "shrinkA": 0, "shrinkB": 0})
        for p in points
    ]
    _size_legend(ax, [p.size for p in points], scale, size_label, has_front=bool(front))
    diameters = [math.sqrt(p.size * scale) for p in points]
    repel_labels(fig, labels, diameters, _bubble_boxes(ax, points, diameters))
    for text in labels:  # a leader line only where the label sits away from its bubble
        text.arrow_patch.set_visible(math.hypot(*text.get_position()) > 30)
    return fig


def _bubble_boxes(ax, points, diameters_pt):
    from matplotlib.transforms import Bbox

    to_px = ax.figure.dpi / 72.0
    boxes = []
    for p, d in zip(points, diameters_pt):
        cx, cy = ax.transData.transform((p.x, p.y))
        r = d / 2 * to_px
        boxes.append(Bbox.from_extents(cx - r, cy - r, cx + r, cy + r))
    return boxes


def _pad_limits(ax, points, log_x):
    xs, ys = [p.x for p in points], [p.y for p in points]
    if log_x:
        lo, hi = math.log10(min(xs)), math.log10(max(xs))
        pad = max(0.15, 0.08 * (hi - lo))
        ax.set_xlim(10 ** (lo - pad), 10 ** (hi + pad))
    span = max(ys) - min(ys) or 1.0
    ax.set_ylim(min(ys) - 0.12 * span, max(ys) + 0.12 * span)


def _size_legend(ax, sizes, scale, size_label, has_front):
    """Legend entries for three round sizes spanning the data (e.g. 1M, 10M, 100M params)."""
    lo, hi = min(sizes), max(sizes)
    nice = [m * 10.0**e for e in range(math.floor(math.log10(lo)) - 1, math.floor(math.log10(hi)) + 1)
            for m in (1, 2, 5)]
    nice = [v for v in nice if lo / 2 <= v <= hi] or [hi]
    marks = sorted({nice[0], nice[len(nice) // 2], nice[-1]})
    handles = [ax.scatter([], [], s=v * scale, color="0.7", alpha=0.55, edgecolors="k", linewidths=0.6,
                          label=f"{human(v)} {size_label}") for v in marks]
    if has_front:
        handles += [line for line in ax.get_lines() if line.get_gid() == "pareto"]
    # Outside the axes, so that it hides no bubble and no label.
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), labelspacing=2.2, borderpad=1.2,
              frameon=True, scatterpoints=1, fontsize=8)


def repel_labels(fig: Figure, labels, radii_pt, obstacles=()) -> None:
    """Place annotation texts so that no two overlap: each label, in turn, takes the first of a
    ring of candidate offsets around its point (above, below, right, left, then the diagonals, at
    growing distances) whose box stays inside the axes and clear of the labels already placed;
    when none is clear, the candidate with the least overlap. A leader line joins a label to its
    point. Deterministic, bounded, no extra dependency."""
    if not labels:
        return
    renderer = fig.canvas.get_renderer()
    axes_box = labels[0].axes.get_window_extent(renderer)
    directions = ((0, 1), (0, -1), (1, 0), (-1, 0), (1, 1), (-1, 1), (1, -1), (-1, -1))
    placed = []
    order = sorted(range(len(labels)), key=lambda i: -radii_pt[i])  # big bubbles choose first
    for i in order:
        text = labels[i]
        best, best_cost = None, None
        for extra in (4, 12, 22, 34, 48, 64, 82):
            for dx, dy in directions:
                text.set_position((dx * (radii_pt[i] / 2 + extra) * 1.6, dy * (radii_pt[i] / 2 + extra)))
                box = text.get_window_extent(renderer).expanded(1.06, 1.2)
                cost = sum(_overlap(box, other) for other in placed)
                cost += 0.3 * sum(_overlap(box, o) for k, o in enumerate(obstacles) if k != i)
                if not _inside(box, axes_box):
                    cost += box.width * box.height
                if best_cost is None or cost < best_cost:
                    best, best_cost = text.get_position(), cost
                if cost == 0:
                    break
            if best_cost == 0:
                break
        text.set_position(best)
        placed.append(text.get_window_extent(renderer).expanded(1.06, 1.2))


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _inside(box, outer) -> bool:
    return box.x0 >= outer.x0 and box.x1 <= outer.x1 and box.y0 >= outer.y0 and box.y1 <= outer.y1


def layers(names: list[str], activations: list[int], params: list[int], *, title: str = "",
           log: bool = False, activation_label: str = "activation memory (elements)") -> Figure:
    """Two panels over the same layers: activation memory (top) and params (bottom)."""
    if not names:
        raise ArchcostError("plot layers: no layer to plot")
    fig = _figure(max(8.0, 0.32 * len(names) + 2), 6.5)
    top, bottom = fig.subplots(2, 1, sharex=True)
    xs = list(range(len(names)))
    top.bar(xs, activations, color="C0", gid="activations")
    bottom.bar(xs, params, color="C3", gid="params")
    top.set_ylabel(activation_label)
    bottom.set_ylabel("params")
    for ax in (top, bottom):
        if log:
            ax.set_yscale("log")
        ax.yaxis.set_major_formatter(_human_axis())
        ax.grid(True, axis="y", alpha=0.3)
    bottom.set_xticks(xs)
    bottom.set_xticklabels(names, rotation=90, fontsize=7)
    if title:
        top.set_title(title)
    fig.align_ylabels((top, bottom))
    return fig


@dataclass(frozen=True)
class RooflinePoint:
    name: str
    op: str
    intensity: float  # FLOP per byte
    gflops: float  # measured


def roofline(points: list[RooflinePoint], ceiling_x: list[float], ceiling_y: list[float], *,
             peak_gflops: float, bandwidth_gbs: float, title: str = "") -> Figure:
    """Measured GFLOP/s per layer against arithmetic intensity, under the roofline given as a
    polyline (``ceiling_x``, ``ceiling_y``), log-log."""
    if not points:
        raise ArchcostError("plot roofline: no layer to plot")
    fig = _figure(8, 5.5)
    ax = fig.add_subplot()
    ax.plot(ceiling_x, ceiling_y, color="k", linewidth=1.5, gid="ceiling",
            label=f"roofline: {peak_gflops:g} GFLOP/s, {bandwidth_gbs:g} GB/s")
    ops = list(dict.fromkeys(p.op for p in points))
    for k, op in enumerate(ops):
        mine = [p for p in points if p.op == op]
        ax.scatter([p.intensity for p in mine], [p.gflops for p in mine], color=f"C{k % 10}", s=28, zorder=3,
                   label=op, gid=f"layers:{op}")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("arithmetic intensity (FLOP / byte moved)")
    ax.set_ylabel("measured GFLOP/s")
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    labels = [ax.annotate(p.name, (p.intensity, p.gflops), xytext=(0, 0), textcoords="offset points", fontsize=7,
                          ha="center", va="center") for p in points]
    repel_labels(fig, labels, [6.0] * len(points))
    return fig
