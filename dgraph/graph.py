"""`Graph`: a workflow loaded from a file (or built in Python), validated, and executed.

    g = Graph.load("workflows/ddpm.yaml")                 # a path, hf://owner/repo/file.yaml@rev, or a dict
    result = g.execute(seed=3, steps=20)                  # graph inputs by name; typed outputs by name
    result = g.execute(seed=4)                            # models and text embeddings come from the cache

    g = Graph()
    steps = g.input("steps", "int", default=10)
    noise = g.add("tensor.noise", shape=[1, 3, 8, 8])
    g.output("noise", noise.tensor)
    g.save("mine.yaml")
"""
from __future__ import annotations

import copy
import os
import secrets
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Sequence

from pydantic import ValidationError

from .configuration import write_text_atomic
from .engine.cache import ResultCache
from .engine.collector import collector_paused
from .engine.events import Event
from .engine.executor import Executor, LocalExecutor, RunRequest
from .engine.plan import Plan, make_plan
from .engine.problems import Problem, WorkflowError
from .engine.registry import Registry, default_registry
from .engine.validate import Resolved, check, check_sources, input_violation, literal_adapter
from .engine.workflow import (FORMAT_VERSION, NODE_NAME, ParseError, Positions, WorkflowFile, dump_text,
                              parse_text)
from .errors import DgraphError, InputError
from .hub import HF_SCHEME, PKG_SCHEME, fetch_file, parse_source
from .local_files import read_text_limited
from .node import CancelToken
from .safe_yaml import MAX_TEXT_ENV, max_text_bytes


class Result(dict):
    """The graph outputs of one execution, by name (also as attributes); `seed` is the seed it ran with."""

    seed: int | None = None

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no output {name!r}; outputs: {', '.join(self)}") from None


class OutputRef:
    """`node.output` in the Python builder; becomes '@node.output' in the file."""

    def __init__(self, node: str, output: str):
        self.node, self.output = node, output

    def __str__(self) -> str:
        return f"@{self.node}.{self.output}"


class InputRef:
    """A graph input in the Python builder; becomes '$name' in the file."""

    def __init__(self, name: str):
        self.name = name

    def __str__(self) -> str:
        return f"${self.name}"


class NodeRef:
    """A node added with `Graph.add`; its attributes are its outputs."""

    def __init__(self, graph: "Graph", name: str):
        self._graph, self.name = graph, name

    def __getattr__(self, output: str) -> OutputRef:
        if output.startswith("_"):
            raise AttributeError(output)
        decl = self._graph._data["nodes"][self.name]
        spec = self._graph.registry.get(decl["type"])
        if spec is not None and output not in spec.outputs:
            raise AttributeError(f"node {self.name!r} ({decl['type']}) has no output {output!r}; "
                                 f"outputs: {', '.join(spec.outputs)}")
        return OutputRef(self.name, output)


def _as_file_value(value: Any) -> Any:
    if isinstance(value, (OutputRef, InputRef)):
        return str(value)
    if isinstance(value, str) and value.startswith(("@", "$")):
        return {"literal": value}
    return value


class Graph:
    """A workflow graph. See the module docstring."""

    def __init__(self, data: dict[str, Any] | None = None, *, registry: Registry | None = None,
                 filename: str = "<graph>", positions: Positions | None = None, base: Any = None,
                 executor: Executor | None = None):
        self._data = data if data is not None else {"dgraph": FORMAT_VERSION, "nodes": {}}
        self.registry = registry or default_registry()
        self.filename = filename
        self.positions = positions or Positions()
        self.base = base  # where relative sources in the file resolve
        self.executor = executor or LocalExecutor()
        self.cache = ResultCache()
        self._resolved: Resolved | None = None
        self._problems: list[Problem] | None = None
        self._plans: dict[tuple[str, ...] | None, Plan] = {}
        self._canonical: dict[str, Any] | None = None

    # ---- loading and saving ---------------------------------------------------------------------------
    @classmethod
    def load(cls, source: str | os.PathLike | dict[str, Any], *, registry: Registry | None = None) -> "Graph":
        """Load and validate a workflow: a path, `hf://owner/repo/path.yaml@rev`, or a dict.

        Raises `WorkflowError` holding every problem found.
        """
        if isinstance(source, dict):
            graph = cls(copy.deepcopy(source), registry=registry, filename="<dict>")
        else:
            text, filename, base = read_workflow_text(source)
            graph = cls.from_text(text, filename, registry=registry, base=base)
        graph.check()
        return graph

    @classmethod
    def from_pretrained(cls, pretrained: str | os.PathLike | list[str | os.PathLike], *,
                        pipeline_class: str | None = None, registry: Registry | None = None) -> "Graph":
        """The graph of a diffusers pipeline folder or repo (read from its model_index.json).

        `pipeline_class` builds another supported pipeline over the same components (e.g. DDIMPipeline
        over a DDPM repo). A list of stage pipelines (DeepFloyd IF stage I, then stage II) gives one
        cascade whose stages share the first stage's text encoding.
        """
        from .pipelines import cascade_workflow, pipeline_workflow, read_stage

        sources = [os.fspath(p) for p in pretrained] if isinstance(pretrained, (list, tuple)) else [os.fspath(pretrained)]
        stages = [read_stage(source) for source in sources]
        if len(stages) > 1:
            if pipeline_class is not None:
                raise DgraphError("pipeline_class applies to a single pipeline, not to a cascade")
            workflow = cascade_workflow(stages)
        else:
            class_name, base, components = stages[0]
            workflow = pipeline_workflow(pipeline_class or class_name, base, components)
        graph = cls(workflow, registry=registry, filename=f"{sources[0]}#model_index.json")
        graph.check()
        return graph

    @classmethod
    def from_text(cls, text: str, filename: str = "<string>", *, registry: Registry | None = None,
                  base: Any = None) -> "Graph":
        """Parse workflow text without raising on validation problems (see `problems`)."""
        try:
            data, positions = parse_text(text, filename)
        except ParseError as error:
            raise WorkflowError([Problem("yaml-syntax", error.message, "fix the YAML syntax at this position",
                                         filename, error.line, error.column)]) from None
        if data is None:  # an empty file is a mistake, not an empty graph
            raise WorkflowError([Problem("not-a-mapping", "the file is empty",
                                         "a workflow is a mapping with `dgraph`, `nodes` and `outputs`; start from "
                                         "one of the files in workflows/", filename, 1, 1)])
        return cls(data, registry=registry, filename=filename, positions=positions, base=base)

    def to_dict(self) -> dict[str, Any]:
        """The canonical plain-data form of the workflow."""
        return copy.deepcopy(self._canonical_workflow())

    def _canonical_workflow(self) -> dict[str, Any]:
        """The canonical form itself, computed once: read-only use by nodes (embedded in saved files). A run
        only reads it, so it is not copied there (a copy cost a third of a first execute)."""
        self.check()
        if self._canonical is None:
            try:
                with collector_paused():
                    self._canonical = WorkflowFile.model_validate(self._data).to_dict()
            except ValidationError as error:  # validation should have said it; never an internal error
                problems = []
                for item in error.errors():
                    line, column = self.positions.of(tuple(item["loc"]))
                    where = ".".join(str(part) for part in item["loc"])
                    problems.append(Problem("invalid-value", f"{where}: {item['msg']}", "", self.filename, line, column))
                raise WorkflowError(problems) from None
        return self._canonical

    def to_text(self, fmt: str = "yaml") -> str:
        return dump_text(self.to_dict(), fmt)

    def save(self, path: str | os.PathLike) -> None:
        """Write the workflow as YAML (or JSON for a .json path), atomically."""
        path = Path(path)
        write_text_atomic(path, self.to_text("json" if path.suffix.lower() == ".json" else "yaml"))

    # ---- validation ---------------------------------------------------------------------------------
    def _analyse(self) -> None:
        if self._problems is None:
            with collector_paused():
                self._problems, self._resolved = check(self._data, self.positions, self.registry, self.filename)

    @property
    def problems(self) -> list[Problem]:
        """Every problem in the workflow (empty when it is valid)."""
        self._analyse()
        return list(self._problems)

    def check(self) -> None:
        """Raise `WorkflowError` with every problem, if there are any."""
        if self.problems:
            raise WorkflowError(self.problems)

    def source_problems(self, outputs: list[str] | None = None) -> list[Problem]:
        """Sources the nodes computing `outputs` (default: all) name that cannot be had: a local folder that
        does not exist, a package that is not installed. `execute` raises them before anything loads."""
        nodes = None if outputs is None else self.plan(outputs).order
        return check_sources(self.resolved, self.positions, self.filename, self.base, nodes)

    @property
    def resolved(self) -> Resolved:
        self.check()
        return self._resolved

    def _changed(self) -> None:
        self._problems = self._resolved = self._canonical = None
        self._plans = {}

    # ---- building in Python -------------------------------------------------------------------------
    def add(self, type_name: str, name: str | None = None, *, device: str | None = None, **inputs: Any) -> NodeRef:
        """Add a node; inputs are literals, `other_node.output` refs, or `graph.input(...)` refs."""
        nodes = self._data.setdefault("nodes", {})
        if name is None:
            stem = type_name.rsplit(".", 1)[-1]
            name, n = stem, 2
            while name in nodes:
                name, n = f"{stem}_{n}", n + 1
        elif name in nodes:
            raise DgraphError(f"a node named {name!r} already exists")
        if not NODE_NAME.match(name):
            raise DgraphError(f"node name {name!r} is not an identifier (letters, digits, _ and -)")
        decl: dict[str, Any] = {"type": type_name}
        if device is not None:
            decl["device"] = device
        if inputs:
            decl["inputs"] = {k: _as_file_value(v) for k, v in inputs.items()}
        nodes[name] = decl
        self._changed()
        return NodeRef(self, name)

    def input(self, name: str, type: str, default: Any = ..., description: str = "") -> InputRef:
        """Declare a graph input."""
        decl: dict[str, Any] = {"type": type}
        if default is not ...:
            decl["default"] = default
        if description:
            decl["description"] = description
        self._data.setdefault("inputs", {})[name] = decl
        self._changed()
        return InputRef(name)

    def output(self, name: str, ref: OutputRef) -> None:
        """Declare a graph output."""
        self._data.setdefault("outputs", {})[name] = str(ref)
        self._changed()

    def set(self, target: str, value: Any) -> None:
        """Override part of the workflow: `name` sets a graph input's default, `node.input` a node's input
        (or `node.device` its placement, when the node has no input of that name).

        A local folder given as a source here is relative to the current folder — where it was typed —
        not to the workflow file's."""
        node, _, key = target.partition(".")
        if not key:
            inputs = self._data.get("inputs") or {}
            if node not in inputs and node != "seed":
                raise DgraphError(f"--set {target}: no graph input {node!r}; inputs: {', '.join(inputs) or 'none'} "
                                  f"(to change a node's input write node.input)")
            if node == "seed" and node not in inputs:
                self._data.setdefault("inputs", {})["seed"] = {"type": "int"}
            self._data["inputs"][node]["default"] = value
        else:
            nodes = self._data.get("nodes") or {}
            if node not in nodes:
                raise DgraphError(f"--set {target}: no node {node!r}; nodes: {', '.join(nodes)}")
            spec = self.registry.get(nodes[node].get("type", ""))
            if key == "device" and (spec is None or "device" not in spec.inputs):
                nodes[node]["device"] = value
            else:
                if spec is not None and key not in spec.inputs:
                    raise DgraphError(f"--set {target}: node {node!r} ({spec.type_name}) has no input {key!r}; "
                                      f"inputs: {', '.join(spec.inputs)}")
                if spec is not None and str(spec.inputs[key].type) == "Source":
                    value = _from_here(value)
                nodes[node].setdefault("inputs", {})[key] = _as_file_value(value)
        self._changed()

    # ---- running ------------------------------------------------------------------------------------
    def compile(self, mode: str) -> list[str]:
        """Run this graph's denoiser networks through `torch.compile` in `mode` ("default",
        "reduce-overhead" — with CUDA graphs —, "max-autotune", or "off" to undo): sets the `compile` input
        of every node whose type has one. Returns the names of those nodes; none is an error."""
        nodes = self._data.get("nodes") or {}
        names = [name for name, decl in nodes.items()
                 if (spec := self.registry.get(decl.get("type", ""))) is not None and "compile" in spec.inputs]
        if not names:
            raise DgraphError("this workflow has no node with a `compile` input (denoiser.model, "
                              "denoiser.image_conditioned, ...): nothing to compile")
        for name in names:
            self.set(f"{name}.compile", mode)
        return names

    @property
    def input_names(self) -> list[str]:
        return list(self.resolved.inputs)

    def plan(self, outputs: list[str] | None = None) -> Plan:
        key = tuple(outputs) if outputs is not None else None
        if key not in self._plans:
            self._plans[key] = make_plan(self.resolved, outputs)
        return self._plans[key]

    def bind_inputs(self, values: dict[str, Any]) -> dict[str, Any]:
        """Graph input values for a run: defaults, overridden by `values`, each checked against its type."""
        declared = self.resolved.inputs
        unknown = [k for k in values if k not in declared]
        if unknown:
            raise InputError(f"unknown graph input(s) {', '.join(map(repr, unknown))}; "
                              f"this workflow takes: {', '.join(declared)}")
        bound: dict[str, Any] = {}
        for name, (type_ref, has_default, default) in declared.items():
            if name in values:
                value = values[name]
                adapter = literal_adapter(type_ref.name)
                if type_ref.name == "Text" and isinstance(value, (list, tuple)) and value \
                        and all(isinstance(v, str) for v in value):
                    adapter = None  # a batch of prompts: nodes that take list[str] receive it whole
                    value = list(value)
                if adapter is not None:
                    try:
                        value = adapter.validate_python(value)
                    except ValidationError as error:
                        raise InputError(f"graph input {name!r} expects {type_ref.name}, got {value!r}: "
                                         f"{error.errors()[0]['msg']}") from None
                reason = input_violation(self.resolved, name, value)
                if reason is not None:
                    raise InputError(f"graph input {name!r} = {value!r} does not fit {reason}")
                bound[name] = value
            elif has_default:
                bound[name] = default
            else:
                raise InputError(f"graph input {name!r} ({type_ref}) has no default: pass it "
                                  f"(--{name.replace('_', '-')} VALUE on the command line, {name}=... in Python)")
        if bound.get("seed") is None:
            bound["seed"] = fresh_seed()
        return bound

    def execute(self, outputs: list[str] | None = None, *, device: str | None = None, force_device: bool = False,
                on_event: Callable[[Event], None] | None = None, cancel: CancelToken | None = None,
                output_dir: str | os.PathLike | None = None, overwrite: bool = False,
                executor: str | Executor | None = None, devices: Sequence[str] | None = None,
                **inputs: Any) -> Result:
        """Run the graph and return its outputs by name. Keyword arguments are graph inputs (`seed=3`).

        Without a `seed` (and no default for it in the file) a fresh one is drawn; `Result.seed` says which,
        and files the graph writes record it, so every result can be made again.

        Nodes that write files (image.save, audio.save) write only under `output_dir` (default: `outputs`
        in the current folder), numbering each new file after the ones already there — an earlier run's
        files are never replaced, not even by a run going on at the same time — unless `overwrite` is set,
        when names start again at 000 and replace what is there.

        `executor`: "local" (one node at a time), "parallel" (ready nodes at once, engine/parallel.py) or an
        `Executor`; default: the graph's own (local). `devices` places nodes without `device:` over these
        devices by memory (it implies the parallel executor).
        """
        request = self._request(outputs, inputs, device, force_device, on_event, cancel, output_dir, overwrite)
        result = Result(self._executor(executor, devices).run(request))
        result.seed = request.seed
        return result

    def execute_items(self, items: Sequence[dict[str, Any]], outputs: list[str] | None = None, *,
                      executor: str | Executor | None = "parallel", devices: Sequence[str] | None = None,
                      pipeline: bool = True, device: str | None = None, force_device: bool = False,
                      on_event: Callable[[Event], None] | None = None, cancel: CancelToken | None = None,
                      output_dir: str | os.PathLike | None = None, overwrite: bool = False,
                      **inputs: Any) -> list[Result]:
        """Run the graph once per item (a dict of graph inputs, over `inputs` shared by all); results in item
        order, each bitwise what `execute(**inputs, **item)` gives. With `pipeline` (and the parallel
        executor) the items go through one schedule: item k+1's first stages run while item k's later
        ones do, on their own devices. Every item runs with the same seed unless an item gives its own."""
        if not items:
            raise InputError("execute_items needs at least one item")
        shared = dict(inputs)
        cancel = cancel or CancelToken()  # one token stops every item
        if shared.get("seed") is None and all("seed" not in item for item in items):
            shared["seed"] = fresh_seed()  # one seed for all, as running them one by one with it
        requests = [self._request(outputs, {**shared, **item}, device, force_device, on_event, cancel, output_dir,
                                  overwrite) for item in items]
        runner = self._executor(executor, devices)
        if pipeline and hasattr(runner, "run_items"):
            raw = runner.run_items(requests)
        else:
            raw = [runner.run(request) for request in requests]
        results = []
        for request, values in zip(requests, raw):
            result = Result(values)
            result.seed = request.seed
            results.append(result)
        return results

    def _executor(self, executor: str | Executor | None, devices: Sequence[str] | None) -> Executor:
        if executor is None and not devices:
            return self.executor
        from .engine.parallel import make_executor

        return make_executor(executor or "parallel", devices=devices)

    def _request(self, outputs, inputs, device, force_device, on_event, cancel, output_dir, overwrite) -> RunRequest:
        bound = self.bind_inputs(inputs)
        missing = self.source_problems(outputs)
        if missing:
            raise WorkflowError(missing)
        return RunRequest(
            resolved=self.resolved, plan=self.plan(outputs), inputs=bound, seed=int(bound["seed"]),
            device=device, force_device=force_device, cache=self.cache, on_event=on_event,
            cancel=cancel or CancelToken(), output_dir=Path(output_dir) if output_dir is not None else Path("outputs"),
            workflow=self._canonical_workflow(), base=self.base, overwrite=overwrite)


def _from_here(value: Any) -> Any:
    """A relative local source, made absolute against the current folder (Hub ids and packages unchanged)."""
    if not isinstance(value, str) or value.startswith((HF_SCHEME, PKG_SCHEME, "/", "~")):
        return value
    if value.startswith(".") or Path(value).exists():
        return str(Path(value).resolve())
    return value


def fresh_seed() -> int:
    """A seed for a run that was given none (below 2**31, so every library's generators take it)."""
    return secrets.randbelow(2**31)


RAISE_TEXT_LIMIT = f"split it, or raise the limit with the environment variable {MAX_TEXT_ENV}=BYTES"


def read_workflow_text(source: str | os.PathLike) -> tuple[str, str, Any]:
    """The text of a workflow file, a name for messages, and the base its relative sources resolve against."""
    text_source = os.fspath(source)
    if text_source.startswith(HF_SCHEME):
        parsed = parse_source(text_source)
        if not parsed.path or "/" not in parsed.path and "." not in parsed.path:
            raise DgraphError(f"{text_source}: name a workflow file inside the repo, e.g. "
                              f"hf://{parsed.location}/workflow.yaml (for a diffusers pipeline repo use `dgraph run` on it directly)")
        folder, _, name = parsed.path.rpartition("/")
        base = replace(parsed, path=folder)
        path = fetch_file(base, name)
        return read_text_limited(path, "workflow file", max_text_bytes(), RAISE_TEXT_LIMIT), text_source, base
    path = Path(text_source)
    if not path.exists():
        raise DgraphError(f"{path}: no such workflow file")
    text = read_text_limited(path, "workflow file", max_text_bytes(), RAISE_TEXT_LIMIT)
    return text, str(path), str(path.resolve().parent)
