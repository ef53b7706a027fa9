"""The workflow file format: load -> save -> load gives the same graph, YAML and JSON alike; the Python
builder writes the same structure; literals that look like references survive a round trip."""
from __future__ import annotations

import json

import pytest

from dgraph.engine.workflow import GraphRef, Link, Literal, parse_binding, parse_text
from dgraph.graph import Graph

WORKFLOW = """\
dgraph: 1
name: scaled-noise
description: noise, scaled, summed
inputs:
  scale: {type: float, default: 2.0, description: how much}
  label: {type: Text, default: "$5 note"}
nodes:
  n:
    type: tensor.noise
    inputs: {shape: [1, 3, 4, 4], dtype: float32}
  s:
    type: tensor.scale
    version: 1
    device: cpu
    inputs: {tensor: "@n.tensor", factor: $scale}
  t:
    type: tensor.sum
    inputs: {tensor: "@s.tensor"}
  j:
    type: text.join
    inputs: {a: {literal: "@home"}, b: $label}
outputs:
  total: "@t.value"
  text: "@j.text"
"""


def test_bindings_parse():
    assert parse_binding("@n.tensor") == Link("n", "tensor")
    assert parse_binding("$scale") == GraphRef("scale")
    assert parse_binding({"literal": "@n.tensor"}) == Literal("@n.tensor")
    assert parse_binding([1, 2]) == Literal([1, 2])


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_load_save_load_round_trip(tmp_path, suffix):
    first = Graph.from_text(WORKFLOW, "w.yaml")
    path = tmp_path / f"copy{suffix}"
    first.save(path)
    second = Graph.load(path)
    assert second.to_dict() == first.to_dict()
    if suffix == ".json":
        assert json.loads(path.read_text())["nodes"]["j"]["inputs"]["a"] == {"literal": "@home"}
    third = tmp_path / f"again{suffix}"
    second.save(third)
    assert third.read_text() == path.read_text()


def test_saved_yaml_is_canonical_text(tmp_path):
    graph = Graph.from_text(WORKFLOW, "w.yaml")
    text = graph.to_text()
    assert "shape: [1, 3, 4, 4]" in text
    assert "a:\n        literal: '@home'" in text
    assert text.startswith("dgraph: 1\nname: scaled-noise\n")


def test_literal_strings_survive_execution():
    result = Graph.from_text(WORKFLOW, "w.yaml").execute(outputs=["text"])
    assert result.text == "@home $5 note"


def test_python_builder_matches_the_file():
    g = Graph()
    g._data.update(name="scaled-noise", description="noise, scaled, summed")
    scale = g.input("scale", "float", default=2.0, description="how much")
    label = g.input("label", "Text", default="$5 note")
    n = g.add("tensor.noise", "n", shape=[1, 3, 4, 4], dtype="float32")
    s = g.add("tensor.scale", "s", device="cpu", tensor=n.tensor, factor=scale)
    g._data["nodes"]["s"]["version"] = 1
    t = g.add("tensor.sum", "t", tensor=s.tensor)
    j = g.add("text.join", "j", a="@home", b=label)
    g.output("total", t.value)
    g.output("text", j.text)
    assert g.to_dict() == Graph.from_text(WORKFLOW, "w.yaml").to_dict()


def test_builder_rejects_unknown_outputs_at_once():
    g = Graph()
    n = g.add("tensor.noise", shape=[2])
    with pytest.raises(AttributeError, match="has no output 'noise'; outputs: tensor"):
        n.noise


def test_builder_names_nodes_uniquely():
    g = Graph()
    assert g.add("tensor.noise", shape=[2]).name == "noise"
    assert g.add("tensor.noise", shape=[2]).name == "noise_2"


def test_json_files_get_positions_too():
    text = '{\n  "dgraph": 1,\n  "nodes": {\n    "a": {"type": "math.ad"}\n  }\n}\n'
    problems = Graph.from_text(text, "w.json").problems
    assert [(p.code, p.line, p.column) for p in problems] == [("unknown-node-type", 4, 19)]


def test_yes_and_no_stay_strings():
    data, _ = parse_text("dgraph: 1\na: no\nb: yes\nc: true\n")
    assert data == {"dgraph": 1, "a": "no", "b": "yes", "c": True}
