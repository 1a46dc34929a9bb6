"""Write a Graph out: as a spec (YAML; loading it gives the same graph), as networkx node-link
JSON, or as Graphviz DOT text. Files are written whole or not at all (temp file, then rename)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile

from archcost.errors import ArchcostError
from archcost.formats.opcodec import op_to_fields
from archcost.graph import Graph
from archcost.ops import Input

FORMATS = ("yaml", "json", "dot")
SUFFIX_FORMATS = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".dot": "dot", ".gv": "dot"}


def graph_to_spec(graph: Graph) -> dict:
    """The spec document of ``graph``: a flat list of layers, each with its full name, and its
    inputs wherever it does not simply feed on the layer listed before it."""
    spec: dict = {"name": graph.name}
    if graph.description:
        spec["description"] = graph.description
    order = graph.topological_order()
    layers, prev = [], None
    if order and order[0] == "input" and isinstance(graph.op("input"), Input):
        spec["input"] = list(graph.op("input").shape)
        order, prev = order[1:], "input"
    for node in order:
        name, fields = op_to_fields(graph.op(node))
        entry = {name: fields, "name": node}
        inputs = list(graph.inputs(node))
        if not isinstance(graph.op(node), Input) and inputs != [prev]:
            entry["inputs"] = inputs
        if graph.torch_form(node) != "default":
            entry["torch"] = graph.torch_form(node)
        layers.append(entry)
        prev = node
    spec["layers"] = layers
    return spec


def to_yaml(graph: Graph) -> str:
    import yaml

    class Flow(dict):
        pass

    class FlowList(list):
        pass

    class Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
        pass

    Dumper.add_representer(Flow, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True))
    Dumper.add_representer(FlowList, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
    spec = graph_to_spec(graph)
    if "input" in spec:
        spec["input"] = FlowList(spec["input"])
    for entry in spec["layers"]:
        for key, value in entry.items():
            if isinstance(value, dict):
                entry[key] = Flow(value)
            elif isinstance(value, list):
                entry[key] = FlowList(value)
    header = f"# {graph.name}: exported by archcost; load with `archcost table FILE`\n"
    return header + yaml.dump(spec, Dumper=Dumper, sort_keys=False, width=120, allow_unicode=True)


def to_json(graph: Graph) -> str:
    from archcost.formats.nodelink import graph_to_node_link

    return json.dumps(graph_to_node_link(graph), indent=1) + "\n"


def _dot_id(text: str) -> str:
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(graph: Graph) -> str:
    """Graphviz DOT text (no graphviz needed to write it): one box per layer with its name, op and
    output shape per sample; edges in input order."""
    from archcost.report.table import shape_text

    lines = [f"digraph {_dot_id(graph.name)} {{", "  rankdir=TB;",
             '  node [shape=box, fontname="Helvetica", fontsize=10];']
    for node in graph.topological_order():
        op = graph.op(node)
        label = f"{node}\n{op.label()}\n{shape_text(graph.shape(node))}"
        style = ", shape=ellipse" if isinstance(op, Input) else ""
        lines.append(f"  {_dot_id(node)} [label={_dot_id(label)}{style}];")
    for node in graph.topological_order():
        for src in graph.inputs(node):
            lines.append(f"  {_dot_id(src)} -> {_dot_id(node)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def export_text(graph: Graph, fmt: str) -> str:
    return {"yaml": to_yaml, "json": to_json, "dot": to_dot}[fmt](graph)


def write_atomic(path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (archcost.outputs.write_atomic)."""
    from archcost.outputs import write_atomic as write

    write(path, text)
