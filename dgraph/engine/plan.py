"""Planning: prune to what the requested outputs need, and order it topologically."""
from __future__ import annotations

from dataclasses import dataclass

import networkx as nx

from ..errors import DgraphError
from .validate import Resolved
from .workflow import Link


@dataclass(frozen=True)
class Plan:
    order: tuple[str, ...]  # the nodes to run, dependencies first
    outputs: dict[str, Link]  # the graph outputs to return


def dependency_graph(resolved: Resolved) -> nx.DiGraph:
    graph = nx.DiGraph()
    for name, node in resolved.nodes.items():
        graph.add_node(name)
        for binding in node.bindings.values():
            if isinstance(binding, Link):
                graph.add_edge(binding.node, name)
    return graph


def make_plan(resolved: Resolved, wanted: list[str] | None = None) -> Plan:
    """The nodes needed for `wanted` graph outputs (all declared outputs by default; every node when the
    workflow declares none), in a deterministic topological order."""
    graph = dependency_graph(resolved)
    if resolved.outputs:
        names = list(resolved.outputs) if wanted is None else wanted
        unknown = [n for n in names if n not in resolved.outputs]
        if unknown:
            raise DgraphError(f"unknown graph output(s) {', '.join(map(repr, unknown))}; "
                              f"this workflow has: {', '.join(resolved.outputs)}")
        outputs = {n: resolved.outputs[n] for n in names}
        targets = {link.node for link in outputs.values()}
    else:
        if wanted:
            raise DgraphError("this workflow declares no outputs to choose from")
        outputs, targets = {}, set(graph.nodes)
    needed = set(targets)
    for target in targets:
        needed |= nx.ancestors(graph, target)
    order = tuple(nx.lexicographical_topological_sort(graph.subgraph(needed)))
    return Plan(order, outputs)
