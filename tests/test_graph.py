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
