"""Prove a graph's computed numbers by executing it (archcost validate).

Per layer: (1) the executed output shape equals the inferred one; (2) the multiplies counted by
the conv/linear counting variants (performed + padded taps, which the MAC convention counts as
multiplies by zero) equal the analytic MACs; (3) the float32 output is within ``TOLERANCE``
relative error (norm of the difference over the norm of the reference) of the float64
reference of the same layer, computed from the layer's executed inputs upcast to float64, so
each layer is judged on its own kernel and float32 rounding does not compound along the net;
(4) the parameters the executor allocated for the layer (trainable arrays, and separately the
buffers it keeps but never trains: BN running statistics, fixed RBF centres) equal the analysis's
``params`` and ``buffers``; and, for the graph, (5) the arena's measured peak equals the predicted
``peak_activation_bytes``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from archcost import ops
from archcost.analysis import analyze
from archcost.execute import Executor, buffer_names
from archcost.errors import ArchcostError, quote
from archcost.graph import Graph
from archcost.kernels import reference

TOLERANCE = 1e-4  # float32 rounding over a 25k-term dot product stays near 1e-5


@dataclass
class LayerCheck:
    name: str
    label: str
    shape: tuple
    expected_shape: tuple
    macs: int
    counted: int | None  # performed + padded multiplies, conv/linear only
    padded: int | None
    rel_error: float
    problem: str  # "" when the layer passes

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass
class Validation:
    model: str
    input_shape: tuple
    batch: int
    layers: list[LayerCheck]
    peak_bytes: int
    predicted_peak_bytes: int
    seconds: float
    outputs: dict = field(default_factory=dict)  # output layer -> the executed output (float32)
    inputs: dict = field(default_factory=dict)  # input layer -> the array it ran on

    @property
    def peak_ok(self) -> bool:
        return self.peak_bytes == self.predicted_peak_bytes

    @property
    def failures(self) -> list[LayerCheck]:
        return [c for c in self.layers if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failures and self.peak_ok


def allocated_params(op, arrays: dict) -> tuple[int, int]:
    """(trainable, buffer) elements among the arrays the executor allocated for ``op``
    (execute.init_params; execute.buffer_names says which are buffers)."""
    buffers = buffer_names(op)
    trainable = sum(int(a.size) for k, a in arrays.items() if k not in buffers)
    return trainable, sum(int(a.size) for k, a in arrays.items() if k in buffers)


def relative_error(out: np.ndarray, ref: np.ndarray) -> float:
    diff = float(np.linalg.norm((out.astype(np.float64) - ref).ravel()))
    norm = float(np.linalg.norm(ref.ravel()))
    return diff / norm if norm > 0 else diff


def validate(graph: Graph, batch: int = 1, seed: int = 0, backend: str = "cpu", params: dict | None = None,
             inputs=None) -> Validation:
    """Run ``graph`` and check every layer. ``params``: {layer: {param: array}} to run with (a
    file's own weights) instead of weights drawn from ``seed``; ``inputs`` likewise."""
    start = time.perf_counter()
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ArchcostError(f"validate: seed must be an int from 0 to {2**32 - 1}, got {quote(seed)}")
    report = analyze(graph, batch=batch)
    record = {r.name: r for r in report.records}
    executor = Executor(graph, batch, backend, seed, params=params)
    remaining = {node: len(graph.consumers(node)) for node in graph.topological_order()}
    refs: dict[str, np.ndarray] = {}
    checks: list[LayerCheck] = []

    def check(node, out):
        host = executor.backend.to_host(out)
        op = graph.op(node)
        if isinstance(op, ops.Input):
            refs[node] = host.astype(np.float64)
            return
        rec = record[node]
        srcs = graph.inputs(node)
        ref = reference.forward(op, [refs[s] for s in srcs], executor.params[node], rec.output_shape)
        for src in srcs:
            remaining[src] -= 1
            if remaining[src] == 0:
                del refs[src]
        if remaining[node]:  # copied now: an in-place consumer will overwrite the buffer
            refs[node] = host.astype(np.float64)
        problems = []
        params, buffers = allocated_params(op, executor.params[node])
        if (params, buffers) != (rec.params, rec.buffers):
            problems.append(f"the executor allocated {params} parameters and {buffers} buffer elements, "
                            f"the analysis counts {rec.params} and {rec.buffers}")
        if tuple(host.shape) != tuple(rec.output_shape):
            problems.append(f"output shape {host.shape} != inferred {rec.output_shape}")
        error = relative_error(host, ref) if host.shape == ref.shape else float("inf")
        if not np.isfinite(host).all():
            problems.append("non-finite output")
        elif not error < TOLERANCE:
            problems.append(f"relative error {error:.2e} vs float64 reference exceeds {TOLERANCE:.0e}")
        checks.append(LayerCheck(node, rec.label, tuple(host.shape), rec.output_shape, rec.macs, None, None, error,
                                 "; ".join(problems)))

    if inputs is None:
        inputs = executor.random_inputs()  # kept in the result: a cross-check can feed the same
    elif not isinstance(inputs, dict) and len(graph.input_nodes()) == 1:
        inputs = {graph.input_nodes()[0]: inputs}
    result = executor.forward(inputs, count=True, on_output=check)
    for c in checks:
        if c.name in result.counts:
            performed, padded = result.counts[c.name]
            c.counted, c.padded = performed + padded, padded
        elif c.macs:
            c.counted = 0
        if c.counted is not None and c.counted != c.macs:
            mismatch = f"counted multiplies {c.counted} != analytic MACs {c.macs}"
            c.problem = f"{c.problem}; {mismatch}" if c.problem else mismatch
    return Validation(
        graph.name, report.input_shape, batch, checks, result.peak_bytes,
        report.totals["peak_activation_bytes"], time.perf_counter() - start, result.outputs, inputs,
    )


# --- one training step ---------------------------------------------------------------------------

TRAIN_TOLERANCE = 1e-4


@dataclass
class TrainLayerCheck:
    name: str
    label: str
    data_macs: int
    weight_macs: int
    counted_data: int | None
    counted_weight: int | None
    forward_error: float
    grad_error: float  # the largest over its input and param gradients
    problem: str

    @property
    def ok(self) -> bool:
        return not self.problem


@dataclass
class TrainValidation:
    model: str
    input_shape: tuple
    batch: int
    loss: float
    layers: list
    peak_bytes: int
    predicted_peak_bytes: int
    loss_error: float
    seconds: float

    @property
    def peak_ok(self) -> bool:
        return self.peak_bytes == self.predicted_peak_bytes

    @property
    def failures(self) -> list:
        return [c for c in self.layers if not c.ok]

    @property
    def ok(self) -> bool:
        return not self.failures and self.peak_ok and self.loss_error < TRAIN_TOLERANCE


def _reference_train_forward(op, params, xs, out_shape, extras):
    from archcost.kernels import reference_grad_pointwise

    if isinstance(op, (ops.BatchNorm, ops.LayerNorm, ops.GroupNorm, ops.LRN, ops.Dropout)):
        out, _, _ = reference_grad_pointwise.train_forward(op, params, xs, extras)
        return out
    return reference.forward(op, xs, params, out_shape)


def _reference_backward(op, params, xs, out, grad_out, want_inputs, want_params, extras):
    from archcost.kernels import reference_grad_conv, reference_grad_pointwise, reference_grad_tensor

    if isinstance(op, (ops.Conv2d, ops.ConvTranspose2d, ops.Linear, ops.MaxPool2d, ops.AvgPool2d, ops.GlobalAvgPool)):
        return reference_grad_conv.backward(op, params, xs, out, grad_out, want_inputs, want_params)
    if isinstance(op, (ops.Activation, ops.BatchNorm, ops.LayerNorm, ops.GroupNorm, ops.LRN, ops.Scale, ops.Softmax,
                       ops.Dropout)):
        return reference_grad_pointwise.backward(op, params, xs, out, grad_out, want_inputs, want_params, extras)
    return reference_grad_tensor.backward(op, params, xs, out, grad_out, want_inputs, want_params)


def scaled_error(out, ref, scale=None) -> float:
    """``relative_error``, but against the larger of the reference's norm and ``scale``'s: the
    size of the terms a gradient sums (see ``_gradient_scales``). A sum whose terms cancel has a
    small result, and float32 rounding is relative to the terms, not to the result."""
    if scale is None:
        return relative_error(out, ref)
    diff = float(np.linalg.norm((np.asarray(out, np.float64) - ref).ravel()))
    norm = max(float(np.linalg.norm(ref.ravel())), float(np.linalg.norm(np.asarray(scale).ravel())))
    return diff / norm if norm > 0 else diff


def _gradient_scales(op, params, xs, out, grad_out, want_inputs, want_params, extras):
    """The magnitude of the terms each gradient of ``op`` sums, for conv, linear, BN, LN and GN (the
    layers whose gradients are long sums that can cancel: a weight gradient over a batch whose BN
    outputs sum to zero per channel, say): conv and linear, their reference backward on absolute
    values (|x|, |w|, |dy|), the bound on a dot product's terms; BN and LN data gradients,
    |gamma| |dy| / std, the size of each of the three terms they subtract. ``(None, {})`` for
    the other ops (plain relative error)."""
    if isinstance(op, (ops.Conv2d, ops.ConvTranspose2d, ops.Linear)):
        absolute = {k: np.abs(v) for k, v in params.items()}
        return _reference_backward(op, absolute, [np.abs(x) for x in xs], None, np.abs(grad_out),
                                   want_inputs, want_params, extras)
    if isinstance(op, (ops.BatchNorm, ops.LayerNorm)) and "invstd" in extras:
        x = xs[0]
        axis = 1 if isinstance(op, ops.BatchNorm) else op.axis % x.ndim
        shape = [1] * x.ndim
        shape[axis] = -1
        gamma = np.abs(params["gamma"]).reshape(shape) if "gamma" in params else 1.0
        invstd = np.asarray(extras["invstd"], np.float64)
        invstd = invstd.reshape(shape) if isinstance(op, ops.BatchNorm) else np.expand_dims(invstd, axis)
        return [np.abs(grad_out) * gamma * invstd], {}
    if isinstance(op, ops.GroupNorm) and "invstd" in extras:
        # The same bound; invstd (N, groups) spread over each group's channels and positions.
        x = xs[0]
        shape = [1] * x.ndim
        shape[1] = -1
        gamma = np.abs(params["gamma"]).reshape(shape) if "gamma" in params else 1.0
        invstd = np.repeat(np.asarray(extras["invstd"], np.float64), x.shape[1] // op.groups, axis=1)
        return [np.abs(grad_out) * gamma * invstd.reshape(x.shape[:2] + (1,) * (x.ndim - 2))], {}
    return None, {}


def validate_training(graph: Graph, batch: int = 2, seed: int = 0, **options) -> TrainValidation:
    """One training step on the cpu kernels (archcost.training_execute), checked per layer:
    the training-mode forward output and every gradient the layer's backward adds (to each input,
    to each param) against the layer's float64 reference computed from the same executed values;
    the conv/linear backward multiplies counted by the kernels against the analytic data- and
    weight-gradient MACs; the loss gradient against its reference; and the arena's measured peak
    against the predicted ``train_peak_bytes`` (the ``archcost`` saving policy)."""
    from archcost.kernels import reference_grad_pointwise
    from archcost.training_execute import TrainingExecutor

    start = time.perf_counter()
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ArchcostError(f"validate: seed must be an int from 0 to {2**32 - 1}, got {quote(seed)}")
    ex = TrainingExecutor(graph, batch, seed, **options)
    params64 = {}
    values: dict[str, np.ndarray] = {}
    kept_extras: dict[str, dict] = {}
    fwd_error: dict[str, float] = {}
    problems: dict[str, list] = {}
    records = {r.name: r for r in ex.report.records}

    def p64(node):
        if node not in params64:
            params64[node] = {k: v.astype(np.float64) for k, v in ex.params[node].items()}
        return params64[node]

    def on_forward(node, xs, out, extras):
        op = graph.op(node)
        srcs = graph.inputs(node)
        ins = [values[s] for s in srcs]
        # BN's running stats are updated in place by the kernel; the reference normalises with
        # batch statistics, so the params it reads (gamma, beta) are unaffected.
        ref = _reference_train_forward(op, p64(node), ins, out.shape, {k: v.copy() for k, v in extras.items()})
        fwd_error[node] = relative_error(out, ref) if ref.shape == out.shape else float("inf")
        values[node] = out.astype(np.float64)
        kept_extras[node] = {k: v.copy() for k, v in extras.items()}

    inputs, labels = ex.random_batch()
    for node in graph.input_nodes():
        values[node] = inputs[node].astype(np.float64)
    grad_error: dict[str, float] = {}
    loss_error = [0.0]

    def on_backward(node, grad_out, deltas, param_grads):
        op = graph.op(node)
        srcs = graph.inputs(node)
        want_inputs = list(ex.plan.grad_inputs[node])
        ref_in, ref_params = _reference_backward(op, p64(node), [values[s] for s in srcs], values[node],
                                                 grad_out.astype(np.float64), want_inputs, list(param_grads),
                                                 kept_extras.get(node, {}))
        scale_in, scale_params = _gradient_scales(op, p64(node), [values[s] for s in srcs], values[node],
                                                  grad_out.astype(np.float64), want_inputs, list(param_grads),
                                                  kept_extras.get(node, {}))
        worst = 0.0
        for i, (d, r) in enumerate(zip(deltas, ref_in)):
            if d is None:
                continue
            if r is None or r.shape != d.shape:
                problems.setdefault(node, []).append(f"no reference gradient for input {i}")
                continue
            worst = max(worst, scaled_error(d, r, scale_in[i] if scale_in else None))
        for name, grad in param_grads.items():
            if name not in ref_params:
                problems.setdefault(node, []).append(f"no reference gradient for {name!r}")
                continue
            worst = max(worst, scaled_error(grad, ref_params[name], scale_params.get(name)))
        grad_error[node] = worst

    def on_loss(output, probs, lab, grad):
        _, ref_probs, ref_grad = reference_grad_pointwise.softmax_cross_entropy(values[output], lab)
        loss_error[0] = max(loss_error[0], relative_error(grad, ref_grad), relative_error(probs, ref_probs))

    result = ex.step(inputs, labels, count=True, on_forward=on_forward, on_backward=on_backward, on_loss=on_loss,
                     update=False)
    checks = []
    for node in ex.plan.order:
        op = graph.op(node)
        if isinstance(op, ops.Input):
            continue
        rec = records[node]
        errs = list(problems.get(node, []))
        fe = fwd_error.get(node, 0.0)
        ge = grad_error.get(node, 0.0)
        if not fe < TRAIN_TOLERANCE:
            errs.append(f"training forward relative error {fe:.2e} exceeds {TRAIN_TOLERANCE:.0e}")
        if not ge < TRAIN_TOLERANCE:
            errs.append(f"gradient relative error {ge:.2e} exceeds {TRAIN_TOLERANCE:.0e}")
        cd = cw = None
        if node in result.counts:
            dp, dpad, wp, wpad = result.counts[node]
            cd, cw = dp + dpad, wp + wpad
            if cd != rec.data_macs:
                errs.append(f"counted data-gradient multiplies {cd} != analytic {rec.data_macs}")
            if cw != rec.weight_macs:
                errs.append(f"counted weight-gradient multiplies {cw} != analytic {rec.weight_macs}")
        elif rec.backward_macs:
            errs.append(f"no counted backward multiplies for {rec.backward_macs} analytic MACs")
        checks.append(TrainLayerCheck(node, rec.label, rec.data_macs, rec.weight_macs, cd, cw, fe, ge, "; ".join(errs)))
    return TrainValidation(graph.name, tuple(graph.op(graph.input_nodes()[0]).shape), batch, result.loss, checks,
                           result.peak_bytes, ex.report.totals["train_peak_bytes"], loss_error[0],
                           time.perf_counter() - start)
