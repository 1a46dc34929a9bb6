"""The executor: bad input, the arena's measured peak against the plan, archcost validate, and
every zoo model executed and validated at the smallest input its architecture allows."""

import re

import numpy as np
import pytest

from archcost import ops, zoo
from archcost.analysis import analyze
from archcost.cli import main
from archcost.errors import ArchcostError
from archcost.execute import Executor, run
from archcost.graph import Graph
from archcost.kernels import cpu
from archcost.validation import validate


def smallest_input(name: str) -> tuple:
    """The smallest square input at which model ``name`` builds.

    Builds the model at its default input to learn its channels and size, then tries square
    sizes 1, 2, 3, ... with the same channels (building a graph runs only the cheap shape
    pass) and returns the first size whose graph builds: below it some layer's window no
    longer fits, a concat's branches disagree, or similar. Vector inputs are returned as is.
    """
    default = zoo.build(name)
    shape = default.op(default.input_nodes()[0]).shape
    if len(shape) != 3:
        return shape
    channels, height, width = shape
    for size in range(1, max(height, width) + 1):
        try:
            zoo.build(name, input_shape=(channels, size, size))
        except ArchcostError:
            continue
        return (channels, size, size)
    return shape


def _branchy() -> Graph:
    """A residual block with a concat, an in-place ReLU on a shared tensor (which must copy) and
    a view: exercises every rule of the buffer plan."""
    g = Graph("branchy")
    x = g.input((3, 9, 9))
    stem = g.add(ops.Conv2d(8, 3, padding=1), x, name="stem")
    a = g.add(ops.Activation("relu"), stem, name="relu_a")  # stem has two readers: a fresh buffer
    b = g.add(ops.Conv2d(8, 1), stem, name="proj")
    s = g.sum(a, b)
    c = g.concat(s, g.add(ops.MaxPool2d(3, 1, 1), s, name="pool"))
    c = g.add(ops.BatchNorm(), c, name="bn")
    c = g.add(ops.Activation("relu"), c, name="relu")  # in place
    f = g.add(ops.Flatten(), g.add(ops.GlobalAvgPool(), c, name="gap"), name="flatten")
    g.add(ops.Linear(5), f, name="fc")
    return g


@pytest.mark.parametrize("batch", [1, 3])
def test_arena_peak_equals_predicted(batch):
    g = _branchy()
    result = run(g, batch=batch)
    assert result.peak_bytes == analyze(g, batch=batch).totals["peak_activation_bytes"]
    assert result.outputs["fc"].shape == (batch, 5) and np.isfinite(result.outputs["fc"]).all()


def test_same_seed_same_output_and_a_different_seed_differs():
    g = _branchy()
    a, b, c = run(g, seed=4).outputs["fc"], run(g, seed=4).outputs["fc"], run(g, seed=5).outputs["fc"]
    assert (a == b).all() and not np.allclose(a, c)


def test_errors_are_one_line():
    g = _branchy()
    ex = Executor(g)
    good = np.ones((1, 3, 9, 9), np.float32)
    cases = {
        "shape (1, 3, 8, 9) does not match": np.ones((1, 3, 8, 9), np.float32),
        "dtype float64 is not float32": np.ones((1, 3, 9, 9)),
        "not C-contiguous": np.asfortranarray(np.ones((1, 3, 9, 9), np.float32)),
        "non-finite values": np.full((1, 3, 9, 9), np.nan, np.float32),
    }
    for message, x in cases.items():
        with pytest.raises(ArchcostError, match=re.escape(message)) as info:
            ex.forward(x)
        assert "\n" not in str(info.value)
    ex.forward(good)
    with pytest.raises(ArchcostError, match="unknown 'tpu'"):
        Executor(g, backend="tpu")


def test_non_finite_weights_name_the_layer():
    g = _branchy()
    weight = np.ones((5, 16), np.float32)
    weight[2, 3] = np.inf
    with pytest.raises(ArchcostError, match=r"layer 'fc': parameter 'weight' has non-finite values"):
        Executor(g, params={"fc": {"weight": weight, "bias": np.zeros(5, np.float32)}}).forward()


def test_missing_kernels_are_all_named_before_anything_runs(monkeypatch):
    monkeypatch.delitem(cpu.ADAPTERS, ops.Concat)
    monkeypatch.delitem(cpu.ADAPTERS, ops.GlobalAvgPool)
    ran = []
    monkeypatch.setitem(cpu.ADAPTERS, ops.Conv2d, type("Spy", (), {"prepare": None, "run": ran.append}))
    with pytest.raises(ArchcostError) as info:
        run(_branchy())
    assert "Concat (e.g. layer 'concat')" in str(info.value)
    assert "GlobalAvgPool (e.g. layer 'gap')" in str(info.value)
    assert ran == []


def test_validate_cli_passes_and_prints_the_table(capsys):
    assert main(["validate", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "c3" in out and "240,000" in out  # LeNet C3: 10x10x16 outputs x 6 x 5 x 5 = 240,000 MACs
    assert "12/12 layers validated" in out  # c1 .. output: 12 layers after the input


def test_validate_cli_names_the_first_failing_layer(monkeypatch, capsys):
    class Wrong(cpu.ADAPTERS[ops.Activation]):
        @staticmethod
        def run(op, state, inputs, out):
            out[...] = inputs[0] * 1.001  # tanh replaced by a near-identity

    monkeypatch.setitem(cpu.ADAPTERS, ops.Activation, Wrong)
    assert main(["validate", "lenet5"]) == 1
    captured = capsys.readouterr()
    assert "layer 'c1_act' failed: relative error" in captured.err
    assert "layers validated" in captured.out


def test_validate_catches_a_miscounted_conv(monkeypatch):
    conv = cpu.ADAPTERS[ops.Conv2d]

    class Miscounted(conv):
        @staticmethod
        def count(op, state, inputs, out):
            performed, padded = conv.count(op, state, inputs, out)
            return performed, 0  # forgets the padded taps

    monkeypatch.setitem(cpu.ADAPTERS, ops.Conv2d, Miscounted)
    result = validate(zoo.build("conv3x3", input_shape=(4, 6, 6)))
    assert not result.ok and "counted multiplies" in result.failures[0].problem


def test_smallest_input_finds_the_edge():
    # VGG's five 2x2/2 pools need 32x32; LeNet's three 5x5 convs and two pools need 32x32 too
    # (28x28 -> c5 would see 4x4 < 5x5); the naive inception module works on a 1x1 map.
    assert smallest_input("vgg16") == (3, 32, 32)
    assert smallest_input("lenet5") == (1, 32, 32)
    assert smallest_input("inception_naive") == (256, 1, 1)


@pytest.mark.parametrize("name", zoo.names())
def test_zoo_model_validates(name):
    """Every registered model runs at ``smallest_input(name)`` (see its docstring) and passes all
    four checks of archcost validate: shapes, counted = analytic MACs, float32 output within
    1e-4 of the float64 reference per layer, measured peak = predicted peak."""
    graph = zoo.build(name, input_shape=smallest_input(name))
    result = validate(graph)
    assert result.ok, f"{name}: {[(c.name, c.problem) for c in result.failures]}, peak ok: {result.peak_ok}"
    assert len(result.layers) == len(graph) - 1


def test_a_deep_residual_net_stays_finite_and_validates():
    """60 bottleneck-free residual blocks (conv-BN-ReLU-conv-BN, add, ReLU): 421 layers. He
    weights and BN calibrated on its first input keep every activation at scale ~1."""
    g = Graph("deep")
    x = g.input((8, 6, 6))

    def block(g, x, i):
        body = [ops.Conv2d(8, 3, padding=1, bias=False), ops.BatchNorm(), ops.Activation("relu"),
                ops.Conv2d(8, 3, padding=1, bias=False), ops.BatchNorm()]
        return g.residual(x, body, post=[ops.Activation("relu")])

    x = g.repeat(x, 60, block, prefix="block")
    g.add(ops.Linear(10), g.add(ops.Flatten(), g.add(ops.GlobalAvgPool(), x, name="gap"), name="flatten"), name="fc")
    assert len(g) > 400
    rms = {}
    result = validate(g, batch=2)
    assert result.ok, result.failures[:1]
    run(g, batch=2, on_output=lambda node, out: rms.__setitem__(node, float(np.sqrt(np.mean(out ** 2)))))
    assert 0.1 < min(rms.values()) and max(rms.values()) < 100, (min(rms.values()), max(rms.values()))


def _every_op_graph() -> Graph:
    """A small net that uses every op of ops.OPS: an SE-gated depthwise block, a global-context add
    and a broadcast sub, a ConvNeXt-style
    channels-last LayerNorm/Linear/Scale detour, option-A shortcut, a spatial transformer,
    maxout on maps and vectors, pads of every mode (on a map and an (N, C, L) tensor), group and
    instance norm, LeNet-5's affine and channel selection, pools, LRN, FractalNet
    mean, SKNet's branch sum and an RBF head."""
    g = Graph("every_op")
    x = g.input((6, 15, 15))
    x = g.seq(x, ops.Conv2d(12, 3, stride=2, padding=(0, 1, 1, 0)), ops.BatchNorm(), ops.Activation("hardswish"))
    d = g.seq(x, ops.Conv2d(12, 3, padding=1, groups=12), ops.Activation("silu"))
    gate = g.seq(d, ops.GlobalAvgPool(), ops.Conv2d(4, 1), ops.Activation("relu"), ops.Conv2d(12, 1),
                 ops.Activation("hardsigmoid"))
    x = g.add(ops.Mul(), d, gate)
    # A global-context block (GCNet): x plus a transform of its pooled context, broadcast over H and W;
    # then a per-position map (N, 1, H, W) less x, broadcast over the channels.
    x = g.add(ops.Add(), x, g.seq(x, ops.GlobalAvgPool(), ops.Conv2d(12, 1)))
    x = g.add(ops.Sub(), g.add(ops.Conv2d(1, 1), x), x)
    t = g.seq(x, ops.Permute((0, 2, 3, 1)), ops.LayerNorm(-1), ops.Linear(24), ops.Activation("gelu"),
              ops.Linear(12), ops.Scale(None, axis=-1), ops.Permute((0, 3, 1, 2)))
    x = g.add(ops.Mean(), x, t, g.add(ops.Scale(0.5), x))
    # SKNet's branch sum: the two paths stacked on a new axis 1, then summed over it.
    h, w = g.shape(x)[2:]
    stacked = g.add(ops.Concat(1), *(g.add(ops.Reshape((1, 12, h, w)), v) for v in (x, t)), name="stack")
    x = g.add(ops.ReduceSum(1), stacked)
    skip = g.add(ops.ChannelPad(16, 2), x)
    main = g.seq(x, ops.Conv2d(16, 3, stride=2, padding=1), ops.LRN(3), ops.Activation("elu", slope=1.0))
    x = g.add(ops.Add(), main, skip)  # -> 4x4x16
    # A spatial transformer on the map, then a maxout conv, a learned affine and a channel shuffle.
    theta = g.seq(x, ops.GlobalAvgPool(), ops.Flatten(), ops.Linear(6))
    grid = g.add(ops.AffineGrid(4, 4, align_corners=True), theta)
    x = g.add(ops.GridSample(align_corners=True), x, grid)
    # Up and back down again: nearest x2, a DCGAN-style transposed conv x2 (its output_padding
    # takes 8 to 16, not 15), then bilinear to the 4x4 size (an HRNet fusion's resizes).
    # A reflect pad first (4 -> 6; CycleGAN's ResNet blocks pad so before their convs).
    x = g.seq(x, ops.Pad(1, "reflect"), ops.Resize(scale=(2, 2)),
              ops.ConvTranspose2d(16, 3, stride=2, padding=1, output_padding=1), ops.Resize(size=(4, 4), mode="linear"))
    shuffle = tuple(range(1, 16, 2)) + tuple(range(0, 16, 2))
    x = g.seq(x, ops.Conv2d(32, 1), ops.Maxout(2), ops.Affine(), ops.ChannelSelect(shuffle))  # -> 4x4x16
    pools = [ops.MaxPool2d(3, 2, 1, ceil_mode=True), ops.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)]
    x = g.concat(*(g.add(p, x) for p in pools))
    x = g.seq(x, ops.Pad((1, 0, 0, 2), "edge"), ops.Pad((-1, 1, 1, -1), value=0.5))  # 2x2 -> 3x4 -> 3x4
    # GroupNorm on the map, and as InstanceNorm without affine on the (N, C, L) reshape.
    x = g.seq(x, ops.LayerNorm(1), ops.GroupNorm(8), ops.Activation("leaky_relu"), ops.Reshape((32, -1)),
              ops.Pad((0, 0, 3, 1), "wrap"), ops.GroupNorm(32, affine=False), ops.Activation("tanh"), ops.Flatten(),
              ops.Dropout(0.2), ops.Linear(14), ops.Maxout(2))
    for fn in ("relu6", "sigmoid"):
        x = g.add(ops.Activation(fn), x)
    g.add(ops.Softmax(-1), g.add(ops.RBF(5), x))
    return g


def test_a_graph_with_every_op_validates():
    g = _every_op_graph()
    assert {type(g.op(n)) for n in g.topological_order()} == set(ops.OPS)
    for batch in (1, 2):
        result = validate(g, batch=batch)
        assert result.ok, ([(c.name, c.problem) for c in result.failures], result.peak_ok)


# --- the buffer guard: no kernel is handed an array it would read or write out of bounds ----------


def _spy_on_conv(monkeypatch) -> list:
    """Replace the cpu conv adapter by one that records each run; returns the record."""
    conv, ran = cpu.ADAPTERS[ops.Conv2d], []

    class Spy(conv):
        @staticmethod
        def run(op, state, inputs, out):
            ran.append(op)
            conv.run(op, state, inputs, out)

    monkeypatch.setitem(cpu.ADAPTERS, ops.Conv2d, Spy)
    return ran


def _nth_allocation_wrong(monkeypatch, n: int, make):
    """Make the arena's ``n``-th allocation (0-based) of a forward return ``make(size)``."""
    calls = []

    def empty(size, dtype=np.float32):
        calls.append(size)
        return make(size) if len(calls) == n + 1 else np.empty(size, dtype)

    monkeypatch.setattr(cpu, "empty", empty)


@pytest.mark.parametrize("make, described", [
    (lambda size: np.empty(size - 1, np.float32), "of 647 elements"),
    (lambda size: np.empty(size, np.float64), "of 648 elements float64"),
    (lambda size: np.empty(2 * size, np.float32)[::2], "of 648 elements (not C-contiguous)"),
])
def test_a_wrong_output_buffer_is_refused_before_the_kernel_writes(monkeypatch, make, described):
    g = _branchy()
    expected = run(g).outputs["fc"]
    ran = _spy_on_conv(monkeypatch)
    _nth_allocation_wrong(monkeypatch, 1, make)  # allocation 0 is the input, 1 is 'stem'
    with pytest.raises(ArchcostError) as info:
        run(g)
    assert str(info.value) == (
        f"layer 'stem' (conv 3x3/1, 8): output buffer {described} does not match the inferred 1x8x9x9 "
        "(648 float32 elements in C order)"
    )
    assert ran == []  # refused before the conv ran
    monkeypatch.undo()
    assert (run(g).outputs["fc"] == expected).all()  # a normal run is unaffected


def test_a_tampered_executor_shape_is_refused_before_the_kernel_writes(monkeypatch):
    g = _branchy()
    ran = _spy_on_conv(monkeypatch)
    ex = Executor(g)
    ex.shapes["stem"] = (1, 8, 8, 8)  # the arena now sizes stem's buffer for a smaller map
    with pytest.raises(ArchcostError, match=re.escape(
        "layer 'stem' (conv 3x3/1, 8): output buffer of 512 elements does not match the inferred 1x8x9x9"
    )):
        ex.forward()
    assert ran == []


def test_a_graph_whose_stored_shape_disagrees_with_its_op_is_refused():
    g = _branchy()
    g.nx.nodes["pool"]["shape"] = (1, 8, 10, 10)  # the shape pass now disagrees with MaxPool2d's rule
    with pytest.raises(ArchcostError, match=re.escape(
        "layer 'pool' (maxpool 3x3/1): the graph's shape 1x8x10x10 does not match 1x8x9x9 from its op's rule"
    )):
        Executor(g)
    with pytest.raises(ArchcostError, match=re.escape("the graph's shape 2x8x10x10 does not match 2x8x9x9")):
        Executor(g, batch=2)


@pytest.mark.parametrize("make, described", [
    (lambda shape: np.empty(shape, np.float32, order="F"), "1x3x9x9 (not C-contiguous)"),
    (lambda shape: np.empty(shape, np.float64), "1x3x9x9 float64"),
    (lambda shape: np.empty((1, *shape), np.float32), "1x1x3x9x9"),
])
def test_a_wrong_input_array_is_refused_before_the_kernel_reads_it(monkeypatch, make, described):
    """Every array a kernel reads is checked too: here the input layer's value is swapped for one
    of the wrong layout, dtype or rank (np.copyto fills each of them), and stem must not run."""
    g = _branchy()
    ran = _spy_on_conv(monkeypatch)
    view = Executor._output_view

    def output_view(self, node, flat):
        out = view(self, node, flat)
        return make(out.shape) if node == "input" else out

    monkeypatch.setattr(Executor, "_output_view", output_view)
    with pytest.raises(ArchcostError) as info:
        run(g)
    assert str(info.value) == (
        f"layer 'stem' (conv 3x3/1, 8): input 0 ('input') {described} does not match the inferred 1x3x9x9"
    )
    assert ran == []


@pytest.mark.parametrize("layer, field", [
    (ops.Conv2d(4, 3, stride=2**70), "stride"),  # numba cannot type a 71-bit int (TypingError)
    (ops.Conv2d(16, 3, stride=2**40), "stride"),  # fits int64, but products of two could wrap
    (ops.Conv2d(4, 1, dilation=(1, 2**64)), "dilation"),
    (ops.MaxPool2d(2, stride=2**70), "stride"),
    (ops.AvgPool2d(2, stride=2**70, ceil_mode=True), "stride"),
    (ops.ChannelPad(4, stride=2**70), "stride"),
    (ops.LRN(size=2**70), "size"),
])
def test_op_fields_past_the_kernels_int_range_are_refused_before_anything_runs(layer, field):
    """The shape rules take any int (a stride of 2^70 gives a 1x1 map); the kernels take int64 and
    multiply fields in pairs, so the executor refuses a field past 2^31 - 1, naming the layer."""
    g = Graph("huge")
    g.add(layer, g.input((3, 6, 6)), name="big")
    with pytest.raises(ArchcostError, match=rf"^layer 'big' \(.*\): field '{field}' = \d+ is past what the kernels"):
        validate(g)
    g = Graph("fine")
    g.add(ops.Conv2d(4, 3, stride=2**31 - 1), g.input((3, 6, 6)), name="big")  # at the limit: runs
    assert validate(g).ok


def _space_to_depth_graph() -> Graph:
    """TResNet's / YOLOv5's space-to-depth between two convs, as its export imports: a 6-D
    reshape, the permute (0, 3, 5, 1, 2, 4) (5 axes after merging: the 6-axis permute kernels)
    and a reshape back; then ESPCN's pixel shuffle (CRD) back to the size it started at."""
    g = Graph("space_to_depth")
    x = g.input((3, 8, 6))
    x = g.seq(x, ops.Conv2d(8, 3, padding=1), ops.Reshape((8, 4, 2, 3, 2)), ops.Permute((0, 3, 5, 1, 2, 4)),
              ops.Reshape((32, 4, 3)), ops.Conv2d(12, 1), ops.Reshape((3, 2, 2, 4, 3)),
              ops.Permute((0, 1, 4, 2, 5, 3)), ops.Reshape((3, 8, 6)), ops.Conv2d(4, 3, padding=1))
    return g


@pytest.mark.parametrize("backend", ["cpu", "cuda"])
def test_a_space_to_depth_and_pixel_shuffle_validate(backend):
    if backend == "cuda":
        pytest.importorskip("numba.cuda")
    g = _space_to_depth_graph()
    result = validate(g, batch=2, backend=backend)
    assert result.ok, ([(c.name, c.problem) for c in result.failures], result.peak_ok)


def test_a_space_to_depth_trains():
    from archcost.validation import validate_training

    result = validate_training(_space_to_depth_graph(), batch=2)
    assert result.ok, result
