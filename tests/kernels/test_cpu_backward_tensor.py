"""Training kernels of the data-movement, multi-input and zoo-variant ops on the cpu
(archcost/kernels/cpu/tensor.py, archcost/kernels/cpu/extra.py): ``train_forward`` and
``backward`` against the float64 references of archcost/kernels/reference_grad_tensor.py, on
random (never zero) inputs and output gradients, for every variant (axes, broadcast shapes,
strides, align_corners, trainable or fixed centres).

Each backward runs with only the tensors the op keeps (the rest None), into input gradients
pre-filled with random values (they must accumulate, +=) and param gradients pre-filled with
garbage (they must be overwritten, =); frozen params (absent from param_grads) must get nothing,
and no param is ever changed. Each reference is itself checked against central finite
differences of the forward reference (archcost/kernels/reference.py) on tiny float64 shapes.
"""

import numpy as np
import pytest

from archcost import ops
from archcost.errors import ArchcostError
from archcost.execute import init_params
from archcost.kernels import cpu, reference
from archcost.kernels import reference_grad_tensor as refgrad
from tests.kernels.cases import PAD_CASES, RESIZE_CASES

TOL = 1e-4  # float32 kernels vs the float64 reference, relative to the gradient's scale
FD_TOL = 1e-6  # the float64 reference vs central differences
GARBAGE = 1e3  # what a param gradient holds before the backward: it must be overwritten

# What each op keeps for its backward (docs: the "archcost" saving policy): input indices.
KEPT_INPUTS = {ops.Mul: (0, 1), ops.Affine: (0,), ops.RBF: (0,), ops.GridSample: (0, 1)}
EXTRAS = {ops.Maxout: {"indices": np.int32}}


def _random(shape, rng, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def _scaled_error(got, want) -> float:
    """Max abs difference relative to the largest magnitude of ``want`` (absolute where ``want``
    is all zero: a grid's gradient on a 1x1 input with align_corners, which always samples the
    pixel itself; run_train asserts that some gradient of each case is not)."""
    scale = float(np.abs(want).max())
    return float(np.abs(got.astype(np.float64) - want).max()) / (scale if scale > 0 else 1.0)


def _inputs_for(op, in_shapes, rng):
    if isinstance(op, ops.GridSample):  # grid points in [-1.6, 1.6]: some half or wholly outside
        x = _random(in_shapes[0], rng)
        grid = rng.uniform(-1.6, 1.6, in_shapes[1]).astype(np.float32)
        return [x, grid]
    return [_random(s, rng) for s in in_shapes]


def run_train(op, *in_shapes, want=None, want_params=None, seed=0, xs=None, params=None):
    """train_forward then backward of ``op``'s cpu adapter, checked against the references.
    ``want``: one bool per input (default all); ``want_params``: param names to differentiate
    (default all of init_params' trainable ones). Returns the arrays for further checks."""
    rng = np.random.default_rng(seed)
    out_shape = op.infer(tuple(in_shapes))
    xs = _inputs_for(op, in_shapes, rng) if xs is None else xs
    if params is None:
        params = init_params(op, in_shapes, out_shape, rng)
    params_before = {k: v.copy() for k, v in params.items()}
    adapter = cpu.ADAPTERS[type(op)]

    # training forward == the inference forward (the reference)
    extras = {name: np.full(out_shape, -1, dtype) for name, dtype in EXTRAS.get(type(op), {}).items()}
    out = np.full(out_shape, np.nan, np.float32)
    adapter.train_forward(op, params, xs, out, extras)
    ref_out = reference.forward(op, xs, params, out_shape)
    np.testing.assert_allclose(out, ref_out, rtol=2e-6, atol=2e-6 * max(1.0, float(np.abs(ref_out).max())))

    grad_out = _random(out_shape, rng)
    want = [True] * len(xs) if want is None else want
    if want_params is None:
        want_params = [k for k in params if not (isinstance(op, ops.RBF) and not op.trainable)]
    grad_inputs = [_random(x.shape, rng) if w else None for x, w in zip(xs, want)]
    before = [None if g is None else g.copy() for g in grad_inputs]
    param_grads = {k: np.full(params[k].shape, GARBAGE, np.float32) for k in want_params}
    kept = [x if i in KEPT_INPUTS.get(type(op), ()) else None for i, x in enumerate(xs)]
    grad_out_before = grad_out.copy()
    adapter.backward(op, params, kept, None, extras, grad_out, grad_inputs, param_grads)

    ref_in, ref_p = refgrad.backward(op, params, xs, ref_out, grad_out, want, want_params)
    compared = [r for r in ref_in if r is not None] + [r for k, r in ref_p.items() if k in param_grads]
    assert not compared or any(np.abs(r).max() > 0 for r in compared), "all-zero gradients prove nothing"
    for i, (g, b, r) in enumerate(zip(grad_inputs, before, ref_in)):
        if g is None:
            assert r is None
            continue
        assert g.shape == r.shape and g.dtype == np.float32
        err = _scaled_error(g.astype(np.float64) - b, r)
        assert err < TOL, f"{op}: input {i} gradient error {err:.2e}"
    assert set(param_grads) == set(want_params), "the backward added or dropped a param gradient"
    for name, g in param_grads.items():
        if name in ref_p:
            err = _scaled_error(g, ref_p[name])  # overwritten: the garbage is gone
            assert err < TOL, f"{op}: param {name} gradient error {err:.2e}"
    for name, value in params.items():  # params (and buffers) untouched by the backward
        assert (value == params_before[name]).all(), f"{op}: param {name} changed"
    assert (grad_out == grad_out_before).all()
    return xs, params, extras, out, grad_out, grad_inputs, param_grads


# --- finite differences of the references --------------------------------------------------

def fd_check(op, xs, params, wrt_params=(), seed=1, h=1e-6):
    """Central differences of sum(forward * R) for each input element and wanted param element,
    against the reference backward (all float64, tiny shapes)."""
    rng = np.random.default_rng(seed)
    xs = [np.asarray(x, np.float64) for x in xs]
    params = {k: np.asarray(v, np.float64) for k, v in params.items()}
    out_shape = op.infer(tuple(x.shape for x in xs))
    r = rng.standard_normal(out_shape)

    def loss():
        return float((reference.forward(op, xs, params, out_shape) * r).sum())

    grads, pgrads = refgrad.backward(op, params, xs, None, r, [True] * len(xs), list(wrt_params))
    targets = [(f"input {i}", x, grads[i]) for i, x in enumerate(xs)]
    targets += [(f"param {k}", params[k], pgrads[k]) for k in wrt_params]
    for what, array, analytic in targets:
        assert analytic.shape == array.shape
        numeric = np.zeros_like(array)
        flat, num = array.reshape(-1), numeric.reshape(-1)
        for i in range(flat.size):
            keep = flat[i]
            flat[i] = keep + h
            up = loss()
            flat[i] = keep - h
            down = loss()
            flat[i] = keep
            num[i] = (up - down) / (2 * h)
        assert np.abs(numeric).max() > 0, f"{op}: {what}: a zero gradient proves nothing"
        np.testing.assert_allclose(analytic, numeric, rtol=FD_TOL, atol=FD_TOL * np.abs(numeric).max(),
                                   err_msg=f"{op}: {what}")


def _f64_params(op, in_shapes, seed=0):
    rng = np.random.default_rng(seed)
    p = init_params(op, in_shapes, op.infer(tuple(in_shapes)), rng)
    return {k: v.astype(np.float64) + rng.uniform(-0.3, 0.3, v.shape) for k, v in p.items()}


def _fd_inputs(op, in_shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [x.astype(np.float64) for x in _inputs_for(op, in_shapes, rng)]


FD_CASES = {
    "flatten": (ops.Flatten(), [(2, 2, 2, 3)]),
    "reshape": (ops.Reshape((3, -1)), [(2, 2, 3, 2)]),
    "concat axis 1": (ops.Concat(1), [(2, 2, 2, 2), (2, 1, 2, 2), (2, 3, 2, 2)]),
    "concat axis -1": (ops.Concat(-1), [(2, 2, 3), (2, 2, 2)]),
    "add": (ops.Add(), [(2, 3, 2), (2, 3, 2), (2, 3, 2)]),
    "mean": (ops.Mean(), [(2, 3, 2), (2, 3, 2), (2, 3, 2)]),
    "add global context": (ops.Add(), [(2, 3, 2, 3), (2, 3, 1, 1)]),
    "add both broadcast": (ops.Add(), [(1, 3, 1, 2), (2, 1, 3, 2)]),
    "sub": (ops.Sub(), [(2, 3, 2), (2, 3, 2)]),
    "sub of a per-position map": (ops.Sub(), [(2, 3, 2, 2), (2, 1, 2, 2)]),
    "sub broadcast first": (ops.Sub(), [(2, 1, 3), (2, 2, 3)]),
    "mul se gating": (ops.Mul(), [(2, 3, 2, 3), (2, 3, 1, 1)]),
    "mul both broadcast": (ops.Mul(), [(1, 3, 1, 2), (2, 1, 3, 2)]),
    "mul 5 axes": (ops.Mul(), [(2, 2, 3, 2, 2), (2, 2, 3, 1, 1)]),
    "reduce sum axis 1": (ops.ReduceSum(1), [(2, 3, 2, 2, 2)]),
    "reduce sum keepdims": (ops.ReduceSum(2, keepdims=True), [(2, 2, 3, 2, 2)]),
    "channel pad stride 2": (ops.ChannelPad(4, 2), [(2, 2, 3, 4)]),
    "permute": (ops.Permute((0, 3, 1, 2)), [(2, 2, 3, 4)]),
    "channel select": (ops.ChannelSelect((2, 0)), [(2, 4, 2, 2)]),
    "maxout map": (ops.Maxout(3), [(2, 6, 2, 2)]),
    "maxout vector": (ops.Maxout(2), [(2, 6)]),
    "affine grid": (ops.AffineGrid(3, 4, align_corners=False), [(2, 6)]),
    "affine grid align": (ops.AffineGrid(3, 2, align_corners=True), [(1, 6)]),
    "grid sample": (ops.GridSample(align_corners=False), [(1, 2, 3, 4), (1, 3, 2, 2)]),
    "grid sample align": (ops.GridSample(align_corners=True), [(2, 2, 4, 3), (2, 2, 3, 2)]),
    "resize nearest 3->5, 4->2": (ops.Resize(size=(5, 2)), [(1, 2, 3, 4)]),
    "resize linear half_pixel x2": (ops.Resize(scale=(2, 2), mode="linear"), [(1, 2, 3, 2)]),
    "resize linear pytorch 3->2, 2->5": (ops.Resize(size=(2, 5), mode="linear", coord="pytorch_half_pixel"),
                                         [(1, 1, 3, 2)]),
    "resize linear align 3->5, 4->1": (ops.Resize(size=(5, 1), mode="linear", coord="align_corners"), [(2, 1, 3, 4)]),
    "pad constant crop": (ops.Pad((-1, 2, 1, 0), value=0.5), [(1, 2, 3, 3)]),
    "pad reflect": (ops.Pad((2, 1, 1, 2), "reflect"), [(2, 1, 3, 3)]),
    "pad edge": (ops.Pad((1, 3, 2, 0), "edge"), [(1, 2, 2, 3)]),
    "pad wrap twice round": (ops.Pad((4, 1, 0, 5), "wrap"), [(1, 1, 2, 2)]),
    "pad reflect L": (ops.Pad((0, 0, 2, 1), "reflect"), [(2, 2, 3)]),
}


@pytest.mark.parametrize("case", FD_CASES)
def test_reference_matches_finite_differences(case):
    op, shapes = FD_CASES[case]
    fd_check(op, _fd_inputs(op, shapes), {})


@pytest.mark.parametrize("op,shape", [(ops.Affine(1), (2, 3, 2, 2)), (ops.Affine(-1), (2, 2, 3)),
                                      (ops.RBF(3, trainable=True), (2, 4))])
def test_reference_with_params_matches_finite_differences(op, shape):
    params = _f64_params(op, [shape])
    fd_check(op, _fd_inputs(op, [shape]), params, wrt_params=tuple(params))


def test_reference_fixed_rbf_centres_get_no_gradient():
    op = ops.RBF(3, trainable=False)
    params = _f64_params(op, [(2, 4)])
    grads, pgrads = refgrad.backward(op, params, _fd_inputs(op, [(2, 4)]), None, np.ones((2, 3)), [True],
                                     ["centres"])
    assert pgrads == {} and grads[0].shape == (2, 4)


# --- kernels vs references: views, concat, add, mean ---------------------------------------

@pytest.mark.parametrize("op,shape", [(ops.Flatten(), (2, 3, 4, 4)), (ops.Reshape((4, -1)), (2, 3, 4, 4)),
                                      (ops.Reshape((2, 3, 2)), (3, 12)), (ops.Flatten(), (3, 7))])
def test_view_backward(op, shape):
    run_train(op, shape)


def test_view_train_forward_in_place_is_free():
    op, shape = ops.Flatten(), (2, 3, 4, 4)
    x = _random(shape, np.random.default_rng(1))
    before = x.copy()
    out = x.reshape(op.infer((shape,)))
    cpu.ADAPTERS[ops.Flatten].train_forward(op, {}, [x], out, {})
    assert np.shares_memory(out, x) and (x == before).all()


def test_view_backward_in_place_is_free():
    """A gradient that is a view of its input gradient's buffer is already there: not doubled."""
    op, shape = ops.Reshape((4, -1)), (2, 3, 4, 4)
    grad = _random(shape, np.random.default_rng(2))
    before = grad.copy()
    cpu.ADAPTERS[ops.Reshape].backward(op, {}, [None], None, {}, grad.reshape(op.infer((shape,))), [grad], {})
    assert (grad == before).all()


def test_dropout_dispatches_to_pointwise_dropout_train(monkeypatch):
    """Dropout shares ViewKernel for inference; in training it is pointwise.DropoutTrain's."""
    from archcost.kernels.cpu import pointwise

    calls = []

    class Stub:
        @staticmethod
        def train_forward(*args):
            calls.append(("train_forward", args))

        @staticmethod
        def backward(*args):
            calls.append(("backward", args))

    monkeypatch.setattr(pointwise, "DropoutTrain", Stub, raising=False)
    adapter, op = cpu.ADAPTERS[ops.Dropout], ops.Dropout(0.3)
    x = np.ones((2, 5), np.float32)
    adapter.train_forward(op, {}, [x], x, {"mask": np.ones((2, 5), np.uint8)})
    adapter.backward(op, {}, [None], None, {}, x, [x], {})
    assert [c[0] for c in calls] == ["train_forward", "backward"]
    assert calls[0][1][0] is op and len(calls[0][1]) == 5 and len(calls[1][1]) == 8


@pytest.mark.parametrize("axis,shapes", [(1, [(2, 3, 4, 4), (2, 5, 4, 4), (2, 1, 4, 4)]),
                                         (-1, [(2, 4, 4, 3), (2, 4, 4, 6)]), (1, [(2, 7), (2, 2)]),
                                         (2, [(2, 3, 2, 5), (2, 3, 4, 5)]), (1, [(3, 4, 2)])])
def test_concat_backward(axis, shapes):
    run_train(ops.Concat(axis), *shapes)


@pytest.mark.parametrize("want", [[True, False, True], [False, True, True], [False, False, True],
                                  [True, True, False]])
def test_concat_backward_skips_unwanted_inputs(want):
    run_train(ops.Concat(1), (2, 3, 4, 4), (2, 5, 4, 4), (2, 2, 4, 4), want=want)


def test_concat_backward_needs_the_sizes_before_a_wanted_input():
    """Concat keeps nothing: its inputs' sizes come from the gradient buffers. With two inputs
    of unknown size (no gradient, no array) the offset of a later wanted one is unknown: an
    error, unless the executor passes something with the input's shape (a zero-stride view)."""
    op, shapes = ops.Concat(1), [(2, 3, 4), (2, 5, 4), (2, 2, 4)]
    g = _random((2, 10, 4), np.random.default_rng(0))
    adapter = cpu.ADAPTERS[ops.Concat]
    grads = [None, np.zeros(shapes[1], np.float32), None]
    with pytest.raises(ArchcostError, match="offset of input 1 is unknown"):
        adapter.backward(op, {}, [None, None, None], None, {}, g, grads, {})
    placeholders = [np.broadcast_to(np.float32(0), s) for s in shapes]
    adapter.backward(op, {}, placeholders, None, {}, g, grads, {})
    assert (grads[1] == g[:, 3:8]).all()


@pytest.mark.parametrize("op,k", [(ops.Add(), 2), (ops.Add(), 3), (ops.Mean(), 2), (ops.Mean(), 3)])
@pytest.mark.parametrize("shape", [(2, 3, 4, 4), (3, 10)])
def test_add_mean_backward(op, k, shape):
    run_train(op, *[shape] * k, want=[True] * (k - 1) + [False])


ADD_SHAPES = [((2, 6, 4, 5), (2, 6, 1, 1)), ((2, 1, 1, 1), (2, 6, 4, 5)), ((3, 7), (3, 1)),
              ((2, 1, 4, 5), (2, 6, 4, 5)), ((1, 6, 1, 5), (3, 1, 4, 5)), ((2, 3, 4), (2, 1, 4)),
              ((2, 2, 6, 4, 5), (2, 2, 6, 1, 1)), ((2, 6, 4, 5), (2, 6, 4, 5))]


@pytest.mark.parametrize("op", [ops.Add(), ops.Sub()], ids=str)
@pytest.mark.parametrize("a,b", ADD_SHAPES)
def test_add_sub_broadcast_backward(op, a, b):
    run_train(op, a, b)


@pytest.mark.parametrize("want", [[True, False], [False, True]])
@pytest.mark.parametrize("op", [ops.Add(), ops.Sub()], ids=str)
def test_add_sub_broadcast_one_side(op, want):
    run_train(op, (2, 8, 5, 5), (2, 8, 1, 1), want=want)


def test_broadcast_add_and_sub_gradients_sum_the_map():
    """The (N, C, 1, 1) term's gradient is the sum over H x W of dy (negated for sub's second input);
    the full-size input's is dy itself."""
    g = np.arange(1.0, 9.0, dtype=np.float32).reshape(1, 2, 2, 2)
    for op, sign in ((ops.Add(), 1.0), (ops.Sub(), -1.0)):
        grads = [np.zeros((1, 2, 2, 2), np.float32), np.zeros((1, 2, 1, 1), np.float32)]
        cpu.ADAPTERS[type(op)].backward(op, {}, [None, None], None, {}, g, grads, {})
        assert grads[1].ravel().tolist() == [sign * (1 + 2 + 3 + 4), sign * (5 + 6 + 7 + 8)]
        assert grads[0].tolist() == g.tolist()


def test_a_5_axis_add_that_does_not_merge_to_4_is_one_error():
    x, y = _random((2, 3, 1, 4, 5), np.random.default_rng(0)), _random((1, 3, 2, 4, 1), np.random.default_rng(1))
    for op in (ops.Add(), ops.Sub()):
        with pytest.raises(ArchcostError, match=f"^{op.kind}: the cpu kernels handle up to 4 axes"):
            cpu.ADAPTERS[type(op)].run(op, None, [x, y], np.empty((2, 3, 2, 4, 5), np.float32))


def test_add_backward_into_one_buffer_twice():
    """x + x: both input gradients are the same buffer; it must get grad_out twice."""
    rng = np.random.default_rng(0)
    g = _random((2, 6), rng)
    acc = _random((2, 6), rng)
    expected = acc.astype(np.float64) + 2 * g
    cpu.ADAPTERS[ops.Add].backward(ops.Add(), {}, [None, None], None, {}, g, [acc, acc], {})
    np.testing.assert_allclose(acc, expected, rtol=1e-6)


# --- mul (broadcast), channel pad, permute -------------------------------------------------

MUL_SHAPES = [((2, 6, 4, 5), (2, 6, 1, 1)), ((2, 1, 1, 1), (2, 6, 4, 5)), ((3, 7), (3, 1)),
              ((2, 1, 4, 5), (2, 6, 4, 5)), ((2, 6, 4, 5), (2, 6, 4, 5)), ((1, 6, 1, 5), (3, 1, 4, 5)),
              ((2, 3, 4), (2, 1, 4)), ((2, 2, 6, 4, 5), (2, 2, 6, 1, 1)), ((2, 3, 1, 4, 5), (1, 3, 1, 4, 5))]


@pytest.mark.parametrize("a,b", MUL_SHAPES)
def test_mul_backward(a, b):
    run_train(ops.Mul(), a, b)


def test_a_5_axis_product_that_does_not_merge_to_4_is_one_error():
    """Broadcast on alternating axes leaves 5 groups: refused in one line, never looped wrong."""
    x, y = _random((2, 3, 1, 4, 5), np.random.default_rng(0)), _random((1, 3, 2, 4, 1), np.random.default_rng(1))
    with pytest.raises(ArchcostError, match="up to 4 axes"):
        cpu.ADAPTERS[ops.Mul].run(ops.Mul(), None, [x, y], np.empty((2, 3, 2, 4, 5), np.float32))


@pytest.mark.parametrize("axis,keepdims,shape", [(1, False, (2, 2, 6, 4, 5)), (2, True, (2, 3, 4, 2, 3)),
                                                 (1, False, (2, 5, 4, 3)), (-1, False, (3, 7))])
def test_reduce_sum_backward(axis, keepdims, shape):
    run_train(ops.ReduceSum(axis, keepdims), shape)


@pytest.mark.parametrize("want", [[True, False], [False, True]])
def test_mul_se_gating_one_side(want):
    run_train(ops.Mul(), (2, 8, 5, 5), (2, 8, 1, 1), want=want)


def test_mul_se_gate_gradient_sums_the_map():
    """The gate's gradient is sum over H x W of grad_out * x, per (n, c)."""
    x = np.arange(1.0, 9.0, dtype=np.float32).reshape(1, 2, 2, 2)
    gate = np.array([0.5, -2.0], np.float32).reshape(1, 2, 1, 1)
    g = np.ones((1, 2, 2, 2), np.float32)
    grads = [np.zeros_like(x), np.zeros_like(gate)]
    cpu.ADAPTERS[ops.Mul].backward(ops.Mul(), {}, [x, gate], None, {}, g, grads, {})
    assert grads[1].ravel().tolist() == [1 + 2 + 3 + 4, 5 + 6 + 7 + 8]
    assert grads[0].ravel().tolist() == [0.5] * 4 + [-2.0] * 4


@pytest.mark.parametrize("out_channels,stride,shape", [(8, 1, (2, 3, 5, 5)), (8, 2, (2, 3, 7, 6)),
                                                       (8, 2, (1, 4, 1, 1)), (5, 3, (2, 5, 7, 8)),
                                                       (6, 2, (2, 3, 8, 8))])
def test_channel_pad_backward(out_channels, stride, shape):
    run_train(ops.ChannelPad(out_channels, stride), shape)


def test_channel_pad_gradient_only_at_kept_positions():
    op, shape = ops.ChannelPad(6, 2), (1, 2, 4, 5)
    g = _random(op.infer((shape,)), np.random.default_rng(0))
    grad = np.zeros(shape, np.float32)
    cpu.ADAPTERS[ops.ChannelPad].backward(op, {}, [None], None, {}, g, [grad], {})
    kept = np.zeros(shape, bool)
    kept[:, :, ::2, ::2] = True
    assert (grad[~kept] == 0).all()
    assert (grad[kept] == g[:, :2].ravel()).all()


@pytest.mark.parametrize("dims,shape", [((0, 2, 3, 1), (2, 3, 4, 5)), ((0, 3, 1, 2), (2, 3, 4, 5)),
                                        ((0, 2, 1), (2, 3, 4)), ((0, 1, 3, 2), (2, 3, 4, 5)),
                                        ((0, 1, 2, 3), (1, 2, 3, 2)), ((0, 1), (3, 4)),
                                        ((0, 2, 1, 3, 4), (2, 2, 3, 4, 5)), ((0, 3, 4, 1, 2), (1, 2, 3, 2, 2)),
                                        # 5 or 6 axes left after merging: the 6-axis kernels
                                        ((0, 3, 5, 1, 2, 4), (2, 3, 4, 2, 5, 2)),
                                        ((0, 2, 4, 1, 5, 3), (2, 3, 2, 4, 3, 2)),
                                        ((0, 2, 4, 1, 3), (2, 3, 2, 4, 3))])
def test_permute_backward(dims, shape):
    run_train(ops.Permute(dims), shape)


def test_permute_backward_of_7_merged_axes_is_one_error():
    op, shape = ops.Permute((0, 2, 4, 6, 1, 3, 5)), (1, 2, 2, 2, 2, 2, 2)
    g = _random(op.infer((shape,)), np.random.default_rng(0))
    with pytest.raises(ArchcostError, match="^permute: the cpu kernels handle up to 6 axes, got 7$"):
        cpu.ADAPTERS[ops.Permute].backward(op, {}, [None], None, {}, g, [np.zeros(shape, np.float32)], {})


# --- channel select, affine, RBF -----------------------------------------------------------

@pytest.mark.parametrize("channels,shape", [((3, 0, 2), (2, 5, 3, 4)), ((4,), (1, 6, 2, 2)),
                                            ((1, 0), (3, 4)), ((0, 1, 2, 3), (2, 4, 3, 3))])
def test_channel_select_backward(channels, shape):
    run_train(ops.ChannelSelect(channels), shape)


@pytest.mark.parametrize("axis,shape", [(1, (2, 4, 3, 5)), (-1, (2, 3, 3, 6)), (1, (3, 7)), (2, (2, 3, 4, 2))])
@pytest.mark.parametrize("want_params", [("gamma", "beta"), ("gamma",), ("beta",), ()])
def test_affine_backward(axis, shape, want_params):
    run_train(ops.Affine(axis), shape, want_params=want_params)


def test_affine_frozen_with_no_input_gradient_does_nothing():
    _, params, _, _, _, grads, pgrads = run_train(ops.Affine(1), (2, 4, 3, 3), want=[False], want_params=())
    assert grads == [None] and pgrads == {}


@pytest.mark.parametrize("shape,units", [((3, 84), 10), ((1, 5), 1), ((4, 6), 3)])
@pytest.mark.parametrize("trainable", [False, True])
def test_rbf_backward(shape, units, trainable):
    run_train(ops.RBF(units, trainable=trainable), shape)


def test_rbf_trainable_centres_frozen_and_fixed_centres_never_get_a_gradient():
    run_train(ops.RBF(4, trainable=True), (3, 6), want_params=())
    # fixed centres are a buffer: even when named in param_grads they get nothing
    *_, pgrads = run_train(ops.RBF(4, trainable=False), (3, 6), want_params=("centres",))
    assert (pgrads["centres"] == GARBAGE).all()
    # centres only (no input gradient)
    run_train(ops.RBF(4, trainable=True), (3, 6), want=[False])


# --- maxout --------------------------------------------------------------------------------

@pytest.mark.parametrize("pieces,shape", [(3, (2, 6, 3, 4)), (2, (2, 8, 1, 1)), (1, (1, 3, 2, 2)),
                                          (2, (3, 10)), (5, (2, 15))])
def test_maxout_backward(pieces, shape):
    xs, _, extras, _, _, _, _ = run_train(ops.Maxout(pieces), shape)
    x = xs[0]
    groups = x.reshape(x.shape[0], -1, pieces, *x.shape[2:])
    assert extras["indices"].dtype == np.int32
    assert (extras["indices"] == np.argmax(groups, axis=2)).all()


def test_maxout_ties_go_to_the_first_piece():
    op = ops.Maxout(3)
    x = np.array([[2.0, 2.0, 1.0, -1.0, 4.0, 4.0]], np.float32)
    out = np.empty((1, 2), np.float32)
    extras = {"indices": np.full((1, 2), -1, np.int32)}
    adapter = cpu.ADAPTERS[ops.Maxout]
    adapter.train_forward(op, {}, [x], out, extras)
    assert out.tolist() == [[2.0, 4.0]] and extras["indices"].tolist() == [[0, 1]]
    grad = np.zeros_like(x)
    adapter.backward(op, {}, [None], None, extras, np.array([[3.0, 5.0]], np.float32), [grad], {})
    assert grad.tolist() == [[3.0, 0.0, 0.0, 0.0, 5.0, 0.0]]


# --- affine grid, grid sample --------------------------------------------------------------

@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("size", [(5, 7), (1, 3), (4, 1), (1, 1)])
def test_affine_grid_backward(size, align_corners):
    run_train(ops.AffineGrid(*size, align_corners=align_corners), (3, 6))


@pytest.mark.parametrize("align_corners", [False, True])
@pytest.mark.parametrize("x_shape,grid_hw", [((2, 3, 5, 6), (4, 7)), ((1, 2, 1, 1), (3, 3)),
                                             ((1, 1, 2, 9), (5, 2)), ((2, 4, 6, 6), (6, 6))])
def test_grid_sample_backward(x_shape, grid_hw, align_corners):
    run_train(ops.GridSample(align_corners=align_corners), x_shape, (x_shape[0], *grid_hw, 2))


@pytest.mark.parametrize("want", [[True, False], [False, True]])
def test_grid_sample_backward_one_input(want):
    run_train(ops.GridSample(), (2, 3, 5, 6), (2, 4, 7, 2), want=want)


def test_grid_sample_points_outside_get_no_gradient():
    """Points whose four corners are all outside the input (and NaN points) read zero: no
    gradient to x, none to the grid."""
    x = np.arange(1.0, 7.0, dtype=np.float32).reshape(1, 1, 2, 3)
    grid = np.array([[[[1e30, 0.0], [-1e30, 0.0], [0.0, 3.0], [-2.5, 0.0], [np.nan, 0.0]]]], np.float32)
    for align in (False, True):
        op = ops.GridSample(align_corners=align)
        grads = [np.zeros_like(x), np.zeros_like(grid)]
        cpu.ADAPTERS[ops.GridSample].backward(op, {}, [x, grid], None, {}, np.ones((1, 1, 1, 5), np.float32),
                                              grads, {})
        assert (grads[0] == 0).all() and (grads[1] == 0).all()


def test_grid_sample_identity_gradient_is_the_output_gradient():
    """affine_grid(identity) + grid_sample with matching align_corners samples every pixel exactly
    (dyadic targets): d x is grad_out itself."""
    for align, (h, w) in ((False, (4, 8)), (True, (5, 9))):
        theta = np.array([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]], np.float32)
        grid = np.empty((1, h, w, 2), np.float32)
        cpu.ADAPTERS[ops.AffineGrid].train_forward(ops.AffineGrid(h, w, align), {}, [theta], grid, {})
        g = _random((1, 2, h, w), np.random.default_rng(5))
        grads = [np.zeros((1, 2, h, w), np.float32), None]
        cpu.ADAPTERS[ops.GridSample].backward(ops.GridSample(align_corners=align), {}, [None, grid], None, {}, g,
                                              grads, {})
        np.testing.assert_allclose(grads[0], g, rtol=0, atol=1e-6)


@pytest.mark.parametrize("case", RESIZE_CASES)
def test_resize_backward(case):
    """Nearest scatters each output gradient onto the input it copied; linear spreads it over the
    four it blended. Both keep nothing (KEPT_INPUTS has no Resize: the backward gets no input)."""
    op, shape = RESIZE_CASES[case]
    run_train(op, shape)


def test_resize_nearest_backward_sums_each_block():
    """Nearest x2: each input's gradient is the sum of its 2x2 block of output gradients."""
    op = ops.Resize(scale=(2, 2))
    g = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    grad = np.zeros((1, 1, 2, 2), np.float32)
    cpu.ADAPTERS[ops.Resize].backward(op, {}, [None], None, {}, g, [grad], {})
    assert grad[0, 0].tolist() == [[0 + 1 + 4 + 5, 2 + 3 + 6 + 7], [8 + 9 + 12 + 13, 10 + 11 + 14 + 15]]


def test_every_tensor_op_has_training_methods():
    for op_type in (ops.Flatten, ops.Reshape, ops.Dropout, ops.Concat, ops.Add, ops.Sub, ops.Mean, ops.ReduceSum,
                    ops.Mul, ops.ChannelPad, ops.Permute, ops.ChannelSelect, ops.Affine, ops.RBF, ops.Maxout,
                    ops.AffineGrid, ops.GridSample, ops.Resize):
        adapter = cpu.ADAPTERS[op_type]
        assert callable(adapter.train_forward) and callable(adapter.backward)


@pytest.mark.parametrize("dims,shape,merged", [
    ((0, 2, 1, 3, 4), (2, 4, 3, 5, 6), ((2, 4, 3, 30), (0, 2, 1, 3), (2, 3, 4, 30))),
    ((0, 1, 2, 3, 4), (2, 3, 4, 5, 1), ((120,), (0,), (120,))),
    ((0, 3, 4, 1, 2), (2, 2, 3, 4, 5), ((2, 6, 20), (0, 2, 1), (2, 20, 6))),
    ((0, 1, 4, 5, 2, 3), (1, 2, 3, 2, 2, 3), ((2, 6, 6), (0, 2, 1), (2, 6, 6))),
    # space-to-depth: only its axes 1, 2 stay together (5 left, the 6-axis kernels')
    ((0, 3, 5, 1, 2, 4), (2, 3, 4, 2, 5, 2), ((2, 12, 2, 5, 2), (0, 2, 4, 1, 3), (2, 2, 2, 12, 5))),
    # 4 axes or fewer: as they are (the 4-axis copy is faster unmerged)
    ((0, 2, 3, 1), (2, 3, 4, 5), ((2, 3, 4, 5), (0, 2, 3, 1), (2, 4, 5, 3))),
])
def test_collapse_permute_merges_the_axes_that_stay_together(dims, shape, merged):
    from archcost.kernels import adapters

    assert adapters.collapse_permute(dims, shape) == merged
    x = np.arange(np.prod(shape)).reshape(shape)
    merged_in, merged_dims, merged_out = merged
    assert (x.transpose(dims).reshape(merged_out) == x.reshape(merged_in).transpose(merged_dims)).all()


@pytest.mark.parametrize("case", PAD_CASES)
def test_pad_backward(case):
    """Each output gradient added into the input element it copied (reflect, edge and wrap copy
    some more than once); constant padding gets none. Nothing is kept (no Pad in KEPT_INPUTS)."""
    op, shape = PAD_CASES[case]
    run_train(op, shape)


def test_pad_edge_backward_sums_the_copies():
    """Edge by (1, 1) on a 1x1 map: the one input is copied into all 9 outputs: their sum."""
    op = ops.Pad(1, "edge")
    g = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    grad = np.full((1, 1, 1, 1), 0.5, np.float32)
    cpu.ADAPTERS[ops.Pad].backward(op, {}, [None], None, {}, g, [grad], {})
    assert grad.ravel().tolist() == [0.5 + sum(range(9))]
