"""Spec files: each construct builds the graph the Python builder builds (same records, names
included), the shipped examples load, and every kind of bad file ends in one line naming the
file, the layer and the problem, with exit code 2."""

import json
import pathlib
import subprocess
import sys
import textwrap

import pytest

from archcost import cli, zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.formats.spec import build_spec, load_spec
from archcost.graph import Graph
from archcost.ops import Activation, Add, BatchNorm, Concat, Conv2d, Flatten, GlobalAvgPool, Linear, Mean, Sub


ROOT = pathlib.Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def write(tmp_path, text: str, name: str = "net.yaml") -> pathlib.Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def same_analysis(a: Graph, b: Graph) -> None:
    ra, rb = analyze(a), analyze(b)
    assert ra.records == rb.records
    assert ra.totals == rb.totals


# --- constructs --------------------------------------------------------------------------------
def tiny_resnet_by_builder(n: int = 1, width: int = 16) -> Graph:
    """docs/examples/tiny_resnet.yaml written with the Python builder."""
    g = Graph("tiny_resnet")
    x = g.input((3, 32, 32))
    x = g.seq(x, ("conv1", Conv2d(width, 3, padding=1, bias=False)), ("bn1", BatchNorm()), ("relu1", Activation()))

    def basic(out, stride, project):
        def block(g, x, i):
            body = [("conv1", Conv2d(out, 3, stride=stride if i == 0 else 1, padding=1, bias=False)),
                    ("bn1", BatchNorm()), ("relu1", Activation()),
                    ("conv2", Conv2d(out, 3, padding=1, bias=False)), ("bn2", BatchNorm())]
            shortcut = None
            if project and i == 0:
                shortcut = [("conv1", Conv2d(out, 1, stride=stride, bias=False)), ("bn1", BatchNorm())]
            y = g.residual(x, body, shortcut, name="add1")
            return g.add(Activation(), y, name="relu2")
        return block

    x = g.repeat(x, n, basic(width, 1, False), prefix="stage1.")
    x = g.repeat(x, n, basic(2 * width, 2, True), prefix="stage2.")
    x = g.repeat(x, n, basic(4 * width, 2, True), prefix="stage3.")
    x = g.seq(x, ("gap1", GlobalAvgPool()), ("flatten1", Flatten()), ("fc1", Linear(10)))
    return g


@pytest.mark.parametrize("n", [1, 3])
def test_tiny_resnet_example_equals_the_builder(n):
    spec = load_spec(EXAMPLES / "tiny_resnet.yaml", options={"n": n})
    same_analysis(spec, tiny_resnet_by_builder(n))
    # 6n + 2 weighted layers (He et al. 2016, Sec. 4.2), plus the two projection shortcuts.
    weighted = [r for r in analyze(spec).records if r.op in ("conv", "fc")]
    assert len(weighted) == 6 * n + 2 + 2


def test_branch_builds_the_zoo_inception_module():
    doc = {
        "name": "inception_bottleneck",
        "input": [256, 28, 28],
        "layers": [{
            "branch": {
                "b1x1": [{"conv": {"out_channels": 128, "kernel": 1, "bias": False}, "name": "conv1x1"}],
                "b3x3": [{"conv": {"out_channels": 64, "kernel": 1, "bias": False}, "name": "reduce"},
                         {"conv": {"out_channels": 192, "kernel": 3, "padding": 1, "bias": False}, "name": "conv3x3"}],
                "b5x5": [{"conv": {"out_channels": 64, "kernel": 1, "bias": False}, "name": "reduce"},
                         {"conv": {"out_channels": 96, "kernel": 5, "padding": 2, "bias": False}, "name": "conv5x5"}],
                "bpool": [{"maxpool": {"kernel": 3, "stride": 1, "padding": 1}, "name": "pool"},
                          {"conv": {"out_channels": 64, "kernel": 1, "bias": False}, "name": "proj"}],
            },
            "merge": "concat",
            "name": "concat",
        }],
    }
    same_analysis(build_spec(doc), zoo.build("inception_bottleneck"))


def test_explicit_inputs_make_an_arbitrary_dag(tmp_path):
    path = write(tmp_path, """
        input: [8, 16, 16]
        layers:
          - conv: {out_channels: 8, kernel: 3, padding: 1}
            name: a
          - conv: {out_channels: 8, kernel: 1}
            name: b
            inputs: [input]
          - add: {}
            name: ab
            inputs: [a, b]
          - branch:
              - [relu]
              - []
            merge: mean
          - concat: {axis: 1}
            inputs: [ab, mean1, input]
    """)
    g = Graph("net")
    x = g.input((8, 16, 16))
    a = g.add(Conv2d(8, 3, padding=1), x, name="a")
    b = g.add(Conv2d(8, 1), x, name="b")
    ab = g.add(Add(), a, b, name="ab")
    r = g.add(Activation(), ab, name="branch1.relu1")
    m = g.add(Mean(), r, ab, name="mean1")
    g.add(Concat(1), ab, m, x, name="concat1")
    same_analysis(load_spec(path), g)
    assert load_spec(path).shape("concat1") == (1, 24, 16, 16)


def test_a_global_context_add_and_a_sub_merge(tmp_path):
    """x + conv(gap(x)) written with explicit inputs, then a branch of two paths merged by sub
    (the first path less the second, which broadcasts over the channels)."""
    path = write(tmp_path, """
        input: [8, 6, 6]
        layers:
          - conv: {out_channels: 8, kernel: 3, padding: 1}
            name: x
          - gap
          - conv: {out_channels: 8, kernel: 1}
            name: ctx
          - add: {}
            name: gc
            inputs: [x, ctx]
          - branch:
              - [relu]
              - [{conv: {out_channels: 1, kernel: 1}}]
            merge: sub
    """)
    g = Graph("net")
    x = g.add(Conv2d(8, 3, padding=1), g.input((8, 6, 6)), name="x")
    ctx = g.add(Conv2d(8, 1), g.add(GlobalAvgPool(), x, name="gap1"), name="ctx")
    gc = g.add(Add(), x, ctx, name="gc")
    g.add(Sub(), g.add(Activation(), gc, name="branch1.relu1"), g.add(Conv2d(1, 1), gc, name="branch2.conv1"),
          name="sub1")
    same_analysis(load_spec(path), g)
    assert load_spec(path).shape("sub1") == (1, 8, 6, 6)


def test_references_look_in_the_own_scope_first_then_outwards(tmp_path):
    path = write(tmp_path, """
        input: [4, 8, 8]
        blocks:
          twice:
            layers:
              - conv: {out_channels: 4, padding: 1}
                name: c
              - add: {}
                inputs: [c, input]       # this block's c and this block's input
              - add: {}
                inputs: [add1, stem]     # stem is found in the enclosing scope
        layers:
          - conv: {out_channels: 4, kernel: 1}
            name: stem
          - twice
          - twice
    """)
    g = load_spec(path)
    assert g.inputs("twice1.add1") == ("twice1.c", "stem")
    assert g.inputs("twice2.add1") == ("twice2.c", "twice1.add2")
    assert g.inputs("twice2.add2") == ("twice2.add1", "stem")


def test_json_and_toml_specs_read_the_same_schema(tmp_path):
    toml_graph = load_spec(EXAMPLES / "tiny_vgg.toml", options={"width": 16})
    doc = {
        "name": "tiny_vgg", "input": [3, 32, 32],
        "blocks": {"stage": {"params": ["out"], "layers": [
            {"conv": {"out_channels": "$out", "padding": 1}, "name": "conv1"}, "relu",
            {"conv": {"out_channels": "$out", "padding": 1}, "name": "conv2"}, "relu",
            {"maxpool": 2, "name": "pool"}]}},
        "layers": [{"stage": 16, "name": "stage1"}, {"stage": {"out": 32}, "name": "stage2"}, "flatten",
                   {"fc": 256, "name": "fc1"}, "relu", {"dropout": {"p": 0.5}}, {"fc": 10, "name": "fc2"}],
    }
    path = write(tmp_path, json.dumps(doc), "tiny_vgg.json")
    same_analysis(load_spec(path), toml_graph)
    # 3*3*3*16+16 + 3*3*16*16+16 + 3*3*16*32+32 + 3*3*32*32+32 + 8*8*32*256+256 + 256*10+10
    assert analyze(toml_graph).totals["params"] == 448 + 2320 + 4640 + 9248 + 524544 + 2570


def test_examples_folder_loads_and_runs_through_the_cli(capsys):
    examples = sorted(EXAMPLES.glob("*.yaml")) + sorted(EXAMPLES.glob("*.toml"))
    assert len(examples) >= 2
    for path in examples:
        assert cli.main(["table", str(path)]) == 0
        assert "TOTAL" in capsys.readouterr().out


def test_expressions_and_when(tmp_path):
    path = write(tmp_path, """
        input: [3, 8, 8]
        params: {w: 4, deep: false}
        layers:
          - conv: {out_channels: $(w * 2 + 1), kernel: "$(min(w, 3))"}  # quoted: a comma ends a value in {...}
          - conv: {out_channels: $w, kernel: 1}
            when: $deep
          - flatten
          - fc: {out_features: $(w // 3 if w > 3 else 7)}
    """)
    g = load_spec(path)
    assert [g.op(n) for n in g.topological_order()[1:]] == [Conv2d(9, 3), Flatten(), Linear(1)]
    deep = load_spec(path, options={"deep": True, "w": 2})
    assert [g for g in deep.topological_order()] == ["input", "conv1", "conv2", "flatten1", "fc1"]


# --- errors: one line, the file, the layer, exit code 2 ---------------------------------------
BAD = {
    "malformed": ("input: [3, 8, 8]\nlayers:\n  - conv: {out_channels: 4\n", "malformed YAML"),
    "unknown_field": ("input: [3, 8, 8]\nlayers:\n  - conv: {out_channels: 4, kernal: 3}\n    name: c1\n",
                      "layer 'c1': unknown field 'kernal' for conv"),
    "unknown_op": ("input: [3, 8, 8]\nlayers:\n  - convv: {out_channels: 4}\n", "unknown op or block 'convv'"),
    "unknown_input": ("input: [3, 8, 8]\nlayers:\n  - relu\n  - add: {}\n    name: s\n    inputs: [relu1, nope]\n",
                      "layer 's': unknown input 'nope'"),
    "cycle": ("input: [3, 8, 8]\nlayers:\n  - add: {}\n    name: a\n    inputs: [input, b]\n"
              "  - relu: {}\n    name: b\n    inputs: [a]\n", "cycle: "),
    "shapes": ("input: [3, 8, 8]\nlayers:\n  - conv: {out_channels: 4, kernel: 1}\n    name: c\n"
               "  - add: {}\n    name: s\n    inputs: [c, input]\n", "layer 's' (add): channel mismatch"),
    "too_small": ("input: [3, 4, 4]\nlayers:\n  - conv: {out_channels: 4, kernel: 7}\n    name: big\n",
                  "layer 'big' (conv 7x7/1, 4): kernel 7"),
    "top_key": ("input: [3, 8, 8]\nlayer:\n  - relu\n", "unknown top-level key 'layer'"),
    "field_type": ("input: [3, 8, 8]\nlayers:\n  - conv: {out_channels: 4, bias: maybe}\n",
                   "field 'bias' must be bool"),
    "recursive_block": ("input: [3, 8, 8]\nblocks:\n  loop:\n    layers: [relu, loop]\nlayers: [loop]\n",
                        "block 'loop' uses itself (loop -> loop)"),
    "missing_param": ("input: [3, 8, 8]\nblocks:\n  b:\n    params: [w]\n    layers: [{conv: $w}]\nlayers: [b]\n",
                      "block 'b' needs parameter 'w'"),
    "unknown_param": ("input: [3, 8, 8]\nlayers:\n  - conv: $width\n", "unknown parameter 'width'"),
    "no_input": ("layers:\n  - relu\n", "no layer before it"),
    "not_a_mapping": ("- relu\n", "top level must be a mapping"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_spec_is_one_line_naming_the_file(case, tmp_path, capsys):
    text, expected = BAD[case]
    path = write(tmp_path, text, f"{case}.yaml")
    assert cli.main(["table", str(path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert str(path) in lines[0] and expected in lines[0], lines[0]
    assert "Traceback" not in captured.err


def test_bad_toml_json_and_options(tmp_path, capsys):
    cases = [
        (write(tmp_path, "input = [3, 8\n", "bad.toml"), [], "malformed TOML"),
        (write(tmp_path, '{"input": [3, 8, 8], "layers": [', "bad.json"), [], "malformed JSON"),
        (EXAMPLES / "tiny_vgg.toml", ["-o", "depth=3"], "-o depth: not a parameter of this spec; params: width"),
        (tmp_path / "missing.yaml", [], "no such file"),
    ]
    for path, extra, expected in cases:
        assert cli.main(["table", str(path), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and str(path) in err and expected in err, err


def test_node_link_json_with_a_cycle_is_refused(tmp_path, capsys):
    g = zoo.build("conv5x5_bottleneck")
    from archcost.formats.export import to_json

    data = json.loads(to_json(g))
    data["links"].append({"source": "conv5x5", "target": "conv1x1"})
    node = next(n for n in data["nodes"] if n["id"] == "conv1x1")
    node["inputs"].append("conv5x5")
    path = write(tmp_path, json.dumps(data), "cyclic.json")
    assert cli.main(["table", str(path)]) == 2
    err = capsys.readouterr().err
    assert "cycle" in err and str(path) in err and len(err.strip().splitlines()) == 1


# --- CLI and export ----------------------------------------------------------------------------
def test_export_writes_each_format_and_guesses_it_from_the_suffix(tmp_path, capsys):
    for suffix, marker in ((".yaml", "layers:"), (".json", '"links"'), (".dot", "digraph")):
        out = tmp_path / f"net{suffix}"
        assert cli.main(["export", "inception_naive", "-o", str(out)]) == 0
        assert marker in out.read_text()
    assert cli.main(["export", "lenet5", "--to", "dot"]) == 0
    assert capsys.readouterr().out.startswith('digraph "lenet5"')
    # An exported spec is itself a model argument, and --input applies to it.
    assert cli.main(["table", str(tmp_path / "net.yaml"), "--input", "256x14x14", "--format", "json"]) == 0
    assert "14" in capsys.readouterr().out


def test_failed_export_leaves_nothing_half_written(tmp_path, capsys):
    out = tmp_path / "net.yaml"
    out.write_text("old contents\n")
    assert cli.main(["export", "no_such_model", "-o", str(out)]) == 2
    assert cli.main(["export", "vgg16", "-o", str(tmp_path / "missing_dir" / "x.yaml")]) == 2
    assert cli.main(["export", "vgg16", "-o", str(tmp_path / "x.txt")]) == 2
    assert out.read_text() == "old contents\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["net.yaml"]
    errors = capsys.readouterr().err.strip().splitlines()
    assert len(errors) == 3 and all(e.startswith("archcost: error: ") for e in errors)


def test_writer_failure_mid_write_keeps_the_old_file(tmp_path, monkeypatch):
    from archcost import outputs
    from archcost.formats import export

    out = tmp_path / "net.yaml"
    out.write_text("old\n")

    def explode(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(outputs.os, "replace", explode)
    with pytest.raises(ArchcostError, match="no space left"):
        export.write_atomic(out, "new\n")
    assert out.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["net.yaml"]


def test_a_zoo_table_imports_neither_yaml_nor_onnx():
    code = ("import sys, io, contextlib; from archcost.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()): rc = main(['table', 'vgg16'])\n"
            "print(rc, 'yaml' in sys.modules, 'onnx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.stdout.split() == ["0", "False", "False"], out.stderr


def test_input_layers_give_a_network_several_inputs(tmp_path, capsys):
    path = write(tmp_path, """
        layers:
          - {input: [3, 16, 16], name: image}
          - conv: {out_channels: 4, kernel: 3}
          - gap
          - flatten
          - {input: [6], name: meta}
          - {concat: {axis: 1}, name: joined, inputs: [flatten1, meta]}
          - fc: 2
    """)
    g = load_spec(path)
    assert g.input_nodes() == ["image", "meta"]
    assert g.shape("joined") == (1, 10) and g.shape("fc1") == (1, 2)
    assert cli.main(["table", str(path), "--input", "3x8x8"]) == 2
    assert "--input is ambiguous" in capsys.readouterr().err


def test_inception_example_holds_the_lecture_module_twice():
    g = load_spec(EXAMPLES / "inception.yaml")
    assert g.shape("module1") == g.shape("module2") == (1, 480, 28, 28)  # CS231n Lecture 9: 28x28x480
    first = {r.name: r for r in analyze(zoo.build("inception_bottleneck")).records}
    mine = {r.name: r for r in analyze(g).records}
    for name in ("b1x1.conv1x1", "b3x3.reduce", "b3x3.conv3x3", "b5x5.reduce", "b5x5.conv5x5", "bpool.proj"):
        assert mine[name].macs == first[name].macs and mine[name].weights == first[name].weights


# --- limits on what a document may expand to (docs/limits.md) --------------------------------------
def test_document_value_limit_counts_aliases_once_per_use(monkeypatch):
    from archcost.formats.spec import check_document_size

    shared = [1, 2]
    doc = {"a": shared, "b": shared}  # as YAML aliases build it: one list, used twice
    monkeypatch.setenv("ARCHCOST_MAX_SPEC_VALUES", "7")  # dict + 2 x (list + 2 items)
    check_document_size(doc, "x.yaml")
    monkeypatch.setenv("ARCHCOST_MAX_SPEC_VALUES", "6")
    with pytest.raises(ArchcostError, match="more than 6 values"):
        check_document_size(doc, "x.yaml")


def test_alias_bomb_is_refused_quickly(tmp_path):
    import time

    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"{c}: &{c} [{', '.join(['*' + p] * 10)}]" for p, c in zip("abcdefgh", "bcdefghi")]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")  # 10^9 values once expanded
    start = time.perf_counter()
    with pytest.raises(ArchcostError, match="alias bomb"):
        load_spec(path)
    assert time.perf_counter() - start < 5  # not a timing benchmark: a walk of 10^9 would take minutes


def test_nesting_limit():
    from archcost.formats.spec import MAX_SPEC_DEPTH, check_document_size

    doc = []
    for _ in range(MAX_SPEC_DEPTH - 1):
        doc = [doc]
    check_document_size(doc, "x.json")
    with pytest.raises(ArchcostError, match=f"nests more than {MAX_SPEC_DEPTH}"):
        check_document_size([doc], "x.json")


@pytest.mark.parametrize("expr,message", [
    ("'a' * 10001", "str of 10,001 items"),
    ("[0] * 10001", "list of 10,001 items"),
    ("(2 ** 64) ** 17", "more than 1024 bits"),
])
def test_expression_size_limits(expr, message):
    from archcost.formats.spec import evaluate

    with pytest.raises(ArchcostError, match=message):
        evaluate(f"({expr})", {}, "layers[0]")


def test_expression_limits_leave_room_for_real_values():
    from archcost.formats.spec import evaluate

    assert evaluate("('a' * 10000)", {}, "w") == "a" * 10000
    assert evaluate("(2 ** 64) ** 15 * 2 ** 63", {}, "w") == 2**1023  # 1,024 bits


def test_a_layer_says_how_its_pytorch_twin_computes_it():
    # `torch:` on a layer: the peer tools' conventions (archcost/conventions.py) read it.
    doc = {"name": "t", "input": [4, 8, 8], "layers": [
        {"conv": {"out_channels": 4, "kernel": 3, "padding": 1}},
        {"relu": {}, "torch": "functional"},
        {"avgpool": {"kernel": 2}, "torch": "adaptive"},
        {"flatten": {}, "torch": "module"},
    ]}
    g = build_spec(doc)
    assert [g.torch_form(n) for n in g.topological_order()] == ["default", "default", "functional", "adaptive", "module"]


@pytest.mark.parametrize("layer,message", [
    ({"relu": {}, "torch": "sideways"}, "torch must be one of default, functional, module, adaptive"),
    ({"relu": {}, "torch": ["functional"]}, "torch must be one of"),
    ({"relu": {}, "torch": "module"}, "torch: module applies to flatten"),
    ({"maxpool": {"kernel": 2}, "torch": "adaptive"}, "torch: adaptive needs an avgpool"),
    ({"residual": [{"relu": {}}], "torch": "functional"}, "'torch' describes one layer, not a residual"),
])
def test_a_torch_form_that_does_not_fit_is_one_clear_line(layer, message):
    doc = {"name": "t", "input": [4, 8, 8], "layers": [layer]}
    with pytest.raises(ArchcostError, match=message) as err:
        build_spec(doc)
    assert "\n" not in str(err.value)
