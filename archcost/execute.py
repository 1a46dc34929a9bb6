"""Execute a graph forward on archcost's own kernels, with seeded random weights.

``run(graph, batch=1, backend="cpu", seed=0, ...)`` is the one-call form; ``Executor`` keeps the
drawn weights and the prepared (packed) kernel state for repeated forwards.

- Backends: ``archcost.kernels.BACKENDS`` maps a backend name to its module; each module's
  ``ADAPTERS`` maps op type -> adapter with ``prepare(op, in_shapes, out_shape, params) -> state``
  (once per graph), ``run(op, state, inputs, out)`` (every forward) and, for conv and linear,
  ``count(op, state, inputs, out) -> (performed, padded)``. The module also provides
  ``empty(size, dtype)``, ``to_device``, ``to_host``, ``copy_into`` and ``nbytes``
  (see archcost/kernels/__init__.py). Every op of the graph must have an adapter: all missing
  ones are named in one error before anything runs.
- Arena: activation buffers follow ``archcost.memory.plan_buffers``: a fresh flat buffer per
  allocating node, in-place nodes write their input's buffer (viewed at their output shape),
  buffers are dropped after their last reader. The arena adds up the ``nbytes`` of the buffers
  it holds and records the peak while each layer runs (its inputs and output all held).
- Buffer guard: the kernels are compiled loops without bounds checks that size their loops from
  the arrays' shapes, so an output buffer or input array of the wrong shape, dtype or layout
  would have them read or write past the end of a buffer. ``Executor`` re-derives every layer's
  shape from its op's rule at the executor's batch (once, and refuses a graph whose stored
  shapes disagree); before each kernel runs, ``forward`` checks that its output buffer and each
  input array have exactly that shape, dtype float32 and C order (a tuple comparison per array),
  and raises an ``ArchcostError`` naming the layer otherwise. Op fields past ``MAX_KERNEL_INT``
  (which the kernels would take as int64 and multiply) are refused when the executor is built.
- Weights: He-normal conv/linear weights (std sqrt(2 / fan_in)) and small uniform biases, so
  activations keep their scale through plain stacks; BatchNorm's running mean and variance are
  calibrated on the first forward from the statistics of the input the layer actually sees
  (mean: half the batch mean; variance: the mean squared deviation from it plus a floor of a
  tenth of its channel average), so every BN output has a per-channel RMS near its gamma and
  residual stacks of 150+ layers stay finite. Affine (per-channel scale and bias) gets gamma
  U(0.5, 1.5) and beta U(-0.1, 0.1); RBF centres are +-1 at random. Inputs are standard normal.
"""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field

import numpy as np

from archcost import ops
from archcost.analysis import infer_shapes
from archcost.errors import ArchcostError, ShapeError, quote
from archcost.graph import Graph
from archcost.kernels import load_backend
from archcost.memory import plan_buffers


def param_shapes(op, in_shapes, out_shape) -> dict[str, tuple]:
    """The shape of each parameter (and buffer) array the executor gives ``op``, by name: what
    init_params draws, and what a file's own weights must match."""
    if isinstance(op, ops.Conv2d):
        weight = (op.out_channels, in_shapes[0][1] // op.groups, *op.kernel)
        return {"weight": weight, **({"bias": (op.out_channels,)} if op.bias else {})}
    if isinstance(op, ops.ConvTranspose2d):
        # (C_in, out_channels / groups, kh, kw): PyTorch's and ONNX ConvTranspose's own layout.
        weight = (in_shapes[0][1], op.out_channels // op.groups, *op.kernel)
        return {"weight": weight, **({"bias": (op.out_channels,)} if op.bias else {})}
    if isinstance(op, ops.Linear):
        return {"weight": (op.out_features, in_shapes[0][-1]), **({"bias": (op.out_features,)} if op.bias else {})}
    if isinstance(op, ops.BatchNorm):
        c = (out_shape[1],)
        return {"mean": c, "var": c, **({"gamma": c, "beta": c} if op.affine else {})}
    if isinstance(op, (ops.LayerNorm, ops.Affine)):
        c = (out_shape[op.axis],)
        return {"gamma": c, "beta": c}
    if isinstance(op, ops.GroupNorm):
        c = (out_shape[1],)  # per channel, not per group
        return {"gamma": c, "beta": c} if op.affine else {}
    if isinstance(op, ops.Scale) and op.factor is None:
        return {"gamma": (out_shape[op.axis],)}
    if isinstance(op, ops.RBF):
        # (out_features, F): row i is unit i's centre.
        return {"centres": (op.out_features, in_shapes[0][-1])}
    return {}


def init_params(op, in_shapes, out_shape, rng: np.random.Generator) -> dict:
    """Seeded float32 parameters of one op, by name (what adapters and the reference read)."""

    # Drawn in float32 directly: a float64 draw then cast holds a transient twice the weight's
    # size (822 MB for VGG-16's fc6, the peak of `validate vgg16`).
    def normal(shape, std):
        w = rng.standard_normal(shape, dtype=np.float32)
        w *= np.float32(std)
        return w

    def uniform(shape, lo, hi):
        w = rng.random(shape, dtype=np.float32)
        w *= np.float32(hi - lo)
        w += np.float32(lo)
        return w

    shapes = param_shapes(op, in_shapes, out_shape)
    if isinstance(op, (ops.Conv2d, ops.Linear)):
        weight = shapes["weight"]
        params = {"weight": normal(weight, math.sqrt(2.0 / math.prod(weight[1:])))}
        if "bias" in shapes:
            params["bias"] = uniform(shapes["bias"], -0.1, 0.1)
        return params
    if isinstance(op, ops.ConvTranspose2d):
        # He's std over the terms one output element sums: C_in / groups x kh x kw taps, of which
        # one in sh x sw lands on any one output (the others fall on its neighbours).
        weight = shapes["weight"]
        fan_in = max(1.0, weight[0] // op.groups * weight[2] * weight[3] / (op.stride[0] * op.stride[1]))
        params = {"weight": normal(weight, math.sqrt(2.0 / fan_in))}
        if "bias" in shapes:
            params["bias"] = uniform(shapes["bias"], -0.1, 0.1)
        return params
    if isinstance(op, ops.BatchNorm):
        c = shapes["mean"]
        params = {"mean": np.zeros(c, np.float32), "var": np.ones(c, np.float32)}  # calibrated on first run
        if op.affine:
            params.update(gamma=uniform(c, 0.8, 1.2), beta=uniform(c, -0.1, 0.1))
        return params
    if isinstance(op, ops.LayerNorm) or (isinstance(op, ops.GroupNorm) and op.affine):
        return {"gamma": uniform(shapes["gamma"], 0.8, 1.2), "beta": uniform(shapes["beta"], -0.1, 0.1)}
    if isinstance(op, ops.Affine):
        return {"gamma": uniform(shapes["gamma"], 0.5, 1.5), "beta": uniform(shapes["beta"], -0.1, 0.1)}
    if "gamma" in shapes:  # a learned per-channel Scale
        return {"gamma": uniform(shapes["gamma"], 0.5, 1.5)}
    if isinstance(op, ops.RBF):
        # +-1, like LeNet-5's hand-drawn bitmaps.
        return {"centres": rng.choice(np.array([-1.0, 1.0], np.float32), shapes["centres"])}
    return {}


def buffer_names(op) -> set[str]:
    """Which of init_params' arrays for ``op`` are buffers (kept, never trained): BN's running
    statistics and LeNet-5's fixed RBF centres; the rest are trainable parameters."""
    names = {"mean", "var"}
    if isinstance(op, ops.RBF) and not op.trainable:
        names.add("centres")
    return names


def calibrate_batch_norm(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Running (mean, var) for a BN that sees ``x``: keeps its output at scale ~1 (see module doc).
    Half the batch mean, not all of it, so a 1x1 map at batch 1 is not flattened to zero."""
    axes = tuple(i for i in range(x.ndim) if i != 1)
    x = x.astype(np.float64)
    mean = 0.5 * x.mean(axis=axes)
    shape = [1] * x.ndim
    shape[1] = -1
    dev = ((x - mean.reshape(shape)) ** 2).mean(axis=axes)
    var = dev + 0.1 * dev.mean() + 1e-6
    return mean.astype(np.float32), var.astype(np.float32)


class WallTimer:
    """Per-layer host wall-clock time (``time.perf_counter``): the default ``layer_timer`` of a
    backend whose kernels finish before ``run`` returns (the cpu). A backend with asynchronous
    launches provides its own (the cuda backend: CUDA events)."""

    def __init__(self):
        self._start: dict = {}
        self._seconds: dict = {}

    def start(self, node) -> None:
        self._start[node] = time.perf_counter()

    def stop(self, node) -> None:
        self._seconds[node] = time.perf_counter() - self._start.pop(node)

    def seconds(self) -> dict:
        return dict(self._seconds)


def layer_timer(backend):
    """A fresh per-layer timer for ``backend`` (its own ``layer_timer()`` if it has one)."""
    make = getattr(backend, "layer_timer", None)
    return make() if make is not None else WallTimer()


def synchronize(backend) -> None:
    """Wait for ``backend``'s queued work (a no-op for backends without ``synchronize``)."""
    sync = getattr(backend, "synchronize", None)
    if sync is not None:
        sync()


# The kernels take op fields (kernel, stride, padding, dilation, sizes, pieces) as int64
# arguments and multiply them in pairs: past int64 numba cannot type the call (a TypingError or
# OverflowError, not one clean line), and past 2^31 such a product could wrap around. The shape
# rules accept any int (a stride of 10^30 gives a 1x1 map), so the executor refuses them here.
MAX_KERNEL_INT = 2**31 - 1


def _check_kernel_ints(layer: str, op) -> None:
    for f in dataclasses.fields(op):
        value = getattr(op, f.name)
        for v in value if isinstance(value, tuple) else (value,):
            if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_KERNEL_INT:
                raise ArchcostError(
                    f"{layer}: field {f.name!r} = {quote(v)} is past what the kernels index with "
                    f"(at most {MAX_KERNEL_INT:,})"
                )


def _fmt(shape) -> str:
    return "x".join(str(d) for d in shape)


def _is_c_contiguous(array) -> bool:
    # numpy's flagsobj, numba-cuda's DeviceNDArray (a dict) and its simulator's wrapper all
    # answer flags["C_CONTIGUOUS"].
    return bool(array.flags["C_CONTIGUOUS"])


def _describe(array, flat: bool = False) -> str:
    """``1x64x10x10`` (``flat``: ``of 6400 elements``), plus the dtype and layout where they are
    not float32 and C order."""
    text = f"of {array.size} elements" if flat and len(array.shape) == 1 else _fmt(array.shape)
    if array.dtype != np.float32:
        text += f" {array.dtype}"
    if not _is_c_contiguous(array):
        text += " (not C-contiguous)"
    return text


def _fits(array, shape) -> bool:
    """``array`` is exactly what a kernel expects for ``shape``: that shape, float32, C order."""
    return array.shape == shape and array.dtype == np.float32 and _is_c_contiguous(array)


def rule_shapes(graph: Graph, batch: int) -> dict[str, tuple]:
    """Every layer's output shape at ``batch``, re-derived from its op's shape rule and its
    inputs' re-derived shapes (independent of the shapes the graph stored as it was built)."""
    shapes: dict[str, tuple] = {}
    for node in graph.topological_order():
        op = graph.op(node)
        if isinstance(op, ops.Input):
            shapes[node] = op.batched(batch)
            continue
        try:
            shapes[node] = tuple(op.infer(tuple(shapes[src] for src in graph.inputs(node))))
        except ShapeError as exc:
            raise ArchcostError(f"layer {quote(node)} ({op.label()}): {exc}") from None
    return shapes


class Arena:
    """Activation buffers by plan buffer id; tracks the bytes held and their peak."""

    def __init__(self, backend):
        self.backend = backend
        self.buffers: dict[int, object] = {}
        self.held_bytes = 0
        self.peak_bytes = 0

    def allocate(self, buf: int, size: int):
        try:
            array = self.backend.empty(size, np.float32)
        except (MemoryError, ValueError) as exc:  # numpy's "array is too big", or no memory left
            raise ArchcostError(f"executor: cannot allocate a buffer of {size:,} float32 elements "
                                f"({4 * size / 2**30:,.1f} GiB): {type(exc).__name__}; use a smaller batch or input") from None
        self.buffers[buf] = array
        self.held_bytes += self.backend.nbytes(array)
        self.peak_bytes = max(self.peak_bytes, self.held_bytes)
        return array

    def release(self, buf: int) -> None:
        self.held_bytes -= self.backend.nbytes(self.buffers.pop(buf))


@dataclass
class Result:
    outputs: dict  # output node -> host float32 array
    peak_bytes: int  # the arena's measured peak of activation bytes held
    counts: dict = field(default_factory=dict)  # conv/linear node -> (performed, padded) multiplies
    seconds: dict = field(default_factory=dict)  # node -> seconds of its kernel (see layer_timer)


class Executor:
    """A graph bound to a backend, a batch size and seeded weights; ``forward`` runs it."""

    def __init__(self, graph: Graph, batch: int = 1, backend: str = "cpu", seed: int = 0, params: dict | None = None):
        graph.validate()
        self.graph = graph
        self.batch = batch
        self.backend = load_backend(backend)
        self.shapes = infer_shapes(graph, batch)
        # What the buffer guard holds every kernel's arrays to (see the module doc). The arena
        # allocates from ``self.shapes``; the two agree unless the graph's stored shapes (or
        # ``self.shapes``) were changed behind the builder's back.
        self._expected = rule_shapes(graph, batch)
        for node, shape in self._expected.items():
            if self.shapes[node] != shape:
                raise ArchcostError(
                    f"{self._layer(node)}: the graph's shape {_fmt(self.shapes[node])} does not match "
                    f"{_fmt(shape)} from its op's rule; rebuild the graph with the builder"
                )
        self.plan = plan_buffers(graph)
        missing: dict[str, list[str]] = {}
        for node in self.plan.order:
            op = graph.op(node)
            if not isinstance(op, ops.Input) and type(op) not in self.backend.ADAPTERS:
                missing.setdefault(type(op).__name__, []).append(node)
            _check_kernel_ints(self._layer(node), op)
        if missing:
            listed = "; ".join(f"{kind} (e.g. layer {nodes[0]!r})" for kind, nodes in missing.items())
            raise ArchcostError(f"backend {backend!r} has no kernel for: {listed}")
        rng = np.random.default_rng(seed)
        self.params: dict[str, dict] = {}
        self._calibrate: set[str] = set()
        for node in self.plan.order:
            op = graph.op(node)
            if isinstance(op, ops.Input):
                continue
            if params is not None and node in params:
                self.params[node] = params[node]
            else:
                try:
                    self.params[node] = init_params(op, self._in_shapes(node), self.shapes[node], rng)
                except (MemoryError, ValueError) as exc:  # a weight too big for this machine
                    raise ArchcostError(f"layer {quote(node)} ({op.label()}): cannot allocate its weights "
                                        f"({type(exc).__name__}); the model is too large to execute here") from None
                if isinstance(op, ops.BatchNorm):
                    self._calibrate.add(node)
        self._input_rng = np.random.default_rng([seed, 1])
        self._state: dict[str, object] = {}

    def _layer(self, node) -> str:
        return f"layer {quote(node)} ({self.graph.op(node).label()})"

    def _output_view(self, node, flat):
        """The output array of ``node``: its flat buffer ``flat`` viewed at the expected shape,
        after checking that it is one (a wrong size would make the reshape raise, a strided
        buffer would make it a silent copy)."""
        shape = self._expected[node]
        size = math.prod(shape)
        if not _fits(flat, (size,)):
            raise ArchcostError(
                f"{self._layer(node)}: output buffer {_describe(flat, flat=True)} does not match the "
                f"inferred {_fmt(shape)} ({size} float32 elements in C order)"
            )
        out = flat.reshape(shape)
        if not _fits(out, shape):
            raise ArchcostError(
                f"{self._layer(node)}: output buffer {_describe(out)} does not match the inferred {_fmt(shape)}"
            )
        return out

    def _check_operands(self, node, srcs, xs) -> None:
        expected = self._expected
        for i, (src, x) in enumerate(zip(srcs, xs)):
            if not _fits(x, expected[src]):
                raise ArchcostError(
                    f"{self._layer(node)}: input {i} ({quote(src)}) {_describe(x)} does not match the inferred "
                    f"{_fmt(expected[src])}"
                )

    def _in_shapes(self, node):
        return tuple(self.shapes[src] for src in self.graph.inputs(node))

    def random_inputs(self) -> dict:
        inputs = {}
        for node in self.graph.input_nodes():
            try:
                # Drawn in float32 directly: no float64 copy the size of the batch.
                inputs[node] = self._input_rng.standard_normal(self.shapes[node], dtype=np.float32)
            except (MemoryError, ValueError) as exc:
                raise ArchcostError(f"input {quote(node)}: cannot allocate a {'x'.join(map(str, self.shapes[node]))} "
                                    f"batch ({type(exc).__name__}); use a smaller batch or input") from None
        return inputs

    def _check_inputs(self, inputs) -> dict:
        names = self.graph.input_nodes()
        if inputs is None:
            return self.random_inputs()
        if not isinstance(inputs, dict):
            inputs = {names[0]: inputs} if len(names) == 1 else None
            if inputs is None:
                raise ArchcostError(f"inputs: the graph has {len(names)} inputs; pass a dict by name")
        for node in names:
            if node not in inputs:
                raise ArchcostError(f"input {node!r}: missing")
            x = inputs[node]
            expected = self.shapes[node]
            if not isinstance(x, np.ndarray):
                raise ArchcostError(f"input {node!r}: expected a numpy array, got {type(x).__name__}")
            if x.shape != expected:
                raise ArchcostError(f"input {node!r}: shape {x.shape} does not match the graph's {expected}")
            if x.dtype != np.float32:
                raise ArchcostError(f"input {node!r}: dtype {x.dtype} is not float32")
            if not x.flags.c_contiguous:
                raise ArchcostError(f"input {node!r}: array is not C-contiguous (use numpy.ascontiguousarray)")
            if not np.isfinite(x).all():
                raise ArchcostError(f"input {node!r}: has non-finite values")
        return inputs

    def _prepare(self, node, op, adapter, inputs):
        if node in self._calibrate:
            mean, var = calibrate_batch_norm(self.backend.to_host(inputs[0]))
            self.params[node].update(mean=mean, var=var)
            self._calibrate.discard(node)
        params = self.params[node]
        for key, value in params.items():
            if not isinstance(value, np.ndarray) or value.dtype != np.float32:
                raise ArchcostError(f"layer {node!r}: parameter {key!r} must be a float32 numpy array")
            if not np.isfinite(value).all():
                raise ArchcostError(f"layer {node!r}: parameter {key!r} has non-finite values")
        state = adapter.prepare(op, self._in_shapes(node), self.shapes[node], params)
        self._state[node] = state
        return state

    def forward(self, inputs=None, *, count: bool = False, on_output=None) -> Result:
        """Run the graph once. ``inputs``: an array (one input) or {input node: array}, float32,
        C-contiguous, of the graph's batched input shape; None draws standard normal inputs.
        ``count``: also run the counting variants of conv and linear. ``on_output(node, array)``
        is called after each layer, before any buffer is released."""
        inputs = self._check_inputs(inputs)
        backend, plan, graph = self.backend, self.plan, self.graph
        arena = Arena(backend)
        values: dict[str, object] = {}
        readers: dict[int, list[str]] = {}  # buffer -> nodes whose value is a view of it
        result = Result(outputs={}, peak_bytes=0)
        timer = layer_timer(backend)
        for node in plan.order:
            op = graph.op(node)
            shape = self.shapes[node]
            buf = plan.buffer_of[node]
            if plan.allocates[node]:
                flat = arena.allocate(buf, math.prod(shape))
            else:
                flat = arena.buffers[buf]
            readers.setdefault(buf, []).append(node)
            out = self._output_view(node, flat)  # the buffer guard (see the module doc)
            if isinstance(op, ops.Input):
                backend.copy_into(out, inputs[node])
            else:
                adapter = backend.ADAPTERS[type(op)]
                srcs = graph.inputs(node)
                xs = [values[src] for src in srcs]
                self._check_operands(node, srcs, xs)
                state = self._state[node] if node in self._state else self._prepare(node, op, adapter, xs)
                timer.start(node)
                adapter.run(op, state, xs, out)
                timer.stop(node)
                if count and hasattr(adapter, "count"):
                    result.counts[node] = tuple(int(v) for v in adapter.count(op, state, xs, out))
            values[node] = out
            if on_output is not None:
                on_output(node, out)
            for dead in plan.free_after[node]:
                for reader in readers.pop(dead):
                    del values[reader]
                arena.release(dead)
        result.outputs = {node: backend.to_host(values[node]).copy() for node in graph.output_nodes()}
        result.seconds = timer.seconds()
        result.peak_bytes = arena.peak_bytes
        return result


def run(graph: Graph, batch: int = 1, backend: str = "cpu", seed: int = 0, inputs=None, *,
        count: bool = False, on_output=None) -> Result:
    """Execute ``graph`` forward once on ``backend`` with weights drawn from ``seed``."""
    return Executor(graph, batch, backend, seed).forward(inputs, count=count, on_output=on_output)
