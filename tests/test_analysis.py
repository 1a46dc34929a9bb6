"""The analysis passes: VGG16 against the lecture's table row for row, totals, peak live memory,
receptive fields, batch and dtype scaling."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.memory import plan_buffers
from archcost.ops import Activation, Add, Conv2d, GlobalAvgPool, Mul, Sub

# CS231n Lecture 9 (seed 001), the VGG16 table: (output HxWxC, memory elements, params not counting biases)
VGG16_LECTURE = [
    ((224, 224, 3), 224 * 224 * 3, 0),
    ((224, 224, 64), 224 * 224 * 64, 1_728),
    ((224, 224, 64), 224 * 224 * 64, 36_864),
    ((112, 112, 64), 112 * 112 * 64, 0),
    ((112, 112, 128), 112 * 112 * 128, 73_728),
    ((112, 112, 128), 112 * 112 * 128, 147_456),
    ((56, 56, 128), 56 * 56 * 128, 0),
    ((56, 56, 256), 56 * 56 * 256, 294_912),
    ((56, 56, 256), 56 * 56 * 256, 589_824),
    ((56, 56, 256), 56 * 56 * 256, 589_824),
    ((28, 28, 256), 28 * 28 * 256, 0),
    ((28, 28, 512), 28 * 28 * 512, 1_179_648),
    ((28, 28, 512), 28 * 28 * 512, 2_359_296),
    ((28, 28, 512), 28 * 28 * 512, 2_359_296),
    ((14, 14, 512), 14 * 14 * 512, 0),
    ((14, 14, 512), 14 * 14 * 512, 2_359_296),
    ((14, 14, 512), 14 * 14 * 512, 2_359_296),
    ((14, 14, 512), 14 * 14 * 512, 2_359_296),
    ((7, 7, 512), 7 * 7 * 512, 0),
    ((4096,), 4096, 102_760_448),
    ((4096,), 4096, 16_777_216),
    ((1000,), 1000, 4_096_000),
]


@pytest.fixture(scope="module")
def vgg16():
    return analyze(zoo.build("vgg16"))


def test_vgg16_lecture_table_row_for_row(vgg16):
    rows = vgg16.folded()
    assert len(rows) == len(VGG16_LECTURE)
    for row, (shape, memory, weights) in zip(rows, VGG16_LECTURE):
        c_h_w = row.output_shape[1:]
        h_w_c = (*c_h_w[1:], c_h_w[0]) if len(c_h_w) == 3 else c_h_w
        assert h_w_c == shape, row.name
        assert row.activations == memory, row.name
        assert row.weights == weights, row.name


def test_vgg16_totals(vgg16):
    t = vgg16.totals
    # "TOTAL params: 138M" (seed 001); torchvision VGG16 num_params 138,357,544 (with biases).
    assert t["params"] == 138_357_544
    assert t["weights"] == 138_344_128 == sum(w for _, _, w in VGG16_LECTURE)
    # The slide says "TOTAL memory: 24M"; its own rows sum to 15.2M (see docs/claims.md).
    assert t["activations"] == sum(m for _, m, _ in VGG16_LECTURE) == 15_237_608
    assert t["activation_bytes"] == 4 * 15_237_608
    assert t["param_bytes"] == 4 * 138_357_544
    assert t["flops"] == 2 * t["macs"] + t["other"]
    assert "training_bytes" not in t  # the old heuristic: training is archcost.training's, exact
    # Peak live: conv1_2 runs with conv1_1's output (input) and its own output (3.2M each).
    assert t["peak_activation_bytes"] == 4 * 2 * 224 * 224 * 64


def test_batch_and_dtype_scaling(vgg16):
    r = analyze(zoo.build("vgg16"), batch=8, dtype="float16")
    assert r.totals["macs"] == 8 * vgg16.totals["macs"]
    assert r.totals["params"] == vgg16.totals["params"]
    assert r.totals["activation_bytes"] == 8 * 2 * vgg16.totals["activations"]
    assert r.totals["peak_activation_bytes"] == 8 * vgg16.totals["peak_activation_bytes"] // 2
    assert r.records[1].output_shape == (8, 64, 224, 224)
    with pytest.raises(ArchcostError, match="dtype"):
        analyze(zoo.build("vgg16"), dtype="float12")
    with pytest.raises(ArchcostError, match="batch"):
        analyze(zoo.build("vgg16"), batch=0)


def test_layers_dataframe(vgg16):
    df = vgg16.layers
    assert list(df["name"])[:2] == ["input", "conv1_1"]
    assert df["params"].sum() == vgg16.totals["params"]
    assert df["activations"].sum() == vgg16.totals["activations"]
    assert df["macs"].sum() == vgg16.totals["macs"]


def test_receptive_fields():
    # Three stacked 3x3 convs see 7x7, like one 7x7 (CS231n Lecture 9).
    three = analyze(zoo.build("conv3x3_x3")).records[-1]
    one = analyze(zoo.build("conv7x7")).records[-1]
    assert (three.rf_h, three.rf_w) == (one.rf_h, one.rf_w) == (7, 7)
    # 1x3 then 3x1 covers 3x3.
    asym = analyze(zoo.build("conv1x3_3x1")).records[-1]
    assert (asym.rf_h, asym.rf_w) == (3, 3)
    # VGG16: closed form of the recurrence, stage by stage.
    rf, jump = 1, 1
    for convs in (2, 2, 3, 3, 3):
        rf += convs * 2 * jump
        rf += jump  # 2x2/2 pool
        jump *= 2
    pool5 = [r for r in analyze(zoo.build("vgg16")).records if r.name == "pool5"][0]
    assert pool5.rf_h == rf == 212
    assert pool5.jump_h == 32
    # Start: the first pool5 unit's field is centred at (212 - 1)/2 - padding offsets.
    assert pool5.start_h == pytest.approx(15.5 - 0)  # centre of the first 32x32 cell in input coords


def test_receptive_field_over_all_paths():
    g = Graph()
    x = g.input((4, 32, 32))
    a = g.add(Conv2d(4, 1), x, name="short")
    b = g.seq(x, ("c1", Conv2d(4, 5, padding=2)), ("c2", Conv2d(4, 5, padding=2)))
    g.add(Add(), a, b, name="sum")
    last = analyze(g).records[-1]
    assert (last.rf_h, last.rf_w) == (9, 9)


def test_receptive_field_of_a_broadcast_term_is_global():
    """x + a pooled context (N, C, 1, 1): the context is a global term, so every output of the add
    (and of x less it, as of SE's product) sees the whole input, as the pool's field says."""
    g = Graph()
    x = g.add(Conv2d(4, 3, padding=1), g.input((3, 9, 9)), name="conv")
    ctx = g.seq(x, ("gap", GlobalAvgPool()), ("ctx", Conv2d(4, 1)))
    for op, name in ((Add(), "add"), (Sub(), "sub"), (Mul(), "mul")):
        g.add(op, x, ctx, name=name)
    records = {r.name: r for r in analyze(g).records}
    assert (records["conv"].rf_h, records["gap"].rf_h) == (3, 11)  # 9 + the conv's padded border
    for name in ("add", "sub", "mul"):
        assert (records[name].rf_h, records[name].rf_w) == (records["gap"].rf_h, records["gap"].rf_w), name


def test_peak_memory_and_inplace_rules():
    g = Graph()
    x = g.input((1, 10, 10))  # 100 elements
    a = g.add(Conv2d(2, 3, padding=1), x, name="a")  # 200
    r = g.add(Activation("relu"), a, name="r")  # in place: a has one reader
    b = g.add(Conv2d(3, 3, padding=1), r, name="b")  # 300
    c = g.add(Conv2d(2, 3, padding=1), b, name="c")  # 200
    g.add(Add(), r, c, name="sum")  # 200; r (=a's buffer) is alive until here
    report = analyze(g)
    live = {rec.name: rec.live_bytes // 4 for rec in report.records}
    # input dies after a; b dies after c; a/r and c die after sum; sum is the output.
    assert live == {"input": 100, "a": 300, "r": 200, "b": 500, "c": 700, "sum": 600}
    assert report.totals["peak_activation_bytes"] == 4 * 700
    assert report.totals["activations"] == 100 + 200 + 300 + 200 + 200
    # A ReLU whose input has two readers cannot overwrite it: it gets its own buffer.
    g2 = Graph()
    x = g2.input((1, 4, 4))
    a = g2.add(Conv2d(1, 1), x, name="a")
    g2.add(Activation("relu"), a, name="r")
    g2.add(Conv2d(1, 1), a, name="other")
    plan = plan_buffers(g2)
    assert plan.allocates["r"] and plan.buffer_of["r"] != plan.buffer_of["a"]


def test_inception_modules_lecture_numbers():
    naive = analyze(zoo.build("inception_naive"))
    bottleneck = analyze(zoo.build("inception_bottleneck"))
    # seed 001: 854M ops; 784*128*256 + 784*192*9*256 + 784*96*25*256
    assert naive.totals["macs"] == 854_196_224
    assert naive.records[-1].output_shape == (1, 672, 28, 28)
    # The slide lists six line items summing to 271,351,808 but states "358M" (docs/claims.md).
    assert bottleneck.totals["macs"] == 784 * (64 * 256 * 3 + 128 * 256 + 192 * 9 * 64 + 96 * 25 * 64) == 271_351_808
    assert bottleneck.records[-1].output_shape == (1, 480, 28, 28)


def test_bottleneck_5x5_lecture_numbers():
    plain = analyze(zoo.build("conv5x5_28x28x192")).totals["macs"]
    reduced = analyze(zoo.build("conv5x5_bottleneck")).totals["macs"]
    assert plain == 120_422_400  # seed 000: "120M"
    assert reduced == 28 * 28 * 16 * 192 + 28 * 28 * 32 * 5 * 5 * 16 == 12_443_648  # "2.4M + 10M = 12.4M"


def test_factorisation_ratios():
    def macs(name):
        return analyze(zoo.build(name)).totals["macs"]

    assert macs("conv3x3_x2") / macs("conv5x5") == pytest.approx(18 / 25)  # "28% fewer"
    assert macs("conv1x3_3x1") / macs("conv3x3") == pytest.approx(6 / 9)  # "33% fewer"
    c = 64
    assert analyze(zoo.build("conv3x3_x3")).totals["weights"] == 3 * 9 * c * c  # 3 * (3^2 C^2)
    assert analyze(zoo.build("conv7x7")).totals["weights"] == 49 * c * c


def test_layout_follows_permutes_for_reports():
    from archcost.ops import Linear, Permute
    from archcost.report.table import shape_text

    g = Graph()
    x = g.input((96, 7, 5))
    y = g.add(Permute((0, 2, 3, 1)), x, name="to_nhwc")
    z = g.add(Linear(384), y, name="pw")
    g.add(Permute((0, 3, 1, 2)), z, name="to_nchw")
    recs = {r.name: r for r in analyze(g).records}
    assert [recs[n].layout for n in ("input", "to_nhwc", "pw", "to_nchw")] == ["NCHW", "NHWC", "NHWC", "NCHW"]
    assert shape_text(recs["pw"].output_shape, recs["pw"].layout) == "7x5x384"
    assert shape_text(recs["to_nchw"].output_shape, recs["to_nchw"].layout) == "7x5x384"
    assert shape_text(recs["input"].output_shape, recs["input"].layout) == "7x5x96"


@pytest.mark.parametrize("name", ["googlenet", "convnext_t", "stn_mnist", "densenet121", "inception_v3"])
def test_batch_only_changes_axis_0_under_every_shape_rule(name):
    """infer_shapes reuses the build-time shapes: check them against the ops' rules at batch 3."""
    from archcost.analysis import infer_shapes

    graph = zoo.build(name)
    shapes = infer_shapes(graph, 3)
    for node in graph.topological_order():
        inputs = graph.inputs(node)
        if inputs:
            assert graph.op(node).infer(tuple(shapes[s] for s in inputs)) == shapes[node], node


def test_an_in_place_output_keeps_its_buffer_to_the_end():
    g = Graph()
    x = g.input((1, 4, 4))
    a = g.add(Conv2d(2, 1), x, name="a")
    g.add(Activation("relu"), a, name="r")  # the graph's output, written into a's buffer
    plan = plan_buffers(g)
    assert plan.buffer_of["r"] == plan.buffer_of["a"]
    assert plan.free_after["r"] == ()  # never freed: it is the output
    assert analyze(g).totals["peak_activation_bytes"] == 4 * (16 + 32)
