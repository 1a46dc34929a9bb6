"""The layer graph and its builder helpers: ordering, naming, shape checks, error text."""

import pytest

from archcost.errors import ArchcostError
from archcost.graph import Graph
from archcost.ops import Add, Concat, Conv2d, MaxPool2d, ReLU


def test_concat_order_follows_inputs_not_edges():
    g = Graph()
    x = g.input((4, 8, 8))
    a = g.add(Conv2d(3, 1), x, name="a")
    b = g.add(Conv2d(5, 1), x, name="b")
    ab = g.add(Concat(), b, a, name="ba")
    assert g.inputs(ab) == ("b", "a")
    assert g.shape(ab) == (1, 8, 8, 8)
    assert g.topological_order() == ["input", "a", "b", "ba"]


def test_scopes_and_auto_names():
    g = Graph()
    x = g.input((3, 8, 8))
    with g.scope("layer1"), g.scope(0):
        y = g.seq(x, Conv2d(4, 3, padding=1), ReLU(), ("conv2", Conv2d(4, 3, padding=1)), ReLU())
    assert y == "layer1.0.act2"
    assert "layer1.0.conv1" in g and "layer1.0.conv2" in g and "layer1.0.act1" in g


def test_branches_concat_and_residual():
    g = Graph()
    x = g.input((16, 8, 8))
    ends = g.branches(x, [Conv2d(8, 1)], [Conv2d(4, 3, padding=1)], [MaxPool2d(3, 1, padding=1)])
    out = g.concat(*ends)
    assert g.shape(out) == (1, 28, 8, 8)
    y = g.residual(out, [Conv2d(28, 3, padding=1), ReLU()], post=[ReLU()], name="res")
    assert g.inputs("res")[1] == out
    assert g.shape(y) == (1, 28, 8, 8)


def test_repeat():
    g = Graph()
    x = g.input((4, 8, 8))
    y = g.repeat(x, 3, lambda g, x, i: g.add(Conv2d(4, 3, padding=1), x, name="conv"), prefix="block")
    assert y == "block2.conv"
    assert len(g) == 4


def test_errors_name_the_layer():
    g = Graph()
    x = g.input((3, 4, 4))
    with pytest.raises(ArchcostError, match=r"layer 'big' \(conv 5x5/1, 8\): kernel 5 .* larger than the padded input 4"):
        g.add(Conv2d(8, 5), x, name="big")
    a = g.add(Conv2d(8, 1), x, name="a")
    b = g.add(Conv2d(4, 1), x, name="b")
    with pytest.raises(ArchcostError, match="layer 'sum'.*channel mismatch"):
        g.add(Add(), a, b, name="sum")
    c = g.add(MaxPool2d(2), a, name="c")
    with pytest.raises(ArchcostError, match="layer 'cat'.*Concat needs equal spatial size"):
        g.add(Concat(), a, c, name="cat")
    with pytest.raises(ArchcostError, match="unknown input 'nope'"):
        g.add(ReLU(), "nope", name="r")
    with pytest.raises(ArchcostError, match="already exists"):
        g.add(ReLU(), x, name="a")
    with pytest.raises(ArchcostError, match="layer 'input'"):
        Graph().input((3, 0, 4))


def test_failed_add_leaves_graph_unchanged():
    g = Graph()
    x = g.input((3, 4, 4))
    with pytest.raises(ArchcostError):
        g.add(Conv2d(8, 5), x, name="big")
    assert len(g) == 1 and "big" not in g


# --- the layer limit (docs/limits.md) -------------------------------------------------------------
def _relu_chain(g, x, n):
    for _ in g.loop(n, "relu"):
        x = g.add(ReLU(), x)
    return x


def test_layer_limit_refuses_a_count_before_building(monkeypatch):
    monkeypatch.setenv("ARCHCOST_MAX_LAYERS", "50")
    g = Graph("g")
    x = g.input((3, 8, 8))
    with pytest.raises(ArchcostError, match=r"would have 1,000,001 layers .* limit of 50"):
        _relu_chain(g, x, 1_000_000)
    assert len(g) == 1  # nothing was built


def test_layer_limit_is_exact_at_the_boundary(monkeypatch):
    monkeypatch.setenv("ARCHCOST_MAX_LAYERS", "50")
    g = Graph("g")
    _relu_chain(g, g.input((3, 8, 8)), 49)
    assert len(g) == 50
    with pytest.raises(ArchcostError, match="more than 50 layers"):
        g.add(ReLU(), g.topological_order()[-1])  # the insertion itself is the last guard


def test_repeat_estimates_from_its_first_block(monkeypatch):
    monkeypatch.setenv("ARCHCOST_MAX_LAYERS", "1000")
    g = Graph("g")
    x = g.input((3, 8, 8))
    block = lambda g, x, i: g.seq(x, Conv2d(3, 3, padding=1), ReLU(), Conv2d(3, 3, padding=1))  # noqa: E731
    with pytest.raises(ArchcostError, match=r"would have 1,501 layers \(500 x repeated block\)"):
        g.repeat(x, 500, block)
    assert len(g) == 4  # the first block only


def test_nested_loops_multiply_before_the_inner_ones_finish(monkeypatch):
    monkeypatch.setenv("ARCHCOST_MAX_LAYERS", "10000")
    g = Graph("g")
    x = g.input((3, 8, 8))
    with pytest.raises(ArchcostError, match="1,000,001 layers"):
        g.repeat(x, 1000, lambda g, x, i: g.repeat(x, 1000, lambda g, x, j: g.add(ReLU(), x)))
    assert len(g) < 1000  # refused inside the first inner loop, long before 10^6


def test_default_layer_limit_holds_the_largest_zoo_model():
    from archcost import zoo
    from archcost.graph import DEFAULT_MAX_LAYERS, max_layers

    assert max_layers() == DEFAULT_MAX_LAYERS
    assert len(zoo.build("resnet1202")) < DEFAULT_MAX_LAYERS


@pytest.mark.parametrize("value", ["0", "-1", "ten", "1e6", "１０"])
def test_bad_layer_limit_in_the_environment(value, monkeypatch):
    monkeypatch.setenv("ARCHCOST_MAX_LAYERS", value)
    with pytest.raises(ArchcostError, match="ARCHCOST_MAX_LAYERS"):
        Graph("g")
