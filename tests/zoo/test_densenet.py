"""DenseNet (Huang et al. 2017): Table 1's output sizes and widths, CIFAR depth rule, errors."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.errors import ArchcostError

# Table 1, DenseNet-121 at 224x224: output of each stage (C, H, W); widths follow from
# 64 + 6*32 = 256 -> 128, 128 + 12*32 = 512 -> 256, 256 + 24*32 = 1024 -> 512, 512 + 16*32 = 1024.
TABLE1_121 = {
    "conv1.conv": (64, 112, 112),
    "pool1.pool": (64, 56, 56),
    "dense_block1.layer6.concat": (256, 56, 56),
    "transition1.pool": (128, 28, 28),
    "dense_block2.layer12.concat": (512, 28, 28),
    "transition2.pool": (256, 14, 14),
    "dense_block3.layer24.concat": (1024, 14, 14),
    "transition3.pool": (512, 7, 7),
    "dense_block4.layer16.concat": (1024, 7, 7),
    "classifier.pool": (1024, 1, 1),
    "classifier.fc": (1000,),
}


def test_densenet121_table1_shapes():
    g = zoo.build("densenet121")
    for name, shape in TABLE1_121.items():
        assert g.shape(name)[1:] == shape, name
    assert g.shape("dense_block1.layer1.conv1")[1] == 128  # bottleneck 4k
    assert g.shape("dense_block1.layer1.conv2")[1] == 32  # growth rate k


@pytest.mark.parametrize("name, blocks, width", [
    ("densenet169", (6, 12, 32, 32), 1664),
    ("densenet201", (6, 12, 48, 32), 1920),
    ("densenet264", (6, 12, 64, 48), 2688),
])
def test_table1_block_sizes_and_final_width(name, blocks, width):
    g = zoo.build(name)
    for i, layers in enumerate(blocks, start=1):
        assert f"dense_block{i}.layer{layers}.concat" in g
        assert f"dense_block{i}.layer{layers + 1}.concat" not in g
    assert g.shape("classifier.pool")[1:] == (width, 1, 1)
    # 1 stem conv + 2 convs per layer + 3 transitions + FC = the depth in the name, except that
    # Table 1's DenseNet-264 column (6, 12, 64, 48) has 265 such layers (docs/zoo/densenet.md).
    convs = sum(1 for n in g.topological_order() if g.op(n).kind in ("conv", "fc"))
    assert convs == (265 if name == "densenet264" else int(name[len("densenet"):]))


def test_cifar_models():
    g = zoo.build("densenet_bc_100_12")
    assert g.shape("conv1.conv")[1:] == (24, 32, 32)  # 2k maps
    assert g.shape("transition1.pool")[1:] == (108, 16, 16)  # floor(0.5 * (24 + 16*12))
    assert g.shape("classifier.pool")[1:] == (342, 1, 1)
    g = zoo.build("densenet_40_12")
    assert g.shape("conv1.conv")[1:] == (16, 32, 32)
    assert g.shape("transition1.pool")[1:] == (160, 16, 16)  # no compression: 16 + 12*12
    assert g.shape("classifier.pool")[1:] == (448, 1, 1)  # 160 + 144 + 144
    assert analyze(zoo.build("densenet_bc_100_12")).totals["params"] == 769_162
    assert analyze(zoo.build("densenet_40_12")).totals["params"] == 1_019_722


def test_pattern_builds_cifar_variants():
    assert zoo.build("densenet_bc_250_24").shape("dense_block1.layer41.concat")[1] == 48 + 41 * 24


def test_bad_depth_is_one_line_error():
    with pytest.raises(ArchcostError, match=r"depth must be 6n \+ 4"):
        zoo.build("densenet_bc_101_12")
    with pytest.raises(ArchcostError, match="growth_rate must be a positive int"):
        zoo.build("densenet121", growth_rate=0)
    with pytest.raises(ArchcostError, match=r"compression must be in \(0, 1\]"):
        zoo.build("densenet121", compression=1.5)


def test_one_top_level_scope_per_table1_row():
    g = zoo.build("densenet121")
    stages = list(dict.fromkeys(n.split(".")[0] for n in g.topological_order()))
    assert stages == [
        "input", "conv1", "pool1", "dense_block1", "transition1", "dense_block2", "transition2",
        "dense_block3", "transition3", "dense_block4", "classifier",
    ]
