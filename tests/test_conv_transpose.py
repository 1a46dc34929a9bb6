"""ConvTranspose2d (PyTorch nn.ConvTranspose2d, ONNX ConvTranspose): its fields and refusals, the
shape, cost, backward and saving rules, and the receptive field through it (exact fractions)
against a brute-force dependency count: the reference forward run on one-hot inputs. The
kernels are tested with the other convs' (tests/kernels/)."""

from fractions import Fraction

import numpy as np
import pytest

from archcost import ops
from archcost.analysis import infer_shapes
from archcost.cost import BackwardCost, Saved
from archcost.errors import ShapeError
from archcost.graph import Graph
from archcost.kernels import reference
from archcost.receptive import receptive_fields

T = ops.ConvTranspose2d


# --- fields and refusals ------------------------------------------------------------------------

def test_fields_normalise():
    op = T(8, 3, stride=2, padding=1, output_padding=1)
    assert (op.kernel, op.stride, op.padding, op.output_padding, op.dilation) == (
        (3, 3), (2, 2), (1, 1, 1, 1), (1, 1), (1, 1))
    assert T(4, (1, 3), padding=(0, 1)).padding == (0, 0, 1, 1)
    assert T(4, 3, padding=(0, 1, 2, 3)).padding == (0, 1, 2, 3)


@pytest.mark.parametrize("kwargs,message", [
    (dict(out_channels=0), "out_channels must be a positive int"),
    (dict(out_channels=4, kernel=0), "kernel must be a positive int"),
    (dict(out_channels=4, stride=(1, 0)), "stride must be a positive int"),
    (dict(out_channels=4, dilation=0), "dilation must be a positive int"),
    (dict(out_channels=4, padding=-1), "padding must be >= 0"),
    (dict(out_channels=4, padding="same"), "field 'padding'"),
    (dict(out_channels=4, stride=2, output_padding=2), "output_padding .* less than the stride"),
    (dict(out_channels=4, output_padding=1), "output_padding"),  # stride 1, dilation 1: none allowed
    (dict(out_channels=4, stride=2, output_padding=-1), "output_padding"),
    (dict(out_channels=6, groups=4), "out_channels 6 is not divisible by groups 4"),
    (dict(out_channels=4, kernel=True), "field 'kernel'"),
])
def test_bad_fields_are_refused_by_name(kwargs, message):
    with pytest.raises(ShapeError, match=message) as err:
        T(**kwargs)
    assert "\n" not in str(err.value)


def test_output_padding_below_the_dilation_is_allowed():
    """PyTorch's rule: output_padding < stride or < dilation (of its axis)."""
    assert T(4, 3, dilation=3, output_padding=2).infer(((1, 2, 5, 5),)) == (1, 4, 5 + 6 + 2, 13)


@pytest.mark.parametrize("x, kwargs, message", [
    ((1, 3, 4, 4), dict(out_channels=4, groups=2), "input channels 3 are not divisible by groups 2"),
    ((1, 3, 2, 2), dict(out_channels=4, kernel=1, padding=1), "crops"),
    ((1, 3, 4), dict(out_channels=4), "needs an"),
])
def test_impossible_inputs_are_refused(x, kwargs, message):
    with pytest.raises(ShapeError, match=message):
        T(**kwargs).infer((x,))


# --- shape, cost, backward, saving ---------------------------------------------------------------

@pytest.mark.parametrize("x, kwargs, out", [
    # (H - 1) * s - top - bottom + d * (k - 1) + output_padding + 1, by hand
    ((2, 100, 1, 1), dict(out_channels=512, kernel=4), (2, 512, 4, 4)),  # DCGAN's first layer
    ((1, 8, 4, 4), dict(out_channels=4, kernel=4, stride=2, padding=1), (1, 4, 8, 8)),  # 3*2 - 2 + 3 + 1
    ((1, 8, 5, 5), dict(out_channels=4, kernel=3, stride=2, padding=1, output_padding=1), (1, 4, 10, 10)),
    ((1, 8, 4, 5), dict(out_channels=4, kernel=2, stride=3), (1, 4, 11, 14)),  # stride > kernel
    ((1, 8, 5, 6), dict(out_channels=4, kernel=3, dilation=2, padding=1, output_padding=1), (1, 4, 8, 9)),
    ((1, 8, 4, 4), dict(out_channels=4, kernel=3, stride=3, padding=(0, 2, 3, 1), output_padding=(2, 1)),
     (1, 4, 12, 9)),  # H: 9 - 2 + 2 + 2 + 1 = 12; W: 9 - 4 + 2 + 1 + 1 = 9
    ((1, 8, 7, 7), dict(out_channels=8, kernel=1), (1, 8, 7, 7)),
    ((1, 8, 3, 4), dict(out_channels=4, kernel=(1, 5), stride=(1, 2), padding=(0, 2)), (1, 4, 3, 7)),
])
def test_shape_rule(x, kwargs, out):
    assert T(**kwargs).infer((x,)) == out


@pytest.mark.parametrize("groups", [1, 2, 4])
@pytest.mark.parametrize("bias", [True, False])
def test_cost_closed_form(groups, bias):
    """Every input element times every tap of out_channels / groups kernels: the MACs of the conv
    this is the transpose of; params C_in * out_channels / groups * kh * kw (+ out_channels)."""
    n, c, h, w, k, f = 2, 8, 5, 6, 4, 12
    op = T(f, k, stride=2, padding=1, groups=groups, bias=bias)
    out = op.infer(((n, c, h, w),))
    assert out == (n, f, 10, 12)
    cost = op.cost(((n, c, h, w),), out)
    assert cost.weights == c * (f // groups) * k * k
    assert cost.biases == (f if bias else 0)
    assert cost.macs == n * c * h * w * (f // groups) * k * k
    assert cost.other == (n * f * 10 * 12 if bias else 0)
    conv = ops.Conv2d(c, k, stride=2, padding=1, groups=groups, bias=False)
    assert conv.infer((out,)) == (n, c, h, w)
    assert conv.cost((out,), (n, c, h, w)).macs == cost.macs  # the transpose's own MACs


def test_backward_and_saving_rules():
    op = T(6, 3, stride=2, padding=1, output_padding=1)
    x = (2, 4, 5, 5)
    out = op.infer((x,))
    macs = op.cost((x,), out).macs
    other = 2 * 6 * 10 * 10
    assert op.backward((x,), out, (True,), True) == BackwardCost(macs, macs, other)
    assert op.backward((x,), out, (False,), True) == BackwardCost(0, macs, other)
    assert op.backward((x,), out, (True,), False) == BackwardCost(macs, 0, 0)
    assert T(6, 3, bias=False).backward((x,), T(6, 3).infer((x,)), (True,), True).other == 0
    assert op.saves((x,), out, "archcost", (True,), True) == Saved(inputs=(0,))
    assert op.saves((x,), out, "archcost", (True,), False) == Saved()
    assert op.saves((x,), out, "pytorch", (True,), False) == Saved(inputs=(0,))


def test_label():
    assert T(64, 4, stride=2, padding=1).label() == "convT 4x4/2, 64"
    assert T(8, 3, stride=(2, 1), groups=8).label() == "convT 3x3/(2, 1), 8, g8"


# --- receptive field ------------------------------------------------------------------------

def _dependency(op, h_in, w_in=1):
    """(H_out, H_in) 0/1: which input rows each output row depends on, from the reference forward
    on one-hot inputs with all-ones weights (no cancellation; every tap that lands counts)."""
    x0 = (1, 1, h_in, w_in)
    out = op.infer((x0,))
    wshape = (1, out[1] // op.groups, *op.kernel) if isinstance(op, T) else (out[1], 1, *op.kernel)
    params = {"weight": np.ones(wshape), "bias": np.zeros(out[1])}
    dep = np.zeros((out[2], h_in), np.int64)
    for i in range(h_in):
        x = np.zeros(x0)
        x[0, 0, i, :] = 1.0
        dep[:, i] = reference.forward(op, [x], params, out)[0, 0].sum(axis=1) > 0
    return dep


def _field_of(dep, o):
    rows = np.flatnonzero(dep[o])
    return (int(rows.min()), int(rows.max())) if rows.size else None


AXIS_CASES = [  # (kernel, stride, dilation, top pad, output_padding)
    (4, 2, 1, 1, 0),  # DCGAN: every output reads 2 inputs, output 0 reads -1 and 0
    (3, 2, 1, 1, 1),  # phases read 1 and 2 inputs
    (3, 3, 1, 0, 2),
    (2, 3, 1, 0, 0),  # stride > kernel: outputs no tap reaches
    (5, 2, 1, 2, 1),
    (3, 2, 2, 1, 1),  # dilation 2: output 0 reached by no tap (the continuous centre)
    (3, 2, 3, 0, 1),  # dilation 3, stride 2: spans with gaps
    (1, 2, 1, 0, 1),
    (3, 1, 1, 1, 0),  # stride 1: a plain conv's field
    (4, 3, 2, 3, 1),
]


@pytest.mark.parametrize("k,s,d,top,extra", AXIS_CASES)
def test_field_of_one_layer_matches_one_hot_dependencies(k, s, d, top, extra):
    """size: the widest span of input rows one output row depends on; jump 1 / stride; start:
    the centre of output 0's span with the input's bounds ignored, found from an output s * m
    inside the input, whose span is output 0's moved on m units (o + s reads what o reads, +1)."""
    op = T(1, (k, 1), stride=(s, 1), padding=(top, 0, 0, 0), output_padding=(extra, 0), dilation=(d, 1), bias=False)
    h = 12
    dep = _dependency(op, h)
    g = Graph("one")
    g.add(op, g.input((1, h, 1)))
    field = receptive_fields(g, infer_shapes(g))[g.topological_order()[-1]]
    spans = [f for f in (_field_of(dep, o) for o in range(dep.shape[0])) if f]
    assert field.size_h == max(hi - lo + 1 for lo, hi in spans)
    assert field.jump_h == float(Fraction(1, s))  # the nearest float to the exact 1 / s
    m = h // 2
    inside = _field_of(dep, s * m)
    assert inside is not None or not any(top - t * d == 0 or (top - t * d) % s == 0 for t in range(k))
    if inside is None:  # output 0 (and so s * m) reached by no tap: the continuous map's centre
        assert field.start_h == float((top - Fraction((k - 1) * d, 2)) / s)
    else:
        assert 0 < inside[0] and inside[1] < h - 1  # not clipped by the input's bounds
        assert field.start_h == float(Fraction(inside[0] + inside[1], 2) - m)
    assert field.size_w == 1 and field.jump_w == 1


def test_field_through_a_conv_and_a_transposed_conv():
    """conv 3x3/2 pad 1 (size 3, jump 2, start 0) -> convT 4x4/2 pad 1 (taps 2, ratio 1/2,
    output 0 reading conv units -1 and 0): size 3 + 1 * 2 = 5, jump 1, start 0 + (-1/2) * 2 = -1;
    by the composed one-hot dependencies, the widest output reads 5 input rows."""
    conv = ops.Conv2d(1, (3, 1), stride=(2, 1), padding=(1, 0), bias=False)
    up = T(1, (4, 1), stride=(2, 1), padding=(1, 0), bias=False)
    h = 16
    g = Graph("down-up")
    g.seq(g.input((1, h, 1)), conv, up)
    fields = receptive_fields(g, infer_shapes(g))
    last = fields[g.topological_order()[-1]]
    assert (last.size_h, last.jump_h, last.start_h) == (5, 1, -1.0)
    assert all(type(v) is int for v in last[:4])  # whole again after the 1/2 and the 2
    dep = (_dependency(up, conv.infer(((1, 1, h, 1),))[2]) @ _dependency(conv, h) > 0)
    assert int(dep.sum(axis=1).max()) == 5


def test_field_after_a_transposed_conv_is_fractional():
    """convT 3x3/2 (taps 2, jump 1/2) -> conv 3x3: size 2 + 2 * 1/2 = 3, jump 0.5."""
    g = Graph("up-conv")
    g.seq(g.input((1, 8, 8)), T(2, 3, stride=2, padding=1, output_padding=1), ops.Conv2d(2, 3, padding=1))
    last = receptive_fields(g, infer_shapes(g))[g.topological_order()[-1]]
    assert (last.size_h, last.jump_h) == (3, 0.5)


# --- peer tools' counts (archcost/conventions.py) ------------------------------------------------

def test_peer_tool_counts_by_hand():
    """convT 4x4/2 pad 1, groups 2, 4 -> 6 channels on a 5x5 map (batch 1) -> 6 x 10 x 10 = 600
    outputs. MACs (each of the 100 input elements times 3 kernels of 16 taps): 4800; the conv
    hooks' count (600 outputs x C_in/g 2 x 16 taps): 19200; params 4*3*16 + 6 = 198. Every
    value but calflops' and convnet-burden's was measured on nn.ConvTranspose2d(4, 6, 4, 2, 1,
    groups=2) over 1x4x5x5 (benchmarks/peer_conventions.py --ops; torch 2.14.1, fvcore 0.1.5,
    ptflops 0.7.5, thop 0.1.1, torchinfo 1.8.0, torchscan 0.2.0)."""
    from archcost import conventions
    from archcost.analysis import analyze

    g = Graph("up")
    g.add(T(6, 4, stride=2, padding=1, groups=2), g.input((4, 5, 5)))
    report = analyze(g)
    expected = {
        "archcost": 4800,
        "flop_counter": 2 * 4800,  # conv_flop_count(transposed=True): the input's spatial size
        "fvcore": 4800,
        "ptflops": 4800 + 600,  # conv_flops_counter_hook(transpose=True): per input position, + bias
        "ptflops-aten": 4800 + 600,
        "thop": 19200,  # count_convNd: out numel * C_in/g * kh*kw
        "torchinfo": 198 * 100,  # params x output positions
        "torchscan-flops": 16 + 600 * (2 * 2 * 16 - 1 + 1),
        "torchscan-macs": 8 + 19200,
        "torchscan-dmas": 10 + 4 * 16 * 600 // 2 + 198 + 600,
        # 16 taps * C_in 4 * ((6/2) // 2 = 1) * 25 input positions = 1600 MACs; bias 3 * ((5 + 2 -
        # 4) // 2 + 1)^2 = 3 * 4
        "calflops": 2 * 1600 + 3 * 4,
        "convnet-burden": 100 * 16 * 4 + 600,  # numel(x) * kh*kw*C_in + bias
    }
    got = {name: conventions.layer_counts(report, name)[-1] for name in expected}
    assert got == expected
    assert conventions.layer_counts(report, "torchinfo-params")[-1] == 198 * 4
    assert conventions.layer_counts(report, "torchinfo-pass")[-1] == 2 * 600 * 4


# --- executed in a graph ------------------------------------------------------------------------

def _decoder():
    """A small encoder-decoder (a U-Net/DCGAN shape): conv down, two transposed convs up (one
    grouped, one with output_padding and asymmetric padding), a skip concat, a 1x1 head."""
    g = Graph("decoder")
    x = g.input((3, 9, 9))
    down = g.seq(x, ops.Conv2d(8, 3, stride=2, padding=1), ops.Activation("relu"))  # -> 5x5
    up = g.seq(down, T(6, 3, stride=2, padding=1, groups=2), ops.Activation("relu"))  # -> 9x9
    x = g.concat(x, up)
    x = g.seq(x, T(4, (3, 2), stride=(2, 3), padding=(1, 2, 0, 1), output_padding=(1, 2), bias=False),
              ops.Conv2d(2, 1))  # -> 17x27: 8 * 2 - 3 + 2 + 1 + 1, 8 * 3 - 1 + 1 + 2 + 1
    return g


def test_a_graph_with_transposed_convs_validates():
    from archcost.validation import validate

    g = _decoder()
    assert g.shape(g.output_nodes()[-1])[1:] == (2, 17, 27)
    for batch in (1, 2):
        result = validate(g, batch=batch)
        assert result.ok, [(c.name, c.problem) for c in result.failures]


def test_a_graph_with_transposed_convs_trains_one_step_layer_by_layer():
    """Training: each layer's gradients against the float64 references, and the measured peak
    against the predicted one (a transposed conv keeps its input while its weights train)."""
    from archcost.validation import validate_training

    g = _decoder()
    g.seq(g.output_nodes()[-1], ops.GlobalAvgPool(), ops.Flatten(), ops.Linear(3))
    result = validate_training(g, batch=2)
    assert result.ok, ([(c.name, c.problem) for c in result.failures], result.peak_bytes, result.predicted_peak_bytes)


def test_resample_closed_form_matches_enumerating_taps():
    """The closed form (gcd of stride and dilation) against enumerating, for every small kernel,
    stride, dilation and padding, which input units each output phase reads."""
    from archcost.ops import _transposed_resample

    for k in range(1, 7):
        for s in range(1, 6):
            for d in range(1, 5):
                for before in range(7):
                    reach = [[(o + before - t * d) // s for t in range(k) if (o + before - t * d) % s == 0]
                             for o in range(s)]
                    r = _transposed_resample(k, s, d, before)
                    assert r.taps == max(max(i) - min(i) + 1 for i in reach if i), (k, s, d, before)
                    assert r.ratio == Fraction(1, s)
                    centre = (Fraction(min(reach[0]) + max(reach[0]), 2) if reach[0]
                              else (before - Fraction((k - 1) * d, 2)) / s)
                    assert r.first + Fraction(r.taps - 1, 2) == centre, (k, s, d, before)


def test_huge_kernel_and_stride_analyse_without_looping():
    """A kernel of 10^30 taps is a valid field on any input (no input-size bound, unlike a conv):
    the shape, cost and receptive-field rules are closed forms."""
    from archcost.analysis import analyze

    g = Graph("huge")
    g.seq(g.input((2, 3, 3)), T(2, 10**30, stride=10**29 + 7, dilation=10**20))
    record = analyze(g).records[-1]
    size = 2 * (10**29 + 7) + 10**20 * (10**30 - 1) + 1
    assert record.output_shape == (1, 2, size, size)
    assert record.macs == 2 * 9 * 2 * 10**60
