"""One training step on archcost's own CPU kernels, allocated exactly as archcost.training plans it.

``TrainingExecutor(graph, batch, seed, optimizer, lr, freeze, freeze_until, checkpoint)`` draws
seeded weights (archcost.execute.init_params), and ``step(inputs, labels)`` runs the plan of
``archcost.training.analyze_training`` under the ``archcost`` saving policy, step by step:

- every storage of the plan is one array (activations flat, viewed at each layer's shape; extras
  at their shape and dtype; gradients zeroed, since backward kernels accumulate into them), made
  when the plan allocates it and dropped when the plan frees it; the arena adds up their
  ``nbytes`` and records the peak while each step runs, so ``TrainResult.peak_bytes`` is measured,
  to compare with the predicted ``train_peak_bytes``;
- a layer's backward gets only what its saving rule keeps (the other inputs and the output are
  ``None``), so a kernel that needed more would fail here, not pass silently;
- dropout masks are drawn from a generator seeded by (seed, step, layer), so a checkpointed
  segment's recomputation draws the same mask; BatchNorm updates its running statistics in the
  forward and again when its segment is recomputed, as PyTorch's checkpointing does;
- the loss is softmax cross-entropy over axis 1 of every output, averaged over label positions
  (labels drawn uniformly when not given); then one optimizer step (sgd, momentum 0.9, adam or
  adamw with PyTorch's defaults) updates the params in place.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from archcost import ops
from archcost.errors import ArchcostError, quote
from archcost.execute import buffer_names, init_params
from archcost.graph import Graph
from archcost.kernels.adapters import inference_forward
from archcost.training import OPTIMIZERS, analyze_training

_NUMPY_DTYPES = {"activation": np.float32, "float32": np.float32, "int64": np.int64, "int32": np.int32, "uint8": np.uint8}


@dataclass
class TrainResult:
    loss: float
    peak_bytes: int  # measured: the most bytes the arena held during one step
    grads: dict = field(default_factory=dict)  # node -> {param name: gradient} (host copies)
    activation_grads: dict = field(default_factory=dict)  # node -> d loss / d output (when asked)
    counts: dict = field(default_factory=dict)  # conv/linear node -> (data performed, data padded, weight performed, weight padded)
    outputs: dict = field(default_factory=dict)  # output node -> logits of the forward
    timeline: list = field(default_factory=list)  # (phase, node, bytes held) per step
    seconds: dict = field(default_factory=dict)  # (phase, node) -> wall seconds of its kernels


class _Arena:
    def __init__(self):
        self.arrays: dict[int, object] = {}
        self.held = 0
        self.peak = 0

    def add(self, sid, array):
        if sid in self.arrays:
            raise ArchcostError(f"training executor: storage {sid} allocated twice (a plan bug)")
        self.arrays[sid] = array
        self.held += _nbytes(array)

    def drop(self, sid):
        self.held -= _nbytes(self.arrays.pop(sid))

    def mark(self):
        self.peak = max(self.peak, self.held)


def _nbytes(array) -> int:
    if isinstance(array, dict):
        return sum(int(a.nbytes) for a in array.values())
    return int(array.nbytes)


class TrainingExecutor:
    def __init__(self, graph: Graph, batch: int = 1, seed: int = 0, optimizer: str = "sgd", lr: float = 0.01,
                 freeze=(), freeze_until: str | None = None, checkpoint: str = "none", params: dict | None = None):
        from archcost.kernels import load_backend

        self.graph = graph
        self.batch = batch
        self.seed = seed
        self.lr = lr
        self.optimizer = optimizer
        self.report = analyze_training(graph, batch=batch, dtype="float32", policy="archcost", optimizer=optimizer,
                                       freeze=freeze, freeze_until=freeze_until, checkpoint=checkpoint)
        self.plan = self.report.plan
        self.backend = load_backend("cpu")
        missing: dict[str, str] = {}
        for node in self.plan.order:
            op = graph.op(node)
            if isinstance(op, ops.Input):
                continue
            adapter = self.backend.ADAPTERS.get(type(op))
            if adapter is None or not hasattr(adapter, "train_forward") or not hasattr(adapter, "backward"):
                missing.setdefault(type(op).__name__, node)
        if missing:
            listed = "; ".join(f"{kind} (e.g. layer {quote(node)})" for kind, node in missing.items())
            raise ArchcostError(f"training: no backward kernel for: {listed}")
        self.shapes = {n: (batch, *graph.shape(n)[1:]) for n in self.plan.order}
        # node -> its checkpointed segment: a recomputed layer reads a recomputed input only from
        # its own segment (an input from before the segment is the forward's, which it holds).
        self.segment_of = {self.plan.order[p]: s for s, (a, b) in enumerate(self.plan.segments) for p in range(a, b)}
        rng = np.random.default_rng(seed)
        self.params: dict[str, dict] = {}
        for node in self.plan.order:
            op = graph.op(node)
            if isinstance(op, ops.Input):
                continue
            if params is not None and node in params:
                self.params[node] = params[node]
            else:
                in_shapes = tuple(self.shapes[s] for s in graph.inputs(node))
                self.params[node] = init_params(op, in_shapes, self.shapes[node], rng)
        self._state: dict[str, dict] = {}  # node -> {param name: [optimizer state arrays]}
        self._steps = 0
        self._input_rng = np.random.default_rng([seed, 1])

    # --- inputs ----------------------------------------------------------------------------
    def random_batch(self):
        inputs = {n: self._input_rng.standard_normal(self.shapes[n], dtype=np.float32)
                  for n in self.graph.input_nodes()}
        labels = {}
        for o in self.graph.output_nodes():
            shape = self.shapes[o]
            if len(shape) < 2:
                raise ArchcostError(f"training: output {quote(o)} has shape {shape}; the loss needs (N, classes, ...)")
            labels[o] = self._input_rng.integers(0, shape[1], (shape[0], *shape[2:]), dtype=np.int64)
        return inputs, labels

    def trainable(self, node) -> dict:
        """The params of ``node`` that get gradients (not buffers), by name."""
        if not self.plan.trained[node]:
            return {}
        skip = buffer_names(self.graph.op(node))
        return {k: v for k, v in self.params[node].items() if k not in skip}

    # --- the step --------------------------------------------------------------------------
    def step(self, inputs=None, labels=None, *, count: bool = False, keep_activation_grads: bool = False,
             update: bool = True, on_forward=None, on_backward=None, on_loss=None) -> TrainResult:
        """Run one step. ``inputs``/``labels``: arrays (or dicts by node), drawn when None.
        ``count``: run the conv/linear backward counters. ``on_forward(node, inputs, out, extras)``
        after each forward layer; ``on_backward(node, grad_out, deltas, param_grads)`` after each
        backward layer, ``deltas`` what it added to each input's gradient (float64); ``on_loss
        (output, probs, labels, grad)`` after the loss's backward; ``update``: run the optimizer."""
        g, plan, st = self.graph, self.plan, self.plan.storages
        if inputs is None or labels is None:
            drawn_inputs, drawn_labels = self.random_batch()
            inputs = drawn_inputs if inputs is None else inputs
            labels = drawn_labels if labels is None else labels
        if not isinstance(inputs, dict):
            inputs = {g.input_nodes()[0]: inputs}
        if not isinstance(labels, dict):
            labels = {g.output_nodes()[0]: labels}
        arena = _Arena()
        result = TrainResult(loss=0.0, peak_bytes=0)
        # Persistent storages: params and buffers (the drawn arrays), optimizer state, input, labels.
        self._persistent(arena)
        for node in g.input_nodes():
            x = np.ascontiguousarray(inputs[node], np.float32)
            if x.shape != self.shapes[node]:
                raise ArchcostError(f"training: input {quote(node)} has shape {x.shape}, expected {self.shapes[node]}")
            arena.add(plan.storage_of[node], x.reshape(-1).copy())
        label_sids = [s.sid for s in st.values() if s.kind == "labels"]
        for sid in label_sids:
            arena.add(sid, np.ascontiguousarray(labels[st[sid].node], np.int64).copy())
        param_grads: dict[str, dict] = {}
        for step in plan.steps:
            for sid in step.alloc:
                arena.add(sid, self._new(st[sid], param_grads))
            arena.mark()
            result.timeline.append((step.phase, step.node, arena.held))
            started = time.perf_counter()
            if step.phase in ("forward", "recompute"):
                self._forward(step.phase, step.node, arena, on_forward if step.phase == "forward" else None)
            elif step.phase == "loss_forward":
                result.loss = self._loss_forward(arena, result)
            elif step.phase == "loss_backward":
                self._loss_backward(arena)
                if on_loss is not None:
                    for o in g.output_nodes():
                        if o in plan.grad_of:
                            on_loss(o, self._probs[o], self._labels[o], self._grad_view(o, arena))
            elif step.phase == "backward":
                self._backward(step.node, arena, param_grads, result, count, on_backward)
                if keep_activation_grads and step.node in plan.grad_of:
                    result.activation_grads[step.node] = self._grad_view(step.node, arena).copy()
            elif step.phase == "optimizer" and update:
                self._optimizer_step(param_grads)
            key = (step.phase, step.node)
            result.seconds[key] = result.seconds.get(key, 0.0) + time.perf_counter() - started
            for sid in step.free:
                arena.drop(sid)
        result.peak_bytes = arena.peak
        result.grads = {n: {k: v.copy() for k, v in d.items()} for n, d in param_grads.items()}
        self._steps += 1
        return result

    def _persistent(self, arena):
        plan, st = self.plan, self.plan.storages
        by_node: dict[tuple, int] = {}
        for sid in plan.persistent:
            s = st[sid]
            by_node[(s.kind, s.node, s.name)] = sid
        for node, arrays in self.params.items():
            skip = buffer_names(self.graph.op(node))
            p = {k: v for k, v in arrays.items() if k not in skip}
            b = {k: v for k, v in arrays.items() if k in skip}
            if p:
                arena.add(by_node[("param", node, "params")], p)
            if b:
                arena.add(by_node[("buffer", node, "buffers")], b)
            if plan.trained[node]:
                states = self._state.setdefault(node, {})
                for i in range(OPTIMIZERS[self.optimizer]):
                    arrays_i = {}
                    for k, v in p.items():
                        if k not in states:
                            states[k] = [np.zeros_like(v) for _ in range(OPTIMIZERS[self.optimizer])]
                        arrays_i[k] = states[k][i]
                    arena.add(by_node[("optimizer", node, f"state{i}")], arrays_i)

    def _new(self, s, param_grads):
        if s.kind == "param_grad":
            grads = {k: np.zeros_like(v) for k, v in self.trainable(s.node).items()}
            param_grads[s.node] = grads
            return grads
        dtype = _NUMPY_DTYPES[s.dtype]
        if s.kind == "activation":
            return np.empty(math.prod(s.shape), dtype)
        if s.kind == "grad":
            return np.zeros(math.prod(s.shape), dtype)
        return np.zeros(s.shape, dtype)

    def _value(self, node, arena, phase="forward"):
        sid = self._sid(node, phase)
        return arena.arrays[sid].reshape(self.shapes[node])

    def _sid(self, node, phase, reader=None):
        """The storage of ``node``'s output as seen in ``phase`` (by layer ``reader``, for inputs)."""
        plan = self.plan
        if phase == "recompute" and node in plan.recompute_storage_of and (
                reader is None or self.segment_of.get(reader) == self.segment_of.get(node)):
            return plan.recompute_storage_of[node]
        return plan.storage_of[node]

    def _grad_view(self, node, arena):
        return arena.arrays[self.plan.grad_of[node]].reshape(self.shapes[node])

    def _extras(self, phase, node, arena):
        return {name: arena.arrays[sid] for name, sid in self.plan.extras_of[(phase, node)].items()}

    def _forward(self, phase, node, arena, on_forward):
        g = self.graph
        op = g.op(node)
        adapter = self.backend.ADAPTERS[type(op)]
        srcs = g.inputs(node)
        lookup = "recompute" if phase == "recompute" else "forward"
        xs = [arena.arrays[self._sid(src, lookup, node)].reshape(self.shapes[src]) for src in srcs]
        out = self._value(node, arena, lookup)
        extras = self._extras(phase, node, arena)
        if isinstance(op, ops.Dropout) and "mask" in extras:
            self._draw_mask(node, op, extras["mask"])
        if node in self.plan.grad_of or isinstance(op, (ops.BatchNorm, ops.Dropout)):
            adapter.train_forward(op, self.params[node], xs, out, extras)
        else:
            # No backward: the inference kernel (nothing to keep), as autograd records nothing.
            inference_forward(adapter, op, self.params[node], xs, out)
        if on_forward is not None:
            on_forward(node, xs, out, extras)

    def _draw_mask(self, node, op, mask):
        index = self.plan.order.index(node)
        rng = np.random.default_rng([self.seed, self._steps, index])
        mask[...] = (rng.random(mask.shape) >= op.p).astype(np.uint8)

    def _loss_forward(self, arena, result):
        from archcost.kernels.cpu.pointwise import SoftmaxCrossEntropy

        st, plan = self.plan.storages, self.plan
        total = 0.0
        probs = {s.node: arena.arrays[s.sid] for s in st.values() if s.kind == "probs"}
        labels = {s.node: arena.arrays[s.sid] for s in st.values() if s.kind == "labels"}
        for o in self.graph.output_nodes():
            logits = arena.arrays[plan.storage_of[o]].reshape(self.shapes[o])
            result.outputs[o] = logits.copy()
            total += SoftmaxCrossEntropy.forward(logits, labels[o], probs[o])
        self._probs, self._labels = probs, labels
        return total

    def _loss_backward(self, arena):
        from archcost.kernels.cpu.pointwise import SoftmaxCrossEntropy

        for o in self.graph.output_nodes():
            if o in self.plan.grad_of:
                SoftmaxCrossEntropy.backward(self._probs[o], self._labels[o], self._grad_view(o, arena))

    def _backward(self, node, arena, param_grads, result, count, on_backward=None):
        g, plan = self.graph, self.plan
        op = g.op(node)
        adapter = self.backend.ADAPTERS[type(op)]
        saved = plan.saved[node]
        srcs = g.inputs(node)
        phase = "recompute" if node in self.segment_of else "forward"
        xs = [None] * len(srcs)
        for i in saved.inputs:
            src = srcs[i]
            xs[i] = arena.arrays[self._sid(src, phase, node)].reshape(self.shapes[src])
        if isinstance(op, ops.Concat):
            # Concat keeps nothing but needs each input's size on its axis: zero-stride
            # placeholders carry the shapes without memory.
            xs = [x if x is not None else np.broadcast_to(np.float32(0), self.shapes[src]) for x, src in zip(xs, srcs)]
        out = None
        if saved.output:
            out = arena.arrays[self._sid(node, phase)].reshape(self.shapes[node])
        extras = self._extras(phase, node, arena)
        grad_inputs = [self._grad_view(src, arena) if wanted else None
                       for src, wanted in zip(srcs, plan.grad_inputs[node])]
        pg = param_grads.get(node, {})
        if on_backward is None:
            adapter.backward(op, self.params[node], xs, out, extras, self._grad_view(node, arena), grad_inputs, pg)
            return
        # Checked: the layer's contributions go to zeroed scratch (outside the arena), then are
        # added in, so each is seen exactly (after - before in float32 would carry the rounding
        # of what other layers had already summed there). The kernels' own += is tested in
        # tests/kernels.
        scratch = [None if gi is None else np.zeros_like(gi) for gi in grad_inputs]
        adapter.backward(op, self.params[node], xs, out, extras, self._grad_view(node, arena), scratch, pg)
        for gi, part in zip(grad_inputs, scratch):
            if gi is not None:
                gi += part
        on_backward(node, self._grad_view(node, arena), [None if d is None else d.astype(np.float64) for d in scratch], pg)
        if count and hasattr(adapter, "backward_count"):
            in_shapes = tuple(self.shapes[s] for s in srcs)
            want_data = bool(plan.grad_inputs[node] and plan.grad_inputs[node][0])
            result.counts[node] = tuple(int(v) for v in adapter.backward_count(
                op, self.params[node], in_shapes, self.shapes[node], want_data, bool(plan.trained[node])))

    def _optimizer_step(self, param_grads):
        from archcost.kernels.cpu import optim

        t = self._steps + 1
        for node, grads in param_grads.items():
            params = self.params[node]
            states = self._state.get(node, {})
            for name, grad in grads.items():
                optim.update(self.optimizer, params[name], grad, states.get(name, []), self.lr, t)


def train_step(graph: Graph, batch: int = 1, seed: int = 0, **kwargs) -> TrainResult:
    """One seeded training step of ``graph`` on the cpu kernels (see TrainingExecutor)."""
    return TrainingExecutor(graph, batch, seed, **kwargs).step()

