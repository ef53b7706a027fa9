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


from ..errors import Cancelled, DgraphError
from ..node import CancelToken
from .cache import ResultCache, value_digest
from .collector import collector_as, collector_paused
from .events import Event, new_run, stamping
from .plan import Plan
from .task import NodeFailed, RunState, Services, prepare, run_task  # noqa: F401  (NodeFailed: its old home)
from .validate import Resolved


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
    overwrite: bool = False


class Executor(ABC):
    """Runs a plan. Implementations build each node's task with `task.prepare`, look its key up in the
    request's cache and run it with `task.run_task` (see engine/task.py)."""

    @abstractmethod
    def run(self, request: RunRequest) -> dict[str, Any]:
        """Run the plan; return the graph outputs by name."""


def placement(node_device: str | None, default: str | None, force: bool) -> torch.device:
    chosen = default if force and default else node_device or default or "cpu"
    import torch  # here, not at import: validating a workflow never needs it

    device = torch.device(chosen)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DgraphError(f"device {chosen!r} requested but torch sees no CUDA device; "
                          "run with --device cpu --force-device to place every node on the CPU")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise DgraphError(f"device {chosen!r} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    return device


class LocalExecutor(Executor):
    """Runs nodes in topological order in this process."""

    def run(self, request: RunRequest) -> dict[str, Any]:
        listener = stamping(request.on_event, new_run())
        emit = listener or (lambda event: None)
        tell = listener is not None  # build Event objects only for someone who listens
        cache = request.cache
        state = RunState({name: value_digest(value) for name, value in request.inputs.items()})
        services = Services(emit=listener, cancel=request.cancel)
        devices: dict[str | None, torch.device] = {}
        emit(Event("plan", total=len(request.plan.order)))
        run = cache.begin_run()
        # The engine's bookkeeping runs with the cyclic collector paused; each node call with it as it was.
        with collector_paused() as collecting:
            try:
                for name in request.plan.order:
                    if request.cancel.cancelled:
                        raise Cancelled(f"cancelled before node {name!r}")
                    node = request.resolved.nodes[name]
                    device = devices.get(node.device)
                    if device is None:
                        device = devices[node.device] = placement(node.device, request.device, request.force_device)
                    task = prepare(node, device, state, request)
                    state.keys[name] = task.key
                    outputs = None if node.spec.effect else cache.get(task.key, run)  # an effect happens every run
                    if outputs is not None:
                        if tell:
                            emit(Event("node-cached", name, device=str(device)))
                    else:
                        if tell:
                            emit(Event("node-start", name, device=str(device)))
                        started = time.perf_counter()
                        with collector_as(collecting):
                            outputs = run_task(node.spec, task, services)
                        cache.put(task.key, outputs, run)
                        if tell:
                            emit(Event("node-end", name, seconds=time.perf_counter() - started, device=str(device)))
                    for output, value in outputs.items():
                        state.values[(name, output)] = value
            finally:
                cache.end_run(run)
        emit(Event("done"))
        return {out: state.values[(link.node, link.output)] for out, link in request.plan.outputs.items()}
