"""Every op's shape rule and cost rule against closed forms written here."""

import math

import pytest

from archcost import ops
from archcost.cost import Cost
from archcost.errors import ShapeError


def run(op, *shapes):
    out = op.infer(tuple(shapes))
    return out, op.cost(tuple(shapes), out)


# --- Conv2d -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "x, kwargs, out",
    [
        ((2, 3, 227, 227), dict(out_channels=96, kernel=11, stride=4), (2, 96, 55, 55)),
        ((1, 192, 28, 28), dict(out_channels=32, kernel=5, padding=2), (1, 32, 28, 28)),
        ((1, 8, 9, 9), dict(out_channels=4, kernel=(1, 3), padding=(0, 1)), (1, 4, 9, 9)),
        ((1, 8, 9, 9), dict(out_channels=4, kernel=(3, 1), stride=(2, 1)), (1, 4, 4, 9)),
        ((1, 8, 10, 10), dict(out_channels=8, kernel=2, stride=3), (1, 8, 3, 3)),  # stride > kernel
        ((1, 8, 5, 5), dict(out_channels=8, kernel=3, padding=2), (1, 8, 7, 7)),  # padding >= kernel/2
        ((1, 8, 1, 1), dict(out_channels=16, kernel=1), (1, 16, 1, 1)),  # 1x1 map
        ((1, 8, 9, 9), dict(out_channels=8, kernel=3, dilation=2, padding=2), (1, 8, 9, 9)),
        ((1, 8, 9, 9), dict(out_channels=8, kernel=3, padding=(0, 1, 0, 1)), (1, 8, 8, 8)),
        ((1, 8, 9, 9), dict(out_channels=8, kernel=3, stride=2, padding="same"), (1, 8, 5, 5)),
    ],
)
def test_conv_shapes(x, kwargs, out):
    assert ops.Conv2d(**kwargs).infer((x,)) == out


@pytest.mark.parametrize("groups", [1, 2, 4, 8])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_cost_closed_form(groups, bias):
    n, c, h, w, k, f = 2, 8, 12, 10, 3, 16
    out, cost = run(ops.Conv2d(f, k, padding=1, groups=groups, bias=bias), (n, c, h, w))
    assert out == (n, f, h, w)
    weights = f * (c // groups) * k * k
    assert cost.weights == weights
    assert cost.biases == (f if bias else 0)
    assert cost.macs == n * f * h * w * (c // groups) * k * k
    assert cost.other == (n * f * h * w if bias else 0)
    assert cost.params == weights + cost.biases
    assert cost.flops == 2 * cost.macs + cost.other


def test_depthwise_conv():
    out, cost = run(ops.Conv2d(32, 3, padding=1, groups=32, bias=False), (1, 32, 112, 112))
    assert out == (1, 32, 112, 112)
    assert cost.weights == 32 * 9
    assert cost.macs == 112 * 112 * 32 * 9  # MobileNet: D_K^2 * M * D_F^2


def test_lecture_5x5_conv_multiplications():
    # seed 000: (5*5*192) * (28*28*32) = 120,422,400 multiplications
    _, cost = run(ops.Conv2d(32, 5, padding=2, bias=False), (1, 192, 28, 28))
    assert cost.macs == 5 * 5 * 192 * 28 * 28 * 32 == 120_422_400


@pytest.mark.parametrize(
    "kwargs, x, match",
    [
        (dict(out_channels=4, kernel=5), (1, 3, 4, 4), "larger than the padded input"),
        (dict(out_channels=4, kernel=3, groups=2), (1, 3, 8, 8), "not divisible by groups"),
        (dict(out_channels=4, kernel=3), (1, 3, 8), "needs an"),
    ],
)
def test_conv_shape_errors(kwargs, x, match):
    with pytest.raises(ShapeError, match=match):
        ops.Conv2d(**kwargs).infer((x,))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(out_channels=0), "out_channels"),
        (dict(out_channels=4, kernel=0), "kernel"),
        (dict(out_channels=4, stride=(1, 0)), "stride"),
        (dict(out_channels=6, groups=4), "divisible"),
        (dict(out_channels=4, padding=-1), "padding"),
    ],
)
def test_conv_argument_errors(kwargs, match):
    with pytest.raises(ShapeError, match=match):
        ops.Conv2d(**kwargs)


# --- pooling -----------------------------------------------------------------------------
def test_pool_shapes_and_costs():
    out, cost = run(ops.MaxPool2d(3, 2), (1, 96, 55, 55))
    assert out == (1, 96, 27, 27)
    assert cost == Cost(other=96 * 27 * 27 * 8)
    out, cost = run(ops.MaxPool2d(3, 2, ceil_mode=True), (1, 64, 112, 112))
    assert out == (1, 64, 56, 56)
    out, cost = run(ops.AvgPool2d(7, 1), (1, 1024, 7, 7))
    assert out == (1, 1024, 1, 1)
    assert cost == Cost(other=1024 * 49)
    out, _ = run(ops.AvgPool2d(3, 1, padding=1), (1, 4, 5, 5))
    assert out == (1, 4, 5, 5)
    out, _ = run(ops.MaxPool2d(2), (1, 4, 5, 5))  # stride defaults to the kernel
    assert out == (1, 4, 2, 2)
    out, _ = run(ops.MaxPool2d(2, 3), (1, 4, 10, 10))  # stride > kernel
    assert out == (1, 4, 3, 3)
    out, _ = run(ops.MaxPool2d(2, 2, padding=1, ceil_mode=True), (1, 4, 6, 6))  # last window dropped
    assert out == (1, 4, 4, 4)


def test_pool_errors():
    with pytest.raises(ShapeError, match="exceeds half the kernel"):
        ops.MaxPool2d(3, 1, padding=2)
    with pytest.raises(ShapeError, match="larger than the padded input"):
        ops.MaxPool2d(3, 2).infer(((1, 4, 2, 2),))


def test_global_avg_pool():
    out, cost = run(ops.GlobalAvgPool(), (2, 2048, 7, 7))
    assert out == (2, 2048, 1, 1)
    assert cost == Cost(other=2 * 2048 * 49)


# --- linear, flatten, reshape, permute --------------------------------------------------------
def test_linear_on_vectors_and_channels_last_maps():
    out, cost = run(ops.Linear(4096), (1, 25088))
    assert out == (1, 4096)
    assert cost.weights == 25088 * 4096 == 102_760_448  # VGG16 FC6 (CS231n Lecture 9)
    assert cost.biases == 4096
    assert cost.macs == 25088 * 4096
    # ConvNeXt: a Linear on (N, H, W, C) acts per position: tokens x in x out.
    out, cost = run(ops.Linear(384, bias=False), (2, 56, 56, 96))
    assert out == (2, 56, 56, 384)
    assert cost.macs == 2 * 56 * 56 * 96 * 384
    assert cost.weights == 96 * 384 and cost.biases == 0


def test_views_and_permute():
    assert ops.Flatten().infer(((2, 512, 7, 7),)) == (2, 25088)
    assert ops.Flatten.inplace and ops.Reshape.inplace
    assert ops.Reshape((-1, 7)).infer(((2, 512, 7, 7),)) == (2, 3584, 7)
    with pytest.raises(ShapeError, match="cannot fit"):
        ops.Reshape((5, -1)).infer(((2, 512, 7, 7),))
    assert ops.Permute((0, 2, 3, 1)).infer(((2, 96, 56, 56),)) == (2, 56, 56, 96)
    with pytest.raises(ShapeError, match="permutation"):
        ops.Permute((1, 0, 2, 3))


# --- normalisation and elementwise ------------------------------------------------------------
def test_batchnorm_params_are_not_buffers():
    out, cost = run(ops.BatchNorm(), (2, 64, 8, 8))
    assert out == (2, 64, 8, 8)
    assert cost == Cost(weights=64, biases=64, buffers=128, other=2 * 2 * 64 * 64)
    assert cost.params == 128


def test_layernorm_channels_last_and_first():
    _, cost = run(ops.LayerNorm(axis=-1), (1, 56, 56, 96))
    assert cost.params == 2 * 96 and cost.other == 5 * 56 * 56 * 96
    _, cost = run(ops.LayerNorm(axis=1), (1, 96, 56, 56))
    assert cost.params == 2 * 96
    with pytest.raises(ShapeError, match="axis"):
        ops.LayerNorm(axis=0).infer(((1, 4),))


def test_groupnorm_32_of_256_channels_on_56x56():
    # nn.GroupNorm(32, 256) on 2x256x56x56: gamma and beta per channel; 5 ops per element (sum for
    # the mean, centre, square-and-sum, normalise, scale-and-shift), the affine's one dropped
    # without affine; backward 9 per element (5 for the sums alone); kept: the input and a float32
    # mean and invstd per (sample, group).
    n, c, h, w, groups = 2, 256, 56, 56, 32
    x = (n, c, h, w)
    out, cost = run(ops.GroupNorm(groups), x)
    elements = n * c * h * w
    assert out == x
    assert cost == Cost(weights=c, biases=c, other=5 * elements)
    assert cost.params == 2 * 256
    assert run(ops.GroupNorm(groups, affine=False), x)[1] == Cost(other=4 * elements)
    op = ops.GroupNorm(groups)
    assert op.backward((x,), x, (True,), True).other == 9 * elements
    assert op.backward((x,), x, (False,), True).other == 5 * elements
    assert op.backward((x,), x, (False,), False).other == 0
    assert ops.GroupNorm(groups, affine=False).backward((x,), x, (False,), True).other == 0
    for policy in ops.POLICIES:
        saved = op.saves((x,), x, policy, (True,), True)
        assert saved.inputs == (0,) and not saved.output
        assert saved.extras == (("mean", (n, groups), "float32"), ("invstd", (n, groups), "float32"))
    assert op.saves((x,), x, "archcost", (False,), False) == ops.Saved()
    assert op.window((x,)) is None


@pytest.mark.parametrize("x", [(2, 6), (2, 6, 7), (1, 6, 3, 4), (1, 6, 2, 3, 4)])
def test_groupnorm_any_rank_from_two(x):
    for groups in (1, 2, 3, 6):  # 1: a LayerNorm over (C, ...); 6 == C: InstanceNorm
        assert ops.GroupNorm(groups).infer((x,)) == x


def test_groupnorm_refuses_bad_groups():
    with pytest.raises(ShapeError, match="groups"):
        ops.GroupNorm(0)
    with pytest.raises(ShapeError, match="groups"):
        ops.GroupNorm(-2)
    with pytest.raises(ShapeError, match="groups"):
        ops.GroupNorm(True)
    with pytest.raises(ShapeError, match="groups 4 does not divide the 6 channels"):
        ops.GroupNorm(4).infer(((1, 6, 2, 2),))
    with pytest.raises(ShapeError, match="N, C"):
        ops.GroupNorm(1).infer(((6,),))


def test_activations_lrn_dropout_softmax():
    assert ops.Activation("relu").inplace and ops.Dropout.inplace
    _, cost = run(ops.Activation("gelu"), (1, 10, 3, 3))
    assert cost == Cost(other=90)
    with pytest.raises(ShapeError, match="unknown fn"):
        ops.Activation("swishy")
    _, cost = run(ops.LRN(size=5), (1, 96, 27, 27))
    assert cost == Cost(other=96 * 27 * 27 * 13)
    _, cost = run(ops.Dropout(0.5), (1, 4096))
    assert cost == Cost()
    with pytest.raises(ShapeError, match="p must be"):
        ops.Dropout(1.0)
    _, cost = run(ops.Softmax(), (2, 1000))
    assert cost == Cost(other=6000)


def test_merges():
    out, cost = run(ops.Concat(), (1, 64, 28, 28), (1, 128, 28, 28), (1, 32, 28, 28))
    assert out == (1, 224, 28, 28) and cost == Cost()
    with pytest.raises(ShapeError, match="spatial size"):
        ops.Concat().infer(((1, 64, 28, 28), (1, 64, 14, 14)))
    out, cost = run(ops.Add(), (1, 256, 56, 56), (1, 256, 56, 56))
    assert cost == Cost(other=256 * 56 * 56)
    _, cost = run(ops.Add(), (1, 4, 2, 2), (1, 4, 2, 2), (1, 4, 2, 2))
    assert cost == Cost(other=2 * 16)
    with pytest.raises(ShapeError, match="channel mismatch"):
        ops.Add().infer(((1, 64, 56, 56), (1, 256, 56, 56)))
    _, cost = run(ops.Mean(), (1, 4, 2, 2), (1, 4, 2, 2))
    assert cost == Cost(other=2 * 16)
    out, cost = run(ops.Mul(), (2, 64, 7, 7), (2, 64, 1, 1))
    assert out == (2, 64, 7, 7) and cost == Cost(other=2 * 64 * 49)
    with pytest.raises(ShapeError, match="broadcast"):
        ops.Mul().infer(((2, 64, 7, 7), (2, 32, 1, 1)))


def test_broadcast_add_and_sub():
    # GCNet's x + context (N, C, 1, 1) and a per-position map (N, 1, H, W): one add per output
    # element, the output takes each axis's larger size; a residual add's counts are unchanged.
    for a, b, out in [((2, 64, 7, 7), (2, 64, 1, 1), (2, 64, 7, 7)), ((2, 1, 7, 7), (2, 64, 7, 7), (2, 64, 7, 7)),
                      ((1, 8, 1, 5), (1, 1, 4, 5), (1, 8, 4, 5)), ((3, 10), (3, 1), (3, 10))]:
        for op in (ops.Add(), ops.Sub()):
            got, cost = run(op, a, b)
            assert got == out and cost == Cost(other=math.prod(out))
            assert op.saves((a, b), out, "archcost", (True, True), False) == ops.Saved()  # shapes only
            assert op.saves((a, b), out, "pytorch", (True, True), False) == ops.Saved()
    n = 2 * 64 * 49
    add, sub, shapes = ops.Add(), ops.Sub(), ((2, 64, 7, 7), (2, 64, 1, 1))
    # dy to the full input (no arithmetic), dy summed over H x W to the context (one add per output element)
    assert add.backward(shapes, (2, 64, 7, 7), (True, True), False).other == n
    assert add.backward(shapes, (2, 64, 7, 7), (True, False), False).other == 0
    assert add.backward(shapes, (2, 64, 7, 7), (False, True), False).other == n
    # sub: b's gradient is -dy (one negation per output element), summed when b broadcasts
    assert sub.backward(shapes, (2, 64, 7, 7), (True, True), False).other == 2 * n
    assert sub.backward(shapes[::-1], (2, 64, 7, 7), (True, True), False).other == 2 * n
    assert sub.backward(shapes[::-1], (2, 64, 7, 7), (True, False), False).other == n
    assert sub.backward(((2, 8, 4, 4),) * 2, (2, 8, 4, 4), (True, True), False).other == 2 * 8 * 16
    # both broadcast: each input's gradient sums over its own broadcast axes
    assert add.backward(((1, 8, 1, 5), (1, 1, 4, 5)), (1, 8, 4, 5), (True, True), False).other == 2 * 160
    # residual adds: unchanged (k - 1 adds per element, a free backward)
    assert add.backward(((1, 4, 2, 2),) * 3, (1, 4, 2, 2), (True,) * 3, False).other == 0
    assert add.window(shapes) is None and sub.window(shapes) is None


def test_broadcast_add_and_sub_refusals():
    with pytest.raises(ShapeError, match="channel mismatch"):
        ops.Add().infer(((2, 64, 7, 7), (2, 32, 1, 1)))
    with pytest.raises(ShapeError, match="shape mismatch"):
        ops.Add().infer(((2, 64, 7, 7), (2, 64, 3, 1)))
    with pytest.raises(ShapeError, match="shape mismatch"):
        ops.Add().infer(((2, 64, 7, 7), (2, 64 * 49)))  # ranks differ: no implicit leading axes
    with pytest.raises(ShapeError, match="add broadcasts two inputs only; its 3 inputs"):
        ops.Add().infer(((2, 4, 3, 3), (2, 4, 3, 3), (2, 4, 1, 1)))
    with pytest.raises(ShapeError, match="Sub cannot broadcast"):
        ops.Sub().infer(((2, 64, 7, 7), (2, 32, 1, 1)))
    with pytest.raises(ShapeError, match="Sub cannot broadcast"):
        ops.Sub().infer(((2, 64, 7, 7), (2, 64, 7)))
    for shapes in [((2, 4),), ((2, 4),) * 3, ()]:
        with pytest.raises(ShapeError, match="Sub takes two inputs"):
            ops.Sub().infer(shapes)


def test_reduce_sum_over_a_branch_axis():
    # SKNet's sum of its 2 attention-weighted branches: (N, 2, C, H, W) -> (N, C, H, W), one add
    # per output element; ResNeSt's radix 4 would be 3.
    out, cost = run(ops.ReduceSum(1), (2, 2, 64, 56, 56))
    assert out == (2, 64, 56, 56) and cost == Cost(other=2 * 64 * 56 * 56)
    out, cost = run(ops.ReduceSum(-4, keepdims=True), (1, 4, 8, 7, 7))
    assert out == (1, 1, 8, 7, 7) and cost == Cost(other=3 * 8 * 49)
    assert run(ops.ReduceSum(1), (3, 5))[0] == (3,)
    op = ops.ReduceSum(2)
    assert op.backward(((2, 3, 4, 5, 5),), (2, 3, 5, 5), (True,), False).other == 0  # dy copied, no arithmetic
    assert op.saves(((2, 3, 4, 5, 5),), (2, 3, 5, 5), "default", (True,), False).inputs == ()
    with pytest.raises(ShapeError, match="not a non-batch axis"):
        ops.ReduceSum(0).infer(((2, 3, 4, 4),))
    for axis, shape in [(2, (1, 3, 4, 4)), (-1, (1, 3, 4, 4)), (3, (1, 2, 3, 4, 4)), (2, (1, 3, 8))]:
        with pytest.raises(ShapeError, match="spatial axis"):  # the receptive field could not follow
            ops.ReduceSum(axis).infer((shape,))


def test_scale_and_channel_pad():
    _, cost = run(ops.Scale(0.5), (1, 16, 4, 4))
    assert cost == Cost(other=256)
    _, cost = run(ops.Scale(None, axis=-1), (1, 4, 4, 96))
    assert cost == Cost(weights=96, other=4 * 4 * 96)
    out, cost = run(ops.ChannelPad(32, stride=2), (1, 16, 32, 32))
    assert out == (1, 32, 16, 16) and cost == Cost()
    assert ops.ChannelPad(32, stride=2).infer(((1, 16, 7, 7),)) == (1, 32, 4, 4)
    with pytest.raises(ShapeError, match="shrink"):
        ops.ChannelPad(8).infer(((1, 16, 4, 4),))


def test_every_op_is_registered_once():
    assert len(set(ops.OPS)) == len(ops.OPS)
    assert len({op.kind for op in ops.OPS}) == len(ops.OPS)
    assert all(issubclass(op, ops.Op) for op in ops.OPS)


def test_numel_helper_matches_math_prod():
    assert ops._numel((2, 3, 4)) == math.prod((2, 3, 4))
