"""A node call split in two: a self-contained task, and the services that stay with the driver.

A `NodeTask` is plain data: the node type's name and version, the resolved arguments, the content key
and a `TaskContext` (node name, device, seed, output folder...). Anything that can run a registered node
type can run it: a thread of this process today, another process or machine tomorrow (the arguments are
then serialised, and the worker finds the node type by name and version in its own registry).

`Services` is what a task uses but does not own: the event callback, the cancellation token and the file
writer. They live with the driver; a remote worker reaches them through a proxy. The cache also stays with
the driver: executors look a task's key up before running it, so a task never sees the cache.

Every executor builds its tasks with `prepare` and runs them with `run_task`, so they agree on arguments,
keys and errors.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import Cancelled, DgraphError
from ..node import CancelToken, Context, NodeSpec
from ..types import coerce, move_to_device
from .cache import node_key, static_key, value_digest
from .validate import ResolvedNode
from .workflow import GraphRef, Literal

if TYPE_CHECKING:  # imported when a task runs: loading and validating a workflow never need torch
    import torch


class NodeFailed(DgraphError):
    """A node raised while running; the message names the node and its type."""


@dataclass(frozen=True)
class TaskContext:
    """Where and how a task runs, as plain data."""

    node: str
    device: str
    seed: int
    random: bool = False
    effect: bool = False  # the node writes files (it is never served from the cache)
    output_dir: Path | None = None
    overwrite: bool = False
    base: Any = None  # a folder path or a hub Source: where the workflow's relative sources resolve
    workflow: dict[str, Any] | None = None  # read-only, embedded by nodes that record provenance
    inputs: dict[str, Any] = field(default_factory=dict)  # the run's graph inputs, likewise


@dataclass(frozen=True)
class NodeTask:
    """One node call, self-contained."""

    type_name: str
    version: int
    key: str  # the content key its outputs are cached under
    arguments: dict[str, Any]
    context: TaskContext


@dataclass
class Services:
    """The driver's side of a task: events, cancellation, file writes."""

    emit: Callable[[Any], None] | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    write_files: Callable[..., list[Path]] | None = None  # None: the task writes where it runs


@dataclass
class RunState:
    """What an executor knows about one run while it goes: outputs and keys of the nodes done so far."""

    input_digests: dict[str, str]
    values: dict[tuple[str, str], Any] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)


def _move(value: Any, device: torch.device, producer: str) -> Any:
    return move_to_device(value, device)


def prepare(node: ResolvedNode, device: torch.device, state: RunState, request: Any,
            move: Callable[[Any, torch.device, str], Any] = _move) -> NodeTask:
    """The task for `node` on `device`, its arguments taken from the run so far (`move(value, device,
    producing node)` carries each linked value to the device)."""
    spec = node.spec
    arguments: dict[str, Any] = {}
    parts: list[str] = []
    for key, binding in node.bindings.items():
        if isinstance(binding, Literal):
            if binding.value is None and not spec.inputs[key].required:
                continue
            arguments[key] = binding.value
            if spec.inputs[key].type.name == "Source":  # the files, not only their name
                parts.append(f"{key}=files:{_files_identity(binding.value, request.base)}")
        elif isinstance(binding, GraphRef):
            arguments[key] = coerce(request.inputs[binding.name], spec.inputs[key].type)
            parts.append(f"{key}=in:{state.input_digests[binding.name]}")
        else:
            value = coerce(state.values[(binding.node, binding.output)], spec.inputs[key].type)
            arguments[key] = move(value, device, binding.node)
            parts.append(f"{key}=link:{state.keys[binding.node]}.{binding.output}")
    if node.static_key is None:
        node.static_key = static_key(spec.type_name, spec.version, [
            (k, value_digest(b.value)) for k, b in node.bindings.items() if isinstance(b, Literal)])
    if spec.random:  # its numbers come from the seed and its own name: two such nodes never share a result
        parts.append(f"name:{node.name}")
    if spec.effect:  # what it wrote depends on where: downstream keys must see the folder
        parts.append(f"output_dir={request.output_dir}")
    key = node_key(node.static_key, str(device), parts, request.seed if spec.random else None)
    context = TaskContext(node=node.name, device=str(device), seed=request.seed, random=spec.random, effect=spec.effect,
                          output_dir=request.output_dir, overwrite=request.overwrite, base=request.base,
                          workflow=request.workflow, inputs=request.inputs)
    return NodeTask(spec.type_name, spec.version, key, arguments, context)


def _files_identity(text: str, base: Any) -> str:
    """What the files a source names are now (see hub.source_identity); a replaced file gives a new key."""
    from ..hub import parse_source, source_identity

    try:
        return source_identity(parse_source(text, base))
    except Exception:  # an unresolvable source fails in the node itself, with its own message
        return "unresolved"


def spec_for(task: NodeTask, registry: Any) -> NodeSpec:
    """The node type a task names, from a worker's own registry (refusing another version)."""
    spec = registry.get(task.type_name)
    if spec is None or spec.version != task.version:
        found = "not installed" if spec is None else f"version {spec.version} installed"
        raise DgraphError(f"node {task.context.node!r} needs {task.type_name} v{task.version}, {found} "
                          "where it was sent to run")
    return spec


def run_task(spec: NodeSpec, task: NodeTask, services: Services) -> dict[str, Any]:
    """Run one task; returns its outputs by name. Errors name the node."""
    import torch

    c = task.context
    context = Context(node=c.node, device=torch.device(c.device), seed=c.seed, random=c.random,
                      output_dir=c.output_dir, emit=services.emit,
                      cancel=services.cancel, workflow=c.workflow, inputs=c.inputs, base=c.base,
                      overwrite=c.overwrite, effect=c.effect, writer=services.write_files)
    return call_node(spec, context, task.arguments, c.node)


def call_node(spec: NodeSpec, context: Context, arguments: dict[str, Any], name: str) -> dict[str, Any]:
    try:
        return spec.call(context, arguments)
    except DgraphError as error:
        if isinstance(error, Cancelled) or str(error).startswith(f"node {name!r}"):
            raise
        # A node's own message may begin with its type ("sample.loop: ..."), which the prefix already names.
        message = str(error).removeprefix(f"{spec.type_name}: ")
        try:  # keep the error's class (callers catch WeightsError, HubError...) and name the node
            renamed = type(error)(f"node {name!r} ({spec.type_name}): {message}")
        except TypeError:
            renamed = NodeFailed(f"node {name!r} ({spec.type_name}): {message}")
        raise renamed from error
    except KeyboardInterrupt:
        raise Cancelled(f"interrupted during node {name!r}") from None
    except Exception as error:
        raise NodeFailed(f"node {name!r} ({spec.type_name}) failed: {type(error).__name__}: {error}") from error
