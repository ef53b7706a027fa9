"""Executors run a plan. The local executor runs nodes one after another in this process, each on its
placed device; a multi-device or Ray executor implements the same `Executor.run`.

Placement: a node's own `device:` wins, then the device given to `execute` (`--device`), then the CPU.
Tensors (and values holding tensors) move to the consuming node's device at each edge; models stay where
their loader put them.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import Cancelled, DgraphError
from ..node import CancelToken, Context
from ..types import coerce, move_to_device
from .cache import ResultCache, node_key, static_key, value_digest
from .events import Event
from .plan import Plan
from .validate import Resolved
from .workflow import GraphRef, Literal


class NodeFailed(DgraphError):
    """A node raised while running; the message names the node and its type."""


@dataclass
class RunRequest:
    """Everything one execution needs besides the plan."""

    resolved: Resolved
    plan: Plan
    inputs: dict[str, Any]
    seed: int
    device: str | None = None
    force_device: bool = False
    cache: ResultCache = field(default_factory=ResultCache)
    on_event: Callable[[Event], None] | None = None
    cancel: CancelToken = field(default_factory=CancelToken)
    output_dir: Path | None = None
    workflow: dict[str, Any] | None = None
    base: Any = None


class Executor(ABC):
    @abstractmethod
    def run(self, request: RunRequest) -> dict[str, Any]:
        """Run the plan; return the graph outputs by name."""


def placement(node_device: str | None, default: str | None, force: bool) -> torch.device:
    chosen = default if force and default else node_device or default or "cpu"
    try:
        device = torch.device(chosen)
    except (RuntimeError, TypeError):
        raise DgraphError(f"{chosen!r} is not a device; write cpu, cuda, cuda:1 or mps") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DgraphError(f"device {chosen!r} requested but torch sees no CUDA device; "
                          "run with --device cpu --force-device to place every node on the CPU")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DgraphError(f"device {chosen!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


class LocalExecutor(Executor):
    """Runs nodes in topological order in this process."""

    def run(self, request: RunRequest) -> dict[str, Any]:
        emit = request.on_event or (lambda event: None)
        tell = request.on_event is not None  # build Event objects only for someone who listens
        cache = request.cache
        values: dict[tuple[str, str], Any] = {}
        keys: dict[str, str] = {}
        input_digests = {name: value_digest(value) for name, value in request.inputs.items()}
        devices: dict[str | None, torch.device] = {}
        emit(Event("plan", total=len(request.plan.order)))
        cache.begin_run()
        try:
            for name in request.plan.order:
                if request.cancel.cancelled:
                    raise Cancelled(f"cancelled before node {name!r}")
                node = request.resolved.nodes[name]
                spec = node.spec
                device = devices.get(node.device)
                if device is None:
                    device = devices[node.device] = placement(node.device, request.device, request.force_device)
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
                        parts.append(f"{key}=in:{input_digests[binding.name]}")
                    else:
                        value = coerce(values[(binding.node, binding.output)], spec.inputs[key].type)
                        arguments[key] = move_to_device(value, device)
                        parts.append(f"{key}=link:{keys[binding.node]}.{binding.output}")
                if node.static_key is None:
                    node.static_key = static_key(spec.type_name, spec.version, [
                        (k, value_digest(b.value)) for k, b in node.bindings.items() if isinstance(b, Literal)])
                if spec.effect:  # what it wrote depends on where: downstream keys must see the folder
                    parts.append(f"output_dir={request.output_dir}")
                key = node_key(node.static_key, str(device), parts, request.seed if spec.random else None)
                keys[name] = key
                outputs = None if spec.effect else cache.get(key)  # an effect happens on every run
                if outputs is not None:
                    if tell:
                        emit(Event("node-cached", name, device=str(device)))
                else:
                    if tell:
                        emit(Event("node-start", name, device=str(device)))
                    started = time.perf_counter()
                    context = Context(node=name, device=device, seed=request.seed, random=spec.random,
                                      output_dir=request.output_dir, emit=emit, cancel=request.cancel,
                                      workflow=request.workflow, inputs=request.inputs, base=request.base,
                                      effect=spec.effect)
                    outputs = _call(spec, context, arguments, name)
                    cache.put(key, outputs)
                    if tell:
                        emit(Event("node-end", name, seconds=time.perf_counter() - started, device=str(device)))
                for output, value in outputs.items():
                    values[(name, output)] = value
        finally:
            cache.end_run()
        emit(Event("done"))
        return {out: values[(link.node, link.output)] for out, link in request.plan.outputs.items()}


def _files_identity(text: str, base: Any) -> str:
    """What the files a source names are now (see hub.source_identity); a replaced file gives a new key."""
    from ..hub import parse_source, source_identity

    try:
        return source_identity(parse_source(text, base))
    except Exception:  # an unresolvable source fails in the node itself, with its own message
        return "unresolved"


def _call(spec, context: Context, arguments: dict[str, Any], name: str) -> dict[str, Any]:
    try:
        return spec.call(context, arguments)
    except DgraphError as error:
        if isinstance(error, Cancelled) or str(error).startswith(f"node {name!r}"):
            raise
        try:  # keep the error's class (callers catch WeightsError, HubError...) and name the node
            renamed = type(error)(f"node {name!r} ({spec.type_name}): {error}")
        except TypeError:
            renamed = NodeFailed(f"node {name!r} ({spec.type_name}): {error}")
        raise renamed from error
    except KeyboardInterrupt:
        raise Cancelled(f"interrupted during node {name!r}") from None
    except Exception as error:
        raise NodeFailed(f"node {name!r} ({spec.type_name}) failed: {type(error).__name__}: {error}") from error
