"""Node registration: entry points, packs, conflicts, and the node definition API."""
from __future__ import annotations

import types
from typing import Annotated, NamedTuple

import pytest
from pydantic import Field

from dgraph.engine.registry import Registry, RegistryError, default_registry
from dgraph.node import node, spec_of
from dgraph.types import Latent, Param, Mel, TypeRef, fits


def test_builtin_catalogue_arrives_through_the_entry_point():
    registry = default_registry()
    spec = registry.get("tensor.noise")
    assert spec is not None and spec.pack == "builtin"
    assert spec.random and spec.version == 1


def test_two_packs_defining_one_name_is_an_error_naming_both():
    @node("math.add", description="A rival add.")
    def rival(a: float) -> float:
        return a

    registry = Registry()
    registry.add_pack("builtin", __import__("nodes").catalogue)
    with pytest.raises(RegistryError) as caught:
        registry.add(rival, "other-pack")
    message = str(caught.value)
    assert "node type 'math.add' is defined twice: by nodes.basic.add (pack builtin)" in message
    assert "test_registry.test_two_packs_defining_one_name_is_an_error_naming_both.<locals>.rival (pack other-pack)" in message


def test_a_module_pack_registers_its_node_functions():
    @node("pack.double", description="Double a number.")
    def double(x: float) -> float:
        return 2 * x

    module = types.ModuleType("my_pack")
    module.double = double
    module.helper = lambda: None
    registry = Registry()
    registry.add_pack("my-pack", module)
    assert registry.names() == ["pack.double"]


class Out(NamedTuple):
    latent: Latent
    count: int


def test_inputs_and_outputs_come_from_annotations():
    @node("pack.split", version=3)
    def split(latent: Latent, n: Annotated[int, Field(ge=1, le=8)] = 2, mode: str | None = None) -> Out:
        """Split a latent.

        n: how many parts
        """
        return Out(latent, n)

    spec = spec_of(split)
    assert spec.version == 3 and spec.description == "Split a latent."
    assert [(i.name, str(i.type), i.required, i.default) for i in spec.inputs.values()] == [
        ("latent", "Latent", True, None), ("n", "int", False, 2), ("mode", "str", False, None)]
    assert spec.inputs["n"].description == "how many parts"
    assert {k: str(v.type) for k, v in spec.outputs.items()} == {"latent": "Latent", "count": "int"}
    assert spec.inputs["latent"].adapter is None and spec.inputs["n"].adapter is not None


def test_definition_errors_are_caught_when_declaring():
    with pytest.raises(ValueError, match="must be dotted lowercase"):
        node("Bad Name")
    with pytest.raises(TypeError, match="parameter 'x' needs a type annotation"):
        @node("pack.bad", description="x")
        def bad(x) -> int:
            return 1
    with pytest.raises(TypeError, match="give a one-line description"):
        @node("pack.nodoc")
        def nodoc(x: int) -> int:
            return x


def test_type_compatibility_rules():
    assert fits(TypeRef("int"), TypeRef("float"))
    assert not fits(TypeRef("float"), TypeRef("int"))
    assert fits(TypeRef("Text"), TypeRef("str")) and fits(TypeRef("str"), TypeRef("Text"))
    assert not fits(TypeRef("Latent"), TypeRef("Image"))
    fastdiff = TypeRef("Mel").with_params(profile="fastdiff")
    hifigan = TypeRef("Mel").with_params(profile="hifigan")
    assert fits(fastdiff, TypeRef("Mel")) and fits(TypeRef("Mel"), fastdiff)
    assert not fits(fastdiff, hifigan)
    assert fits(TypeRef("enum", choices=("a",)), TypeRef("enum", choices=("a", "b")))
    assert not fits(TypeRef("enum", choices=("c",)), TypeRef("enum", choices=("a", "b")))


def test_parametrised_ports_and_refined_outputs_reach_validation():
    @node("pack.mel", description="Make a mel.", output="mel",
          refine=lambda literals: {"mel": TypeRef("Mel").with_params(profile=literals.get("profile"))})
    def make_mel(profile: str = "fastdiff") -> Mel:
        raise NotImplementedError

    @node("pack.vocode", description="Vocode a FastDiff mel.", output="value")
    def vocode(mel: Annotated[Mel, Param(profile="fastdiff")]) -> int:
        return 1

    from dgraph.graph import Graph

    registry = Registry()
    registry.add(make_mel)
    registry.add(vocode)
    good = {"dgraph": 1, "nodes": {"m": {"type": "pack.mel"}, "v": {"type": "pack.vocode", "inputs": {"mel": "@m.mel"}}}}
    assert Graph(good, registry=registry).problems == []
    bad = {"dgraph": 1, "nodes": {"m": {"type": "pack.mel", "inputs": {"profile": "hifigan"}},
                                  "v": {"type": "pack.vocode", "inputs": {"mel": "@m.mel"}}}}
    (problem,) = Graph(bad, registry=registry).problems
    assert problem.code == "type-mismatch"
    assert problem.message == ("node 'v', input 'mel' (Mel[profile=fastdiff]) cannot take @m.mel "
                               "(Mel[profile=hifigan]): profile 'hifigan' where 'fastdiff' is expected")
