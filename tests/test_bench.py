"""archcost bench: per-layer timing on the CPU kernels, written in the RESULTS.json schema the
roofline chart reads. No timing is asserted (the machine is shared): only structure and the
numbers that are computed, not measured (MACs, FLOPs, bytes)."""

import json
import math

from archcost import zoo
from archcost.analysis import analyze
from archcost.cli import main
from archcost.roofline import load_results


def test_bench_writes_results_the_roofline_reads(tmp_path, capsys):
    path = tmp_path / "RESULTS.json"
    assert main(["bench", "lenet5", "--repeat", "2", "-o", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "2/3 forwards" in err and "3/3 forwards" in err  # the progress bar: warm-up + 2
    assert "total:" in out and "GFLOP/s" in out and "% peak" in out
    results = load_results(path)
    data = json.loads(path.read_text())
    assert data["batch"] == 1 and data["repeat"] == 2 and results.peak_gflops > 0 and results.bandwidth_gbs > 0
    report = analyze(zoo.build("lenet5"))
    records = {r.name: r for r in report.records}
    shapes = {r.name: r.output_shape for r in report.records}
    assert [layer.name for layer in results.layers] == [r.name for r in report.records if r.flops > 0]
    for layer in results.layers:
        rec = records[layer.name]
        assert (layer.macs, layer.flops) == (rec.macs, rec.flops)
        reads = sum(math.prod(shapes[s]) for s in rec.inputs)
        assert layer.bytes == 4 * (reads + rec.params + math.prod(rec.output_shape))
        assert layer.seconds > 0
    assert main(["plot", "roofline", str(path), "-o", str(tmp_path / "roofline.png")]) == 0
    assert (tmp_path / "roofline.png").stat().st_size > 1000


def test_bench_formats_and_batch(capsys):
    assert main(["bench", "lenet5", "--repeat", "1", "--batch", "3", "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["batch"] == 3
    conv = next(layer for layer in data["layers"] if layer["op"] == "conv")
    assert conv["macs"] == analyze(zoo.build("lenet5"), batch=3).records[1].macs
    assert main(["bench", "lenet5", "--repeat", "1", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("name,op,label,macs,flops,bytes,seconds,gflops")
    assert len(lines) == 1 + len(analyze(zoo.build("lenet5")).records) - 1  # every layer but the input


def test_bench_unknown_device_is_one_line(capsys):
    assert main(["bench", "lenet5", "--device", "nosuch"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown 'nosuch'" in err


def test_peak_is_measured_once_and_cached():
    from archcost.kernels.cpu import peak

    first = peak.measure_peak()
    assert first["peak_gflops"] > 0 and first["bandwidth_gbs"] > 0
    assert peak.measure_peak() == first


def test_conv_linear_total_includes_the_fc_layers():
    # Issue 18: the total filtered on "linear" while the op kind is "fc", so LeNet-5's
    # "conv+linear" time was exactly its three convs'.
    from archcost.benchmark import benchmark

    data = benchmark(zoo.build("lenet5"), repeat=1)
    kinds = {layer["op"] for layer in data["layers"]}
    assert {"conv", "fc"} <= kinds
    chosen = [layer for layer in data["layers"] if layer["op"] in ("conv", "fc")]
    assert sum(1 for layer in chosen if layer["op"] == "fc") == 2  # F6 and the output layer
    assert math.isclose(data["totals"]["conv_linear_seconds"], sum(layer["seconds"] for layer in chosen))
    flops = sum(layer["flops"] for layer in chosen)
    assert math.isclose(data["totals"]["conv_linear_gflops"], flops / data["totals"]["conv_linear_seconds"] / 1e9)
