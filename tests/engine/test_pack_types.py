"""A node pack's own port type is a graph-input type like the built-in ones.

(No `from __future__ import annotations`: the node below annotates with a class local to the test.)"""

from dgraph import types
from dgraph.engine.registry import Registry
from dgraph.graph import Graph
from dgraph.node import node


def test_a_port_type_defined_after_import_is_a_graph_input_type():
    class Palette(types.Port):
        """A pack's own port type."""

    try:
        @node("pack.use_palette", description="Take a palette.")
        def use(palette: Palette) -> int:
            return 1

        registry = Registry()
        registry.add(use, "pack")
        graph = Graph.from_text("dgraph: 1\ninputs:\n  p: {type: Palette}\nnodes:\n  u: {type: pack.use_palette, "
                                "inputs: {palette: $p}}\noutputs:\n  n: '@u.value'\n", "w.yaml", registry=registry)
        assert graph.problems == []
        assert "Palette" in types.type_names()
    finally:
        types.PORT_CLASSES.pop("Palette", None)
    assert "Palette" not in types.type_names()
