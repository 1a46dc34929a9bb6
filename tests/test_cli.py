"""The command line: formats, errors (one line, exit 2, no traceback), light imports."""

import json
import subprocess
import sys

import pytest

from archcost.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_table_text_reads_like_the_lecture(capsys):
    code, out, _ = run_cli(capsys, "table", "vgg16")
    assert code == 0
    lines = out.splitlines()
    conv = next(line for line in lines if line.startswith("conv1_2"))
    assert "224x224x64" in conv and "36,864" in conv and "3.21M" in conv
    fc6 = next(line for line in lines if line.startswith("fc6"))
    assert "102,760,448" in fc6
    total = next(line for line in lines if line.startswith("TOTAL"))
    assert "138,357,544" in total and "138,344,128" in total


def test_table_json_schema(capsys):
    code, out, _ = run_cli(capsys, "table", "vgg16", "--format", "json", "--batch", "2")
    assert code == 0
    data = json.loads(out)
    assert data["model"] == "vgg16" and data["batch"] == 2 and data["input_shape"] == [3, 224, 224]
    layer = data["layers"][1]
    for key in ("name", "op", "output_shape", "activations", "weights", "biases", "params", "macs"):
        assert key in layer
    assert layer["output_shape"] == [2, 64, 224, 224]
    totals = data["totals"]
    for key in ("params", "weights", "biases", "macs", "activations", "activation_bytes", "param_bytes",
                "peak_activation_bytes"):
        assert isinstance(totals[key], int)
    assert totals["params"] == 138_357_544


def test_table_other_formats(capsys):
    _, md, _ = run_cli(capsys, "table", "alexnet", "--format", "markdown")
    assert md.count("\n|") > 10 and "| TOTAL |" in md
    _, csv, _ = run_cli(capsys, "table", "alexnet", "--format", "csv", "--all-layers")
    assert csv.splitlines()[0].startswith("name,op,label")
    lines = csv.splitlines()
    assert len(lines) == 1 + 24 + 1  # header, every node of the lecture AlexNet, TOTAL
    assert lines[-1].startswith("TOTAL,")
    _, html, _ = run_cli(capsys, "table", "alexnet", "--format", "html")
    assert html.startswith("<table") and "<th>RF</th>" in html and "<tfoot>" in html
    assert "class=\"dataframe\"" not in html  # a real table, not pandas' raw dump


def test_input_override(capsys):
    code, out, _ = run_cli(capsys, "table", "vgg16", "--input", "3x32x32", "--format", "json")
    assert code == 0
    data = json.loads(out)
    assert data["input_shape"] == [3, 32, 32]
    assert data["layers"][-1]["output_shape"] == [1, 1000]


def test_compare_inception_modules(capsys):
    code, out, _ = run_cli(capsys, "compare", "inception_naive", "inception_bottleneck")
    assert code == 0
    macs = next(line for line in out.splitlines() if line.startswith("MACs"))
    assert "854,196,224" in macs and "271,351,808" in macs and "0.318x" in macs
    _, js, _ = run_cli(capsys, "compare", "conv5x5", "conv3x3_x2", "--format", "json")
    assert json.loads(js)["ratios"]["conv3x3_x2"]["macs"] == pytest.approx(18 / 25)


def test_list_with_wildcard(capsys):
    code, out, _ = run_cli(capsys, "list", "vgg1*")
    assert code == 0
    names = [line.split()[0] for line in out.splitlines()]
    assert names == ["vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19", "vgg19_bn"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["table", "vgg17"], "unknown model 'vgg17'; did you mean"),
        (["table", "vgg16", "--input", "3x224"], "--input: expected CxHxW"),
        (["table", "vgg16", "--input", "axbxc"], "--input: expected CxHxW"),
        (["table", "vgg16", "--input", "3x8x8"], "layer 'pool4'"),
        (["table", "vgg16", "-o", "depth=3"], "unknown option 'depth'"),
        (["table", "vgg16", "--dtype", "float7"], "argument --dtype: unknown dtype 'float7'"),
        (["table", "vgg16", "--format", "yaml"], "invalid choice"),
        (["table", "vgg16", "--batch", "0"], "argument --batch: expected a positive integer, got '0'"),
        (["compare", "vgg16"], "at least two models"),
        (["list", "nothing*"], "no model matches"),
        (["frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, argv, message):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("archcost: error: ")
    assert message in err


def test_no_traceback_and_light_imports():
    """A real process: exit 2 with one line; `table` imports neither numba nor matplotlib."""
    bad = subprocess.run([sys.executable, "-m", "archcost.cli", "table", "vgg17"], capture_output=True, text=True)
    assert bad.returncode == 2 and "Traceback" not in bad.stderr and bad.stderr.count("\n") == 1
    probe = (
        "import sys; from archcost.cli import main; main(['table', 'vgg16']);"
        "print('HEAVY', sorted(m for m in ('numba', 'matplotlib', 'llvmlite') if m in sys.modules), file=sys.stderr)"
    )
    ok = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert ok.returncode == 0
    assert "HEAVY []" in ok.stderr


def test_data_flows_one_way_cli_commands_loading():
    # Issue 15: the commands used to import build_model from archcost.cli, which imports the
    # commands. Now cli -> commands -> loading -> zoo/formats, with no edge back.
    import ast
    import pathlib

    package = pathlib.Path(__file__).resolve().parents[1] / "archcost"

    def imports(path):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                yield node.module
            elif isinstance(node, ast.Import):
                yield from (a.name for a in node.names)

    for path in package.rglob("*.py"):
        if path.name in ("cli.py", "__main__.py"):
            continue
        assert "archcost.cli" not in set(imports(path)), path
    assert not {m for m in imports(package / "loading.py") if m.startswith("archcost.commands") or m == "argparse"}


def test_header_names_the_variant_built_not_the_registered_one(capsys):
    # Issue 18: `table resnet50 -o depth=18` printed ResNet-50's header over ResNet-18's numbers.
    code, out, _ = run_cli(capsys, "table", "resnet50", "-o", "depth=18")
    assert code == 0
    header = out.splitlines()[0]
    assert header.startswith("resnet50 (depth=18): ") and "changed by depth=18" in header
    assert "11,689,512" in out  # ResNet-18's params (He et al. 2016, torchvision: 11.7M)
    code, out, _ = run_cli(capsys, "compare", "resnet50", "resnet101", "-o", "depth=18")
    assert code == 0 and "resnet50 (depth=18)" in out.splitlines()[0] and "resnet101 (depth=18)" in out.splitlines()[0]
    code, out, _ = run_cli(capsys, "table", "resnet50")
    assert out.startswith("resnet50: ResNet-50")
