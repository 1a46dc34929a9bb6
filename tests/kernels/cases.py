"""The kernel tests both backends run, written once: each op's adapter against the float64
reference (archcost/kernels/reference.py) on random (never zero) inputs, with the edge cases that
break index arithmetic, and hand-computed values that pin the kernels and the reference alike.

``KernelCases`` holds the tests. A backend's test module subclasses it, naming its backend module
and its case size: tests/kernels/test_cpu_kernels.py runs the cpu at ``FULL`` size,
tests/kernels/test_cuda_kernels.py the cuda backend at ``SMALL`` size (numba-cuda's simulator runs
every CUDA thread as a Python thread: a few channels, 5-9 pixel maps). Parameters whose values
differ by size are in ``SIZED``; the rest are the same for both backends.
"""

from typing import NamedTuple

import numpy as np
import pytest

from archcost import ops
from archcost.execute import init_params
from archcost.kernels import reference
from archcost.validation import relative_error

TOL = 2e-6  # float32 kernels vs float64 reference on small random problems
FULL, SMALL = "full", "small"  # case sizes: the cpu's, and the simulator's

C = ops.Conv2d
CONV_FULL = {
    "3x3 pad 1": (C(8, 3, padding=1), (2, 5, 9, 9)),
    "stride > kernel": (C(6, 2, stride=3), (1, 4, 11, 10)),
    "1x1 stride 3": (C(5, 1, stride=3), (1, 7, 8, 8)),
    "padding >= kernel/2": (C(4, 3, padding=2), (1, 3, 6, 6)),
    "1x1 kernel padded": (C(4, 1, padding=1), (1, 3, 5, 5)),
    "1x1 spatial map": (C(16, 3, padding=1), (2, 9, 1, 1)),
    "depthwise": (C(12, 3, stride=2, padding=1, groups=12), (1, 12, 9, 9)),
    "depthwise x2": (C(12, 3, padding=1, groups=6), (1, 6, 7, 7)),
    "groups 4, 10 per group": (C(40, 3, padding=1, groups=4), (1, 8, 6, 6)),
    "asymmetric padding": (C(5, 3, padding=(0, 1, 2, 0)), (1, 3, 7, 8)),
    "dilation": (C(6, 3, dilation=(2, 3), padding=(2, 3)), (1, 4, 12, 13)),
    "non-square 1x7": (C(9, (1, 7), padding=(0, 3)), (1, 5, 6, 10)),
    "non-square 3x1 stride (2,1)": (C(9, (3, 1), stride=(2, 1), padding=(1, 0)), (1, 5, 10, 6)),
    "same stride 2": (C(7, 7, stride=2, padding="same"), (1, 3, 15, 16)),
    "no bias": (C(11, 5, stride=2, padding=2, bias=False), (2, 3, 13, 13)),
    # the cpu's blocked kernel (>= 8 output channels per group): full and partial 16-channel
    # blocks, position counts that are and are not multiples of the 8-position tile, 1x1 without
    # padding
    "blocked 3x3, 40 channels": (C(40, 3, padding=1), (2, 6, 7, 9)),
    "blocked 1x1 GEMM, 32 channels": (C(32, 1), (2, 24, 4, 4)),
    "blocked 1x1 stride 2": (C(16, 1, stride=2, bias=False), (1, 8, 9, 7)),
    "blocked 7x7/2 pad 3": (C(17, 7, stride=2, padding=3), (1, 3, 19, 17)),
    "blocked groups 2, 24 per group": (C(48, 3, stride=2, padding=1, groups=2), (1, 6, 11, 11)),
    "blocked dilation, asymmetric pad": (C(20, 3, dilation=2, padding=(1, 3, 0, 2)), (1, 5, 9, 8)),
    "blocked 1x1 map": (C(64, 3, padding=1), (3, 16, 1, 1)),
}
CONV_SMALL = {
    "3x3 pad 1": (C(5, 3, padding=1), (2, 3, 5, 5)),
    "stride > kernel": (C(3, 2, stride=3), (1, 3, 8, 7)),
    "1x1 stride 3": (C(5, 1, stride=3), (1, 4, 7, 7)),
    "padding >= kernel/2": (C(3, 3, padding=2), (1, 3, 5, 5)),
    "1x1 spatial map": (C(6, 3, padding=1), (2, 5, 1, 1)),
    "depthwise": (C(6, 3, stride=2, padding=1, groups=6), (1, 6, 7, 7)),
    "depthwise x2": (C(8, 3, padding=1, groups=4), (1, 4, 5, 5)),
    "groups 2, 3 per group": (C(6, 3, padding=1, groups=2), (1, 4, 5, 5)),
    "asymmetric padding": (C(4, 3, padding=(0, 1, 2, 0)), (1, 3, 6, 7)),
    "dilation": (C(3, 3, dilation=(2, 1), padding=(2, 1)), (1, 3, 7, 6)),
    "non-square 1x5": (C(4, (1, 5), padding=(0, 2)), (1, 3, 4, 7)),
    "5x5 stride 2 no bias": (C(5, 5, stride=2, padding=2, bias=False), (1, 3, 7, 7)),
}

T = ops.ConvTranspose2d
# Transposed conv cases (op, input shape), both backends' forward tests and the backward tests
# (tests/kernels/test_cpu_backward_conv.py, test_cuda_backward.py): strides 1 to 3 (stride >
# kernel leaves outputs no tap reaches: bias only), padding 0, 1 and asymmetric (cropping more
# than a tap's reach on one side), output_padding (extra rows past every tap), dilation, groups
# and depthwise, no bias, 1x1, non-square.
CONVT_FULL = {
    "3x3 stride 1": (T(5, 3), (2, 3, 6, 7)),
    "4x4/2 pad 1 (DCGAN)": (T(6, 4, stride=2, padding=1), (2, 4, 5, 5)),
    "3x3/2 pad 1 output_padding 1": (T(4, 3, stride=2, padding=1, output_padding=1), (1, 5, 6, 4)),
    "2x2/3 stride > kernel": (T(3, 2, stride=3), (1, 4, 4, 5)),
    "3x3/3 asymmetric padding, output_padding (2, 1)": (T(4, 3, stride=3, padding=(0, 2, 3, 1), output_padding=(2, 1)),
                                                          (1, 3, 4, 4)),
    "dilation 2, output_padding 1 < dilation": (T(5, 3, dilation=2, padding=1, output_padding=1), (1, 3, 5, 6)),
    "groups 2": (T(6, 3, stride=2, padding=1, groups=2), (2, 4, 5, 5)),
    "depthwise": (T(6, 3, stride=2, padding=1, groups=6), (1, 6, 5, 4)),
    "depthwise multiplier 2": (T(8, 4, stride=2, padding=1, groups=4), (1, 4, 4, 4)),
    "1x1 kernel": (T(7, 1), (2, 9, 3, 4)),
    "1x1 stride 2 output_padding 1": (T(4, 1, stride=2, output_padding=1), (1, 5, 3, 3)),
    "non-square (1, 5), stride (1, 2)": (T(4, (1, 5), stride=(1, 2), padding=(0, 2)), (1, 3, 4, 6)),
    "no bias, 5x5/2": (T(16, 5, stride=2, padding=2, output_padding=1, bias=False), (2, 12, 5, 5)),
    "wide: 24 -> 20 channels": (T(20, 3, stride=2, padding=1), (1, 24, 4, 4)),
    "1x1 spatial map": (T(6, 3), (2, 5, 1, 1)),
}
CONVT_SMALL = {
    "3x3 stride 1": (T(3, 3), (1, 2, 4, 5)),
    "4x4/2 pad 1 (DCGAN)": (T(3, 4, stride=2, padding=1), (2, 2, 3, 3)),
    "3x3/2 pad 1 output_padding 1": (T(3, 3, stride=2, padding=1, output_padding=1), (1, 3, 3, 2)),
    "2x2/3 stride > kernel": (T(2, 2, stride=3), (1, 2, 2, 3)),
    "3x3/3 asymmetric padding, output_padding (2, 1)": (T(2, 3, stride=3, padding=(0, 2, 3, 1), output_padding=(2, 1)),
                                                          (1, 2, 2, 2)),
    "dilation 2, output_padding 1": (T(3, 3, dilation=2, padding=1, output_padding=1), (1, 2, 3, 3)),
    "groups 2": (T(4, 3, stride=2, padding=1, groups=2), (1, 4, 3, 3)),
    "depthwise": (T(3, 3, stride=2, padding=1, groups=3), (1, 3, 3, 2)),
    "1x1 kernel": (T(3, 1), (1, 4, 2, 3)),
    "non-square (1, 3), stride (1, 2)": (T(2, (1, 3), stride=(1, 2), padding=(0, 1)), (1, 2, 3, 3)),
    "no bias, 5x5/2": (T(3, 5, stride=2, padding=2, output_padding=1, bias=False), (1, 2, 3, 3)),
}

POOL_CASES = {
    "2x2/2": dict(kernel=2, stride=2),
    "3x3/2 ceil last window": dict(kernel=3, stride=2, ceil_mode=True),
    "3x3/2 pad 1 ceil": dict(kernel=3, stride=2, padding=1, ceil_mode=True),
    "stride > kernel": dict(kernel=2, stride=3),
    "3x3/1 pad 1": dict(kernel=3, stride=1, padding=1),
    "asymmetric padding": dict(kernel=3, stride=2, padding=(0, 1, 1, 0)),
    "non-square": dict(kernel=(3, 1), stride=(2, 1), padding=(1, 0)),
}

# Parameter values by case size, by argument name: KernelCases.pytest_generate_tests
# parametrizes each test argument named here with the values of its class's size.
SIZED = {
    "conv_case": {FULL: CONV_FULL, SMALL: CONV_SMALL},
    "convt_case": {FULL: CONVT_FULL, SMALL: CONVT_SMALL},
    "pool_map": {FULL: [(2, 3, 10, 10), (1, 2, 7, 9)], SMALL: [(1, 2, 6, 9)]},
    "negative_pool_map": {FULL: [(1, 1, 4, 4)], SMALL: [(1, 2, 5, 5)]},
    "global_pool_map": {FULL: [(2, 5, 7, 6), (1, 3, 1, 1)], SMALL: [(2, 3, 5, 7), (1, 3, 1, 1)]},
    # (out features, input shape, bias); on the cuda backend the first two take its GEMV path
    "linear_case": {FULL: [(67, (3, 70), True), (67, (1, 130), False), (67, (2, 3, 4, 9), True)],
                    SMALL: [(9, (2, 13), True), (9, (1, 9), False), (9, (7, 10), True), (9, (2, 3, 2, 6), False)]},
    "activation_map": {FULL: [(2, 3, 5, 7)], SMALL: [(2, 3, 3, 3)]},
    "in_place_map": {FULL: [(4, 50)], SMALL: [(3, 11)]},
    "batch_norm_map": {FULL: [(2, 6, 5, 5), (3, 10)], SMALL: [(2, 5, 3, 3), (3, 7)]},
    "layer_norm_case": {FULL: [(-1, (2, 4, 5, 16)), (1, (2, 8, 3, 3)), (-1, (3, 12))],
                        SMALL: [(-1, (2, 3, 2, 8)), (1, (2, 6, 2, 3))]},
    "lrn_map": {FULL: [(2, 9, 4, 3)], SMALL: [(1, 7, 3, 3)]},
    "softmax_case": {FULL: [(-1, (3, 10)), (1, (2, 6, 3, 3))], SMALL: [(-1, (3, 10)), (1, (2, 6, 2, 3))]},
    # (align_corners, input shape, bit-exact): dyadic target coordinates are bit-exact
    "identity_case": {
        FULL: [(False, (2, 3, 4, 8), True), (True, (2, 3, 5, 9), True), (False, (2, 3, 5, 7), False),
               (True, (2, 3, 5, 7), False), (False, (2, 3, 1, 6), False), (True, (2, 3, 1, 6), False)],
        SMALL: [(False, (1, 2, 4, 8), True), (True, (1, 2, 5, 9), True), (False, (1, 2, 3, 5), False),
                (True, (1, 2, 1, 6), False)],
    },
}

R = ops.Resize
# Resize cases (op, input shape), shared by the forward tests of both backends and the backward
# tests (tests/kernels/test_cpu_backward_tensor.py, test_cuda_backward.py): both modes, every
# coordinate mode, size and scale forms, non-integer ratios both ways, 1-pixel inputs and outputs.
RESIZE_CASES = {
    "nearest x2": (R(scale=(2, 2)), (2, 3, 4, 5)),
    "nearest x4, x8": (R(scale=(4, 8)), (1, 2, 2, 3)),
    "nearest 3->7 (GhostNetV2)": (R(size=(7, 7)), (1, 3, 3, 3)),
    "nearest down 7->3, 5->4": (R(size=(3, 4)), (1, 2, 7, 5)),
    "nearest scale 1.5, 0.75": (R(scale=(1.5, 0.75)), (1, 2, 5, 6)),
    "nearest to 1x1": (R(size=(1, 1)), (1, 2, 4, 3)),
    "nearest from 1x1": (R(size=(3, 2)), (2, 2, 1, 1)),
    "linear half_pixel x2": (R(scale=(2, 2), mode="linear"), (2, 3, 4, 5)),
    "linear half_pixel 3->7, 5->3": (R(size=(7, 3), mode="linear"), (1, 2, 3, 5)),
    "linear half_pixel scale 1.5, 0.75": (R(scale=(1.5, 0.75), mode="linear"), (1, 2, 5, 6)),
    "linear half_pixel to 1x1": (R(size=(1, 1), mode="linear"), (1, 2, 4, 3)),
    "linear pytorch_half_pixel 4->8, 7->3": (R(size=(8, 3), mode="linear", coord="pytorch_half_pixel"), (1, 2, 4, 7)),
    "linear pytorch_half_pixel to 1x2": (R(size=(1, 2), mode="linear", coord="pytorch_half_pixel"), (1, 2, 3, 5)),
    "linear align_corners 3->7, 4->8": (R(size=(7, 8), mode="linear", coord="align_corners"), (1, 2, 3, 4)),
    "linear align_corners 7->3, 1->4": (R(size=(3, 4), mode="linear", coord="align_corners"), (1, 2, 7, 1)),
    "linear align_corners scale 2, to 1": (R(size=(6, 1), mode="linear", coord="align_corners"), (1, 2, 3, 4)),
    "linear align_corners x2 scale": (R(scale=(2.0, 2.0), mode="linear", coord="align_corners"), (2, 2, 3, 2)),
}

P = ops.Pad
# Pad cases (op, input shape), shared by the forward tests of both backends and the backward tests
# (tests/kernels/test_cpu_backward_tensor.py, test_cuda_backward.py): every mode, unequal sides,
# amounts past the axis size (edge, wrap: wrapped more than once), reflect up to size - 1, crops,
# 1-pixel axes, and (N, C, L) maps.
PAD_CASES = {
    "constant 0 (1, 2, 3, 0)": (P((1, 2, 3, 0)), (2, 3, 4, 5)),
    "constant 1.5 (0, 3, 2, 1)": (P((0, 3, 2, 1), value=1.5), (1, 2, 3, 4)),
    "constant crop (-1, 2, 1, -2)": (P((-1, 2, 1, -2), value=-0.5), (2, 2, 4, 5)),
    "constant crop to 1x1": (P((-2, -1, 0, -3)), (1, 2, 4, 4)),
    "reflect (1, 2, 3, 4)": (P((1, 2, 3, 4), "reflect"), (2, 3, 4, 5)),
    "reflect size - 1 on a 2x2": (P((1, 1, 1, 0), "reflect"), (1, 2, 2, 2)),
    "edge (2, 0, 1, 3)": (P((2, 0, 1, 3), "edge"), (2, 3, 3, 4)),
    "edge past the size of a 1x1": (P((3, 2, 0, 4), "edge"), (1, 2, 1, 1)),
    "wrap (1, 2, 0, 3)": (P((1, 2, 0, 3), "wrap"), (2, 3, 4, 3)),
    "wrap twice round (5, 7, 4, 2)": (P((5, 7, 4, 2), "wrap"), (1, 2, 3, 2)),
    "reflect L (0, 0, 2, 3)": (P((0, 0, 2, 3), "reflect"), (2, 3, 5)),
    "wrap L (0, 0, 4, 1)": (P((0, 0, 4, 1), "wrap"), (1, 2, 3)),
    "constant L crop (0, 0, -1, 2)": (P((0, 0, -1, 2), value=0.25), (2, 2, 4)),
}

IDENTITY = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
X22 = np.array([[[[1.0, 2.0], [3.0, 4.0]]]], np.float32)  # x[q, p] = 1 + p + 2q


def _id(value) -> str:
    """A test id: 2x3x10x10 for a shape, the value without spaces otherwise."""
    if isinstance(value, tuple) and all(isinstance(d, int) for d in value):
        return "x".join(map(str, value))
    return str(value).replace(" ", "")


def _random(shape, rng, scale=1.0):
    return (rng.standard_normal(shape) * scale).astype(np.float32)


class Run(NamedTuple):
    """One adapter run: its output on the host, the float64 reference, the prepared state, the
    host inputs, and the inputs and output as the backend holds them."""
    out: np.ndarray
    ref: np.ndarray
    state: object
    xs: list
    inputs: list
    device_out: object


class KernelCases:
    """The tests of every kernel; a subclass sets ``backend`` (a backend module) and ``size``."""

    backend = None
    size = FULL

    def pytest_generate_tests(self, metafunc):
        """Parametrize each argument named in ``SIZED`` with its values at this class's size."""
        for argname, by_size in SIZED.items():
            if argname in metafunc.fixturenames:
                values = by_size[self.size]
                if isinstance(values, dict):  # named cases
                    metafunc.parametrize(argname, list(values.values()), ids=list(values))
                else:
                    metafunc.parametrize(argname, values, ids=[_id(v) for v in values])

    # --- what differs between the backends (a subclass overrides) ----------------------------

    def reads_zero_border(self, conv_state) -> bool:
        """Whether this conv multiplies its padded taps by a zero-bordered copy of the input
        (counting them as performed) rather than skipping them."""
        return False

    def same_buffer(self, a, b) -> bool:
        raise NotImplementedError

    # --- running an adapter --------------------------------------------------------------------

    def adapter(self, op):
        return self.backend.ADAPTERS[type(op)]

    def execute(self, op, *in_shapes, seed=0, scale=1.0, params=None) -> Run:
        """Run ``op``'s adapter on random inputs (and params, unless given)."""
        rng = np.random.default_rng(seed)
        out_shape = op.infer(in_shapes)
        xs = [_random(s, rng, scale) for s in in_shapes]
        if params is None:
            params = init_params(op, in_shapes, out_shape, rng)
            if isinstance(op, ops.BatchNorm):
                params["mean"] = _random(out_shape[1], rng)
                params["var"] = rng.uniform(0.5, 2.0, out_shape[1]).astype(np.float32)
        adapter = self.adapter(op)
        state = adapter.prepare(op, in_shapes, out_shape, params)
        inputs = [self.backend.to_device(x) for x in xs]
        device_out = self.backend.to_device(np.full(out_shape, np.nan, np.float32))
        adapter.run(op, state, inputs, device_out)
        ref = reference.forward(op, xs, params, out_shape)
        return Run(self.backend.to_host(device_out), ref, state, xs, inputs, device_out)

    def check(self, op, *in_shapes, tol=TOL, **kw) -> Run:
        """``execute``, then the output against the reference."""
        run = self.execute(op, *in_shapes, **kw)
        assert run.out.shape == run.ref.shape
        assert np.isfinite(run.out).all(), "a NaN left in the output: some element was never written"
        assert np.abs(run.ref).max() > 0, "a test on an all-zero reference proves nothing"
        err = relative_error(run.out, run.ref)
        assert err < tol, f"{op}: relative error {err:.2e}"
        return run

    def run_kernel(self, op, *xs, params=None) -> np.ndarray:
        """The adapter's host output on the given float32 host inputs."""
        in_shapes = tuple(x.shape for x in xs)
        out_shape = op.infer(in_shapes)
        adapter = self.adapter(op)
        state = adapter.prepare(op, in_shapes, out_shape, params or {})
        out = self.backend.to_device(np.full(out_shape, np.nan, np.float32))
        adapter.run(op, state, [self.backend.to_device(x) for x in xs], out)
        return self.backend.to_host(out)

    def both(self, op, *xs, params=None):
        """(kernel output, float64 reference) on float32 host inputs ``xs``."""
        out = self.run_kernel(op, *xs, params=params)
        return out, reference.forward(op, xs, params or {}, out.shape)

    # --- convolution -------------------------------------------------------------------------

    def test_conv2d(self, conv_case):
        self.check(*conv_case)

    def test_conv2d_counts_every_multiply(self, conv_case):
        """performed + padded == the analytic MACs. A kernel that reads a zero-bordered copy
        multiplies every tap (padded = 0); otherwise performed must equal the in-bounds taps,
        counted independently by convolving ones with ones in the reference."""
        op, shape = conv_case
        run = self.execute(op, shape)
        performed, padded = self.adapter(op).count(op, run.state, run.inputs, run.device_out)
        macs = op.cost((shape,), run.out.shape).macs
        assert performed + padded == macs
        if self.reads_zero_border(run.state):
            assert padded == 0
            return
        ones = {"weight": np.ones((op.out_channels, shape[1] // op.groups, *op.kernel), np.float32)}
        taps = reference.conv2d(ops.Conv2d(op.out_channels, op.kernel, op.stride, op.padding, op.dilation, op.groups,
                                           bias=False), np.ones(shape), ones)
        assert performed == int(taps.sum())
        assert (padded > 0) == (int(taps.sum()) < macs)

    # --- transposed convolution --------------------------------------------------------------

    def test_conv_transpose2d(self, convt_case):
        self.check(*convt_case)

    def test_conv_transpose2d_counts_every_multiply(self, convt_case):
        """performed + padded == the analytic MACs (every input element times every tap), and
        performed is the (input, tap) pairs landing inside the output, counted independently by
        scattering ones with ones in the reference."""
        op, shape = convt_case
        run = self.execute(op, shape)
        performed, padded = self.adapter(op).count(op, run.state, run.inputs, run.device_out)
        macs = op.cost((shape,), run.out.shape).macs
        assert performed + padded == macs
        ones = {"weight": np.ones((shape[1], op.out_channels // op.groups, *op.kernel), np.float32)}
        unbiased = ops.ConvTranspose2d(op.out_channels, op.kernel, op.stride, op.padding, op.output_padding,
                                       op.dilation, op.groups, bias=False)
        landed = reference.forward(unbiased, [np.ones(shape)], ones, run.out.shape)
        assert performed == int(landed.sum())
        assert (padded > 0) == (int(landed.sum()) < macs)

    # --- pooling -----------------------------------------------------------------------------

    @pytest.mark.parametrize("case", POOL_CASES)
    def test_max_pool(self, case, pool_map):
        self.check(ops.MaxPool2d(**POOL_CASES[case]), pool_map)

    @pytest.mark.parametrize("include_pad", [True, False])
    @pytest.mark.parametrize("case", POOL_CASES)
    def test_avg_pool(self, case, include_pad, pool_map):
        self.check(ops.AvgPool2d(**POOL_CASES[case], count_include_pad=include_pad), pool_map)

    def test_max_pool_ignores_padding_of_negative_maps(self, negative_pool_map):
        negative = -np.abs(_random(negative_pool_map, np.random.default_rng(0))) - 1.0
        out = self.run_kernel(ops.MaxPool2d(3, 2, padding=1), negative)
        assert (out < -1.0 + 1e-7).all()  # a zero from the padding would have won

    def test_global_avg_pool(self, global_pool_map):
        self.check(ops.GlobalAvgPool(), global_pool_map)

    # --- linear ------------------------------------------------------------------------------

    def test_linear(self, linear_case):
        features, shape, bias = linear_case
        op = ops.Linear(features, bias=bias)
        run = self.check(op, shape)
        performed, padded = self.adapter(op).count(op, run.state, run.inputs, run.device_out)
        assert (performed, padded) == (op.cost((shape,), run.out.shape).macs, 0)

    # --- per-element and per-channel ---------------------------------------------------------

    @pytest.mark.parametrize("fn", ops.ACTIVATIONS)
    def test_activation(self, fn, activation_map):
        self.check(ops.Activation(fn, slope=0.2), activation_map, scale=4.0)  # reaches saturating and clipped ranges

    def test_activation_in_place(self, in_place_map):
        op = ops.Activation("silu")
        x = _random(in_place_map, np.random.default_rng(3))
        ref = reference.forward(op, [x], {}, x.shape)
        dx = self.backend.to_device(x)
        adapter = self.adapter(op)
        adapter.run(op, adapter.prepare(op, (x.shape,), x.shape, {}), [dx], dx)
        assert relative_error(self.backend.to_host(dx), ref) < TOL

    @pytest.mark.parametrize("affine", [True, False])
    def test_batch_norm(self, affine, batch_norm_map):
        self.check(ops.BatchNorm(affine=affine), batch_norm_map)

    def test_layer_norm(self, layer_norm_case):
        axis, shape = layer_norm_case
        self.check(ops.LayerNorm(axis), shape, scale=3.0)

    # groups 1 (a LayerNorm over C, H, W), == C (InstanceNorm), in between; (N, C), (N, C, L) inputs.
    @pytest.mark.parametrize("groups,affine,shape", [(1, True, (2, 6, 3, 4)), (6, True, (2, 6, 3, 4)),
                                                     (3, True, (2, 6, 3, 4)), (2, False, (2, 6, 3, 4)),
                                                     (2, True, (3, 8)), (4, True, (2, 8, 5)), (8, False, (2, 8, 5))])
    def test_group_norm(self, groups, affine, shape):
        self.check(ops.GroupNorm(groups, affine=affine), shape, scale=3.0)

    @pytest.mark.parametrize("size", [5, 4, 1])
    def test_lrn(self, size, lrn_map):
        self.check(ops.LRN(size, alpha=1e-2, beta=0.75, k=1.0), lrn_map, scale=3.0)

    @pytest.mark.parametrize("op", [ops.Scale(0.8), ops.Scale(None), ops.Scale(None, axis=-1)])
    def test_scale(self, op):
        self.check(op, (2, 4, 3, 4))

    def test_softmax(self, softmax_case):
        axis, shape = softmax_case
        self.check(ops.Softmax(axis), shape, scale=5.0)

    # --- multi-input and data movement -------------------------------------------------------

    def test_add_mean(self):
        self.check(ops.Add(), (2, 3, 4, 4), (2, 3, 4, 4))
        self.check(ops.Add(), (2, 3, 4, 4), (2, 3, 4, 4), (2, 3, 4, 4))
        self.check(ops.Mean(), (2, 3, 4, 4), (2, 3, 4, 4), (2, 3, 4, 4))

    # Two inputs that broadcast: a global-context term (N, C, 1, 1), a per-position map (N, 1, H, W),
    # both sides broadcast, a vector's (N, 1), 5 axes merged to 4; the sub of equal shapes too.
    @pytest.mark.parametrize("a,b", [((2, 6, 4, 5), (2, 6, 1, 1)), ((2, 1, 4, 5), (2, 6, 4, 5)),
                                     ((1, 6, 1, 5), (3, 1, 4, 5)), ((3, 7), (3, 1)), ((2, 3, 4, 4), (2, 3, 4, 4)),
                                     ((2, 2, 3, 4, 5), (2, 2, 3, 1, 1))])
    def test_add_sub_broadcast(self, a, b):
        run = self.check(ops.Add(), a, b)
        # x + y by numpy's broadcasting, whatever the reference
        x, y = (v.astype(np.float64) for v in run.xs)
        np.testing.assert_allclose(run.out, x + y, rtol=1e-5, atol=1e-6)
        run = self.check(ops.Sub(), a, b)
        x, y = (v.astype(np.float64) for v in run.xs)
        np.testing.assert_allclose(run.out, x - y, rtol=1e-5, atol=1e-6)

    # 5 axes: SKNet's and ResNeSt's (N, k, C, H, W) * (N, k, C, 1, 1), merged to 4 or fewer
    # (adapters.collapse_broadcast), and products that stay 4 axes after merging.
    @pytest.mark.parametrize("a,b", [((2, 6, 4, 5), (2, 6, 1, 1)), ((2, 1, 1, 1), (2, 6, 4, 5)), ((3, 7), (3, 1)),
                                     ((2, 1, 4, 5), (2, 6, 4, 5)), ((2, 2, 3, 4, 5), (2, 2, 3, 1, 1)),
                                     ((2, 3, 1, 4, 5), (1, 3, 1, 4, 5)), ((1, 2, 3, 1, 1), (2, 2, 3, 4, 3))])
    def test_mul_broadcast(self, a, b):
        self.check(ops.Mul(), a, b)

    @pytest.mark.parametrize("axis,keepdims,shape", [(1, False, (2, 2, 3, 4, 5)), (2, True, (2, 3, 4, 2, 3)),
                                                     (1, False, (2, 5, 4, 3)), (-1, False, (3, 7)),
                                                     (1, True, (2, 1, 3, 3)), (-3, False, (1, 4, 2, 3, 3))])
    def test_reduce_sum(self, axis, keepdims, shape):
        run = self.check(ops.ReduceSum(axis, keepdims), shape)
        # The sum of the summands, whatever the reference: the first and the rest added by hand.
        x = run.xs[0].astype(np.float64)
        by_hand = sum(np.take(x, k, axis=axis) for k in range(shape[axis]))
        np.testing.assert_allclose(run.out.reshape(by_hand.shape), by_hand, rtol=1e-5, atol=1e-6)

    @pytest.mark.parametrize("axis,shapes", [(1, [(2, 3, 4, 4), (2, 5, 4, 4), (2, 1, 4, 4)]),
                                             (-1, [(2, 4, 4, 3), (2, 4, 4, 6)]), (1, [(2, 7), (2, 2)])])
    def test_concat(self, axis, shapes):
        self.check(ops.Concat(axis), *shapes)

    @pytest.mark.parametrize("stride,shape", [(1, (2, 3, 5, 5)), (2, (2, 3, 7, 6)), (2, (1, 4, 1, 1))])
    def test_channel_pad(self, stride, shape):
        run = self.check(ops.ChannelPad(8, stride), shape)
        assert (run.out[:, shape[1]:] == 0).all()

    @pytest.mark.parametrize("case", PAD_CASES)
    def test_pad(self, case):
        op, shape = PAD_CASES[case]
        run = self.check(op, shape)
        # a copy: every output is exactly some input, or the constant
        assert np.isin(run.out, np.append(run.xs[0], np.float32(op.value))).all()

    @pytest.mark.parametrize("op,expected", [
        # x[q, p] = 1 + p + 2q on a 2x2 map, one more row above and column left
        (P((1, 0, 1, 0), value=9.0), [[9, 9, 9], [9, 1, 2], [9, 3, 4]]),
        (P((1, 0, 1, 0), "reflect"), [[4, 3, 4], [2, 1, 2], [4, 3, 4]]),
        (P((1, 0, 1, 0), "edge"), [[1, 1, 2], [1, 1, 2], [3, 3, 4]]),
        # wrap by 3 columns of a 2-wide map: columns 1, 0, 1 then 0, 1; rows 1 then 0, 1
        (P((1, 0, 3, 0), "wrap"), [[4, 3, 4, 3, 4], [2, 1, 2, 1, 2], [4, 3, 4, 3, 4]]),
        (P((0, -1, -1, 1), value=7.0), [[2, 7]]),
    ])
    def test_pad_by_hand(self, op, expected):
        out, ref = self.both(op, X22)
        assert out[0, 0].tolist() == expected
        assert ref[0, 0].tolist() == expected

    # 5 and 6 axes: ShuffleNet's channel shuffle (0, 2, 1, 3, 4) and any permute whose runs of
    # kept-together axes merge to 4 (adapters.collapse_permute).
    @pytest.mark.parametrize("dims,shape", [((0, 2, 3, 1), (2, 3, 4, 5)), ((0, 3, 1, 2), (2, 3, 4, 5)),
                                            ((0, 2, 1), (2, 3, 4)), ((0, 2, 1, 3, 4), (2, 2, 3, 4, 5)),
                                            ((0, 3, 4, 1, 2), (2, 2, 3, 4, 5)),
                                            ((0, 1, 4, 5, 2, 3), (1, 2, 3, 2, 2, 3))])
    def test_permute(self, dims, shape):
        self.check(ops.Permute(dims), shape)

    # 5 and 6 axes left after merging: the 6-axis kernels. Space-to-depth's (0, 3, 5, 1, 2, 4)
    # merges its axes 1, 2 only (5 left); DepthToSpace's DCR (0, 3, 4, 1, 5, 2) its 3, 4;
    # (0, 2, 4, 1, 5, 3) and (0, 4, 2, 5, 3, 1) merge nothing (6 left), nor does (0, 2, 4, 1, 3).
    @pytest.mark.parametrize("dims,shape", [((0, 3, 5, 1, 2, 4), (2, 3, 4, 2, 5, 2)),
                                            ((0, 3, 4, 1, 5, 2), (2, 2, 2, 3, 4, 3)),
                                            ((0, 2, 4, 1, 5, 3), (2, 3, 2, 4, 3, 2)),
                                            ((0, 4, 2, 5, 3, 1), (1, 2, 3, 4, 2, 3)),
                                            ((0, 2, 4, 1, 3), (2, 3, 2, 4, 3))])
    def test_permute_of_5_or_6_merged_axes(self, dims, shape):
        from archcost.kernels import adapters

        assert len(adapters.collapse_permute(dims, shape)[1]) in (5, 6)
        run = self.check(ops.Permute(dims), shape)
        assert (run.out == run.ref).all(), "a permute is a copy: every element exactly"

    def test_permute_of_7_merged_axes_is_one_error(self):
        from archcost.errors import ArchcostError

        dims, shape = (0, 2, 4, 6, 1, 3, 5), (1, 2, 2, 2, 2, 2, 2)
        with pytest.raises(ArchcostError, match=r"^permute: the \w+ kernels handle up to 6 axes, got 7$"):
            self.execute(ops.Permute(dims), shape)

    @pytest.mark.parametrize("op,shape", [(ops.Flatten(), (2, 3, 4, 4)), (ops.Reshape((4, -1)), (2, 3, 4, 4)),
                                          (ops.Dropout(0.3), (2, 5))])
    def test_views_copy_into_a_fresh_buffer_and_are_free_in_place(self, op, shape):
        self.check(op, shape)  # out is a fresh buffer: the kernel copies
        x = _random(shape, np.random.default_rng(1))
        before = x.copy()
        dx = self.backend.to_device(x)
        out = dx.reshape(op.infer((shape,)))  # in place: out is a view of the input's buffer
        self.adapter(op).run(op, None, [dx], out)
        assert self.same_buffer(out, dx)
        assert (self.backend.to_host(dx) == before).all()

    # --- the zoo's variant ops: ChannelSelect, Affine, RBF, Maxout, AffineGrid, GridSample ----

    @pytest.mark.parametrize("channels,shape", [((3, 0, 2), (2, 5, 3, 4)), ((4,), (1, 6, 2, 2)),
                                                ((1, 0), (3, 4)), ((0, 1, 2, 3), (2, 4, 3, 3))])
    def test_channel_select(self, channels, shape):
        run = self.check(ops.ChannelSelect(channels), shape)
        for k, c in enumerate(channels):  # a gather, in the order given
            assert (run.out[:, k] == run.xs[0][:, c]).all()

    @pytest.mark.parametrize("axis,shape", [(1, (2, 4, 3, 5)), (-1, (2, 3, 3, 6)), (1, (3, 7))])
    def test_affine(self, axis, shape):
        op = ops.Affine(axis)
        p = init_params(op, (shape,), shape, np.random.default_rng(0))
        # Per-channel values that differ, so a kernel applying them on the wrong axis fails.
        assert p["gamma"].shape == p["beta"].shape == (shape[axis],) and np.ptp(p["gamma"]) > 0.1
        self.check(op, shape, params=p)

    def test_affine_by_hand(self):
        # y = gamma_c * x + beta_c: channel 0 doubles and adds 1, channel 1 negates.
        x = np.array([[[[1.0, 2.0]], [[3.0, -4.0]]]], np.float32)  # (1, 2, 1, 2)
        params = {"gamma": np.array([2.0, -1.0], np.float32), "beta": np.array([1.0, 0.0], np.float32)}
        out, ref = self.both(ops.Affine(), x, params=params)
        assert out.ravel().tolist() == ref.ravel().tolist() == [3.0, 5.0, -3.0, 4.0]

    @pytest.mark.parametrize("trainable", [False, True])
    @pytest.mark.parametrize("shape,units", [((3, 84), 10), ((1, 5), 1)])
    def test_rbf(self, shape, units, trainable):
        self.check(ops.RBF(units, trainable=trainable), shape)

    @pytest.mark.parametrize("rows,expected", [
        # LeNet-5's output unit i: y_i = sum_j (x_j - w_ij)^2, w_i the i-th centre (a row).
        # x = (1, 2): centre (1, 2) -> 0; (0, 0) -> 1 + 4 = 5; (-1, 1) -> 4 + 1 = 5; (3, -1) -> 4 + 9 = 13.
        ([[1.0, 2.0]], [[0.0, 5.0, 5.0, 13.0]]),
        ([[1.0, 2.0], [0.0, 0.0]], [[0.0, 5.0, 5.0, 13.0], [5.0, 0.0, 2.0, 10.0]]),
    ])
    def test_rbf_by_hand(self, rows, expected):
        params = {"centres": np.array([[1, 2], [0, 0], [-1, 1], [3, -1]], np.float32)}
        out, ref = self.both(ops.RBF(4), np.array(rows, np.float32), params=params)
        assert out.tolist() == ref.tolist() == expected

    @pytest.mark.parametrize("pieces,shape", [(3, (2, 6, 3, 4)), (2, (2, 8, 1, 1)), (1, (1, 3, 2, 2)),
                                              (2, (3, 10)), (5, (2, 15))])
    def test_maxout(self, pieces, shape):
        self.check(ops.Maxout(pieces), shape)

    def test_maxout_groups_consecutive_channels(self):
        # (N, 4) with pieces 2: out[c] = max(in[2c], in[2c+1]); interleaved grouping would give
        # max(in[c], in[c+2]) = (3, 4) instead of (2, 4).
        x = np.array([[1.0, 2.0, 3.0, -5.0], [-1.0, -2.0, 0.5, 4.0]], np.float32)
        out, ref = self.both(ops.Maxout(2), x)
        assert out.tolist() == ref.tolist() == [[2.0, 3.0], [-1.0, 4.0]]

    @pytest.mark.parametrize("align_corners", [False, True])
    @pytest.mark.parametrize("size", [(5, 7), (1, 3), (4, 1), (1, 1)])
    def test_affine_grid(self, size, align_corners):
        self.check(ops.AffineGrid(*size, align_corners=align_corners), (3, 6))

    def test_affine_grid_by_hand(self):
        """torch.nn.functional.affine_grid on a 2x2 target: without align_corners the target points
        are the pixel centres x_t, y_t in {-1/2, +1/2} ((2k + 1)/2 - 1); with it, the corners {-1, +1}.
        The last axis is (x_s, y_s) = theta @ (x_t, y_t, 1)."""
        theta = np.array([IDENTITY,
                          [1.0, 0.0, 0.5, 0.0, 1.0, 0.0],  # translate x by +1/2
                          [2.0, 0.0, 0.0, 0.0, 0.5, 0.0],  # scale x by 2, y by 1/2
                          [0.0, -1.0, 0.0, 1.0, 0.0, 0.0]], np.float32)  # rotate: x_s = -y_t, y_s = x_t
        out, ref = self.both(ops.AffineGrid(2, 2, align_corners=False), theta)
        h = 0.5
        expected = [
            [[[-h, -h], [h, -h]], [[-h, h], [h, h]]],  # identity: row i is y_t, column j is x_t
            [[[0.0, -h], [1.0, -h]], [[0.0, h], [1.0, h]]],  # x_s = x_t + 1/2
            [[[-1.0, -0.25], [1.0, -0.25]], [[-1.0, 0.25], [1.0, 0.25]]],  # (2 x_t, y_t / 2)
            [[[h, -h], [h, h]], [[-h, -h], [-h, h]]],  # (-y_t, x_t)
        ]
        assert out.tolist() == ref.tolist() == expected
        out, ref = self.both(ops.AffineGrid(2, 3, align_corners=True), theta[:1])
        # With align_corners, 3 columns span -1, 0, 1 and 2 rows -1, 1.
        expected = [[[[-1.0, -1.0], [0.0, -1.0], [1.0, -1.0]], [[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0]]]]
        assert out.tolist() == ref.tolist() == expected
        # A single target point is the centre 0 either way (torch's linspace_from_neg_one).
        for align in (False, True):
            out, ref = self.both(ops.AffineGrid(1, 1, align_corners=align), theta[1:2])
            assert out.tolist() == ref.tolist() == [[[[0.5, 0.0]]]]

    @pytest.mark.parametrize("align_corners", [False, True])
    @pytest.mark.parametrize("x_shape,grid_hw", [((2, 3, 5, 6), (4, 7)), ((1, 2, 1, 1), (3, 3)),
                                                 ((1, 1, 2, 9), (5, 2))])
    def test_grid_sample(self, x_shape, grid_hw, align_corners):
        """Grid points in [-1.6, 1.6]: many sample between the border pixels and the zero padding,
        some fall wholly outside the input."""
        rng = np.random.default_rng(7)
        x = rng.standard_normal(x_shape).astype(np.float32)
        grid = rng.uniform(-1.6, 1.6, (x_shape[0], *grid_hw, 2)).astype(np.float32)
        out, ref = self.both(ops.GridSample(align_corners=align_corners), x, grid)
        assert np.abs(ref).max() > 0 and np.isfinite(out).all()
        assert relative_error(out, ref) < TOL
        if x_shape == (2, 3, 5, 6):  # some points miss the input entirely and read zero
            missed = (ref == 0).all(axis=1)
            assert missed.any() and (out.transpose(0, 2, 3, 1)[missed] == 0).all()

    def test_grid_sample_far_outside_nan_and_on_the_border(self):
        x = np.arange(1.0, 7.0, dtype=np.float32).reshape(1, 1, 2, 3)
        grid = np.array([[[[1e30, 0.0], [-1e30, 0.0], [0.0, 3.0], [1.0, 1.0], [np.nan, 0.0]]]], np.float32)
        for align in (False, True):
            op = ops.GridSample(align_corners=align)
            out = self.run_kernel(op, x, grid)
            assert out[0, 0, 0, [0, 1, 2, 4]].tolist() == [0.0, 0.0, 0.0, 0.0]  # no int overflow, NaN reads zero
            ref = reference.forward(op, [x, grid[:, :, :4]], {}, (1, 1, 1, 4))
            np.testing.assert_allclose(out[..., :4], ref, rtol=1e-6)
        # (1, 1) with align_corners is exactly the bottom-right pixel; without, it is the outer
        # corner of that pixel: a quarter of it (half of each axis falls in the zero padding).
        assert self.run_kernel(ops.GridSample(align_corners=True), x, grid)[0, 0, 0, 3] == 6.0
        assert self.run_kernel(ops.GridSample(align_corners=False), x, grid)[0, 0, 0, 3] == 1.5

    # --- Resize ----------------------------------------------------------------------------------

    @pytest.mark.parametrize("case", RESIZE_CASES)
    def test_resize(self, case):
        op, shape = RESIZE_CASES[case]
        run = self.check(op, shape)
        if op.mode == "nearest":  # a copy: every output is exactly some input
            assert np.isin(run.out, run.xs[0]).all()

    @pytest.mark.parametrize("op,expected", [
        # nearest x2 (asymmetric, floor): each pixel repeated into a 2x2 block
        (R(scale=(2, 2)), [[1, 1, 2, 2], [1, 1, 2, 2], [3, 3, 4, 4], [3, 3, 4, 4]]),
        # nearest 2 -> 3 rows: x_orig = x * 2/3 = 0, 2/3, 4/3 -> rows 0, 0, 1; 1 column: column 0
        (R(size=(3, 1)), [[1], [1], [3]]),
        # half_pixel 2 -> 4 columns: x_orig = (x + 0.5) / 2 - 0.5 = -0.25 (clamped to 0), 0.25,
        # 0.75, 1.25 (clamped to 1): 1 + p gives 1, 1.25, 1.75, 2; 1 row: x_orig = 0.5: rows 0, 1
        # half each: 1 + 2 * 0.5 = 2 more.
        (R(size=(1, 4), mode="linear"), [[2.0, 2.25, 2.75, 3.0]]),
        # align_corners 2 -> 3: x_orig = x * 1/2 = 0, 0.5, 1 on both axes: 1 + p + 2q
        (R(size=(3, 3), mode="linear", coord="align_corners"), [[1, 1.5, 2], [2, 2.5, 3], [3, 3.5, 4]]),
        # pytorch_half_pixel to 1 row reads row 0 (x_orig = 0), half_pixel would read 0.5
        (R(size=(1, 2), mode="linear", coord="pytorch_half_pixel"), [[1.0, 2.0]]),
    ])
    def test_resize_by_hand(self, op, expected):
        out, ref = self.both(op, X22)
        assert out[0, 0].tolist() == expected
        assert ref[0, 0].tolist() == expected

    @pytest.mark.parametrize("theta,align_grid,align_sample,expected", [
        # Identity, matching align_corners: the grid hits the pixels exactly, the input comes back.
        (IDENTITY, False, False, [[1.0, 2.0], [3.0, 4.0]]),
        (IDENTITY, True, True, [[1.0, 2.0], [3.0, 4.0]]),
        # Translate x by +1/2 without align_corners: x_s in {0, 1} -> u = ((x_s + 1) * 2 - 1) / 2 in
        # {0.5, 1.5}: u = 0.5 averages columns 0 and 1 ((1+2)/2 = 1.5, (3+4)/2 = 3.5); u = 1.5 is
        # half column 1, half zero padding (2/2 = 1, 4/2 = 2).
        ([1.0, 0.0, 0.5, 0.0, 1.0, 0.0], False, False, [[1.5, 1.0], [3.5, 2.0]]),
        # Scale by 1/2 with align_corners: x_s, y_s in {-1/2, 1/2} -> u, v = (s + 1) * (2 - 1) / 2 in
        # {0.25, 0.75}, all inside; x is linear in (p, q), so bilinear sampling gives 1 + u + 2v:
        # (0.25, 0.25) -> 1.75, (0.75, 0.25) -> 2.25, (0.25, 0.75) -> 2.75, (0.75, 0.75) -> 3.25.
        ([0.5, 0.0, 0.0, 0.0, 0.5, 0.0], True, True, [[1.75, 2.25], [2.75, 3.25]]),
        # Swap axes (x_s = y_t, y_s = x_t): the transpose.
        ([0.0, 1.0, 0.0, 1.0, 0.0, 0.0], False, False, [[1.0, 3.0], [2.0, 4.0]]),
        # An align_corners identity grid (points at +-1) sampled without it: u = ((+-1 + 1) * 2 - 1) / 2
        # = -0.5 or 1.5, half a pixel into the zero padding on both axes: a quarter of each corner pixel.
        (IDENTITY, True, False, [[0.25, 0.5], [0.75, 1.0]]),
    ])
    def test_transformer_by_hand(self, theta, align_grid, align_sample, expected):
        grid = self.run_kernel(ops.AffineGrid(2, 2, align_grid), np.array([theta], np.float32))
        out, ref = self.both(ops.GridSample(align_corners=align_sample), X22, grid)
        assert out[0, 0].tolist() == expected
        assert ref[0, 0].tolist() == expected

    def test_identity_transform_reproduces_the_input(self, identity_case):
        """affine_grid(identity) then grid_sample with the same align_corners returns the input:
        bit-exact where the target coordinates are dyadic ((2k + 1)/w - 1 for w = 4, 8 without
        align_corners; -1 + 2k/(w - 1) for w = 5, 9 with it), else up to float32 rounding of the
        coordinates. A single row (h = 1) has its target at y_t = 0, which is row 0 either way."""
        align_corners, shape, exact = identity_case
        n, _, h, w = shape
        x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
        grid = self.run_kernel(ops.AffineGrid(h, w, align_corners), np.array([IDENTITY] * n, np.float32))
        out, ref = self.both(ops.GridSample(align_corners=align_corners), x, grid)
        if exact:
            assert (out == x).all() and (ref == x).all()
        np.testing.assert_allclose(out, x, rtol=0, atol=1e-5)
        np.testing.assert_allclose(ref, x, rtol=0, atol=1e-5)
