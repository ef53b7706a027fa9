"""The workflow file format (v1): parsing YAML/JSON with positions, the pydantic model, and saving.

    dgraph: 1                         # format version
    name: example
    description: what it makes
    inputs:                           # graph inputs, overridable from the CLI and the API
      prompt: {type: Text, default: "a painting of a fox"}
      steps: {type: int, default: 50}
    nodes:
      tok:
        type: text.tokenize           # a registered node type
        version: 1                    # optional: the version the file was written for
        device: cuda:0                # optional placement
        inputs:
          text: $prompt               # a graph input
          tokenizer: "@load.tokenizer"  # a link to another node's output
          max_length: 77              # a literal ({literal: "..."} for a string starting with $ or @)
    outputs:
      image: "@save.image"

YAML is read as plain data only (dgraph.safe_yaml); nothing in a file is ever imported or run.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field

from ..safe_yaml import ParseError, Positions, parse_text  # noqa: F401  (parsing with positions lives there)

FORMAT_VERSION = 1
NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
INPUT_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_LINK = re.compile(r"^@([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z_][A-Za-z0-9_]*)$")
_REF = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]*)$")
IMPLICIT_INPUTS = {"seed": ("int", None)}  # None: a fresh seed is drawn for each run (and reported)


# ---------------------------------------------------------------------------------------------------
# Bindings: what an input is given.
# ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Link:
    node: str
    output: str

    def __str__(self) -> str:
        return f"@{self.node}.{self.output}"


@dataclass(frozen=True)
class GraphRef:
    name: str

    def __str__(self) -> str:
        return f"${self.name}"


@dataclass(frozen=True)
class Literal:
    value: Any


Binding = Union[Link, GraphRef, Literal]


class BindingError(ValueError):
    pass


def parse_binding(value: Any) -> Binding:
    """Read one input value of a workflow file."""
    if isinstance(value, str) and value.startswith("@"):
        match = _LINK.match(value)
        if not match:
            raise BindingError(f"{value!r} is not a link; write '@node.output' (or {{literal: {value!r}}} for the text itself)")
        return Link(match.group(1), match.group(2))
    if isinstance(value, str) and value.startswith("$"):
        match = _REF.match(value)
        if not match:
            raise BindingError(f"{value!r} is not a graph input reference; write '$name' (or {{literal: {value!r}}})")
        return GraphRef(match.group(1))
    if isinstance(value, dict) and set(value) == {"literal"}:
        return Literal(value["literal"])
    return Literal(value)


def dump_binding(binding: Binding) -> Any:
    if isinstance(binding, (Link, GraphRef)):
        return str(binding)
    value = binding.value
    if isinstance(value, str) and value.startswith(("@", "$")) or isinstance(value, dict) and set(value) == {"literal"}:
        return {"literal": value}
    return value


# ---------------------------------------------------------------------------------------------------
# The file model.
# ---------------------------------------------------------------------------------------------------
class InputDecl(BaseModel):
    """A graph input: its type, an optional default and a description."""

    model_config = ConfigDict(extra="forbid")
    type: str
    default: Any = None
    description: str = ""

    @property
    def has_default(self) -> bool:
        return "default" in self.model_fields_set


class NodeDecl(BaseModel):
    """One node of the graph."""

    model_config = ConfigDict(extra="forbid")
    type: str
    version: int | None = None
    inputs: dict[str, Any] = Field(default_factory=dict)
    device: str | None = None
    description: str = ""


class WorkflowFile(BaseModel):
    """A whole workflow file (format version 1)."""

    model_config = ConfigDict(extra="forbid")
    dgraph: int = Field(description="format version of the file; this dgraph reads 1")
    name: str = ""
    description: str = ""
    inputs: dict[str, InputDecl] = Field(default_factory=dict)
    nodes: dict[str, NodeDecl] = Field(default_factory=dict)
    outputs: dict[str, str] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The canonical plain-data form (what `save` writes)."""
        data: dict[str, Any] = {"dgraph": self.dgraph}
        if self.name:
            data["name"] = self.name
        if self.description:
            data["description"] = self.description
        if self.inputs:
            data["inputs"] = {}
            for name, decl in self.inputs.items():
                entry: dict[str, Any] = {"type": decl.type}
                if decl.has_default:
                    entry["default"] = decl.default
                if decl.description:
                    entry["description"] = decl.description
                data["inputs"][name] = entry
        data["nodes"] = {}
        for name, decl in self.nodes.items():
            entry = {"type": decl.type}
            if decl.version is not None:
                entry["version"] = decl.version
            if decl.description:
                entry["description"] = decl.description
            if decl.device is not None:
                entry["device"] = decl.device
            if decl.inputs:
                entry["inputs"] = {k: dump_binding(parse_binding(v)) for k, v in decl.inputs.items()}
            data["nodes"][name] = entry
        if self.outputs:
            data["outputs"] = dict(self.outputs)
        return data


class _Dumper(yaml.SafeDumper):
    """Block style for structure, flow style for short lists of plain values (`shape: [1, 4, 32, 32]`)."""


def _represent_list(dumper: yaml.SafeDumper, value: list) -> yaml.Node:
    flat = all(isinstance(v, (int, float, bool)) or v is None for v in value)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=flat)


_Dumper.add_representer(list, _represent_list)


def dump_text(data: dict[str, Any], fmt: str = "yaml") -> str:
    """Serialise canonical workflow data as YAML or JSON text."""
    if fmt == "json":
        return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
