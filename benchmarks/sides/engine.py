"""The engine on chains of trivial nodes (`math.add`): each stage alone, per node, at two graph sizes.

Every setup returns a call whose output is normalised by the chain's length, so that the 1k and the 10k
side of a case give the same output when the engine is right.
"""
from __future__ import annotations

import copy
import gc
from typing import Callable


def chain(n: int) -> dict:
    nodes = {"n0": {"type": "math.add", "inputs": {"a": 0.0, "b": 1.0}}}
    for i in range(1, n):
        nodes[f"n{i}"] = {"type": "math.add", "inputs": {"a": f"@n{i - 1}.value", "b": 1.0}}
    return {"dgraph": 1, "nodes": nodes, "outputs": {"total": f"@n{n - 1}.value"}}


def _prebuilt(n: int, count: int = 8, checked: bool = False) -> Callable[[], object]:
    """Graphs made ahead (not timed), one per call: each call sees a graph nothing has run on yet.
    `checked`: validated ahead too, for the stages after validation."""
    from dgraph.graph import Graph

    data = chain(n)
    graphs = [Graph(copy.deepcopy(data), filename="<chain>") for _ in range(count)]
    for graph in graphs if checked else ():
        graph.check()
    gc.collect()
    return graphs.pop


def validate(n: int):
    take = _prebuilt(n)

    def call():
        graph = take()
        graph.check()
        return len(graph.resolved.nodes) / n
    return call


def plan(n: int):
    take = _prebuilt(n, checked=True)

    def call():
        from dgraph.engine.plan import make_plan

        return len(make_plan(take().resolved).order) / n
    return call


def canonical(n: int):
    take = _prebuilt(n, checked=True)

    def call():
        graph = take()
        return len(graph.to_dict()["nodes"]) / n
    return call


def first_execute(n: int):
    """A validated graph's first execute: planning, canonical form, content keys, every node runs."""
    take = _prebuilt(n, checked=True)

    def call():
        return take().execute().total / n
    return call


def warm_execute(n: int):
    """Execute again: every node found in the cache."""
    graph = _prebuilt(n, 1)()
    graph.execute()

    def call():
        return graph.execute().total / n
    return call
