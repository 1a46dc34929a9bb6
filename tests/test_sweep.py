"""Design-space sweeps (archcost/sweep/, archcost sweep): spaces, sampling, constraints, tied
parameters, de-duplication, resume, errors, the WRN front, and the command line."""

import csv
import importlib.util
import json
import math
import sys

import pytest

from archcost import cli, sweep, zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.sweep import engine
from archcost.sweep.space import parse_space

# Zagoruyko & Komodakis 2016, "Wide Residual Networks", Table 4 (CIFAR-10 test error, %, of the
# WRN-d-k the paper trains, with their parameter counts in millions). The accuracies in
# archcost/data/accuracy.csv come from the same table; the parameter counts are the paper's.
WRN_TABLE4 = {  # (depth, k): (params M, CIFAR-10 error %)
    (40, 1): (0.6, 6.85), (40, 2): (2.2, 5.33), (40, 4): (8.9, 4.97), (40, 8): (35.7, 4.66),
    (28, 10): (36.5, 4.17), (28, 12): (52.5, 4.33), (22, 8): (17.2, 4.38), (22, 10): (26.8, 4.44),
    (16, 8): (11.0, 4.81), (16, 10): (17.1, 4.56),
}


def space_of(text: str, tmp_path, name="space.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return sweep.load_space(path)


def run(space, tmp_path, out="out.csv", **kwargs):
    kwargs.setdefault("workers", 1)
    return sweep.run(space, tmp_path / out, **kwargs)


def rows_by(outcome, *keys):
    return {tuple(r[k] for k in keys): r for r in outcome.table()}


WRN_SMALL = """
model: wrn
fixed: {num_classes: 10}
parameters:
  depth: {range: [10, 22], step: 6}
  width: [1, 2, 4]
"""


# --- spaces -----------------------------------------------------------------------------------
def test_enumeration_counts_and_order(tmp_path):
    space = space_of(WRN_SMALL, tmp_path)
    assert space.total == 9 and space.names == ("depth", "width")
    assert [p.values for p in space.parameters] == [(10, 16, 22), (1, 2, 4)]
    assert space.select() == list(range(9))
    # The last parameter varies fastest, as itertools.product.
    assert [space.decode(i) for i in range(4)] == [(10, 1), (10, 2), (10, 4), (16, 1)]
    assert all(space.encode(space.decode(i)) == i for i in range(9))
    outcome = run(space, tmp_path)
    assert [r["point"] for r in outcome.table()] == list(range(9))
    assert outcome.counts() == {"ok": 9, "duplicate": 0, "rejected": 0, "skipped": 0}


def test_builtin_spaces_load_and_count():
    sizes = {"wrn_cifar": 72, "resnext_complexity": 14, "mobilenet_alpha_resolution": 28, "anynet_cifar": 48_000}
    assert set(sweep.builtin_names()) == set(sizes)
    for name, total in sizes.items():
        assert sweep.load_space(name).total == total, name


def test_log_ranges():
    space = parse_space({"model": "mobilenet_v1", "parameters": {
        "alpha": {"log_range": [0.25, 1.0], "num": 3},
        "resolution": {"log_range": [128, 512], "factor": 2}}})
    assert space.parameters[0].values == (0.25, 0.5, 1.0)
    assert space.parameters[1].values == (128, 256, 512)
    # Integer ends give integers, rounded, repeats dropped.
    space = parse_space({"model": "wrn", "parameters": {"width": {"log_range": [1, 4], "num": 5}}})
    assert space.parameters[0].values == (1, 2, 3, 4)


def test_sampling_is_seeded_distinct_and_sorted(tmp_path):
    space = sweep.load_space("anynet_cifar")
    a, b, c = space.select(50, 7), space.select(50, 7), space.select(50, 8)
    assert a == b != c
    assert a == sorted(set(a)) and len(a) == 50 and all(0 <= i < space.total for i in a)
    assert space.select() == space.select(500, 0)  # the space's own sample: {n: 500, seed: 0}
    assert space.select(10**6) == list(range(space.total))  # n past the total: every point
    # A space far too large to enumerate is still sampled, quickly.
    huge = parse_space({"model": "wrn", "parameters": {
        "depth": {"range": [10, 10**5 + 9]}, "width": {"range": [1, 10**5]},
        "num_classes": {"range": [1, 10**5]}}})
    assert huge.total == 10**15
    picks = huge.select(1000, 3)
    assert len(set(picks)) == 1000 and picks == huge.select(1000, 3)
    with pytest.raises(ArchcostError, match="sample some with -n"):
        huge.select()
    # The same seed gives the same file.
    one = run(space, tmp_path, "a.csv", n=30, seed=5)
    two = run(space, tmp_path, "b.csv", n=30, seed=5)
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()
    assert [r[0] for r in one.rows] == [r[0] for r in two.rows] == space.select(30, 5)


# --- constraints, tied parameters, skipped points ---------------------------------------------
def test_constraints_reject_by_quantity_and_by_parameter(tmp_path):
    space = space_of(WRN_SMALL + """
constraints:
  - params <= 1e6
  - depth * width <= 40
""", tmp_path)
    assert [c.pre for c in space.constraints] == [False, True]
    table = rows_by(run(space, tmp_path), "depth", "width")
    for (depth, width), row in table.items():
        params = analyze(zoo.build("wrn", depth=depth, width=width)).totals["params"]
        if depth * width > 40:  # never built: no quantities
            assert row["status"] == "rejected" and row["reason"] == "fails depth * width <= 40"
            assert row["params"] is None and row["hash"] == ""
        elif params > 1e6:
            assert row["status"] == "rejected" and row["reason"] == "fails params <= 1e6"
            assert row["params"] == params
        else:
            assert row["status"] == "ok" and row["params"] == params and row["reason"] == ""
    assert table[(22, 2)]["status"] == "rejected" and table[(10, 1)]["status"] == "ok"


def test_tied_parameters_resnext_preserved_complexity(tmp_path):
    # Xie et al. 2017, Table 2: at ResNet-50's complexity, C = 1, 2, 4, 8, 32 go with d = 64, 40,
    # 24, 14, 4; the built-in space's tied expression gives them.
    space = sweep.load_space("resnext_complexity")
    widths = {}
    for i in range(space.total):
        env = space.env(space.decode(i))
        widths[env["cardinality"]] = env["bottleneck_width"]
    assert {c: widths[c] for c in (1, 2, 4, 8, 32)} == {1: 64, 2: 40, 4: 24, 8: 14, 32: 4}
    table = rows_by(run(space, tmp_path), "depth", "cardinality")
    assert table[(50, 2)]["bottleneck_width"] == 40 and table[(101, 8)]["bottleneck_width"] == 14
    assert table[(50, 32)]["macs"] == analyze(zoo.build("resnext50_32x4d")).totals["macs"]
    assert table[(50, 32)]["model"] == "resnext50_32x4d" and table[(50, 32)]["accuracy"] == 77.618
    assert table[(101, 32)]["model"] == "resnext101_32x4d"
    for (depth, c), row in table.items():  # preserved complexity: within 6% of 32x4d's MACs
        assert row["status"] == "ok" and abs(row["macs"] / table[(depth, 32)]["macs"] - 1) < 0.06, (depth, c)


def test_a_point_that_cannot_be_built_is_skipped_with_its_reason(tmp_path):
    space = space_of("""
model: wrn
parameters:
  depth: {range: [10, 16]}
  width: [1]
""", tmp_path)
    table = rows_by(run(space, tmp_path), "depth")
    assert table[(10,)]["status"] == table[(16,)]["status"] == "ok"
    for depth in (11, 12, 13, 14, 15):
        row = table[(depth,)]
        assert row["status"] == "skipped" and row["params"] is None
        assert f"depth {depth} is invalid" in row["reason"] and "\n" not in row["reason"]


def test_a_spec_file_template_is_a_family_whose_params_are_the_slots(tmp_path):
    import pathlib
    import shutil

    from archcost import formats

    example = pathlib.Path(__file__).resolve().parents[1] / "docs" / "examples" / "tiny_resnet.yaml"
    shutil.copy(example, tmp_path / "tiny_resnet.yaml")
    space = space_of("""
spec: tiny_resnet.yaml          # relative to the space file
parameters:
  n: {range: [1, 3]}
  width: {log_range: [16, 64], factor: 2}
constraints: ['macs <= 100e6']
""", tmp_path)
    assert space.total == 9 and space.model is None
    for row in run(space, tmp_path).table():
        graph = formats.load(tmp_path / "tiny_resnet.yaml", options={"n": row["n"], "width": row["width"]})
        totals = analyze(graph).totals
        assert (row["macs"], row["params"], row["peak_activation_bytes"]) == (
            totals["macs"], totals["params"], totals["peak_activation_bytes"])
        assert row["status"] == ("ok" if totals["macs"] <= 100e6 else "rejected")


# --- de-duplication -----------------------------------------------------------------------------
TEMPLATE = """
spec:
  input: [3, 16, 16]
  params: {k: 2, extra: 0}
  layers:
    - conv: {out_channels: $(k // 2 * 8), kernel: 3, padding: 1}
    - relu
    - gap
    - flatten
    - fc: 10
parameters:
  k: [2, 3, 4, 5]
  extra: [0, 1]
"""


def test_identical_graphs_are_deduplicated_by_structural_hash(tmp_path):
    space = space_of(TEMPLATE, tmp_path)
    outcome = run(space, tmp_path)
    table = rows_by(outcome, "k", "extra")
    # k = 2 and 3 build the same graph (8 channels), as do 4 and 5; `extra` changes nothing.
    assert outcome.counts() == {"ok": 2, "duplicate": 6, "rejected": 0, "skipped": 0}
    first = table[(2, 0)]
    for key in ((2, 1), (3, 0), (3, 1)):
        assert table[key]["status"] == "duplicate" and table[key]["same_as"] == first["point"]
        assert table[key]["hash"] == first["hash"] and table[key]["macs"] == first["macs"]
    assert table[(4, 0)]["status"] == "ok" and table[(4, 0)]["hash"] != first["hash"]
    # Names do not count; ops, wiring and the input shape do.
    g1, g2 = zoo.build("wrn-16-1"), zoo.build("wrn-16-1")
    g2.name = "other"
    assert engine.structural_hash(g1) == engine.structural_hash(g2)
    assert engine.structural_hash(g1) != engine.structural_hash(zoo.build("wrn-16-2"))
    assert engine.structural_hash(g1) != engine.structural_hash(zoo.build("wrn-16-1", input_shape=(3, 64, 64)))


# --- resume ---------------------------------------------------------------------------------------
def test_resume_skips_and_keeps_the_points_in_the_file(tmp_path, monkeypatch):
    space = space_of(WRN_SMALL, tmp_path)
    full = run(space, tmp_path, "full.csv")
    lines = (tmp_path / "full.csv").read_text().splitlines(keepends=True)
    part = tmp_path / "part.csv"
    part.write_text("".join(lines[:1] + lines[1:5]))  # header and 4 of 9 rows
    computed = []
    real = engine.evaluate_point
    monkeypatch.setattr(engine, "evaluate_point", lambda s, i: computed.append(i) or real(s, i))
    again = run(space, tmp_path, "part.csv")
    assert sorted(computed) == list(range(4, 9)) and again.kept == 4 and again.computed == 5
    assert part.read_bytes() == (tmp_path / "full.csv").read_bytes()
    # A finished file: nothing is computed, nothing changes.
    computed.clear()
    run(space, tmp_path, "part.csv")
    assert computed == [] and part.read_bytes() == (tmp_path / "full.csv").read_bytes()
    # Resuming a sample with another seed adds its points; the rows stay in point order.
    anynet = sweep.load_space("anynet_cifar")
    run(anynet, tmp_path, "s.json", n=20, seed=1)
    both = run(anynet, tmp_path, "s.json", n=20, seed=2)
    points = [r[0] for r in both.rows]
    assert points == sorted(set(anynet.select(20, 1)) | set(anynet.select(20, 2)))
    assert full.rows == sweep.run(space, tmp_path / "full.csv", workers=1).rows


def test_resume_rechecks_constraints_and_refuses_another_space(tmp_path):
    space = space_of(WRN_SMALL, tmp_path)
    run(space, tmp_path)
    strict = space_of(WRN_SMALL + "constraints: ['params <= 1e6']\n", tmp_path, "strict.yaml")
    outcome = run(strict, tmp_path)  # nothing to build: the verdicts are taken again from the quantities
    assert outcome.computed == 0 and outcome.counts()["rejected"] == sum(
        1 for r in outcome.table() if r["params"] > 1e6) > 0
    other = space_of(WRN_SMALL.replace("[1, 2, 4]", "[1, 2, 3]"), tmp_path, "other.yaml")
    with pytest.raises(ArchcostError, match=r"width='4' is not a value of parameters.width"):
        run(other, tmp_path)
    renamed = space_of(WRN_SMALL.replace("width: [1, 2, 4]", "width: [1, 2, 4]\n  dropout: [0.0]"), tmp_path, "r.yaml")
    with pytest.raises(ArchcostError, match="holds other columns"):
        run(renamed, tmp_path)


# --- workers and dask ---------------------------------------------------------------------------
def test_two_local_workers_write_the_same_file(tmp_path):
    space = sweep.load_space("anynet_cifar")
    run(space, tmp_path, "one.csv", n=40, seed=3, workers=1)
    run(space, tmp_path, "two.csv", n=40, seed=3, workers=2, chunk=3)
    assert (tmp_path / "one.csv").read_bytes() == (tmp_path / "two.csv").read_bytes()


@pytest.mark.skipif(importlib.util.find_spec("distributed") is None, reason="dask.distributed is not installed")
def test_dask_local_cluster_writes_the_same_file(tmp_path):
    space = sweep.load_space("anynet_cifar")
    run(space, tmp_path, "local.csv", n=60, seed=11, workers=1)
    run(space, tmp_path, "dask.csv", n=60, seed=11, workers=2, dask="local", chunk=4)
    assert (tmp_path / "local.csv").read_bytes() == (tmp_path / "dask.csv").read_bytes()


# --- reports -------------------------------------------------------------------------------------
def _paper_front():
    """The Table 4 models no other Table 4 model beats on both params and error."""
    return {key for key, (p, e) in WRN_TABLE4.items()
            if not any(p2 <= p and e2 < e for k2, (p2, e2) in WRN_TABLE4.items() if k2 != key)}


def test_wrn_front_holds_the_papers_points_that_lie_on_it(tmp_path):
    outcome = run(sweep.load_space("wrn_cifar"), tmp_path, workers=2)
    table = outcome.table()
    published = {(r["depth"], r["width"]): r for r in table if r["model"]}
    assert set(published) == set(WRN_TABLE4)  # every Table 4 network is a point, found by its graph
    for (d, k), row in published.items():
        params_m, error = WRN_TABLE4[(d, k)]
        assert row["model"] == f"wrn-{d}-{k}"
        assert abs(row["params"] / 1e6 - params_m) <= 0.051, (d, k)
        assert row["accuracy"] == pytest.approx(100 - error)
    front = sweep.pareto(table, "params", "accuracy")
    on_front = {(r["depth"], r["width"]) for r in front}
    assert on_front == _paper_front() == {(40, 1), (40, 2), (40, 4), (16, 8), (16, 10), (22, 8), (28, 10)}
    assert [r["params"] for r in front] == sorted(r["params"] for r in front)
    # A cost-only front: minimising both MACs and params over the space.
    ok = [r for r in table if r["status"] == "ok"]
    cheap = sweep.pareto(table, "macs", "params")
    for r in ok:
        dominated = any(o["macs"] <= r["macs"] and o["params"] <= r["params"]
                        and (o["macs"], o["params"]) != (r["macs"], r["params"]) for o in ok)
        assert (r in cheap) == (not dominated)
    # WRN-40-12 and wider exceed the space's params <= 60e6.
    assert {(r["depth"], r["width"]) for r in table if r["status"] == "rejected"} == {(34, 12), (40, 11), (40, 12)}


def test_edf_and_quantiles():
    xs, fs = sweep.edf([3.0, 1.0, 2.0, 2.0])
    assert xs == [1.0, 2.0, 2.0, 3.0] and fs == [0.25, 0.5, 0.75, 1.0]
    assert dict(sweep.quantiles([float(v) for v in range(1, 11)])) == {
        0.0: 1.0, 0.1: 1.0, 0.25: 3.0, 0.5: 5.0, 0.75: 8.0, 0.9: 9.0, 1.0: 10.0}


def test_plots_draw_the_front_and_two_edfs(tmp_path):
    from archcost.report import plots

    fig = plots.sweep_front([1, 2, 3, 4], [4, 1, 3, 0.5], [1, 2, 4], [4, 1, 0.5], x_label="macs", y_label="params",
                            labels=["a", "b", "c"])
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_gid() == "front"]
    assert list(line.get_xdata()) == [1, 2, 4]
    fig = plots.edf_plot([("A", [3.0, 1.0, 2.0]), ("B", [10.0, 20.0])], x_label="macs")
    curves = {ln.get_gid(): ln for ln in fig.axes[0].get_lines()}
    assert list(curves["edf:0"].get_xdata()) == [1.0, 2.0, 3.0]
    assert list(curves["edf:1"].get_ydata()) == [0.5, 1.0]


# --- errors ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, message", [
    ("model: wrm\nparameters: {depth: [10]}", "model: unknown model 'wrm'; did you mean wrn"),
    ("model: wrn\nparameters: {dept: [10]}",
     "parameters.dept: unknown parameter 'dept' of model 'wrn'; did you mean depth"),
    ("model: wrn\nparameters: {depth: {range: [40, 10]}}", "parameters.depth: empty range [40, 10]"),
    ("model: wrn\nparameters: {depth: []}", "parameters.depth: empty choices"),
    ("model: wrn\nparameters: {width: {log_range: [4, 1], num: 3}}", "parameters.width: empty range [4, 1]"),
    ("model: wrn\nparameters: {width: [1.5]}", "parameters.width: model 'wrn': option width must be an integer"),
    ("model: wrn\nparameters: {depth: [10]}\nconstraints: ['mac <= 1e9']",
     "constraints[0]: unknown quantity 'mac' in 'mac <= 1e9'; did you mean macs"),
    ("model: wrn\nparameters: {depth: [10]}\nconstraints: ['macs']", "constraints[0]: expected a comparison"),
    ("model: wrn\nparameters: {depth: [10]}\ntied: {width: 'depht // 2'}", "tied.width: unknown parameter 'depht'"),
    ("model: wrn\nparameters: {depth: [10]}\nfixed: {depth: 16}", "parameters.depth: also given in fixed"),
    ("model: wrn\nparameters: {depth: [10]}\nsample: {n: 0}", "sample.n: expected a positive integer"),
    ("parameters: {depth: [10]}", "give either 'model'"),
    ("model: wrn\nparamters: {depth: [10]}", "unknown key 'paramters'; did you mean parameters"),
    ("model: wrn\nparameters: {depth: [10, 10]}", "parameters.depth: value 10 is listed twice"),
    ("spec: {params: {w: 1}, layers: [relu]}\nparameters: {v: [1]}", "parameters.v: unknown parameter 'v' of the spec"),
])
def test_bad_space_files_are_one_line_errors_naming_the_field(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ArchcostError) as info:
        sweep.load_space(path)
    assert message in str(info.value) and "\n" not in str(info.value)
    assert str(info.value).startswith(str(path))


# --- the command line -----------------------------------------------------------------------------
def test_cli_sweep_writes_rows_and_prints_the_front(tmp_path, capsys):
    out = tmp_path / "wrn.csv"
    assert cli.main(["sweep", "wrn_cifar", "-o", str(out), "--workers", "1", "--front", "params,accuracy",
                     "--edf", "macs"]) == 0
    captured = capsys.readouterr()
    assert "Pareto front of params and accuracy: 7 points" in captured.out
    assert "wrn-28-10" in captured.out and "wrn-22-10" not in captured.out
    assert "EDF of macs over wrn_cifar (69 points)" in captured.out
    assert "72 rows (69 ok, 3 rejected)" in captured.err
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 72 and rows[45]["model"] == "wrn-28-10" and rows[45]["rf_h"]


def test_cli_json_output_and_plots(tmp_path, capsys):
    out = tmp_path / "m.json"
    other = tmp_path / "w.csv"
    assert cli.main(["sweep", "wrn_cifar", "-o", str(other), "--workers", "1", "--quiet"]) == 0
    assert cli.main(["sweep", "mobilenet_alpha_resolution", "-o", str(out), "--workers", "1", "--quiet",
                     "--front", "macs,max:params", "--front-plot", str(tmp_path / "f.png"),
                     "--edf", "params", "--edf-plot", str(tmp_path / "e.svg"), "--edf-with", str(other)]) == 0
    doc = json.loads(out.read_text())
    assert len(doc["rows"]) == 28 and doc["columns"][:3] == ["point", "alpha", "resolution"]
    assert doc["rows"][-1]["model"] == "mobilenet_v1" and doc["rows"][-1]["accuracy"] == 70.6
    assert (tmp_path / "f.png").stat().st_size > 0 and (tmp_path / "e.svg").stat().st_size > 0
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv, message", [
    (["sweep", "no_such_space", "-o", "{out}"], "space 'no_such_space': not a file nor a built-in space"),
    (["sweep", "wrn_cifar", "-o", "{dir}/x.txt"], "expected a file name ending in .csv, .json, .parquet"),
    (["sweep", "wrn_cifar", "-o", "{dir}/no/x.csv"], "does not exist"),
    (["sweep", "wrn_cifar", "-o", "{out}", "--front", "macs"], "--front: expected two or three columns"),
    (["sweep", "wrn_cifar", "-o", "{out}", "--front", "macs,flop"], "--front: unknown column 'flop'"),
    (["sweep", "wrn_cifar", "-o", "{out}", "--edf", "mac"], "--edf: unknown column 'mac'"),
    (["sweep", "wrn_cifar", "-o", "{out}", "--front-plot", "{dir}/f.png"], "--front-plot: give the columns"),
    (["sweep", "wrn_cifar", "-o", "{out}", "-n", "0"], "expected a positive integer"),
    (["sweep", "wrn_cifar", "-o", "{out}", "--seed", "3"], "--seed: the space is enumerated"),
    (["sweep", "wrn_cifar", "-o", "{out}", "--dask", "nonsense"], "--dask: expected a scheduler address"),
])
def test_cli_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    argv = [a.format(out=tmp_path / "out.csv", dir=tmp_path) for a in argv]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("archcost: error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "out.csv").exists()


def test_cli_parquet_and_dask_refused_in_one_line_when_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # import pyarrow now fails
    assert cli.main(["sweep", "wrn_cifar", "-o", str(tmp_path / "r.parquet")]) == 2
    assert "writing Parquet needs pyarrow" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert cli.main(["sweep", "wrn_cifar", "-o", str(tmp_path / "r.csv"), "--dask", "local", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "--dask: needs dask.distributed" in err and err.count("\n") == 1


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed")
def test_parquet_round_trip_resumes(tmp_path):
    space = space_of(WRN_SMALL, tmp_path)
    first = run(space, tmp_path, "r.parquet")
    again = run(space, tmp_path, "r.parquet")
    assert again.computed == 0 and again.rows == first.rows


def test_cli_resume_with_a_file_of_another_space_exits_2(tmp_path, capsys):
    out = tmp_path / "r.csv"
    out.write_text("a,b\n1,2\n")
    assert cli.main(["sweep", "wrn_cifar", "-o", str(out), "--quiet"]) == 2
    assert "holds other columns" in capsys.readouterr().err
    assert out.read_text() == "a,b\n1,2\n"  # left as it was


def test_other_commands_do_not_import_the_sweep_package():
    import subprocess

    script = ("import sys, contextlib, io, archcost.cli\n"
              "with contextlib.redirect_stdout(io.StringIO()):\n"
              "    archcost.cli.main(['table', 'vgg16'])\n"
              "print(sorted(m for m in ('archcost.sweep', 'distributed', 'dask', 'pyarrow') if m in sys.modules))")
    import os
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, env=env, cwd=root)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_reasons_and_constraints_fit_one_line():
    space = parse_space({"model": "wrn", "parameters": {"depth": [12]}, "tied": {"width": "1 // 0"}})
    (record,) = engine.evaluate_points(space, [0])
    assert record.code == "skipped" and "cannot evaluate" in record.reason and "\n" not in record.reason
    assert math.isfinite(len(record.reason)) and len(record.reason) <= engine.MAX_REASON + 40


def test_progress_bar_on_a_terminal(tmp_path):
    import io

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    run(space_of(WRN_SMALL, tmp_path), tmp_path, progress=stream, chunk=2)
    text = stream.getvalue()
    assert text.count("\r") >= 1 and "9/9 points" in text and text.endswith("\n")
    assert "[" + "#" * 30 + "]" in text


def test_pareto_over_three_columns_equals_the_definition():
    # A row is on the front when no other row is at least as good on every column and better on
    # one; checked against that definition, by brute force, on random rows with ties.
    import random

    rng = random.Random(7)
    table = [{"point": i, "status": "ok", "a": rng.randint(0, 9), "b": rng.randint(0, 9), "accuracy": rng.randint(0, 9)}
             for i in range(300)]
    key = {r["point"]: (r["a"], r["b"], -r["accuracy"]) for r in table}

    def beaten(p):
        return any(all(x <= y for x, y in zip(key[q], key[p])) and (key[q] != key[p] or q < p)
                   for q in key if q != p)

    expected = {p for p in key if not beaten(p)}
    assert {r["point"] for r in sweep.pareto(table, "a", "b", "accuracy")} == expected
    two = {p for p in key if not any(key[q][:2] <= key[p][:2] and all(x <= y for x, y in zip(key[q][:2], key[p][:2]))
                                     and (key[q][:2] != key[p][:2] or q < p) for q in key if q != p)}
    assert {r["point"] for r in sweep.pareto(table, "a", "b")} == two
