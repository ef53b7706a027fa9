"""A JSON Schema for workflow files, generated from the registry: one branch per node type, listing its
inputs, so editors complete and check them (`# yaml-language-server: $schema=dgraph-workflow.schema.json`)."""
from __future__ import annotations

from typing import Any

from ..types import type_names
from .registry import Registry
from .workflow import FORMAT_VERSION

LINK_PATTERN = r"^@[A-Za-z_][A-Za-z0-9_-]*\.[A-Za-z_][A-Za-z0-9_]*$"
REF_PATTERN = r"^\$[A-Za-z_][A-Za-z0-9_]*$"
_REFERENCE = {"type": "string", "anyOf": [{"pattern": LINK_PATTERN}, {"pattern": REF_PATTERN}]}


def _input_schema(ispec) -> dict[str, Any]:
    options: list[dict[str, Any]] = [_REFERENCE]
    adapter = ispec.adapter
    if adapter is not None:
        try:
            literal = adapter.json_schema()
        except Exception:  # a type pydantic cannot describe still accepts references
            literal = {}
        literal.pop("title", None)
        # A literal string starting with @ or $ must be escaped as {literal: ...}.
        if literal.get("type") == "string":
            literal = {**literal, "not": {"pattern": r"^[@$]"}}
        options += [literal, {"type": "object", "properties": {"literal": {}}, "required": ["literal"],
                              "additionalProperties": False}]
    schema: dict[str, Any] = {"anyOf": options, "description": f"{ispec.type}" +
                              (f": {ispec.description}" if ispec.description else "")}
    if not ispec.required and ispec.default is not None and not callable(ispec.default):
        try:
            import json

            json.dumps(ispec.default)
            schema["default"] = ispec.default
        except TypeError:
            pass
    return schema


def workflow_schema(registry: Registry) -> dict[str, Any]:
    branches = []
    for spec in registry:
        required = [name for name, ispec in spec.inputs.items() if ispec.required]
        inputs: dict[str, Any] = {"type": "object", "additionalProperties": False,
                                  "properties": {n: _input_schema(i) for n, i in spec.inputs.items()}}
        if required:
            inputs["required"] = required
        branches.append({
            "type": "object",
            "description": spec.description,
            "properties": {
                "type": {"const": spec.type_name},
                "version": {"const": spec.version},
                "device": {"type": "string"},
                "description": {"type": "string"},
                "inputs": inputs,
            },
            "required": ["type"] + (["inputs"] if required else []),
            "additionalProperties": False,
        })
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "dgraph workflow",
        "type": "object",
        "additionalProperties": False,
        "required": ["dgraph", "nodes"],
        "properties": {
            "dgraph": {"const": FORMAT_VERSION, "description": "format version"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "inputs": {
                "type": "object",
                "additionalProperties": {
                    "type": "object", "additionalProperties": False, "required": ["type"],
                    "properties": {"type": {"enum": type_names()}, "default": {}, "description": {"type": "string"}},
                },
            },
            "nodes": {
                "type": "object",
                "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_-]*$"},
                # `type` picks the branch (if/then), so a validator reads one branch, not all of them.
                "additionalProperties": {
                    "type": "object", "required": ["type"],
                    "properties": {"type": {"enum": [spec.type_name for spec in registry]}},
                    "allOf": [{"if": {"properties": {"type": {"const": b["properties"]["type"]["const"]}}},
                               "then": b} for b in branches],
                },
            },
            "outputs": {"type": "object", "additionalProperties": {"type": "string", "pattern": LINK_PATTERN}},
        },
    }
