"""Figures, built headless: the plotted data must be exactly the analyzer's numbers."""

import json
import math

import pytest

from archcost import accuracy, cli, zoo
from archcost.analysis import analyze
from archcost.commands import plot as plot_command
from archcost.report import plots
from archcost.roofline import load_results, parse_results

MODELS = ["alexnet_tv", "zfnet", "vgg11", "vgg16", "vgg16_bn", "vgg19"]


def _collection(ax, gid):
    (found,) = [c for c in ax.collections if c.get_gid() == gid]
    return found


def test_bubble_plots_the_analyzer_numbers():
    points, front = plot_command.bubble_points(MODELS)
    fig = plots.bubble(points, x_label="MACs", y_label="top-1 (%)", front=front)
    ax = fig.axes[0]
    bubbles = _collection(ax, "bubbles")
    offsets = bubbles.get_offsets()
    sizes = bubbles.get_sizes()
    for (x, y), size, name in zip(offsets, sizes, MODELS):
        totals = analyze(zoo.build(name)).totals
        assert x == totals["macs"]
        assert y == accuracy.best(name).accuracy
        assert size / totals["params"] == pytest.approx(sizes[0] / analyze(zoo.build(MODELS[0])).totals["params"])
    # The frontier line passes through exactly the undominated models.
    (line,) = [ln for ln in ax.get_lines() if ln.get_gid() == "pareto"]
    assert list(line.get_xdata()) == [offsets[i][0] for i in front]
    assert list(line.get_ydata()) == [offsets[i][1] for i in front]
    macs, acc = offsets[:, 0], offsets[:, 1]
    for i in range(len(MODELS)):
        dominated = any(macs[j] <= macs[i] and acc[j] > acc[i] for j in range(len(MODELS)) if j != i)
        assert (i in front) == (not dominated), MODELS[i]
    # Labels name the models and do not overlap one another.
    texts = [t for t in ax.texts if t.get_text() in MODELS]
    assert sorted(t.get_text() for t in texts) == sorted(MODELS)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in texts]
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (texts[i].get_text(), texts[j].get_text())


def test_bubble_x_axis_choices():
    points, _ = plot_command.bubble_points(["vgg16", "alexnet_tv"], x="activations", metric="top5")
    assert points[0].x == analyze(zoo.build("vgg16")).totals["activations"]
    assert points[1].y == 79.066  # torchvision AlexNet_Weights.IMAGENET1K_V1 acc@5


@pytest.mark.parametrize("ext, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_plot_bubble_cli_writes_each_format(tmp_path, capsys, ext, magic):
    out = tmp_path / f"bubble.{ext}"
    assert cli.main(["plot", "bubble", "vgg16", "alexnet_tv", "conv3x3", "-o", str(out)]) == 0
    assert out.read_bytes().startswith(magic)
    captured = capsys.readouterr()
    assert "skipping conv3x3" in captured.err and captured.err.count("\n") == 1


def test_plot_errors_are_one_line(tmp_path, capsys):
    for argv in (["plot", "bubble", "vgg16", "no_such_net", "-o", str(tmp_path / "a.png")],
                 ["plot", "bubble", "conv3x3", "-o", str(tmp_path / "a.png")],
                 ["plot", "bubble", "vgg16", "-o", str(tmp_path / "a.jpg")],
                 ["plot", "layers", "vgg16", "-o", str(tmp_path / "a.gif")]):
        assert cli.main(argv) == 2
        lines = capsys.readouterr().err.splitlines()
        errors = [line for line in lines if line.startswith("archcost: error:")]
        assert len(errors) == 1 and all(line.startswith("archcost: note:") for line in lines[:-1]), lines
    assert not list(tmp_path.iterdir())


def test_default_bubble_uses_every_registered_model_with_a_row():
    points, _ = plot_command.bubble_points([])
    names = [p.name for p in points]
    assert names == [m for m in accuracy.models_with() if m in zoo.names()]
    assert {"vgg16", "alexnet_tv"} <= set(names)


def test_layers_plot_vgg16_memory_early_params_late():
    report = analyze(zoo.build("vgg16"))
    names, activations, params = plot_command.layer_series(report)
    fig = plots.layers(names, activations, params)
    top, bottom = fig.axes
    heights = [[bar.get_height() for bar in ax.patches] for ax in (top, bottom)]
    folded = report.folded()
    assert heights[0] == [r.activations for r in folded]
    assert heights[1] == [r.params for r in folded]
    assert [t.get_text() for t in bottom.get_xticklabels()] == [r.name for r in folded]
    # CS231n Lecture 9 (seed 001): "Most memory is in early CONV, most params are in late FC".
    assert names[activations.index(max(activations))].startswith("conv1_")
    assert names[params.index(max(params))] == "fc6"
    early = sum(a for n, a in zip(names, activations) if n < "conv3")  # input, conv1_x, conv2_x, pools
    assert early > sum(activations) / 2
    fc = sum(p for n, p in zip(names, params) if n.startswith("fc"))
    assert fc > 0.85 * sum(params)


def test_layers_cli_log(tmp_path, capsys):
    out = tmp_path / "layers.svg"
    assert cli.main(["plot", "layers", "vgg16", "--log", "-o", str(out)]) == 0
    assert out.stat().st_size > 1000


RESULTS = {
    "machine": "synthetic", "date": "2026-11-25", "model": "vgg16", "peak_gflops": 100.0, "bandwidth_gbs": 10.0,
    "layers": [
        {"name": "conv1_1", "op": "conv", "macs": 86704128, "bytes": 13045248, "seconds": 0.004, "gflops": 43.4},
        {"name": "conv5_3", "op": "conv", "macs": 462422016, "bytes": 9838592, "seconds": 0.012},
        {"name": "fc6", "op": "fc", "macs": 102760448, "bytes": 411058176, "seconds": 0.05, "gflops": 4.1},
        {"name": "pool1", "op": "maxpool", "macs": 0, "flops": 2408448, "bytes": 16056320, "seconds": 0.002},
    ],
}


def test_roofline_plots_intensity_and_measured_gflops(tmp_path):
    results = parse_results(RESULTS)
    xs, ys = results.ceiling()
    fig = plots.roofline(plot_command.roofline_points(results), xs, ys, peak_gflops=100.0, bandwidth_gbs=10.0)
    ax = fig.axes[0]
    plotted = {}
    for op in ("conv", "fc", "maxpool"):
        plotted[op] = [v for o in _collection(ax, f"layers:{op}").get_offsets() for v in o]
    expected = {"conv": [(2 * 86704128 / 13045248, 43.4), (2 * 462422016 / 9838592, 2 * 462422016 / 0.012 / 1e9)],
                "fc": [(2 * 102760448 / 411058176, 4.1)], "maxpool": [(2408448 / 16056320, 2408448 / 0.002 / 1e9)]}
    for op in expected:
        assert plotted[op] == pytest.approx([v for xy in expected[op] for v in xy], rel=1e-12)
    (ceiling,) = [ln for ln in ax.get_lines() if ln.get_gid() == "ceiling"]
    for x, y in zip(ceiling.get_xdata(), ceiling.get_ydata()):
        assert y == pytest.approx(min(100.0, 10.0 * x))
    assert 10.0 in list(ceiling.get_xdata())  # the ridge point: 100 GFLOP/s / 10 GB/s
    path = tmp_path / "results.json"
    path.write_text(json.dumps(RESULTS))
    assert load_results(path) == results
    assert cli.main(["plot", "roofline", str(path), "-o", str(tmp_path / "roof.png")]) == 0


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("peak_gflops"), "peak_gflops"),
    (lambda d: d["layers"][1].update(bytes=-5), "layers[1].bytes"),
    (lambda d: d["layers"][0].pop("seconds"), "layers[0]: missing field 'seconds'"),
    (lambda d: d.update(layers=[]), "layers must be"),
])
def test_roofline_schema_errors(tmp_path, capsys, mutate, field):
    data = json.loads(json.dumps(RESULTS))
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    assert cli.main(["plot", "roofline", str(path), "-o", str(tmp_path / "roof.png")]) == 2
    err = capsys.readouterr().err
    assert field in err and err.count("\n") == 1


def test_human_axis_and_bubble_area_scale():
    points = [plots.Bubble("a", 1e9, 70.0, 1e6), plots.Bubble("b", 4e9, 75.0, 4e6)]
    fig = plots.bubble(points, x_label="MACs", y_label="top-1")
    sizes = _collection(fig.axes[0], "bubbles").get_sizes()
    assert sizes[1] == pytest.approx(4 * sizes[0]) and max(sizes) == plots.MAX_BUBBLE_AREA
    assert math.isclose(sizes[0], plots.MAX_BUBBLE_AREA / 4)


def _extents_of_bubble_chart(models, dataset):
    """(label boxes, bubble circles, axes box, legend circles, legend text boxes) in pixels, as drawn."""
    from matplotlib.text import Text

    from archcost.commands.plot import bubble_points

    points, front = bubble_points(models, "macs", "top1", dataset)
    fig = plots.bubble(points, x_label="x", y_label="y", front=front)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    labels = [Text.get_window_extent(t, renderer) for t in ax.texts]
    to_px = fig.dpi / 72
    scale = plots.MAX_BUBBLE_AREA / max(p.size for p in points)
    circles = [(*ax.transData.transform((p.x, p.y)), math.sqrt(p.size * scale) / 2 * to_px) for p in points]
    legend = ax.get_legend()
    handles = []
    for h in legend.legend_handles:
        if hasattr(h, "get_sizes") and len(h.get_sizes()):
            (cx, cy), = h.get_offset_transform().transform(h.get_offsets())
            handles.append((cx, cy, math.sqrt(h.get_sizes()[0]) / 2 * to_px))
    texts = [Text.get_window_extent(t, renderer) for t in legend.get_texts()]
    return labels, circles, ax.get_window_extent(renderer), handles, texts


def _boxes_meet(a, b):
    return min(a.x1, b.x1) > max(a.x0, b.x0) and min(a.y1, b.y1) > max(a.y0, b.y0)


def _circle_meets_box(circle, box):
    cx, cy, r = circle
    dx, dy = max(box.x0 - cx, 0, cx - box.x1), max(box.y0 - cy, 0, cy - box.y1)
    return dx * dx + dy * dy < r * r


@pytest.mark.parametrize("dataset", ["imagenet", "cifar10"])
def test_bubble_labels_overlap_nothing_measured_on_the_drawn_extents(dataset):
    # Issue 18: labels were drawn over each other (resnext50/resnet50/densenet264), onto other
    # bubbles (a CIFAR label on the wrong bubble), and the legend's largest circle over its text.
    labels, circles, axes_box, handles, texts = _extents_of_bubble_chart([], dataset)
    assert len(labels) == len(circles) > 5
    touching = [(i, j) for i in range(len(labels)) for j in range(i) if _boxes_meet(labels[i], labels[j])]
    assert touching == []
    on_other = [(i, k) for i, box in enumerate(labels) for k, c in enumerate(circles) if k != i and _circle_meets_box(c, box)]
    assert on_other == []
    assert all(axes_box.x0 <= b.x0 and b.x1 <= axes_box.x1 and axes_box.y0 <= b.y0 and b.y1 <= axes_box.y1
               for b in labels)
    assert handles and not [(h, t) for h in handles for t in texts if _circle_meets_box(h, t)]
    assert not [(a, b) for i, a in enumerate(handles) for b in handles[:i]
                if math.hypot(a[0] - b[0], a[1] - b[1]) < a[2] + b[2]]


def test_training_plots_write_their_files(tmp_path):
    from archcost.cli import main

    for argv in (["plot", "train-memory", "resnet18", "--batch", "2", "--optimizer", "adam", "--checkpoint", "sqrt"],
                 ["plot", "checkpoint", "resnet18", "lenet5"]):
        out = tmp_path / f"{argv[1]}.png"
        assert main([*argv, "-o", str(out)]) == 0
        assert out.stat().st_size > 10_000
