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
    repel_labels(fig, labels, diameters, _bubble_circles(ax, points, diameters))
    for text in labels:  # a leader line only where the label sits away from its bubble
        text.arrow_patch.set_visible(math.hypot(*text.get_position()) > 30)
    return fig


def _bubble_circles(ax, points, diameters_pt):
    """Each bubble as (cx, cy, r) in pixels, the obstacles labels keep off."""
    to_px = ax.figure.dpi / 72.0
    return [(*ax.transData.transform((p.x, p.y)), d / 2 * to_px) for p, d in zip(points, diameters_pt)]


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
    # Outside the axes, so that it hides no bubble and no label. The handle column is as wide as
    # the largest circle (in font sizes), so that circle never runs into its text.
    fontsize = 8
    widest = math.sqrt(max(marks) * scale) / fontsize
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), labelspacing=max(2.2, widest * 0.8),
              borderpad=1.2, handlelength=max(2.0, widest + 0.4), handletextpad=0.8, frameon=True,
              scatterpoints=1, fontsize=fontsize)


def repel_labels(fig: Figure, labels, radii_pt, obstacles=()) -> None:
    """Place annotation texts so that no two overlap and none covers another point's marker:
    each label, in turn (biggest marker first), takes the cheapest of a ring of candidate offsets
    around its point (16 directions, above first, at growing distances); the cost of a candidate
    is its overlap with the labels already placed (weighted heavily), with the other markers
    (``obstacles``: pixel boxes, or circles given as (cx, cy, r)), a large penalty outside the
    axes, and a little for distance, so a label sits as close to its point as it can. A leader
    line joins a label to its point when it sits away from it.

    Each text's size is measured once and candidates are translations of that box: plain
    arithmetic, so hundreds of candidates per label cost milliseconds. Deterministic, no extra
    dependency."""
    if not labels:
        return
    renderer = fig.canvas.get_renderer()
    ax = labels[0].axes
    axes_box = ax.get_window_extent(renderer)
    to_px = fig.dpi / 72.0
    sizes, anchors = [], []
    from matplotlib.text import Text

    for text in labels:
        text.set_position((0, 0))
        # The text's own box: an Annotation's get_window_extent also spans its leader line.
        box = Text.get_window_extent(text, renderer)
        sizes.append((box.width * 1.08 + 2, box.height * 1.15 + 2))  # a little air around the text
        anchors.append(tuple(ax.transData.transform(text.xy)))
    circles = [_as_circle(o) for o in obstacles]
    # Above first, then below, then around by how vertical a direction is (above/below keep a
    # label in its bubble's column, easiest to read).
    angles = sorted({round(math.pi / 2 + j * math.pi / 8, 6) for j in range(16)},
                    key=lambda a: (abs(math.sin(a) - 1) > 1e-9, -abs(math.sin(a)), a))
    placed: list[tuple[float, float, float, float]] = []
    order = sorted(range(len(labels)), key=lambda i: -radii_pt[i])
    for i in order:
        (w, h), (ax0, ay0) = sizes[i], anchors[i]
        r_pt = radii_pt[i] / 2
        best, best_cost = (0.0, 0.0), None
        for extra in (2, 6, 11, 17, 24, 32, 41, 51, 62, 74, 87, 101, 116):
            for a in angles:
                # An ellipse of offsets: labels are wide, so sideways offsets clear the text's width.
                ox = math.cos(a) * (r_pt + extra + w / to_px / 2)
                oy = math.sin(a) * (r_pt + extra + h / to_px / 2)
                cx, cy = ax0 + ox * to_px, ay0 + oy * to_px
                box = (cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2)
                cost = 1000.0 * sum(_area(box, other) for other in placed)
                cost += sum(_circle_area(box, c) for k, c in enumerate(circles) if k != i)
                if not (box[0] >= axes_box.x0 and box[2] <= axes_box.x1 and box[1] >= axes_box.y0
                        and box[3] <= axes_box.y1):
                    cost += 1e7
                cost += 0.5 * extra
                if best_cost is None or cost < best_cost:
                    best, best_cost = (ox, oy), cost
            if best_cost is not None and best_cost <= 0.5 * extra:  # nothing in the way at this ring
                break
        labels[i].set_position(best)
        cx, cy = ax0 + best[0] * to_px, ay0 + best[1] * to_px
        placed.append((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2))


def _as_circle(obstacle):
    """(cx, cy, r) in pixels from a circle triple or a square Bbox around a marker."""
    if isinstance(obstacle, tuple):
        return obstacle
    return ((obstacle.x0 + obstacle.x1) / 2, (obstacle.y0 + obstacle.y1) / 2, obstacle.width / 2)


def _area(a, b) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _circle_area(box, circle) -> float:
    """How much ``box`` covers a marker: the overlap with the circle's inscribed square plus a
    little when it only grazes the rim (so a label never sits on another point's marker)."""
    cx, cy, r = circle
    dx = max(box[0] - cx, 0.0, cx - box[2])
    dy = max(box[1] - cy, 0.0, cy - box[3])
    if dx * dx + dy * dy >= r * r:
        return 0.0
    s = r / math.sqrt(2)
    return _area(box, (cx - s, cy - s, cx + s, cy + s)) + 50.0


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


def _log_scale(values) -> bool:
    """A log axis for positive values spanning more than a factor of 30."""
    values = [v for v in values if v is not None]
    return bool(values) and min(values) > 0 and max(values) / min(values) > 30


def sweep_front(xs: list[float], ys: list[float], front_x: list[float], front_y: list[float], *, x_label: str,
                y_label: str, labels: list[str] = (), title: str = "", log_x: bool | None = None,
                log_y: bool | None = None) -> Figure:
    """A design space's points (``xs``, ``ys``) with its Pareto front (``front_x``, ``front_y``,
    ordered along x) drawn as a step line through labelled markers. Log axes where the values
    span more than a factor of 30, unless ``log_x``/``log_y`` say."""
    if not xs:
        raise ArchcostError("sweep: no point to plot")
    fig = _figure(9, 6)
    ax = fig.add_subplot()
    ax.scatter(xs, ys, s=12, color="C0", alpha=0.45, linewidths=0, zorder=2, gid="points",
               label=f"{len(xs):,} points")
    ax.plot(front_x, front_y, drawstyle="steps-post", color="C3", linewidth=1.2, marker="o", markersize=5,
            zorder=3, gid="front", label=f"Pareto front ({len(front_x)})")
    if log_x if log_x is not None else _log_scale(xs):
        ax.set_xscale("log")
    if log_y if log_y is not None else _log_scale(ys):
        ax.set_yscale("log")
    for axis in (ax.xaxis, ax.yaxis):
        axis.set_major_formatter(_human_axis())
        axis.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if title:
        ax.set_title(title)
    texts = [ax.annotate(text, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=7, ha="center",
                         va="center", zorder=4, arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5})
             for text, x, y in zip(labels, front_x, front_y)]
    repel_labels(fig, texts, [5.0] * len(texts))
    return fig


def edf_plot(series: list[tuple[str, list[float]]], *, x_label: str, title: str = "",
             log_x: bool | None = None) -> Figure:
    """Empirical distribution functions, one step curve per (label, values): F(v), the share of
    a space's points whose value is at most v (Radosavovic et al. 2020). Several spaces on one
    axes compare them: the curve to the left holds more cheap (or good) points."""
    series = [(label, sorted(values)) for label, values in series if values]
    if not series:
        raise ArchcostError("sweep: no value to plot an EDF of")
    fig = _figure(8, 5)
    ax = fig.add_subplot()
    for k, (label, values) in enumerate(series):
        n = len(values)
        ax.step(values, [(i + 1) / n for i in range(n)], where="post", color=f"C{k % 10}", linewidth=1.4,
                gid=f"edf:{k}", label=f"{label} ({n:,} points)")
    everything = [v for _, values in series for v in values]
    if log_x if log_x is not None else _log_scale(everything):
        ax.set_xscale("log")
    ax.xaxis.set_major_formatter(_human_axis())
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _pos: ""))
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(x_label)
    ax.set_ylabel("cumulative share of points")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    if title:
        ax.set_title(title)
    return fig


def train_memory(curve: list[dict], groups: list[str], *, title: str = "", peak_label: str = "") -> Figure:
    """Live bytes over the steps of one training step, stacked by group (archcost.training
    .memory_curve): forward, loss and backward steps left to right."""
    if not curve:
        raise ArchcostError("plot train-memory: no step to plot")
    fig = _figure(10, 5.5)
    ax = fig.add_subplot()
    xs = list(range(len(curve)))
    ax.stackplot(xs, *[[step[g] for step in curve] for g in groups], labels=groups,
                 colors=["0.75", "C3", "C0", "C1"][: len(groups)], alpha=0.85)
    backward = [i for i, step in enumerate(curve) if step["phase"] == "loss_forward"]
    if backward:
        ax.axvline(backward[0], color="k", lw=0.8, ls="--")
        ax.text(backward[0], ax.get_ylim()[1] * 0.98, " loss, then backward", va="top", fontsize=8)
    ax.set_xlabel("step of the schedule (forward layers, loss, backward layers in reverse)")
    ax.set_ylabel("live bytes")
    ax.yaxis.set_major_formatter(_human_axis("B"))
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title + (f"\n{peak_label}" if peak_label else ""), fontsize=10)
    return fig


def checkpoint_tradeoff(series: dict, *, title: str = "") -> Figure:
    """Training peak against recomputed forward MACs (as a fraction of the forward), one panel
    per model; ``series``: model -> points of archcost.training.checkpoint_tradeoff."""
    if not series:
        raise ArchcostError("plot checkpoint: no model to plot")
    fig = _figure(5.6 * len(series), 4.6)
    axes = fig.subplots(1, len(series), squeeze=False, gridspec_kw={"wspace": 0.35})[0]
    for ax, (model, points) in zip(axes, series.items()):
        def where(prefix):
            chosen = [p for p in points if p["checkpoint"].split(":")[0] == prefix]
            return ([p["recompute_macs"] / p["forward_macs"] if p["forward_macs"] else 0.0 for p in chosen],
                    [p["train_peak_bytes"] for p in chosen])

        xs, ys = where("every")
        ax.plot(xs, ys, "o", ms=3, color="C0", alpha=0.7, label="every:K")
        xs, ys = where("optimal")
        if xs:
            ax.plot(xs, ys, "-^", ms=5, lw=1.2, color="C1",
                    label="optimal:F (least peak within F x forward MACs)")
        for prefix, marker, color, label in (("none", "s", "C3", "none"), ("sqrt", "D", "C2", "sqrt (Chen et al. 2016)")):
            xs, ys = where(prefix)
            ax.plot(xs, ys, marker, color=color, ms=7, label=label)
        ax.set_xlabel("recomputed forward MACs / forward MACs")
        ax.set_ylabel("training peak")
        ax.yaxis.set_major_formatter(_human_axis("B"))
        ax.grid(True, alpha=0.3)
        ax.set_title(model, fontsize=10)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
