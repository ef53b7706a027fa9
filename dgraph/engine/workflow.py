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

YAML is parsed with the safe loader only; nothing in a file is ever imported or run.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Union

import yaml
from pydantic import BaseModel, ConfigDict, Field

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


# ---------------------------------------------------------------------------------------------------
# Parsing with positions.
# ---------------------------------------------------------------------------------------------------
Path_ = tuple  # a path into the document: ("nodes", "tok", "inputs", "text")


class Positions:
    """1-based (line, column) of every value, and of every mapping key, in a parsed document."""

    def __init__(self) -> None:
        self.values: dict[Path_, tuple[int, int]] = {}
        self.keys: dict[Path_, tuple[int, int]] = {}
        self.count = 0

    def of(self, path: Path_, key: bool = False) -> tuple[int, int]:
        """Where `path` is (its key when `key`), falling back to the nearest enclosing element."""
        table = self.keys if key else self.values
        if path in table:
            return table[path]
        while path:
            path = path[:-1]
            if path in self.keys:
                return self.keys[path]
            if path in self.values:
                return self.values[path]
        return (1, 1)


class ParseError(Exception):
    def __init__(self, message: str, line: int, column: int):
        super().__init__(message)
        self.message, self.line, self.column = message, line, column


class _SafeLoader(yaml.SafeLoader):
    """The safe loader, without YAML 1.1's surprising booleans (`no`, `on`) and with JSON's tabs."""


# YAML 1.1 reads "no"/"yes"/"on"/"off" as booleans: keep only true/false, as JSON and YAML 1.2 do.
_SafeLoader.yaml_implicit_resolvers = {
    key: [(tag, regex) for tag, regex in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_SafeLoader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                  list("tTfF"))


# Only plain data: no timestamps, binary, sets, or python/* objects.
_PLAIN_TAGS = {f"tag:yaml.org,2002:{t}" for t in ("null", "bool", "int", "float", "str", "seq", "map")} | {"!"}


def parse_text(text: str, filename: str = "<string>") -> tuple[Any, Positions]:
    """Parse YAML (or JSON) text into plain data and the positions of its parts."""
    positions = Positions()
    try:
        root = yaml.compose(text, Loader=_SafeLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = error.problem or str(error)
        if error.context:
            message = f"{error.context}: {message}"
        raise ParseError(message, line, column) from None
    except yaml.YAMLError as error:
        raise ParseError(str(error), 1, 1) from None
    if root is None:
        return None, positions
    loader = _SafeLoader("")
    return _build(root, (), positions, loader), positions


MAX_ELEMENTS = 200_000  # aliases can expand a small file exponentially ("billion laughs")


def _build(node: yaml.Node, path: Path_, positions: Positions, loader: yaml.SafeLoader) -> Any:
    positions.values[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    positions.count += 1
    if positions.count > MAX_ELEMENTS:
        raise ParseError(f"the document expands to more than {MAX_ELEMENTS} elements (aliases?); refusing it",
                         node.start_mark.line + 1, node.start_mark.column + 1)
    if node.tag not in _PLAIN_TAGS:
        raise ParseError(f"YAML tag {node.tag!r} is not allowed in a workflow file (plain data only)",
                         node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = _build(key_node, path + ("<key>",), positions, loader)
            if isinstance(key, (list, dict)):
                raise ParseError("a mapping key must be a plain value", key_node.start_mark.line + 1,
                                 key_node.start_mark.column + 1)
            if key in result:
                raise ParseError(f"duplicate key {key!r}", key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            positions.keys[path + (key,)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            result[key] = _build(value_node, path + (key,), positions, loader)
        positions.values.pop(path + ("<key>",), None)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, path + (i,), positions, loader) for i, item in enumerate(node.value)]
    try:
        return loader.construct_object(node, deep=True)
    except yaml.YAMLError as error:
        raise ParseError(str(getattr(error, "problem", error)), node.start_mark.line + 1,
                         node.start_mark.column + 1) from None


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
