"""archcost designs: the lectures' design pairs, with ratios computed from the two models.

Expected values are the papers' and lectures' own arithmetic, each with its source."""

import json

from archcost import cli, zoo
from archcost.analysis import analyze
from archcost.zoo.examples import DESIGNS


def _designs(capsys) -> dict:
    assert cli.main(["designs", "--format", "json"]) == 0
    return {(d["baseline"], d["alternative"]): d for d in json.loads(capsys.readouterr().out)}


def test_every_design_pair_is_listed_with_its_computed_totals(capsys):
    got = _designs(capsys)
    assert len(got) == len(DESIGNS)
    for _, base, alt, source in DESIGNS:
        row = got[(base, alt)]
        assert row["source"] == source
        assert row["baseline_totals"]["macs"] == analyze(zoo.build(base)).totals["macs"]
        assert row["alternative_totals"]["params"] == analyze(zoo.build(alt)).totals["params"]


def test_lecture_ratios(capsys):
    got = _designs(capsys)
    # CS231n Lecture 9 (seed 001): 854M ops naive; the bottleneck line items sum to 271,351,808.
    assert got[("inception_naive", "inception_bottleneck")]["ratios"]["macs"] == 271_351_808 / 854_196_224
    # seed 000 (Ng): 120,422,400 vs 12,443,648 multiplications.
    assert got[("conv5x5_28x28x192", "conv5x5_bottleneck")]["ratios"]["macs"] == 12_443_648 / 120_422_400
    # Inception v3 Sec. 3.1: two 3x3 cost 18/25 of one 5x5; Sec. 3.2: 1x3+3x1 cost 6/9 of 3x3.
    assert got[("conv5x5", "conv3x3_x2")]["ratios"]["macs"] == 18 / 25
    assert got[("conv3x3", "conv1x3_3x1")]["ratios"]["params"] == 6 / 9
    # VGG Sec. 2.3: three 3x3 layers have 3 (3^2 C^2) = 27 C^2 weights vs 49 C^2 for one 7x7.
    assert got[("conv7x7", "conv3x3_x3")]["ratios"]["params"] == 27 / 49


def test_depthwise_separable_reduction():
    # MobileNet v1 Sec. 3.1: separable / standard = 1/N + 1/D_K^2, here N = 512 outputs, D_K = 3.
    std = analyze(zoo.build("conv3x3_standard")).totals
    sep = analyze(zoo.build("conv3x3_separable")).totals
    assert sep["macs"] / std["macs"] == 1 / 512 + 1 / 9
    assert std["macs"] == 14 * 14 * 512 * 512 * 9  # D_K^2 M N D_F^2


def test_resnet_fig5_and_resnext_fig1_blocks():
    basic = analyze(zoo.build("resblock_basic")).totals
    bottleneck = analyze(zoo.build("resblock_bottleneck")).totals
    resnext = analyze(zoo.build("resnext_block_32x4d")).totals
    # ResNet Fig. 5: basic block 2 x 3x3x64x64; bottleneck 256*64 + 9*64*64 + 64*256 weights.
    assert basic["params"] == 2 * 9 * 64 * 64
    assert bottleneck["params"] == 256 * 64 + 9 * 64 * 64 + 64 * 256
    # ResNeXt Fig. 1: both blocks have "~70k" parameters: 69,632 and 256*128 + 32*(9*4*4) + 128*256.
    assert resnext["params"] == 256 * 128 + 32 * 9 * 4 * 4 + 128 * 256
    assert abs(resnext["params"] - 70_000) < 500 and abs(bottleneck["params"] - 70_000) < 500
    assert resnext["macs"] == resnext["weights"] * 56 * 56


def test_designs_formats(capsys):
    for fmt in ("text", "markdown", "csv", "html"):
        assert cli.main(["designs", "--format", fmt]) == 0
        out = capsys.readouterr().out
        assert "resnext_block_32x4d" in out
    assert cli.main(["designs"]) == 0
    assert "0.720x" in capsys.readouterr().out  # 18/25
