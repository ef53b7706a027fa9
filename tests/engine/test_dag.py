"""The engine's graph algorithms: components, a cycle's path, topological order; iterative at 10,000 nodes."""
from __future__ import annotations

import pytest

from dgraph.engine.dag import find_cycle, strongly_connected, topological_order


def test_components_and_cycles():
    graph = {"a": ["b"], "b": ["c", "d"], "c": ["a"], "d": ["e"], "e": ["d"], "f": ["f"], "g": []}
    components = sorted(sorted(c) for c in strongly_connected(graph))
    assert components == [["a", "b", "c"], ["d", "e"], ["f"], ["g"]]
    assert find_cycle(graph, ["a", "b", "c"]) == ["a", "b", "c"]
    assert find_cycle(graph, ["d", "e"]) == ["d", "e"]
    assert find_cycle(graph, ["f"]) == ["f"]
    # From the first member in graph order, edges in their order; a dead end inside is backtracked.
    graph = {"x": ["y", "z"], "y": ["w"], "w": [], "z": ["x"]}
    assert find_cycle(graph, ["x", "y", "z", "w"]) == ["x", "z"]
    with pytest.raises(ValueError):
        find_cycle({"p": ["q"], "q": []}, ["p", "q"])


def test_topological_order_and_long_chains():
    graph = {"c": [], "a": ["b", "c"], "b": ["c"]}
    assert topological_order(graph) == ["a", "b", "c"]
    with pytest.raises(ValueError):
        topological_order({"a": ["b"], "b": ["a"]})
    chain = {i: [i + 1] for i in range(10_000)} | {10_000: []}
    assert len(strongly_connected(chain)) == 10_001
    assert topological_order(chain)[:3] == [0, 1, 2]
    ring = chain | {10_000: [0]}
    (component,) = strongly_connected(ring)
    assert len(component) == 10_001 and find_cycle(ring, component)[:2] == [0, 1]
