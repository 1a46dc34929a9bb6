"""networkx node-link JSON: ``networkx.node_link_data`` of the layer graph, each node carrying its
op as a dict (``{"op": "conv", "out_channels": 64, ...}``), its ordered ``inputs`` and its
``shape`` at batch 1. Node order is the graph's topological order."""

from __future__ import annotations

import networkx as nx

from archcost.errors import ArchcostError
from archcost.formats.opcodec import op_from_dict, op_to_dict
from archcost.graph import Graph
from archcost.ops import Input


def graph_to_node_link(graph: Graph) -> dict:
    h = nx.DiGraph(name=graph.name, description=graph.description, format="archcost-node-link/1")
    for node in graph.topological_order():
        attrs = {"torch": graph.torch_form(node)} if graph.torch_form(node) != "default" else {}
        h.add_node(node, op=op_to_dict(graph.op(node)), inputs=list(graph.inputs(node)),
                   shape=list(graph.shape(node)), **attrs)
    for node in graph.topological_order():
        for src in graph.inputs(node):
            h.add_edge(src, node)
    try:
        return nx.node_link_data(h, edges="links")
    except TypeError:  # networkx < 3.4 has no `edges` argument
        return nx.node_link_data(h)


def graph_from_node_link(data: dict, source: str, input_shape=None) -> Graph:
    """Rebuild a Graph from node-link data (any node order; the ``inputs`` lists give each node's
    ordered inputs, falling back to the links in file order)."""
    nodes = data.get("nodes")
    links = data.get("links", data.get("edges", []))
    if not isinstance(nodes, list) or not isinstance(links, list):
        raise ArchcostError(f"{source}: node-link data needs 'nodes' and 'links' lists")
    attrs = data.get("graph") if isinstance(data.get("graph"), dict) else {}
    index, specs = {}, []
    for i, node in enumerate(nodes):
        if not isinstance(node, dict) or "id" not in node:
            raise ArchcostError(f"{source}: nodes[{i}] has no 'id'")
        name = str(node["id"])
        if name in index:
            raise ArchcostError(f"{source}: node {name!r} appears twice")
        index[name] = i
        specs.append((name, node))
    linked: dict[str, list[str]] = {name: [] for name in index}
    for i, link in enumerate(links):
        if not isinstance(link, dict) or "source" not in link or "target" not in link:
            raise ArchcostError(f"{source}: links[{i}] needs 'source' and 'target'")
        src, dst = str(link["source"]), str(link["target"])
        for end in (src, dst):
            if end not in index:
                raise ArchcostError(f"{source}: links[{i}] names unknown node {end!r}")
        linked[dst].append(src)
    deps = nx.DiGraph()
    deps.add_nodes_from(index)
    inputs_of = {}
    for name, node in specs:
        inputs = node.get("inputs", linked[name])
        if not isinstance(inputs, list):
            raise ArchcostError(f"{source}: node {name!r}: inputs must be a list")
        for src in inputs:
            if str(src) not in index:
                raise ArchcostError(f"{source}: node {name!r}: unknown input {src!r}")
            deps.add_edge(str(src), name)
        inputs_of[name] = [str(s) for s in inputs]
    if not nx.is_directed_acyclic_graph(deps):
        cycle = [edge[0] for edge in nx.find_cycle(deps)]
        raise ArchcostError(f"{source}: the graph has a cycle: {' -> '.join(cycle + cycle[:1])}")
    order = list(nx.lexicographical_topological_sort(deps, key=index.__getitem__))
    g = Graph(str(attrs.get("name", "graph")), str(attrs.get("description", "")))
    for name in order:
        node = nodes[index[name]]
        op = op_from_dict(node.get("op"), f"{source}: node {name!r}")
        try:
            if isinstance(op, Input):
                if inputs_of[name]:
                    raise ArchcostError(f"node {name!r}: an input takes no inputs")
                g.input(op.shape if input_shape is None else input_shape, name=name)
            else:
                g.add(op, *inputs_of[name], name=name, torch=node.get("torch", "default"))
        except ArchcostError as exc:
            raise ArchcostError(f"{source}: {exc}") from None
    if input_shape is not None and len(g.input_nodes()) != 1:
        raise ArchcostError(f"{source}: --input is ambiguous: the graph has several inputs")
    if not g.input_nodes():
        raise ArchcostError(f"{source}: the graph has no input node")
    return g
