"""LeNet-5 as published (LeCun et al. 1998, Sec. II-B): per-layer params and connections."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError
from archcost.zoo.lenet import C3_TABLE

# Sec. II-B, layer by layer: (output C, H, W), trainable parameters, connections.
PAPER = {
    "c1": ((6, 28, 28), 156, 122_304),
    "s2": ((6, 14, 14), 12, 5_880),
    "c3": ((16, 10, 10), 1_516, 151_600),
    "s4": ((16, 5, 5), 32, 2_000),
    "c5": ((120, 1, 1), 48_120, 48_120),
    "f6": ((84,), 10_164, 10_164),
}
LAST = {"c1": "c1.act", "s2": "s2.act", "c3": "c3.act", "s4": "s4.act", "c5": "c5.act", "f6": "f6.act"}


def _by_stage(report, key):
    out = {}
    for rec in report.records:
        stage = rec.name.split(".")[0]
        out[stage] = out.get(stage, 0) + getattr(rec, key)
    return out


def test_params_per_layer():
    params = _by_stage(analyze(zoo.build("lenet5_paper")), "params")
    for stage, (_, stated, _) in PAPER.items():
        assert params[stage] == stated, stage
    assert params["output"] == 0  # the RBF centres are fixed


def test_shapes_per_layer():
    g = zoo.build("lenet5_paper")
    for stage, (shape, _, _) in PAPER.items():
        node = "c5.conv" if stage == "c5" else LAST[stage]
        assert g.shape(node)[1:] == shape, stage
    assert g.shape("output.rbf") == (1, 10)


def test_connections_of_conv_and_fc_layers():
    # The paper's connections of a conv/FC layer: one per multiply-accumulate plus one per bias.
    report = analyze(zoo.build("lenet5_paper"))
    connections = {}
    for rec in report.records:
        if rec.op in ("conv", "fc"):
            stage = rec.name.split(".")[0]
            connections[stage] = connections.get(stage, 0) + rec.macs + rec.other
    for stage in ("c1", "c3", "c5", "f6"):
        assert connections[stage] == PAPER[stage][2], stage


def test_subsampling_connections():
    # S2/S4: per output unit, four inputs and a bias.
    g = zoo.build("lenet5_paper")
    for stage in ("s2", "s4"):
        c, h, w = g.shape(f"{stage}.pool")[1:]
        assert c * h * w * (2 * 2 + 1) == PAPER[stage][2]


def test_c3_table_matches_table_1():
    # Table I by rows (S2 map -> the C3 maps it feeds).
    rows = {
        0: {0, 4, 5, 6, 9, 10, 11, 12, 14, 15},
        1: {0, 1, 5, 6, 7, 10, 11, 12, 13, 15},
        2: {0, 1, 2, 6, 7, 8, 11, 13, 14, 15},
        3: {1, 2, 3, 6, 7, 8, 9, 12, 14, 15},
        4: {2, 3, 4, 7, 8, 9, 10, 12, 13, 15},
        5: {3, 4, 5, 8, 9, 10, 11, 13, 14, 15},
    }
    for s2_map, c3_maps in rows.items():
        assert {j for j, inputs in enumerate(C3_TABLE) if s2_map in inputs} == c3_maps


def test_modern_lenet5_kept():
    assert analyze(zoo.build("lenet5")).totals["params"] == 61_706  # dense C3, linear output


def test_bad_connection_table_names_the_layer():
    with pytest.raises(ArchcostError, match=r"c3\.map0\.select"):
        zoo.build("lenet5_paper", table=((0, 1, 6),) + C3_TABLE[1:])
