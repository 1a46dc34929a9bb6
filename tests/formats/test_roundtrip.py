"""Every zoo model exports to a YAML spec and to node-link JSON that load back to the same
analysis: the same per-layer records (names, inputs, shapes, costs, memory, receptive fields)
and the same totals. Parametrised over the registry, so models added later are covered."""

import pytest

from archcost import zoo
from archcost.analysis import analyze
from archcost.formats.export import to_dot, to_json, to_yaml
from archcost.formats.spec import load_spec


@pytest.mark.parametrize("model", zoo.names())
def test_export_then_load_gives_the_same_analysis(model, tmp_path):
    graph = zoo.build(model)
    expected = analyze(graph)
    for suffix, text in ((".yaml", to_yaml(graph)), (".json", to_json(graph))):
        path = tmp_path / f"{model}{suffix}"
        path.write_text(text)
        loaded = load_spec(path)
        got = analyze(loaded)
        assert loaded.name == graph.name
        assert got.records == expected.records, suffix
        assert got.totals == expected.totals, suffix
        # How the PyTorch twin computes each layer (the peer conventions read it) survives too.
        forms = [(n, graph.torch_form(n)) for n in graph.topological_order()]
        assert [(n, loaded.torch_form(n)) for n in loaded.topological_order()] == forms, suffix
    dot = to_dot(graph)
    assert dot.count(" -> ") == sum(len(graph.inputs(n)) for n in graph.topological_order())
