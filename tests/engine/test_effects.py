"""Nodes with effects (writing files) run on every execution: never served from the cache, and the folder
they write to is part of the key of everything downstream."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from dgraph.engine.registry import Registry
from dgraph.errors import DgraphError
from dgraph.graph import Graph
from dgraph.node import Context, node

CALLS: Counter = Counter()


@node("test.write", effect=True, description="Write a text file into the output folder.", output="paths")
def write(ctx: Context, text: str = "hello") -> list[str]:
    CALLS["write"] += 1
    target = ctx.output_path("note.txt")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    return [str(target)]


@node("test.count", description="How many paths it was given.", output="value")
def count(paths: list) -> int:
    CALLS["count"] += 1
    return len(paths)


@node("test.sneaky_write", description="Writes without declaring the effect.", output="paths")
def sneaky(ctx: Context) -> list[str]:
    return [str(ctx.output_path("x.txt"))]


@pytest.fixture
def registry():
    reg = Registry()
    for fn in (write, count, sneaky):
        reg.add(fn, "tests")
    CALLS.clear()
    return reg


GRAPH = {"dgraph": 1, "nodes": {"w": {"type": "test.write"}, "n": {"type": "test.count", "inputs": {"paths": "@w.paths"}}},
         "outputs": {"paths": "@w.paths", "n": "@n.value"}}


def test_effect_runs_again_into_a_new_folder(registry, tmp_path):
    graph = Graph.load(GRAPH, registry=registry)
    first = graph.execute(output_dir=tmp_path / "a")
    second = graph.execute(output_dir=tmp_path / "b")
    assert first.paths == [str(tmp_path / "a" / "note.txt")]
    assert second.paths == [str(tmp_path / "b" / "note.txt")]
    assert (tmp_path / "b" / "note.txt").read_text() == "hello"
    assert CALLS == {"write": 2, "count": 2}


def test_effect_runs_again_into_the_same_folder(registry, tmp_path):
    graph = Graph.load(GRAPH, registry=registry)
    graph.execute(output_dir=tmp_path)
    (tmp_path / "note.txt").unlink()
    graph.execute(output_dir=tmp_path)
    assert (tmp_path / "note.txt").read_text() == "hello"
    assert CALLS == {"write": 2, "count": 1}  # same folder, same paths: downstream is served from the cache


def test_writing_needs_a_declared_effect(registry, tmp_path):
    graph = Graph.load({"dgraph": 1, "nodes": {"s": {"type": "test.sneaky_write"}}}, registry=registry)
    with pytest.raises(DgraphError, match=r"node 's' writes files but its type is not declared effect=True"):
        graph.execute(output_dir=tmp_path)
    assert list(Path(tmp_path).iterdir()) == []


def test_shipped_writers_declare_their_effect():
    from dgraph.engine.registry import default_registry

    registry = default_registry()
    assert sorted(s.type_name for s in registry if s.effect) == ["audio.save", "image.save"]
