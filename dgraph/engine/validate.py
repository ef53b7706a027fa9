"""Validation in one pass: every problem in a workflow at once, each with file:line:column.

`check(data, positions, registry, filename)` returns the problems and, for the parts that are sound, the
resolved graph the planner runs (node specs and parsed bindings).
"""
from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from ..node import NodeSpec
from ..types import TypeRef, coerce, fits, mismatch_reason, type_names
from .dag import find_cycle, strongly_connected
from .problems import Problem
from .registry import Registry
from .workflow import (FORMAT_VERSION, IMPLICIT_INPUTS, INPUT_NAME, NODE_NAME, Binding, BindingError, GraphRef,
                       Link, Literal, Positions, parse_binding)

TOP_KEYS = ("dgraph", "name", "description", "inputs", "nodes", "outputs")
NODE_KEYS = ("type", "version", "inputs", "device", "description")
INPUT_KEYS = ("type", "default", "description")


@dataclass
class ResolvedNode:
    name: str
    spec: NodeSpec
    bindings: dict[str, Binding]
    device: str | None = None
    static_key: str | None = None  # digest of type, version and literals, computed once by the executor


@dataclass
class Resolved:
    """The sound part of a workflow, ready for planning."""

    inputs: dict[str, tuple[TypeRef, bool, Any]] = field(default_factory=dict)  # name -> (type, has default, default)
    uses: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # graph input -> [(node, node input)]
    nodes: dict[str, ResolvedNode] = field(default_factory=dict)
    outputs: dict[str, Link] = field(default_factory=dict)


@functools.lru_cache(maxsize=None)
def literal_adapter(type_name: str) -> TypeAdapter | None:
    """The validator of a graph input's literal values (built once per type: every execute uses it)."""
    from ..types import Source, Text

    finite = Annotated[float, Field(allow_inf_nan=False)]  # nan or inf as a graph input is a typo, never a setting
    table = {"int": int, "float": finite, "str": str, "bool": bool, "Text": Text, "Source": Source}
    return TypeAdapter(table[type_name]) if type_name in table else None


def input_violation(resolved: Resolved, name: str, value: Any) -> str | None:
    """Why a value of graph input `name` does not fit a node input it feeds (its range, its choices), or None.

    A graph input takes the constraints of every node input bound to it, whichever way the value arrives:
    the file's default, a flag, `--set`, a PNG's recorded inputs, a keyword of `execute`.
    """
    if not isinstance(value, (bool, int, float, str)):
        return None
    for node_name, key in resolved.uses.get(name, ()):
        node = resolved.nodes.get(node_name)
        ispec = node.spec.inputs[key] if node is not None else None
        if ispec is None or ispec.adapter is None:
            continue
        try:
            ispec.adapter.validate_python(coerce(value, ispec.type))
        except ValidationError as error:
            return f"node {node_name!r} ({node.spec.type_name}), input {key!r}: {_first_message(error)}"
    return None


class _Checker:
    def __init__(self, data: Any, positions: Positions, registry: Registry, filename: str):
        self.data, self.positions, self.registry, self.filename = data, positions, registry, filename
        self.problems: list[Problem] = []
        self.resolved = Resolved()

    def add(self, code: str, path: tuple, message: str, hint: str = "", key: bool = False) -> None:
        line, column = self.positions.of(path, key=key)
        self.problems.append(Problem(code, message, hint, self.filename, line, column))

    def check_keys(self, mapping: dict, path: tuple, allowed: tuple[str, ...], owner: str) -> None:
        """Report every key of `mapping` the format does not have, with the closest known one."""
        for key in mapping:
            if key not in allowed:
                message = f"unknown top-level key {key!r}" if not path else f"{owner} has unknown key {key!r}"
                self.add("unknown-key", path + (key,), message, _did_you_mean(key, allowed), key=True)

    def check_description(self, decl: dict, path: tuple, owner: str) -> None:
        if "description" in decl and not isinstance(decl["description"], str):
            self.add("invalid-value", path + ("description",), f"{owner}: `description` must be a string",
                     "quote it, or remove it")

    # -----------------------------------------------------------------------------------------------
    def run(self) -> None:
        data = self.data
        if not isinstance(data, dict):
            self.add("not-a-mapping", (), "a workflow file must be a mapping with `dgraph`, `nodes` and `outputs`",
                     "start from one of the files in workflows/")
            return
        self.check_keys(data, (), TOP_KEYS, "the workflow")
        version = data.get("dgraph")
        if version is None:
            self.add("format-version", (), "missing format version", f"add `dgraph: {FORMAT_VERSION}` at the top")
        elif type(version) is not int or version != FORMAT_VERSION:  # `dgraph: true` equals 1 in Python
            self.add("format-version", ("dgraph",), f"format version {version!r} is not supported",
                     f"this dgraph reads `dgraph: {FORMAT_VERSION}`; upgrade dgraph for newer files")
        for key in ("name", "description"):
            if key in data and not isinstance(data[key], str):
                self.add("invalid-value", (key,), f"`{key}` must be a string")
        self.check_graph_inputs(data.get("inputs", {}))
        nodes = data.get("nodes")
        if nodes is None:
            self.add("missing-key", (), "the workflow has no `nodes` section", "add `nodes:` with at least one node")
            nodes = {}
        elif not isinstance(nodes, dict):
            self.add("not-a-mapping", ("nodes",), "`nodes` must map node names to nodes")
            nodes = {}
        for name, decl in nodes.items():
            self.check_node(name, decl)
        self.check_input_defaults()
        self.check_links(nodes)
        self.check_cycles()
        self.check_outputs(data.get("outputs", {}), nodes)

    def check_graph_inputs(self, inputs: Any) -> None:
        for name, (type_name, default) in IMPLICIT_INPUTS.items():
            self.resolved.inputs[name] = (TypeRef(type_name), True, default)
        if not isinstance(inputs, dict):
            self.add("not-a-mapping", ("inputs",), "`inputs` must map graph input names to {type, default}")
            return
        for name, decl in inputs.items():
            path = ("inputs", name)
            if not isinstance(name, str) or not INPUT_NAME.match(name):
                self.add("bad-name", path, f"graph input name {name!r} is not an identifier",
                         "use letters, digits and _", key=True)
                continue
            if not isinstance(decl, dict):
                self.add("not-a-mapping", path, f"graph input {name!r} must be a mapping like {{type: int, default: 1}}")
                continue
            self.check_keys(decl, path, INPUT_KEYS, f"graph input {name!r}")
            self.check_description(decl, path, f"graph input {name!r}")
            type_name = decl.get("type")
            implicit = IMPLICIT_INPUTS.get(name)
            if implicit is not None and type_name != implicit[0]:  # the executor seeds every node from it
                self.add("bad-type-name", path + ("type",), f"graph input {name!r} is the run's seed: its type is "
                         f"{implicit[0]}, not {_short_repr(type_name)}", f"write `type: {implicit[0]}` or rename the input")
                continue
            known = type_names()
            if not isinstance(type_name, str) or type_name not in known:
                self.add("bad-type-name", path + ("type",), f"graph input {name!r} has unknown type {type_name!r}",
                         _did_you_mean(str(type_name), known) or "known types: " + ", ".join(known))
                continue
            default = decl.get("default")
            if "default" in decl and default is not None:
                adapter = literal_adapter(type_name)
                if adapter is None:
                    self.add("invalid-default", path + ("default",),
                             f"graph input {name!r} of type {type_name} cannot have a default in a file",
                             "remove the default; pass the value through the API")
                    continue
                try:
                    default = adapter.validate_python(default, strict=type_name not in ("float",))
                except ValidationError as error:
                    self.add("invalid-default", path + ("default",),
                             f"default of graph input {name!r}: {_first_message(error)}", f"give a {type_name}")
                    continue
            self.resolved.inputs[name] = (TypeRef(type_name), "default" in decl, default)

    def check_input_defaults(self) -> None:
        """A graph input's default must fit every node input it feeds."""
        for name, (_, has_default, default) in self.resolved.inputs.items():
            if has_default and default is not None:
                reason = input_violation(self.resolved, name, default)
                if reason is not None:
                    self.add("invalid-default", ("inputs", name, "default"),
                             f"default {default!r} of graph input {name!r} does not fit {reason}",
                             "give a default in that range")

    def check_node(self, name: Any, decl: Any) -> None:
        path = ("nodes", name)
        if not isinstance(name, str) or not NODE_NAME.match(name):
            self.add("bad-name", path, f"node name {name!r} is not an identifier", "use letters, digits, _ and -",
                     key=True)
            return
        if not isinstance(decl, dict):
            self.add("not-a-mapping", path, f"node {name!r} must be a mapping with `type` and `inputs`")
            return
        self.check_keys(decl, path, NODE_KEYS, f"node {name!r}")
        type_name = decl.get("type")
        if not isinstance(type_name, str):
            self.add("missing-key", path, f"node {name!r} has no `type`", "add `type: <node type>` (see `dgraph nodes`)")
            return
        spec = self.registry.get(type_name)
        if spec is None:
            close = self.registry.suggest(type_name)
            hint = f"did you mean {' or '.join(repr(c) for c in close)}?" if close else "run `dgraph nodes` to list them"
            self.add("unknown-node-type", path + ("type",), f"node {name!r}: unknown node type {type_name!r}", hint)
            return
        self.check_description(decl, path, f"node {name!r}")
        version = decl.get("version")
        if version is not None and (type(version) is not int or version != spec.version):
            self.add("version-mismatch", path + ("version",),
                     f"node {name!r} asks for {type_name} version {version!r}; version {spec.version} is installed",
                     f"update the file for version {spec.version} (or install the node pack that has {version!r})")
        device = decl.get("device")
        if device is not None:
            try:
                if not isinstance(device, str):  # torch.device(5) is cuda:5; the file format wants text
                    raise TypeError(device)
                import torch  # only for a file that names a device: the shipped workflows validate without torch

                torch.device(device)
            except (RuntimeError, TypeError):
                self.add("bad-device", path + ("device",), f"node {name!r}: {device!r} is not a device",
                         "write cpu, cuda, cuda:1 or mps")
                device = None
        inputs = decl.get("inputs", {})
        if not isinstance(inputs, dict):
            self.add("not-a-mapping", path + ("inputs",), f"node {name!r}: `inputs` must map input names to values")
            inputs = {}
        bindings: dict[str, Binding] = {}
        for key, value in inputs.items():
            ipath = path + ("inputs", key)
            if key not in spec.inputs:
                close = _did_you_mean(key, spec.inputs)
                hint = close if close else f"{type_name} takes: {', '.join(spec.inputs) or 'nothing'}"
                self.add("unknown-input", ipath, f"node {name!r}: {type_name} has no input {key!r}", hint, key=True)
                continue
            try:
                binding = parse_binding(value)
            except BindingError as error:
                self.add("bad-link", ipath, f"node {name!r}, input {key!r}: {error}")
                continue
            if isinstance(binding, Literal):
                binding = self.check_literal(name, spec, key, binding, ipath)
                if binding is None:
                    continue
            elif isinstance(binding, GraphRef):
                if binding.name not in self.resolved.inputs:
                    known = [k for k in self.resolved.inputs]
                    self.add("unknown-graph-input", ipath,
                             f"node {name!r}, input {key!r}: ${binding.name} is not a declared graph input",
                             _did_you_mean(binding.name, known) or f"declare it under `inputs:` (known: {', '.join(known)})")
                    continue
                given = self.resolved.inputs[binding.name][0]
                wanted = spec.inputs[key].type
                if not fits(given, wanted):
                    self.add("type-mismatch", ipath,
                             f"node {name!r}, input {key!r} ({wanted}) cannot take graph input ${binding.name} ({given})",
                             f"declare ${binding.name} with a type that fits {wanted}")
                else:
                    self.resolved.uses.setdefault(binding.name, []).append((name, key))
            bindings[key] = binding
        for key, ispec in spec.inputs.items():
            if ispec.required and key not in inputs:
                self.add("missing-input", path + ("inputs",) if "inputs" in decl else path,
                         f"node {name!r}: required input {key!r} ({ispec.type}) is not given",
                         f"add `{key}:` under the node's inputs" + (" as a link '@node.output'" if not ispec.type.literal else ""),
                         key=True)
        self.resolved.nodes[name] = ResolvedNode(name, spec, bindings, device)

    def check_literal(self, name: str, spec: NodeSpec, key: str, binding: Literal, path: tuple) -> Literal | None:
        ispec = spec.inputs[key]
        if binding.value is None and not ispec.required:
            return binding
        adapter = ispec.adapter
        if adapter is None:
            self.add("literal-not-allowed", path,
                     f"node {name!r}, input {key!r} takes a {ispec.type}, which cannot be written as a literal",
                     "link it from another node's output: '@node.output'")
            return None
        try:
            # Strict: `true` is not 1 and '3' is not 3 (an int is still a float).
            value = adapter.validate_python(coerce(binding.value, ispec.type), strict=True)
        except ValidationError as error:
            self.add("invalid-value", path, f"node {name!r}, input {key!r}: {_first_message(error)}",
                     f"expected {ispec.type}" + (f" ({ispec.description})" if ispec.description else ""))
            return None
        return Literal(value)

    def check_links(self, nodes: dict) -> None:
        # Output types may depend on a node's literal inputs (e.g. a Mel's profile), so links are
        # checked after every node has been read.
        for name, node in self.resolved.nodes.items():
            bound: dict[str, TypeRef] = {}
            for key, binding in node.bindings.items():
                wanted = node.spec.inputs[key].type
                if isinstance(binding, GraphRef):
                    bound[key] = self.resolved.inputs[binding.name][0]
                if not isinstance(binding, Link):
                    if isinstance(binding, Literal) and binding.value is not None:
                        bound[key] = wanted
                    continue
                path = ("nodes", name, "inputs", key)
                source_type = self.link_type(binding, path, f"node {name!r}, input {key!r}", nodes)
                if source_type is None:
                    continue
                if not fits(source_type, wanted):
                    self.add("type-mismatch", path,
                             f"node {name!r}, input {key!r} ({wanted}) cannot take {binding} ({source_type}): "
                             f"{mismatch_reason(source_type, wanted)}",
                             f"link an output of type {wanted}" + (" or insert a conversion node"
                                                                   if wanted.name != source_type.name or wanted.params
                                                                   else ""))
                    continue
                bound[key] = source_type
            if node.spec.check is not None:
                for key, (message, hint, *code) in node.spec.check(bound).items():
                    path = ("nodes", name, "inputs", key) if key in node.bindings else ("nodes", name)
                    self.add(code[0] if code else "input-not-taken", path, f"node {name!r}, input {key!r}: {message}",
                             hint, key=key in node.bindings)

    def link_type(self, link: Link, path: tuple, what: str, nodes: dict) -> TypeRef | None:
        if link.node not in nodes:
            self.add("unknown-node", path, f"{what}: {link} links to no node {link.node!r}",
                     _did_you_mean(link.node, [n for n in nodes if isinstance(n, str)]) or "check the node name")
            return None
        target = self.resolved.nodes.get(link.node)
        if target is None:  # the node itself is broken and already reported
            return None
        literals = {k: b.value for k, b in target.bindings.items() if isinstance(b, Literal)}
        types = target.spec.output_types(literals)
        if link.output not in types:
            self.add("unknown-output", path, f"{what}: node {link.node!r} ({target.spec.type_name}) has no output {link.output!r}",
                     f"its outputs: {', '.join(types)}")
            return None
        return types[link.output]

    def check_cycles(self) -> None:
        successors: dict[str, list[str]] = {name: [] for name in self.resolved.nodes}
        for name, node in self.resolved.nodes.items():
            for binding in node.bindings.values():
                if isinstance(binding, Link) and binding.node in successors:
                    successors[binding.node].append(name)
        for component in strongly_connected(successors):
            members = sorted(component)
            if len(members) == 1 and members[0] not in successors[members[0]]:
                continue
            cycle = find_cycle(successors, members)
            loop = " -> ".join(cycle + [cycle[0]])
            first = min(members, key=lambda n: self.positions.of(("nodes", n), key=True))
            self.add("cycle", ("nodes", first), f"nodes depend on each other in a cycle: {loop}",
                     "a workflow is a DAG: break the loop (iterations belong inside a node, like the sampling loop)",
                     key=True)
            for member in members:  # the rest of the graph is still worth planning
                self.resolved.nodes.pop(member, None)

    def check_outputs(self, outputs: Any, nodes: dict) -> None:
        if not isinstance(outputs, dict):
            self.add("not-a-mapping", ("outputs",), "`outputs` must map output names to '@node.output' links")
            return
        for name, value in outputs.items():
            path = ("outputs", name)
            try:
                binding = parse_binding(value)
            except BindingError as error:
                self.add("bad-output", path, f"graph output {name!r}: {error}")
                continue
            if not isinstance(binding, Link):
                self.add("bad-output", path, f"graph output {name!r} must name a node output, got {value!r}",
                         "write '@node.output'")
                continue
            if self.link_type(binding, path, f"graph output {name!r}", nodes) is not None:
                self.resolved.outputs[name] = binding


def _short_repr(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:60] + "..."


def _did_you_mean(word: str, options) -> str:
    if len(str(word)) > 200:  # nothing that long is a typo of a name, and comparing it costs seconds
        return ""
    close = difflib.get_close_matches(str(word), [str(o) for o in options], n=1)
    return f"did you mean {close[0]!r}?" if close else ""


def _first_message(error: ValidationError) -> str:
    first = error.errors()[0]
    return first["msg"].removeprefix("Value error, ") + (f" (got {first['input']!r})" if "input" in first and not isinstance(first["input"], dict) else "")


def check(data: Any, positions: Positions, registry: Registry, filename: str) -> tuple[list[Problem], Resolved]:
    checker = _Checker(data, positions, registry, filename)
    checker.run()
    problems = sorted(checker.problems, key=lambda p: (p.line, p.column, p.code))
    return problems, checker.resolved


def check_sources(resolved: Resolved, positions: Positions, filename: str, base: Any,
                  nodes: Any = None) -> list[Problem]:
    """Sources that can be checked before anything loads: a local folder exists, a package is installed.

    Apart from `check`, because a loaded workflow may still have its sources changed (`Graph.set`) before it
    runs: `dgraph validate` reports these with the rest, and `execute` checks the nodes it will run.
    """
    from ..hub import source_problem

    problems = []
    for name in nodes if nodes is not None else resolved.nodes:
        node = resolved.nodes[name]
        for key, binding in node.bindings.items():
            if isinstance(binding, Literal) and str(node.spec.inputs[key].type) == "Source" \
                    and isinstance(binding.value, str):
                problem = source_problem(binding.value, base)
                if problem is not None:
                    message, hint = problem
                    line, column = positions.of(("nodes", name, "inputs", key))
                    problems.append(Problem("missing-source", f"node {name!r}, input {key!r}: {message}",
                                            hint.replace("NODE.INPUT", f"{name}.{key}"), filename, line, column))
    return problems
