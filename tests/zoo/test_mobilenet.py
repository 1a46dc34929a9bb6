"""MobileNet v1 (Howard et al. 2017): Table 1's shapes, Table 2's shares, the options' errors."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.cli import main
from archcost.errors import ArchcostError

# Table 1, output of named layers at 224x224x3 (C, H, W).
TABLE1 = {
    "conv1.conv": (32, 112, 112),
    "conv_dw_1.conv": (32, 112, 112),
    "conv_pw_1.conv": (64, 112, 112),
    "conv_dw_2.conv": (64, 56, 56),
    "conv_pw_2.conv": (128, 56, 56),
    "conv_pw_4.conv": (256, 28, 28),
    "conv_pw_6.conv": (512, 14, 14),
    "conv_pw_11.conv": (512, 14, 14),
    "conv_dw_12.conv": (512, 7, 7),
    "conv_pw_12.conv": (1024, 7, 7),
    "conv_dw_13.conv": (1024, 7, 7),  # printed "s2" in Table 1; its output row stays 7x7
    "conv_pw_13.conv": (1024, 7, 7),
    "pool.avg": (1024, 1, 1),
    "fc.fc": (1000,),
}


def test_table1_shapes():
    g = zoo.build("mobilenet_v1")
    for name, shape in TABLE1.items():
        assert g.shape(name)[1:] == shape, name


def _layer_type(graph, rec):
    """Table 2's rows: Conv 1x1, Conv DW 3x3, Conv 3x3, Fully Connected."""
    op = graph.op(rec.name)
    if rec.op == "conv":
        kind = "Conv DW" if op.groups > 1 else "Conv"
        return f"{kind} {op.kernel[0]}x{op.kernel[1]}"
    return "Fully Connected" if rec.op == "fc" else None


def _shares(report, key):
    totals = {}
    for rec in report.records:
        row = _layer_type(report.graph, rec)
        if row:
            totals[row] = totals.get(row, 0) + getattr(rec, key)
    whole = sum(totals.values())
    return {row: 100 * v / whole for row, v in totals.items()}


# Howard et al. 2017, Table 2 "Resource Per Layer Type for MobileNet": (mult-adds %, params %).
TABLE2 = {
    "Conv 1x1": (94.86, 74.59),
    "Conv DW 3x3": (3.06, 1.06),
    "Conv 3x3": (1.19, 0.02),
    "Fully Connected": (0.18, 24.33),
}


def test_table2_shares_of_parameters():
    # The table's parameters are the conv and FC weights (no BN, no FC bias): 4,209,088.
    shares = _shares(analyze(zoo.build("mobilenet_v1")), "weights")
    assert set(shares) == set(TABLE2)
    for row, (_, stated) in TABLE2.items():
        assert abs(shares[row] - stated) <= 0.005, (row, shares[row])


def test_table2_shares_of_mult_adds():
    shares = _shares(analyze(zoo.build("mobilenet_v1")), "macs")
    for row, (stated, _) in TABLE2.items():
        if row == "Conv 3x3":
            continue
        assert abs(shares[row] - stated) <= 0.005, (row, shares[row])
    # Departure: the first conv's 10,838,016 mult-adds are 1.91% of 568.7M, not the printed 1.19%
    # (digits swapped: the printed column sums to 99.29%, with 1.91 it sums to 100.01%).
    assert round(shares["Conv 3x3"], 2) == 1.91
    assert abs(sum(s for s, _ in TABLE2.values()) - 100) > 0.5


def test_stride_of_the_last_depthwise_conv_does_not_change_params():
    g = zoo.build("mobilenet_v1")
    assert g.op("conv_dw_13.conv").stride == (1, 1)
    assert g.op("conv_dw_12.conv").stride == (2, 2)


def test_alpha_and_resolution_options_and_pattern_agree():
    by_pattern = analyze(zoo.build("mobilenet_v1_0.75_192")).totals
    by_options = analyze(zoo.build("mobilenet_v1", alpha=0.75, resolution=192)).totals
    by_input = analyze(zoo.build("mobilenet_v1", alpha=0.75, input_shape=(3, 192, 192))).totals
    assert by_pattern == by_options == by_input
    g = zoo.build("mobilenet_v1_0.75_192")
    assert g.shape("conv1.conv")[1:] == (24, 96, 96)  # int(0.75 * 32)
    assert g.shape("conv_pw_13.conv")[1:] == (768, 6, 6)


@pytest.mark.parametrize("alpha", [0, -0.5, "wide"])
def test_bad_alpha_is_one_line_error(alpha):
    with pytest.raises(ArchcostError, match="alpha"):
        zoo.build("mobilenet_v1", alpha=alpha)


def test_bad_alpha_exits_2_on_the_cli(capsys):
    assert main(["table", "mobilenet_v1", "-o", "alpha=0"]) == 2
    err = capsys.readouterr().err
    assert "alpha must be a number > 0" in err and len(err.strip().splitlines()) == 1


def test_one_top_level_scope_per_table1_row():
    g = zoo.build("mobilenet_v1")
    stages = list(dict.fromkeys(n.split(".")[0] for n in g.topological_order()))
    rows = [f"conv_{kind}_{i}" for i in range(1, 14) for kind in ("dw", "pw")]
    assert stages == ["input", "conv1", *rows, "pool", "fc"]
