"""The one output-size formula shared by conv and pool, against closed forms and known layers."""

import math

import pytest

from archcost.errors import ShapeError
from archcost.shapes import conv_out_size, pair, padding4, same_padding


@pytest.mark.parametrize(
    "size, k, s, p, expected, where",
    [
        (227, 11, 4, 0, 55, "AlexNet CONV1 (CS231n Lecture 9)"),
        (55, 3, 2, 0, 27, "AlexNet POOL1"),
        (27, 5, 1, 2, 27, "AlexNet CONV2"),
        (224, 7, 2, 3, 112, "ResNet conv1 (He et al. 2015 Table 1)"),
        (224, 3, 1, 1, 224, "VGG 3x3 conv"),
        (224, 2, 2, 0, 112, "VGG pool"),
        (7, 7, 1, 0, 1, "GoogLeNet 7x7 avg pool"),
    ],
)
def test_known_layers(size, k, s, p, expected, where):
    assert conv_out_size(size, k, s, p, p) == expected, where


@pytest.mark.parametrize("size", [1, 5, 7, 13, 28, 31])
@pytest.mark.parametrize("k, s, p, d", [(3, 1, 1, 1), (3, 2, 0, 1), (2, 3, 0, 1), (5, 2, 3, 1), (3, 1, 2, 2), (1, 1, 0, 1)])
def test_floor_mode_matches_closed_form(size, k, s, p, d):
    span = size + 2 * p - d * (k - 1) - 1
    if span < 0:
        with pytest.raises(ShapeError, match="larger than the padded input"):
            conv_out_size(size, k, s, p, p, d)
    else:
        assert conv_out_size(size, k, s, p, p, d) == span // s + 1
        # Brute force: count window starts that fit.
        assert conv_out_size(size, k, s, p, p, d) == sum(
            1 for start in range(0, size + 2 * p, s) if start + d * (k - 1) < size + 2 * p
        )


def test_ceil_mode():
    assert conv_out_size(112, 3, 2, 0, 0, 1, ceil_mode=True) == 56  # GoogLeNet pool1
    assert conv_out_size(112, 3, 2, 0, 0, 1, ceil_mode=False) == 55
    assert conv_out_size(14, 3, 2, 0, 0, 1, ceil_mode=True) == 7
    # The last window would start in the trailing padding: dropped (PyTorch/ONNX rule).
    assert conv_out_size(6, 2, 2, 1, 1, 1, ceil_mode=True) == 4
    assert math.ceil((6 + 2 - 2) / 2) + 1 == 4
    assert conv_out_size(5, 2, 2, 1, 1, 1, ceil_mode=True) == 3
    assert math.ceil((5 + 2 - 2) / 2) + 1 == 4  # the naive ceil formula would say 4


def test_ceil_mode_window_larger_than_input():
    # PyTorch: MaxPool2d(3, 2, ceil_mode=True) on 2x2 -> 1x1 (div_rtn((2 - 3 + 1), 2) + 1 = 1),
    # on 1x1 it fails ("output size is too small"); floor mode always needs the window inside.
    assert conv_out_size(2, 3, 2, ceil_mode=True) == 1
    with pytest.raises(ShapeError, match="larger than the padded input"):
        conv_out_size(1, 3, 2, ceil_mode=True)
    with pytest.raises(ShapeError, match="larger than the padded input"):
        conv_out_size(2, 3, 2, ceil_mode=False)


def test_stride_larger_than_kernel_and_asymmetric_padding():
    assert conv_out_size(10, 2, 3) == 3  # windows at 0, 3, 6 (9 would overrun)
    assert conv_out_size(10, 3, 1, 0, 1) == 9
    assert conv_out_size(10, 3, 1, 1, 0) == 9


def test_same_padding():
    assert same_padding(224, 7, 2) == (2, 3)
    assert same_padding(224, 3, 1) == (1, 1)
    assert same_padding(5, 1, 1) == (0, 0)
    for size in range(1, 20):
        for k in (1, 2, 3, 5):
            for s in (1, 2, 3):
                before, after = same_padding(size, k, s)
                assert conv_out_size(size, k, s, before, after) == -(-size // s)


def test_argument_normalisation_and_errors():
    assert pair(3, "kernel") == (3, 3)
    assert pair((1, 7), "kernel") == (1, 7)
    assert padding4(1) == (1, 1, 1, 1)
    assert padding4((1, 2)) == (1, 1, 2, 2)
    assert padding4((0, 1, 2, 3)) == (0, 1, 2, 3)
    assert padding4("valid") == (0, 0, 0, 0)
    with pytest.raises(ShapeError, match="kernel"):
        pair("3", "kernel")
    with pytest.raises(ShapeError, match="padding"):
        padding4(-1)
    with pytest.raises(ShapeError, match="padding"):
        padding4((1, 2, 3))


@pytest.mark.parametrize("size", [2**53 + 3, 10**18 + 1, 10**30 + 1])
@pytest.mark.parametrize("kernel,stride,pad", [(3, 2, 0), (2, 2, 1), (7, 3, 3), (1, 10**9 + 7, 0)])
def test_huge_sizes_are_exact_in_floor_and_ceil_mode(size, kernel, stride, pad):
    # Issue 19: math.ceil(span / stride) goes through a float, wrong past 2^53. The reference is
    # exact rational arithmetic: out = floor|ceil(span / stride) + 1, ceil dropping a last window
    # that would start in the trailing padding.
    from fractions import Fraction

    span = size + 2 * pad - kernel
    assert conv_out_size(size, kernel, stride, pad, pad) == math.floor(Fraction(span, stride)) + 1
    ceil = math.ceil(Fraction(span, stride)) + 1
    if (ceil - 1) * stride >= size + pad:
        ceil -= 1
    assert conv_out_size(size, kernel, stride, pad, pad, ceil_mode=True) == ceil
    before, after = same_padding(size, kernel, stride)
    assert conv_out_size(size, kernel, stride, before, after) == math.ceil(Fraction(size, stride))


def test_ceil_mode_was_wrong_through_a_float():
    # The case that the float formula got wrong: span = 2^53 + 1, stride 2.
    size = 2**53 + 4
    assert conv_out_size(size, 3, 2, ceil_mode=True) == 2**52 + 2
    assert math.ceil((size - 3) / 2) + 1 != 2**52 + 2


@pytest.mark.parametrize("size", [2**53 + 3, 10**18 + 1, 10**30 + 1])
def test_every_op_size_rule_is_exact_at_huge_sizes(size):
    # Issue 19, through the ops: conv (explicit and "same" padding, dilated, strided), pools in
    # floor and ceil mode, ChannelPad's strided shortcut. References: exact rationals.
    from fractions import Fraction

    from archcost.ops import AvgPool2d, ChannelPad, Conv2d, MaxPool2d

    x = (1, 3, size, size + 1)

    def floor_out(n, k, s, p, d=1):
        return math.floor(Fraction(n + 2 * p - d * (k - 1) - 1, s)) + 1

    def ceil_out(n, k, s, p):
        out = math.ceil(Fraction(n + 2 * p - k, s)) + 1
        return out - 1 if (out - 1) * s >= n + p else out

    assert Conv2d(8, 3, stride=2, padding=1).infer((x,))[2:] == (floor_out(size, 3, 2, 1), floor_out(size + 1, 3, 2, 1))
    assert Conv2d(8, 3, stride=3, dilation=2).infer((x,))[2:] == (floor_out(size, 3, 3, 0, 2),
                                                                  floor_out(size + 1, 3, 3, 0, 2))
    ceil_div = (math.ceil(Fraction(size, 3)), math.ceil(Fraction(size + 1, 3)))
    assert Conv2d(8, 5, stride=3, padding="same").infer((x,))[2:] == ceil_div
    assert MaxPool2d(3, 2).infer((x,))[2:] == (floor_out(size, 3, 2, 0), floor_out(size + 1, 3, 2, 0))
    assert MaxPool2d(3, 2, ceil_mode=True).infer((x,))[2:] == (ceil_out(size, 3, 2, 0), ceil_out(size + 1, 3, 2, 0))
    assert AvgPool2d(2, 2, padding=1, ceil_mode=True).infer((x,))[2:] == (ceil_out(size, 2, 2, 1),
                                                                          ceil_out(size + 1, 2, 2, 1))
    assert ChannelPad(8, stride=3).infer((x,))[2:] == ceil_div
