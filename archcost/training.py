"""The training analysis: one step of forward, loss, backward in reverse and optimizer, counted
exactly and scheduled byte by byte.

``analyze_training(graph, batch, dtype, policy, optimizer, mixed_precision, freeze, checkpoint)``
returns a ``TrainingReport``: per layer the backward MACs (data and weight gradient), the bytes it
keeps for its backward and the bytes live while its backward runs; in total the training step's
MACs and FLOPs, the saved bytes, parameter gradients, optimizer state and the peak. It is a pure
pass: no numba, no torch.

The rules:

- **Who gets a gradient.** A layer's params are trained unless frozen (``freeze``: name
  patterns, ``freeze_until``: every layer up to and including one). A tensor needs a gradient
  when its layer has trained params or any of its inputs needs one; the network input never does.
  A layer runs a backward when its output needs a gradient and reaches the loss.
- **What is kept** follows each op's ``saves`` rule (archcost/ops.py, beside its forward rules)
  under the chosen saving policy, ``archcost`` or ``pytorch``. Kept tensors are storages: a
  flatten or reshape is a view of its input's storage, and an activation or dropout runs in place
  on its input's storage when that is legal (nothing keeps the storage, no later layer reads it,
  it is not the network input, and the op does not keep its own input; under ``pytorch`` dropout
  is never in place, as torch.nn.Dropout's default). A storage kept by several layers counts once.
- **The schedule.** Persistent for the whole step: params, buffers, fp32 master weights
  (``mixed_precision``), optimizer state, the input batch and the labels. Forward in topological
  order: a layer's output storage and the extras it keeps are allocated as it runs; a storage
  nobody keeps is freed after its last reader. The loss (softmax cross-entropy over axis 1 of
  every output, labels int64, probabilities kept in float32) follows. Backward in reverse
  topological order: each layer allocates (zeroed) the gradients of its inputs that are not yet
  allocated and the gradients of its trained params (kept to the optimizer step), runs, then
  frees its output's gradient and the kept storages whose last backward reader it was. Under
  ``pytorch`` the model's outputs stay alive to the end of the step (the caller holds them);
  under ``archcost`` they are freed once the loss has read them.
- **Checkpointing** (``checkpoint``): the topological order is cut into segments; every segment
  but the last is checkpointed: in the forward its layers keep nothing (their extras are
  transient), only the storages the segment reads from before it are kept; when the backward
  reaches the segment's last layer, the segment's forward is run again (``recompute_macs``),
  keeping what its layers keep, and its backward follows. ``every:K`` cuts every K layers,
  ``sqrt`` every ceil(sqrt(n)) (Chen et al. 2016), ``optimal:F`` picks the segments with the
  least peak that recompute at most F times the forward MACs (archcost/checkpoint_search.py);
  explicit segments may be given as (start, end) positions. No layer runs in place on a storage
  that a checkpointed segment reads from before its start: the recomputation reads it again.

The same ``TrainingPlan`` (storages and steps) is what archcost's training executor allocates
from, so its measured peak can be compared with ``train_peak_bytes`` exactly.
"""

from __future__ import annotations

import fnmatch
import math
from collections import ChainMap
from dataclasses import asdict, dataclass

from archcost import ops
from archcost.analysis import analyze, check_graph, dtype_bytes
from archcost.cost import BackwardCost, Saved
from archcost.errors import ArchcostError, quote
from archcost.graph import Graph

OPTIMIZERS = {"sgd": 0, "momentum": 1, "adam": 2, "adamw": 2}  # state tensors per trained param
ITEMSIZE = {"float64": 8, "float32": 4, "float16": 2, "bfloat16": 2, "int64": 8, "int32": 4, "uint8": 1}
LABEL_DTYPE = "int64"
PROBS_DTYPE = "float32"
# The loss: softmax (3 per element), log of the picked probability and the mean (2 per label
# position) forward; (p - onehot) / positions backward (2 per element).
LOSS_FORWARD_OPS_PER_ELEMENT = 3
LOSS_FORWARD_OPS_PER_LABEL = 2
LOSS_BACKWARD_OPS_PER_ELEMENT = 2


@dataclass(frozen=True)
class Storage:
    """One allocation of the step: ``kind`` is one of activation, extra, grad (an activation
    gradient), param_grad, param, buffer, master, optimizer, input, labels, probs."""

    sid: int
    kind: str
    node: str  # the layer it belongs to ("" for the loss's)
    name: str  # "output", an extra's name, "grad", a param name...
    shape: tuple
    dtype: str
    nbytes: int


@dataclass(frozen=True)
class Step:
    """One step of the schedule: ``phase`` forward, loss_forward, loss_backward, recompute,
    backward or optimizer; ``node`` its layer; storages allocated before it runs and freed after."""

    phase: str
    node: str
    alloc: tuple = ()
    free: tuple = ()


@dataclass(frozen=True, slots=True)
class TrainLayer:
    name: str
    op: str
    label: str
    trained: bool  # its params get gradients
    grad: bool  # its output gets a gradient (it runs a backward)
    data_macs: int
    weight_macs: int
    backward_macs: int
    backward_other: int
    forward_train_other: int  # forward other ops in training mode (cost().other + statistics, masks)
    saved_bytes: int  # bytes of the storages this layer creates that are kept for backward
    grad_bytes: int  # its params' gradients
    checkpointed: bool
    train_live_bytes: int  # everything live while its backward runs (its forward's when it has none)
    forward_live_bytes: int  # everything live while its forward runs


@dataclass
class TrainingPlan:
    """Storages and steps of one training step (what the executor allocates from)."""

    order: tuple
    storages: dict  # sid -> Storage
    steps: list  # Step, in order
    persistent: tuple  # sids allocated before the first step, never freed
    storage_of: dict  # node -> sid of its output in the forward
    recompute_storage_of: dict  # node -> sid of its output when its segment is recomputed
    extras_of: dict  # (phase, node) -> {name: sid}
    grad_of: dict  # node -> sid of its output's gradient
    param_grad_of: dict  # node -> {param name: sid}
    grad_inputs: dict  # node -> tuple of bools
    trained: dict  # node -> bool
    saved: dict  # node -> ops Saved (under the policy)
    segments: tuple  # (start, end) positions of checkpointed segments in ``order``
    kept: frozenset  # sids kept from the forward for the backward (layers' and the loss's)


class TrainingReport:
    """What ``analyze_training`` returns: ``records`` (one per layer), ``layers`` (a DataFrame),
    ``totals`` (ints), ``timeline`` (live bytes per step) and ``plan``."""

    def __init__(self, forward, records, totals, timeline, plan, config):
        self.forward = forward
        self.graph = forward.graph
        self.model = forward.model
        self.batch = forward.batch
        self.dtype = forward.dtype
        self.records = records
        self.totals = totals
        self.timeline = timeline  # [(phase, node, live bytes)]
        self.plan = plan
        self.config = config

    @property
    def layers(self):
        import pandas as pd

        return pd.DataFrame([asdict(r) for r in self.records]).set_index("name", drop=False)

    @property
    def curve(self) -> list[dict]:
        """Live bytes per step of the schedule, by group (``memory_curve``)."""
        return memory_curve(self.plan)

    def __repr__(self) -> str:
        return f"TrainingReport({self.model!r}, batch={self.batch}, {self.config['policy']} policy)"


# --- who gets a gradient -----------------------------------------------------------------------


def frozen_layers(graph: Graph, freeze=(), freeze_until: str | None = None) -> set[str]:
    """The layers whose params are not trained: names matching any ``freeze`` pattern (fnmatch,
    e.g. ``"layer1.*"``) and, with ``freeze_until``, every layer up to and including it."""
    order = graph.topological_order()
    frozen: set[str] = set()
    if isinstance(freeze, str):
        freeze = freeze.split(",") if freeze else []
    for pattern in freeze:
        if not isinstance(pattern, str) or not pattern:
            raise ArchcostError(f"freeze: patterns must be non-empty strings, got {quote(pattern)}")
        hits = [n for n in order if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ArchcostError(f"freeze: pattern {quote(pattern)} matches no layer of {graph.name}")
        frozen.update(hits)
    if freeze_until is not None:
        if freeze_until not in graph:
            raise ArchcostError(f"freeze-until: {graph.name} has no layer {quote(freeze_until)}")
        frozen.update(order[: order.index(freeze_until) + 1])
    return frozen


# --- checkpoint segments -------------------------------------------------------------------


CHECKPOINT_MODES = "none, sqrt, every:K or optimal:F"


def parse_checkpoint(spec) -> tuple[str, float]:
    """``none``, ``sqrt``, ``every:K`` or ``optimal:F`` as (mode, number)."""
    if not isinstance(spec, str):
        raise ArchcostError(f"checkpoint: expected {CHECKPOINT_MODES}, got {quote(spec)}")
    mode, _, arg = spec.partition(":")
    if mode in ("none", "sqrt") and not arg:
        return mode, 0
    if mode == "every":
        if not arg.isascii() or not arg.isdigit() or len(arg) > 9 or int(arg) < 1:
            raise ArchcostError(f"checkpoint: every:K needs a positive integer K, got {quote(spec)}")
        return mode, int(arg)
    if mode == "optimal":
        # F: the recompute budget as a fraction of the forward MACs (0.25 or 25%).
        text = arg[:-1] if arg.endswith("%") else arg
        try:
            value = float(text) if text.isascii() and 0 < len(text) <= 20 and "_" not in text else math.nan
        except ValueError:
            value = math.nan
        if arg.endswith("%"):
            value /= 100
        if not math.isfinite(value) or value < 0:
            raise ArchcostError(f"checkpoint: optimal:F needs a recompute budget F >= 0, a fraction of the "
                                f"forward MACs (0.3 or 30%), got {quote(spec)}")
        return mode, value
    raise ArchcostError(f"checkpoint: expected {CHECKPOINT_MODES}, got {quote(spec)}")


def _regular_segments(n: int, k: int, first: int) -> tuple:
    """Segments of ``k`` positions from ``first`` to ``n``, all but the last checkpointed."""
    cuts = list(range(first, n, k))
    return tuple((a, min(a + k, n)) for a in cuts[:-1])


# --- the plan ------------------------------------------------------------------------------


class _Planner:
    def __init__(self, graph, batch, itemsize, policy, optimizer, mixed_precision, frozen, segments):
        self.g = graph
        self.batch = batch
        self.itemsize = itemsize
        self.policy = policy
        self.order = tuple(graph.topological_order())
        self.pos = {n: i for i, n in enumerate(self.order)}
        self.shapes = {n: (batch, *graph.shape(n)[1:]) for n in self.order}
        self.storages: dict[int, Storage] = {}
        self.optimizer = optimizer
        self.mixed_precision = mixed_precision
        self.frozen = frozen
        self.segments = segments
        self.segment_of = {}
        for s, (a, b) in enumerate(segments):
            for p in range(a, b):
                self.segment_of[self.order[p]] = s

    def new(self, kind, node, name, shape, dtype) -> int:
        sid = len(self.storages)
        nbytes = math.prod(shape) * (self.itemsize if dtype == "activation" else ITEMSIZE[dtype])
        self.storages[sid] = Storage(sid, kind, node, name, tuple(shape), dtype, nbytes)
        return sid

    def in_shapes(self, node):
        return tuple(self.shapes[s] for s in self.g.inputs(node))

    def plan(self) -> TrainingPlan:
        g, order = self.g, self.order
        costs = {n: g.op(n).cost(self.in_shapes(n), self.shapes[n]) for n in order
                 if not isinstance(g.op(n), ops.Input)}
        trained = {n: (n in costs and costs[n].params > 0 and n not in self.frozen) for n in order}
        needs = {}
        for n in order:
            needs[n] = trained[n] or any(needs[s] for s in g.inputs(n))
        outputs = set(g.output_nodes())
        reaches = {}
        for n in reversed(order):
            reaches[n] = n in outputs or any(reaches[c] for c in g.consumers(n))
        grad = {n: needs[n] and reaches[n] and not isinstance(g.op(n), ops.Input) for n in order}
        grad_inputs = {n: tuple(needs[s] for s in g.inputs(n)) for n in order}
        trained = {n: trained[n] and reaches[n] for n in order}
        saved = {n: (g.op(n).saves(self.in_shapes(n), self.shapes[n], self.policy, grad_inputs[n], trained[n])
                     if grad[n] else Saved()) for n in order}
        self.grad, self.saved = grad, saved

        persistent = []
        param_sids = {}
        for n in order:
            if n not in costs:
                continue
            c = costs[n]
            dtype = "activation"
            if c.params:
                param_sids[n] = self.new("param", n, "params", (c.params,), dtype)
                persistent.append(param_sids[n])
            if c.buffers:
                persistent.append(self.new("buffer", n, "buffers", (c.buffers,), dtype))
            if trained[n]:
                if self.mixed_precision:
                    persistent.append(self.new("master", n, "master", (c.params,), "float32"))
                state_dtype = "float32" if self.mixed_precision else dtype
                for i in range(OPTIMIZERS[self.optimizer]):
                    persistent.append(self.new("optimizer", n, f"state{i}", (c.params,), state_dtype))

        # Forward storages: views share always; in-place ops share where legal.
        storage_of: dict[str, int] = {}
        aliases: dict[int, list[str]] = {}
        for n in order:
            op = g.op(n)
            if isinstance(op, ops.Input):
                sid = self.new("input", n, "output", self.shapes[n], "activation")
                persistent.append(sid)
            elif op.view:
                sid = storage_of[g.inputs(n)[0]]
            elif op.inplace and self._in_place_legal(n, storage_of, aliases):
                sid = storage_of[g.inputs(n)[0]]
            else:
                sid = self.new("activation", n, "output", self.shapes[n], "activation")
            storage_of[n] = sid
            aliases.setdefault(sid, []).append(n)
        self.storage_of, self.aliases = storage_of, aliases
        labels = [self.new("labels", o, "labels", (self.shapes[o][0], *self.shapes[o][2:]), LABEL_DTYPE)
                  for o in g.output_nodes()]
        persistent.extend(labels)

        steps: list[Step] = []
        extras_of: dict = {}
        # Which storages are kept from the forward to the backward, and by whom: the layers
        # outside checkpointed segments that keep them, and the checkpointed segments that read
        # them from before their start (a token ("segment", s)).
        holders: dict[int, set] = {}
        for n in order:
            if n in self.segment_of:
                continue
            for sid in self._kept_sids(n, storage_of):
                holders.setdefault(sid, set()).add(n)
        segment_inputs: dict[int, set] = {}  # checkpointed segment -> sids it reads from before it
        for s, (a, b) in enumerate(self.segments):
            for p in range(a, b):
                for src in g.inputs(order[p]):
                    if self.pos[src] < a:
                        segment_inputs.setdefault(s, set()).add(storage_of[src])
                        holders.setdefault(storage_of[src], set()).add(("segment", s))
        held_to_end = set(persistent)
        if self.policy == "pytorch":
            held_to_end.update(storage_of[o] for o in outputs)
        kept_fwd = set(holders)

        # Forward: free a storage after the last forward reader of any of its aliases.
        last_read: dict[int, int] = {}
        for sid, nodes in aliases.items():
            last = max(self.pos[x] for x in nodes)
            for x in nodes:
                for c in g.consumers(x):
                    last = max(last, self.pos[c])
            last_read[sid] = last
        output_sids = {storage_of[o] for o in outputs}
        free_at: dict[int, list] = {}
        for sid, p in last_read.items():
            if sid in held_to_end or sid in kept_fwd or sid in output_sids:
                continue
            free_at.setdefault(p, []).append(sid)
        for p, n in enumerate(order):
            op = g.op(n)
            if isinstance(op, ops.Input):
                continue
            alloc = [storage_of[n]] if aliases[storage_of[n]][0] == n else []
            extras = {name: self.new("extra", n, name, shape, dtype) for name, shape, dtype in saved[n].extras}
            scratch = not grad[n] and isinstance(op, (ops.BatchNorm, ops.Dropout))
            if scratch:
                # Training mode without a backward: BN still normalises with batch statistics and
                # dropout still draws a mask, in scratch that lives for this step only.
                rule = op.saves(self.in_shapes(n), self.shapes[n], self.policy, (True,), True)
                extras = {name: self.new("extra", n, name, shape, dtype) for name, shape, dtype in rule.extras}
            extras_of[("forward", n)] = extras
            alloc.extend(extras.values())
            free = list(free_at.get(p, ()))
            if n in self.segment_of or scratch:
                free.extend(extras.values())  # transient in a checkpointed segment
            else:
                kept_fwd.update(extras.values())
            steps.append(Step("forward", n, tuple(alloc), tuple(free)))

        # The loss: reads every output, keeps probabilities, frees the outputs nobody else holds.
        probs = {o: self.new("probs", o, "probs", self.shapes[o], PROBS_DTYPE) for o in g.output_nodes()}
        if self.policy == "pytorch":
            # nll_loss also keeps total_weight, a float32 scalar (measured: 4 bytes whatever the batch).
            for o in g.output_nodes():
                probs[(o, "total_weight")] = self.new("probs", o, "total_weight", (), "float32")
        loss_free = tuple(storage_of[o] for o in g.output_nodes()
                          if storage_of[o] not in held_to_end and storage_of[o] not in kept_fwd)
        steps.append(Step("loss_forward", "", tuple(probs.values()), loss_free))
        kept_fwd.update(probs.values())
        kept_fwd.update(labels)
        grad_of: dict[str, int] = {}
        loss_alloc = []
        for o in g.output_nodes():
            if grad[o]:
                grad_of[o] = self.new("grad", o, "grad", self.shapes[o], "activation")
                loss_alloc.append(grad_of[o])
        steps.append(Step("loss_backward", "", tuple(loss_alloc), tuple(probs.values())))

        # Backward in reverse order; a checkpointed segment is recomputed when its last layer's turn comes.
        remaining: dict[int, set] = {sid: set(k) for sid, k in holders.items()}
        recompute_storage_of: dict[str, int] = {}
        recompute_keepers: dict[int, set] = {}
        seg_end = {b - 1: s for s, (a, b) in enumerate(self.segments)}
        param_grad_of: dict[str, dict] = {}
        for p in range(len(order) - 1, -1, -1):
            n = order[p]
            if p in seg_end:
                self._recompute(seg_end[p], steps, storage_of, recompute_storage_of, recompute_keepers,
                                extras_of, held_to_end)
            seg_start = n in self.segment_of and self.segments[self.segment_of[n]][0] == p
            if not grad[n]:
                if seg_start:
                    self._release(self.segment_of[n], steps, segment_inputs, remaining, held_to_end)
                continue
            alloc = []
            for src, wanted in zip(g.inputs(n), grad_inputs[n]):
                if wanted and src not in grad_of:
                    grad_of[src] = self.new("grad", src, "grad", self.shapes[src], "activation")
                    alloc.append(grad_of[src])
            if trained[n]:
                sid = self.new("param_grad", n, "grad", (costs[n].params,), "activation")
                param_grad_of[n] = {"params": sid}
                alloc.append(sid)
            free = [grad_of[n]] if n in grad_of else []
            if n in self.segment_of:
                lookup = ChainMap(recompute_storage_of, storage_of)
                for sid in self._kept_sids(n, lookup):
                    if sid not in recompute_keepers:
                        continue  # a storage from before the segment: held by the segment itself
                    recompute_keepers[sid].discard(n)
                    if not recompute_keepers[sid] and sid not in held_to_end:
                        free.append(sid)
                free.extend(extras_of[("recompute", n)].values())
            else:
                for sid in self._kept_sids(n, storage_of):
                    remaining[sid].discard(n)
                    if not remaining[sid] and sid not in held_to_end:
                        free.append(sid)
                free.extend(extras_of[("forward", n)].values())
            steps.append(Step("backward", n, tuple(alloc), tuple(dict.fromkeys(free))))
            if seg_start:
                self._release(self.segment_of[n], steps, segment_inputs, remaining, held_to_end)
        steps.append(Step("optimizer", ""))
        return TrainingPlan(order, self.storages, steps, tuple(persistent), storage_of, recompute_storage_of,
                            extras_of, grad_of, param_grad_of, grad_inputs, trained, saved, self.segments,
                            frozenset(kept_fwd))

    @staticmethod
    def _release(s, steps, segment_inputs, remaining, held):
        """After checkpointed segment ``s``'s first layer's turn in the backward, the storages it
        read from before it are no longer needed by it: freed with the last step if nobody else
        holds them."""
        free = list(steps[-1].free)
        for sid in sorted(segment_inputs.get(s, ())):
            remaining[sid].discard(("segment", s))
            if not remaining[sid] and sid not in held and sid not in free:
                free.append(sid)
        last = steps[-1]
        steps[-1] = Step(last.phase, last.node, last.alloc, tuple(free))

    def _kept_sids(self, n, storage_of) -> list[int]:
        s = self.saved[n]
        srcs = self.g.inputs(n)
        sids = [storage_of[srcs[i]] for i in s.inputs]
        if s.output:
            sids.append(storage_of[n])
        return list(dict.fromkeys(sids))

    def _in_place_legal(self, n, storage_of, aliases) -> bool:
        g = self.g
        op = g.op(n)
        srcs = g.inputs(n)
        if len(srcs) != 1:
            return False
        if isinstance(op, ops.Dropout) and self.policy == "pytorch":
            return False
        sid = storage_of[srcs[0]]
        if self.storages[sid].kind == "input":
            return False
        if self.saved[n].inputs:
            return False  # it keeps the very input it would overwrite
        p = self.pos[n]
        for x in aliases[sid]:
            if self.saved[x].output:
                return False
            for c in g.consumers(x):
                # A checkpointed segment reads again, when it is recomputed, the storages made
                # before its start: their values must last through the forward.
                if c in self.segment_of and self.pos[aliases[sid][0]] < self.segments[self.segment_of[c]][0]:
                    return False
                if c == n:
                    continue
                if self.pos[c] > p:
                    return False  # a later layer still reads it
                srcs_c = g.inputs(c)
                if any(srcs_c[i] == x for i in self.saved[c].inputs):
                    return False
        return True

    def _recompute(self, s, steps, storage_of, recompute_storage_of, recompute_keepers, extras_of, held):
        g, order = self.g, self.order
        a, b = self.segments[s]
        nodes = order[a:b]
        pos = {n: i for i, n in enumerate(nodes)}
        local: dict[str, int] = {}
        local_aliases: dict[int, list] = {}
        created: set[int] = set()  # storages made by this recomputation (a view may alias one from before)

        def where(x):
            return local.get(x, storage_of[x])

        for n in nodes:
            op = g.op(n)
            src_sid = where(g.inputs(n)[0]) if g.inputs(n) else None
            if op.view:
                sid = src_sid
            elif op.inplace and src_sid in created and self._recompute_in_place(n, local, local_aliases, pos):
                sid = src_sid
            else:
                sid = self.new("activation", n, "output", self.shapes[n], "activation")
                created.add(sid)
            local[n] = sid
            local_aliases.setdefault(sid, []).append(n)
        recompute_storage_of.update(local)
        for n in nodes:
            if not self.grad[n]:
                continue
            for sid in self._kept_sids(n, ChainMap(local, storage_of)):
                if sid in created:  # made by the recomputation (earlier storages: the segment holds them)
                    recompute_keepers.setdefault(sid, set()).add(n)
        last_read: dict[int, int] = {}
        for sid, xs in local_aliases.items():
            if sid not in created:
                continue
            last = max(pos[x] for x in xs)
            for x in xs:
                for c in g.consumers(x):
                    if c in pos:
                        last = max(last, pos[c])
            last_read[sid] = last
        freed_at: dict[int, list] = {}
        for sid, last in last_read.items():
            freed_at.setdefault(last, []).append(sid)
        for i, n in enumerate(nodes):
            alloc = []
            sid = local[n]
            if sid in created and local_aliases[sid][0] == n:
                alloc.append(sid)
            extras = {name: self.new("extra", n, name, shape, dtype) for name, shape, dtype in self.saved[n].extras}
            extras_of[("recompute", n)] = extras
            alloc.extend(extras.values())
            free = [x for x in freed_at.get(i, ()) if x not in recompute_keepers]
            steps.append(Step("recompute", n, tuple(alloc), tuple(free)))

    def _recompute_in_place(self, n, local, local_aliases, seg_pos) -> bool:
        g = self.g
        if isinstance(g.op(n), ops.Dropout) and self.policy == "pytorch":
            return False
        if self.saved[n].inputs:
            return False
        sid = local[g.inputs(n)[0]]
        for x in local_aliases[sid]:
            if self.saved[x].output:
                return False
            for c in g.consumers(x):
                if c == n:
                    continue
                if c not in seg_pos or seg_pos[c] > seg_pos[n]:
                    return False
                if any(g.inputs(c)[i] == x for i in self.saved[c].inputs):
                    return False
        return True


# --- the pass ------------------------------------------------------------------------------


# The storages that hold activations and their gradients (what a batch costs), as opposed to
# params, their gradients, optimizer state and the input batch.
ACTIVATION_KINDS = ("activation", "extra", "grad", "probs")


# How the memory curve groups the storages (``TrainingReport.curve``).
CURVE_GROUPS = {
    "params, buffers, optimizer, input": ("param", "buffer", "master", "optimizer", "input", "labels"),
    "parameter gradients": ("param_grad",),
    "activations and kept tensors": ("activation", "extra", "probs"),
    "activation gradients": ("grad",),
}


def memory_curve(plan: TrainingPlan) -> list[dict]:
    """Per step of ``plan``: its phase, node and the live bytes of each ``CURVE_GROUPS`` group
    (after its allocations, before its frees)."""
    st = plan.storages
    group_of = {kind: name for name, kinds in CURVE_GROUPS.items() for kind in kinds}
    held = dict.fromkeys(CURVE_GROUPS, 0)
    for sid in plan.persistent:
        held[group_of[st[sid].kind]] += st[sid].nbytes
    curve = []
    for step in plan.steps:
        for sid in step.alloc:
            held[group_of[st[sid].kind]] += st[sid].nbytes
        curve.append({"phase": step.phase, "node": step.node, **held})
        for sid in step.free:
            held[group_of[st[sid].kind]] -= st[sid].nbytes
    return curve


OPTIMAL_FRACTIONS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0)


def checkpoint_tradeoff(graph: Graph, batch: int = 1, dtype: str = "float32", ks=None,
                        fractions=OPTIMAL_FRACTIONS, **options) -> list[dict]:
    """The memory/recompute trade-off of checkpointing ``graph``: one point per plan (none,
    sqrt, every:K for each K in ``ks``, by default 2 to the layer count in steps of about 10%, and
    optimal:F for each F in ``fractions``), each with its checkpoint spec, recompute MACs,
    training peak and activation peak."""
    order = graph.topological_order()
    layers = sum(1 for n in order if not isinstance(graph.op(n), ops.Input))
    if ks is None:
        ks = sorted({max(2, round(layers * f / 40)) for f in range(1, 41)} | {1})
    points = []
    specs = ["none", "sqrt", *(f"every:{k}" for k in ks), *(f"optimal:{f:g}" for f in fractions)]
    for spec in specs:
        t = analyze_training(graph, batch=batch, dtype=dtype, checkpoint=spec, **options).totals
        points.append({"checkpoint": spec, "recompute_macs": t["recompute_macs"], "forward_macs": t["forward_macs"],
                       "train_peak_bytes": t["train_peak_bytes"],
                       "train_activation_peak_bytes": t["train_activation_peak_bytes"]})
    return points


def simulate(plan: TrainingPlan) -> tuple[list, int, dict]:
    """Live bytes per step of ``plan`` (after its allocations, before its frees), the peak and,
    at the peak, the bytes live by storage kind (plus ``"activation_peak"``: the most bytes of
    ``ACTIVATION_KINDS`` live at any step)."""
    st = plan.storages
    live = {sid for sid in plan.persistent}
    held = sum(st[sid].nbytes for sid in live)
    acts = sum(st[sid].nbytes for sid in live if st[sid].kind in ACTIVATION_KINDS)
    timeline, peak, peak_live, act_peak = [], held, set(live), acts
    for step in plan.steps:
        for sid in step.alloc:
            if sid in live:
                raise AssertionError(f"storage {sid} allocated twice")
            live.add(sid)
            held += st[sid].nbytes
            acts += st[sid].nbytes if st[sid].kind in ACTIVATION_KINDS else 0
        timeline.append((step.phase, step.node, held))
        act_peak = max(act_peak, acts)
        if held > peak:
            peak, peak_live = held, set(live)
        for sid in step.free:
            live.discard(sid)
            held -= st[sid].nbytes
            acts -= st[sid].nbytes if st[sid].kind in ACTIVATION_KINDS else 0
    by_kind: dict[str, int] = {"activation_peak": act_peak}
    for sid in peak_live:
        by_kind[st[sid].kind] = by_kind.get(st[sid].kind, 0) + st[sid].nbytes
    return timeline, peak, by_kind


def analyze_training(graph: Graph, batch: int = 1, dtype: str = "float32", policy: str = "archcost",
                     optimizer: str = "sgd", mixed_precision: bool = False, freeze=(),
                     freeze_until: str | None = None, checkpoint="none") -> TrainingReport:
    """One training step of ``graph``: see the module doc for the rules. ``checkpoint`` is a mode
    (none, sqrt, every:K, optimal:F) or explicit segments, (start, end) positions in the
    topological order."""
    check_graph(graph, "analyze_training")
    if policy not in ops.POLICIES:
        raise ArchcostError(f"policy: unknown {quote(policy)}; known: {', '.join(ops.POLICIES)}")
    if optimizer not in OPTIMIZERS:
        raise ArchcostError(f"optimizer: unknown {quote(optimizer)}; known: {', '.join(OPTIMIZERS)}")
    itemsize = dtype_bytes(dtype)
    if mixed_precision and dtype not in ("float16", "bfloat16"):
        raise ArchcostError(f"mixed precision keeps float16 or bfloat16 params beside float32 master weights; "
                            f"got dtype {dtype} (use --dtype float16 or bfloat16)")
    forward = analyze(graph, batch, dtype)
    frozen = frozen_layers(graph, freeze, freeze_until)
    order = graph.topological_order()
    mode, arg = ("segments", checkpoint) if isinstance(checkpoint, (tuple, list)) else parse_checkpoint(checkpoint)
    first = sum(1 for n in order if isinstance(graph.op(n), ops.Input))
    layers = len(order) - first
    planner_args = (graph, batch, itemsize, policy, optimizer, mixed_precision, frozen)
    sqrt_k = max(1, math.isqrt(layers - 1) + 1) if layers > 1 else 1
    if mode == "none":
        segments = ()
    elif mode == "every":
        segments = _regular_segments(len(order), int(arg), first)
    elif mode == "sqrt":
        segments = _regular_segments(len(order), sqrt_k, first)
    elif mode == "optimal":
        segments = _optimal_segments(planner_args, forward, first, arg, sqrt_k)
    else:
        segments = _explicit_segments(arg, len(order), first)
    plan = _Planner(*planner_args, segments).plan()
    return _report(forward, plan, {
        "policy": policy, "optimizer": optimizer, "mixed_precision": mixed_precision, "checkpoint": checkpoint,
        "frozen": sorted(frozen, key=order.index),
    })


def _explicit_segments(segments, n: int, first: int) -> tuple:
    """Segments given as (start, end) positions in the topological order: sorted, disjoint, past
    the inputs."""
    out, end = [], first
    for seg in segments:
        ok = (isinstance(seg, (tuple, list)) and len(seg) == 2
              and all(isinstance(v, int) and not isinstance(v, bool) for v in seg))
        if not ok or not end <= seg[0] < seg[1] <= n:
            raise ArchcostError(f"checkpoint: segments must be sorted, disjoint (start, end) positions in "
                                f"{first}..{n} of the topological order; got {quote(seg)}")
        out.append((seg[0], seg[1]))
        end = seg[1]
    return tuple(out)


def _optimal_segments(planner_args, forward, first: int, fraction: float, sqrt_k: int) -> tuple:
    """The least-peak segments recomputing at most ``fraction`` of the forward MACs
    (archcost/checkpoint_search.py)."""
    from archcost.checkpoint_search import optimal_segments

    def plan_for(segments):
        plan = _Planner(*planner_args, segments).plan()
        timeline, peak, _ = simulate(plan)
        return plan, timeline, peak

    graph = planner_args[0]
    n = len(graph.topological_order())
    ks = {sqrt_k} | {k for k in (2 ** e for e in range(20)) if k < n - first}
    ks |= {k + k // 2 for k in ks if k > 1 and k + k // 2 < n - first}
    regular = [_regular_segments(n, k, first) for k in sorted(ks)]
    macs = {r.name: r.macs for r in forward.records}
    budget = math.floor(min(fraction, 1.0) * forward.totals["macs"])  # no plan recomputes more than the forward
    return optimal_segments(graph, plan_for, macs, first, budget, regular)


def _report(forward, plan: TrainingPlan, config) -> TrainingReport:
    g = forward.graph
    timeline, peak, by_kind = simulate(plan)
    st = plan.storages
    fwd_live = {node: held for phase, node, held in timeline if phase == "forward"}
    bwd_live = {node: held for phase, node, held in timeline if phase == "backward"}
    records = []
    recompute_macs = recompute_other = 0
    checkpointed = {plan.order[p] for a, b in plan.segments for p in range(a, b)}
    kept_sids = plan.kept
    saved_by: dict[str, int] = {}
    for sid in kept_sids:
        saved_by[st[sid].node] = saved_by.get(st[sid].node, 0) + st[sid].nbytes
    contributions: dict[str, int] = {}
    backward_total = BackwardCost()
    accumulate_other = 0
    shapes = {n: (forward.batch, *g.shape(n)[1:]) for n in plan.order}
    for n in plan.order:
        for src, wanted in zip(g.inputs(n), plan.grad_inputs[n]):
            if wanted and n in bwd_live:
                contributions[src] = contributions.get(src, 0) + 1
    for rec in forward.records:
        n = rec.name
        op = g.op(n)
        in_shapes = tuple(shapes[s] for s in g.inputs(n))
        if isinstance(op, ops.Input):
            bw = BackwardCost()
            train_other = 0
        else:
            bw = op.backward(in_shapes, shapes[n], plan.grad_inputs[n], plan.trained[n]) if n in bwd_live else BackwardCost()
            train_other = rec.other + op.train_forward_other(in_shapes, shapes[n])
        if n in checkpointed:
            recompute_macs += rec.macs
            recompute_other += train_other
        accumulate_other += max(contributions.get(n, 0) - 1, 0) * math.prod(shapes[n])
        backward_total = BackwardCost(backward_total.data_macs + bw.data_macs,
                                      backward_total.weight_macs + bw.weight_macs, backward_total.other + bw.other)
        grad_bytes = sum(st[sid].nbytes for sid in plan.param_grad_of.get(n, {}).values())
        records.append(TrainLayer(
            name=n, op=op.kind, label=rec.label, trained=plan.trained[n], grad=n in bwd_live,
            data_macs=bw.data_macs, weight_macs=bw.weight_macs, backward_macs=bw.macs, backward_other=bw.other,
            forward_train_other=train_other, saved_bytes=saved_by.get(n, 0), grad_bytes=grad_bytes,
            checkpointed=n in checkpointed, train_live_bytes=bwd_live.get(n, fwd_live.get(n, 0)),
            forward_live_bytes=fwd_live.get(n, 0),
        ))
    ft = forward.totals
    outputs = g.output_nodes()
    loss_elems = sum(math.prod(shapes[o]) for o in outputs)
    loss_labels = sum(math.prod((shapes[o][0], *shapes[o][2:])) for o in outputs)
    loss_forward = LOSS_FORWARD_OPS_PER_ELEMENT * loss_elems + LOSS_FORWARD_OPS_PER_LABEL * loss_labels
    loss_backward = LOSS_BACKWARD_OPS_PER_ELEMENT * loss_elems
    forward_other = sum(r.forward_train_other for r in records) + loss_forward
    backward_other = backward_total.other + accumulate_other + loss_backward

    def kind_bytes(*kinds):
        return sum(s.nbytes for s in st.values() if s.kind in kinds)

    train_macs = ft["macs"] + backward_total.macs + recompute_macs
    other = forward_other + backward_other + recompute_other
    totals = {
        "forward_macs": ft["macs"],
        "backward_data_macs": backward_total.data_macs,
        "backward_weight_macs": backward_total.weight_macs,
        "backward_macs": backward_total.macs,
        "recompute_macs": recompute_macs,
        "train_step_macs": train_macs,
        "forward_train_other": forward_other,
        "backward_other": backward_other,
        "recompute_other": recompute_other,
        "train_step_flops": 2 * train_macs + other,
        "train_step_ratio": train_macs / ft["macs"] if ft["macs"] else 0.0,
        "trained_params": sum(g.op(n).cost(tuple(shapes[s] for s in g.inputs(n)), shapes[n]).params
                              for n in plan.order if plan.trained[n]),
        "param_bytes": kind_bytes("param"),
        "buffer_bytes": kind_bytes("buffer"),
        "master_bytes": kind_bytes("master"),
        "grad_bytes": kind_bytes("param_grad"),
        "optimizer_bytes": kind_bytes("optimizer"),
        "input_bytes": kind_bytes("input", "labels"),
        "train_saved_bytes": sum(st[sid].nbytes for sid in kept_sids),
        "train_peak_bytes": peak,
        # the most bytes of activations, kept tensors and activation gradients live at once
        "train_activation_peak_bytes": by_kind["activation_peak"],
        "peak_step": _peak_step(timeline, peak),
        **{f"at_peak_{kind}_bytes": by_kind.get(kind, 0) for kind in
           ("param", "buffer", "master", "optimizer", "param_grad", "input", "labels", "activation", "extra",
            "grad", "probs")},
    }
    return TrainingReport(forward, records, totals, timeline, plan, config)


def _peak_step(timeline, peak) -> str:
    for phase, node, held in timeline:
        if held == peak:
            return f"{phase} {node}".strip()
    return "start"
