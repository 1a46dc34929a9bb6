"""The shipped accuracy table (archcost/data/accuracy.csv) and its reader."""

import re

import pytest

from archcost import accuracy, zoo
from archcost.errors import ArchcostError

# Every model the zoo has or is getting (the reports issue's list). A row may name one of these
# before its family module lands; any other name must be registered (or a parametric wrn-D-K).
ZOO_NAMES = {
    *(f"vgg{d}{bn}" for d in (11, 13, 16, 19) for bn in ("", "_bn")),
    "alexnet", "alexnet_2gpu", "alexnet_tv", "zfnet", "lenet5", "googlenet", "googlenet_tv", "bn_inception",
    "inception_v3", "inception_v4", "inception_resnet_v2",
    *(f"resnet{d}{tv}" for d in (18, 34, 50, 101, 152) for tv in ("", "_tv")),
    "plain18", "plain34", *(f"resnet{d}" for d in (20, 32, 44, 56, 110, 1202)),
    "preresnet164", "preresnet1001", "preresnet200", "wrn50_2",
    "resnext50_32x4d", "resnext101_32x4d", "resnext101_32x8d",
    "densenet121", "densenet169", "densenet201", "densenet264", "densenet_bc_100_12", "densenet_40_12",
    "squeezenet1_0", "squeezenet1_1", "squeezenet1_0_bypass", "mobilenet_v1", "nin", "nin_cifar",
    "se_resnet50", "res2net50_26w_4s", "convnext_t", "fractalnet", "stn",
}
WRN = re.compile(r"wrn-\d+-\d+")


def test_schema_of_every_row():
    rows = accuracy.rows()
    assert len(rows) > 100
    for r in rows:
        assert r.model in ZOO_NAMES or WRN.fullmatch(r.model) or r.model in zoo.names(), r
        assert r.dataset in accuracy.DATASETS and r.metric in accuracy.METRICS
        assert 0 < r.value < 100
        assert r.source.strip() and r.protocol.strip()
        assert re.search(r"Table \d|meta|Fig\.", r.source), f"line {r.line}: source must name a table: {r.source}"
        assert r.crops is None or r.crops >= 1
        assert r.models >= 1
        if r.dataset != "imagenet":
            assert r.metric == "top1_err", f"line {r.line}: CIFAR/MNIST rows are errors"


def test_no_duplicate_rows():
    keys = [(r.model, r.dataset, r.metric, r.crops, r.models, r.protocol) for r in accuracy.rows()]
    assert len(keys) == len(set(keys))


def test_error_and_accuracy_rows_agree_in_range():
    # A top-5 figure is never worse than the same source's top-1 figure.
    by_key = {(r.model, r.dataset, r.crops, r.models, r.protocol, r.source, r.k): r for r in accuracy.rows()}
    pairs = 0
    for (model, dataset, crops, models, protocol, source, k), r in by_key.items():
        if k == "top1" and (key5 := (model, dataset, crops, models, protocol, source, "top5")) in by_key:
            assert by_key[key5].accuracy > r.accuracy, r
            pairs += 1
    assert pairs > 30


def test_lecture_and_torchvision_figures():
    rows = accuracy.rows()

    def value(model, metric, dataset="imagenet", crops=1, models=1):
        (row,) = [r for r in rows if (r.model, r.metric, r.dataset, r.crops, r.models) == (model, metric, dataset, crops, models)]
        return row.value

    # He et al. 2015, Table 6 (seed 004): ResNet-110 on CIFAR-10, 6.43% error.
    assert value("resnet110", "top1_err", "cifar10") == 6.43
    # He et al. 2015, Table 3 (seed 004): ResNet-152 10-crop 21.43 / 5.71.
    assert value("resnet152", "top1_err", crops=10) == 21.43 and value("resnet152", "top5_err", crops=10) == 5.71
    # Szegedy et al. 2015, Table 3 (seed 004): 7 models, 144 crops, 6.67% top-5 error.
    assert value("googlenet", "top5_err", crops=144, models=7) == 6.67
    # WRN paper (seed 003): WRN-28-10 4.17 / 20.50.
    assert value("wrn-28-10", "top1_err", "cifar10") == 4.17 and value("wrn-28-10", "top1_err", "cifar100") == 20.5
    # torchvision VGG16_Weights.IMAGENET1K_V1: acc@1 71.592.
    assert value("vgg16", "top1") == 71.592


def test_best_prefers_single_model_fewest_crops():
    row = accuracy.best("googlenet", "top5")
    assert (row.crops, row.models, row.value, row.accuracy) == (1, 1, 10.07, pytest.approx(89.93))
    assert accuracy.best("resnet152", "top5").crops == 10  # the ensemble's 3.57 is never used
    assert accuracy.best("vgg16").source.startswith("torchvision")  # listed before the paper's
    assert accuracy.best("resnet110", "top1", "cifar10").accuracy == pytest.approx(93.57)
    assert accuracy.best("no_such_model") is None
    with pytest.raises(ArchcostError, match="--metric"):
        accuracy.best("vgg16", "top3")


def test_parse_rejects_bad_rows():
    header = ",".join(accuracy.COLUMNS)
    good = "vgg16,imagenet,top1,71.5,1,1,p,torchvision meta"
    assert accuracy.parse(f"{header}\n{good}\n")[0].value == 71.5
    for bad, field in ((good.replace("top1", "top3"), "metric"), (good.replace("71.5", "171.5"), "value"),
                       (good.replace(",1,1,", ",x,1,"), "crops"), (good.replace("torchvision meta", ""), "source")):
        with pytest.raises(ArchcostError, match=f"line 2: {field}"):
            accuracy.parse(f"{header}\n{bad}\n")


def test_pareto_front():
    # cost, score: (1, 50) (2, 40) (3, 60) (4, 59) (3, 55): only 1 -> 50 and 3 -> 60 are undominated.
    assert accuracy.pareto_front([1, 2, 3, 4, 3], [50, 40, 60, 59, 55]) == [0, 2]
