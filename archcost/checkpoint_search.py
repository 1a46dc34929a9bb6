"""The least-memory checkpointing of a training step under a recompute budget.

``optimal_segments(graph, plan_for, macs, first, budget_macs, regular)`` returns the checkpointed segments
(``(start, end)`` positions in the topological order, as ``TrainingPlan.segments``) of the plan
with the least exact training peak whose recomputed forward MACs stay within ``budget_macs``.

**Search space.** Segments start and end at *single-tensor cuts*: boundaries of the topological
order crossed by at most one activation storage (Chen et al. 2016's candidate split points:
between residual blocks, after a dense layer's concatenation, anywhere in a chain; a storage
that crosses several, as past an in-place activation that aliases it, gives the last). The units
between consecutive cuts are each either kept as usual or part of a checkpointed segment of
consecutive units; the network's outputs and persistent storages (params, the input) cross every
cut and are not counted, since no checkpointing frees them.

**The model** the dynamic programme minimises is built from the exact plan without checkpointing,
in which every kept storage is attributed to the unit that creates it. While unit ``u`` runs
(forward or backward), the bytes live are what earlier units hold for their backward plus a local
part: everything else live at that moment in the plan without checkpointing (parameter and
activation gradients, the unit's own kept tensors, transients), which no choice of segments
changes. A kept unit holds what it keeps; a checkpointed segment holds only the tensor that
crosses into it (it reads it again) and, while its backward runs, what its units keep when
recomputed. The tensor that
crosses a cut is held when a kept layer on either side saves it, or when a segment starts there.
Without segments the model equals the exact plan's peak; with them it is an estimate (a tensor's
exact moment of release inside a unit is not modelled), which is why the pick is made on exact
plans (below).

**The programme.** For a bound ``M`` on the peak, over the cuts in topological order, the least
bytes held at each cut for each amount of recompute used (in ``BUCKETS`` steps of the budget,
rounded up so the budget is never exceeded), for the two states "the last unit was kept" and "was
checkpointed"; a unit or segment may follow only if its live bytes stay within ``M``. A binary
search finds the least ``M`` the programme meets. Every plan the search meets (one per feasible
``M``), and the regular ``sqrt`` and ``every:K`` plans within the budget (``regular``: K a power
of two or 1.5 times one), are then planned exactly;
the one with the least exact peak (then the least recompute) is returned.
"""

from __future__ import annotations

import math

import numpy as np

BUCKETS = 128  # recompute budget resolution of the programme
INF = np.iinfo(np.int64).max // 4
NEG = -INF
KEPT, SEGMENT = 0, 1


class _Cuts:
    """The units of a plan without checkpointing, and what the model needs of each."""

    def __init__(self, graph, plan, timeline, first: int):
        order = plan.order
        n_pos = len(order)
        pos = {n: i for i, n in enumerate(order)}
        st = plan.storages
        pinned = set(plan.persistent) | {plan.storage_of[o] for o in graph.output_nodes()}
        # Producer and last reader of each activation storage.
        prod, last = {}, {}
        for n in order[first:]:
            sid = plan.storage_of[n]
            if sid in pinned:
                continue
            p = pos[n]
            prod.setdefault(sid, p)
            reach = max([p, *(pos[c] for c in graph.consumers(n))])
            last[sid] = max(last.get(sid, p), reach)
        # Crossing count and (where it is one) the crossing storage, by difference arrays.
        count = [0] * (n_pos + 2)
        sid_sum = [0] * (n_pos + 2)
        for sid, p in prod.items():
            if last[sid] > p:
                count[p + 1] += 1
                count[last[sid] + 1] -= 1
                sid_sum[p + 1] += sid
                sid_sum[last[sid] + 1] -= sid
        # A storage crossing several single-tensor cuts (read on past an in-place activation
        # that aliases it, or past a branch that ends in an output) gives its last one only, so
        # that each is held or dropped by the units on the two sides of one cut, and a segment
        # starting there reads it without overwriting it.
        crossing, last_cut, running, total = {}, {}, 0, 0
        for c in range(n_pos + 1):
            running += count[c]
            total += sid_sum[c]
            if c > first and c < n_pos and running <= 1:
                if running == 1:
                    last_cut[total] = c
                else:
                    crossing[c] = None
        crossing.update({c: sid for sid, c in last_cut.items()})
        self.cuts = [first, *sorted(crossing), n_pos]
        k = len(self.cuts) - 1  # units
        unit_of = {}
        for u in range(k):
            for p in range(self.cuts[u], self.cuts[u + 1]):
                unit_of[p] = u

        # Savers of each storage: the layers that keep it for their backward.
        savers: dict[int, list] = {}
        for n in order:
            s = plan.saved[n]
            srcs = graph.inputs(n)
            kept = [plan.storage_of[srcs[i]] for i in s.inputs] + ([plan.storage_of[n]] if s.output else [])
            for sid in set(kept):
                savers.setdefault(sid, []).append(pos[n])

        # Per cut: the crossing storage's bytes (where this cut is the first it crosses), whether
        # it is kept in the plan, saved before or after the cut.
        self.xb, self.kx, self.sb, self.sa = ([0] * (k + 1) for _ in range(4))
        for i, c in enumerate(self.cuts):
            sid = crossing.get(c)
            if sid is None:
                continue
            self.xb[i] = st[sid].nbytes
            self.kx[i] = st[sid].nbytes if sid in plan.kept else 0
            self.sb[i] = any(p < c for p in savers.get(sid, ()))
            self.sa[i] = any(p >= c for p in savers.get(sid, ()))

        # P(c): kept bytes created before cut c; Q(c) = P(c) less the crossing storage's.
        created = [0] * (k + 1)
        for sid in plan.kept:
            s = st[sid]
            if s.kind not in ("activation", "extra") or sid in pinned:
                continue
            created[unit_of[pos[s.node]] + 1] += s.nbytes
        p_cum = list(np.cumsum(created))
        self.q = [int(p_cum[i]) - self.kx[i] for i in range(k + 1)]
        self.kin = [self.q[u + 1] - self.q[u] - self.kx[u] for u in range(k)]

        # Local live bytes: the exact plan's live bytes less what earlier units hold.
        live_f, live_b = [NEG] * k, [NEG] * k
        end = NEG
        for (phase, node, held) in timeline:
            if phase == "forward":
                u = unit_of[pos[node]]
                live_f[u] = max(live_f[u], held)
            elif phase == "backward":
                u = unit_of[pos[node]]
                live_b[u] = max(live_b[u], held)
            else:
                end = max(end, held)
        self.f = [live_f[u] - self.q[u] if live_f[u] > NEG else NEG for u in range(k)]
        self.e = [live_b[u] - self.q[u] if live_b[u] > NEG else NEG for u in range(k)]
        self.end = end - self.q[k]
        self.units = k

    def unit_macs(self, macs: dict, order) -> list:
        return [sum(macs.get(order[p], 0) for p in range(self.cuts[u], self.cuts[u + 1]))
                for u in range(self.units)]


class _Programme:
    def __init__(self, cuts: _Cuts, unit_macs: list, budget_macs: int):
        self.c = cuts
        self.delta = budget_macs / BUCKETS if budget_macs > 0 else 0.0
        self.unit_macs = unit_macs
        # Per first unit i, the segments within the budget: their ends j, buckets and local bytes.
        self.tables = []
        for i in range(cuts.units):
            rows = list(self._segments_from(i))
            self.tables.append(tuple(np.array([r[col] for r in rows], dtype=np.int64) for col in range(3)))

    def _buckets(self, macs: int) -> int:
        if macs == 0:
            return 0
        if self.delta == 0:
            return BUCKETS + 1  # over any budget of 0
        return math.ceil(macs / self.delta - 1e-9)

    def _segments_from(self, i, bounded=True):
        """(j, buckets, local bytes) of each segment of units i..j-1 (within the budget)."""
        c = self.c
        run_qe = run_f = NEG
        macs = 0
        for j in range(i + 1, c.units + 1):
            u = j - 1
            if c.e[u] > NEG:
                run_qe = max(run_qe, c.q[u] + c.e[u])
            run_f = max(run_f, c.f[u])
            macs += self.unit_macs[u]
            s = self._buckets(macs)
            if s > BUCKETS and bounded:
                return
            local = max(run_qe - c.q[i] if run_qe > NEG else NEG, run_f) + c.xb[i] - c.kx[i]
            yield j, s, local

    def _hold(self, i, prev) -> int:
        c = self.c
        return c.xb[i] if ((prev == KEPT and c.sb[i]) or c.sa[i]) else 0

    def model_peak(self, units) -> int:
        """The model's peak of the plan checkpointing ``units`` (unit ranges)."""
        c = self.c
        starts = dict(units)
        held, prev, i, peak = 0, KEPT, 0, NEG
        while i < c.units:
            if i in starts:
                j = starts[i]
                local = next(loc for jj, _, loc in self._segments_from(i, bounded=False) if jj == j)
                peak = max(peak, held + local)
                held, prev, i = held + c.xb[i], SEGMENT, j
            else:
                peak = max(peak, held + max(c.e[i], c.f[i]))
                held, prev, i = held + c.kin[i] + self._hold(i, prev), KEPT, i + 1
        return max(peak, held + c.end)

    def run(self, bound: int):
        """Least bytes held at each cut, per state and recompute used: ``raw`` (exactly r buckets
        at the last step) and ``acc`` (at most r), arrays of shape (units + 1, BUCKETS + 1)."""
        c = self.c
        k = c.units
        width = BUCKETS + 1
        raw = {p: np.full((k + 1, width), INF, dtype=np.int64) for p in (KEPT, SEGMENT)}
        acc = {p: np.empty((k + 1, width), dtype=np.int64) for p in (KEPT, SEGMENT)}
        raw[KEPT][0, 0] = 0
        seg_flat = raw[SEGMENT].reshape(-1)
        columns = np.arange(width)
        for i in range(k + 1):
            for p in (KEPT, SEGMENT):
                np.minimum.accumulate(raw[p][i], out=acc[p][i])
            if i == k:
                break
            js, shifts, local = self.tables[i]
            for p in (KEPT, SEGMENT):
                h = acc[p][i]
                if h[-1] >= INF:
                    continue
                new = np.where(h + max(c.e[i], c.f[i]) <= bound, h + c.kin[i] + self._hold(i, p), INF)
                np.minimum(raw[KEPT][i + 1], new, out=raw[KEPT][i + 1])
                if not len(js):
                    continue
                # Every segment from unit i at once: row j, column r + its buckets; the (row,
                # column) pairs are distinct, so a gather-min-scatter is exact.
                ok = (h[None, :] + local[:, None] <= bound) & (h[None, :] < INF)
                cols = columns[None, :] + shifts[:, None]
                ok &= cols < width
                flat = (js[:, None] * width + cols)[ok]
                vals = np.broadcast_to(h[None, :] + c.xb[i], ok.shape)[ok]
                seg_flat[flat] = np.minimum(seg_flat[flat], vals)
        return acc, raw

    def solve(self, bound: int):
        """The segments (as unit ranges) of a plan the model keeps within ``bound``, or None."""
        acc, raw = self.run(bound)
        c = self.c
        k = c.units
        best = None
        for r in range(BUCKETS + 1):
            for p in (KEPT, SEGMENT):
                if acc[p][k, r] + c.end <= bound:
                    best = (p, r)
                    break
            if best:
                break
        if best is None:
            return None
        segments = []
        j, (p, r) = k, best
        while j > 0:
            v = int(acc[p][j, r])
            r = int(np.flatnonzero(raw[p][j, :r + 1] == v)[0])
            found = None
            if p == KEPT:
                i = j - 1
                for q in (KEPT, SEGMENT):
                    h = int(acc[q][i, r])
                    if h < INF and h + max(c.e[i], c.f[i]) <= bound and h + c.kin[i] + self._hold(i, q) == v:
                        found = (i, q, r)
                        break
            else:
                for i in range(j - 1, -1, -1):
                    js, shifts, local = self.tables[i]
                    at = j - i - 1  # the table's rows are ends i+1, i+2, ... in order
                    if at >= len(js) or r - shifts[at] < 0:
                        continue
                    s, loc = int(shifts[at]), int(local[at])
                    for q in (KEPT, SEGMENT):
                        h = int(acc[q][i, r - s])
                        if h < INF and h + loc <= bound and h + c.xb[i] == v:
                            found = (i, q, r - s)
                            break
                    if found:
                        segments.append((i, j))
                        break
            if found is None:  # cannot happen: every value has a predecessor
                raise AssertionError("checkpoint search: lost its way back")
            j, p, r = found
        return tuple(sorted(segments))


def optimal_segments(graph, plan_for, macs: dict, first: int, budget_macs: int, regular: list) -> tuple:
    """See the module doc. ``plan_for(segments)`` returns ``(plan, timeline, peak)`` exactly;
    ``macs`` the forward MACs per node; ``regular`` candidate segmentations (sqrt, every:K)."""
    plan, timeline, peak = plan_for(())
    cuts = _Cuts(graph, plan, timeline, first)
    order = plan.order
    programme = _Programme(cuts, cuts.unit_macs(macs, order), budget_macs)

    def recompute(segments):
        return sum(macs.get(order[p], 0) for a, b in segments for p in range(a, b))

    candidates = {(): (peak, 0)}

    def consider(segments):
        if segments in candidates:
            return
        cost = recompute(segments)
        if cost > budget_macs:
            return
        candidates[segments] = (plan_for(segments)[2], cost)

    # Binary search for the least bound the programme meets; a plan found lowers the bound to its
    # own model peak at once.
    lo, hi = 0, peak  # the plan without checkpointing meets its own peak
    for _ in range(64):
        if hi - lo <= 1:
            break
        mid = (lo + hi) // 2
        units = programme.solve(mid)
        if units is None:
            lo = mid
            continue
        hi = programme.model_peak(units)
        consider(tuple((cuts.cuts[a], cuts.cuts[b]) for a, b in units))
    for segments in regular:
        consider(tuple(segments))
    return min(candidates, key=lambda s: (candidates[s][0], candidates[s][1], len(s)))
