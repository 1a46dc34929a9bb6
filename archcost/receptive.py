"""Receptive field of every layer: size, jump (stride in input pixels) and start (centre of the
first output unit's field, in input pixel coordinates), per axis.

Recurrence for a window op with kernel k, stride s, padding p, dilation d:
``size' = size + (k - 1) * d * jump``, ``jump' = jump * s``,
``start' = start + ((k - 1) * d / 2 - p) * jump``.
A merge (concat, add) takes the largest field over its inputs: the field over all paths. An input
that broadcasts (SE's gate, GCNet's context (N, C, 1, 1)) brings its own field, the whole map's
when it was pooled from it, so the product, sum or difference sees what its pool saw.
A Pad is a 1 x 1 window padded by its (top, left) amounts (``ops.Pad.window``): in every mode,
as the pass ignores what a padded position reads (zeros, a mirrored, border or wrapped unit).

A resize (``ops.Resize.resample``) whose output unit x reads ``taps`` adjacent input units from
floor(ratio * x + offset) on, ``first`` for x = 0 (a transposed conv too, ``ConvTranspose2d.resample``:
ratio 1 / stride, taps its widest span of input units, ``first`` a half unit where that centres
output 0's span):
``size' = size + (taps - 1) * jump``, ``jump' = jump * ratio``,
``start' = start + (first + (taps - 1) / 2) * jump``.
The ratio (input units per output unit) is a rational such as 1/2 or 3/7, so after a resize
sizes, jumps and starts are exact ``Fraction``s; without one they stay ints, as before. The
field is that of the sampling map's slope: a window of k units after a nearest upsample by s is
credited (k - 1) / s input units, which is exact when s divides k - 1 (a 3x3 conv after x2) and
otherwise less than the largest field of a unit by under one input jump (k consecutive outputs
of floor(x / s) may span ceil((k - 1) / s) + 1 units).
Returned fields hold ints where a value is whole, floats (0.5, 3.25) where it is not.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import NamedTuple

from archcost.graph import Graph


class Field(NamedTuple):
    size_h: int | float
    size_w: int | float
    jump_h: int | float
    jump_w: int | float
    start_h: float
    start_w: float


def _plain(v):
    """An exact value as the records hold it: an int when whole (a Fraction after a resize often is,
    e.g. jump 1/2 then stride 2), else the nearest float; +-inf past float's range."""
    if isinstance(v, Fraction):
        if v.denominator == 1:
            return v.numerator
        try:
            return float(v)
        except OverflowError:
            return math.inf if v > 0 else -math.inf
    return v


def _half(n) -> float:
    """``n / 2`` as a float; +-inf past float's range (true division of a huge int overflows)."""
    try:
        return float(n / 2) if isinstance(n, Fraction) else n / 2
    except OverflowError:
        return math.inf if n > 0 else -math.inf


def _whole(v):
    """A Fraction that is whole as an int, so a field whose resize is undone (x2 then stride 2)
    computes in ints again."""
    return v.numerator if isinstance(v, Fraction) and v.denominator == 1 else v


def receptive_fields(graph: Graph, shapes: dict) -> dict[str, Field]:
    # Sizes, jumps and twice the starts are exact ints (exact Fractions after a resize): float
    # arithmetic here raised OverflowError ("int too large to convert to float") on valid graphs of huge strides or
    # sizes, e.g. twelve stride-10^30 convs, whose jump is 10^360. The starts become floats
    # (exact halves, as before, wherever a float can hold them) only in the returned fields.
    exact: dict[str, tuple] = {}  # node -> (size_h, size_w, jump_h, jump_w, 2*start_h, 2*start_w)
    fields: dict[str, Field] = {}
    for node in graph.topological_order():
        inputs = graph.inputs(node)
        if not inputs:
            f = exact[node] = (1, 1, 1, 1, 0, 0)
            fields[node] = Field(*f[:4], 0.0, 0.0)
            continue
        if len(inputs) == 1:
            f = exact[inputs[0]]
        else:
            parents = [exact[src] for src in inputs]
            f = tuple(max(p[i] for p in parents) for i in range(4)) + tuple(
                min(p[i] for p in parents) for i in (4, 5)
            )
        in_shapes = tuple(shapes[src] for src in inputs)
        window = graph.op(node).window(in_shapes)
        resample = graph.op(node).resample(in_shapes) if window is None else None
        if resample is not None:
            size_h, size_w, jump_h, jump_w, start2_h, start2_w = f
            rh, rw = resample
            f = tuple(_whole(v) for v in (
                size_h + (rh.taps - 1) * jump_h,
                size_w + (rw.taps - 1) * jump_w,
                jump_h * rh.ratio,
                jump_w * rw.ratio,
                start2_h + (2 * rh.first + rh.taps - 1) * jump_h,
                start2_w + (2 * rw.first + rw.taps - 1) * jump_w,
            ))
        if window is not None:
            size_h, size_w, jump_h, jump_w, start2_h, start2_w = f
            f = tuple(_whole(v) for v in (
                size_h + (window.kh - 1) * window.dh * jump_h,
                size_w + (window.kw - 1) * window.dw * jump_w,
                jump_h * window.sh,
                jump_w * window.sw,
                start2_h + ((window.kh - 1) * window.dh - 2 * window.pad_top) * jump_h,
                start2_w + ((window.kw - 1) * window.dw - 2 * window.pad_left) * jump_w,
            ))
        exact[node] = f
        fields[node] = Field(*(_plain(v) for v in f[:4]), _half(f[4]), _half(f[5]))
    return fields
