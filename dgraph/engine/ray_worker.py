"""What runs in Ray's worker processes: the model actor, and the task that runs a CPU node.

A `ModelActor` keeps what its nodes made (models first) in its own `ResultCache`, keyed by the nodes'
content keys, so the next execute that sends it a node with the same key (a new seed, another prompt,
another graph with the same weights) is served from there without loading again. A node's arguments
arrive as markers: `Resident` (an output already in this actor) or `Shipped` (an output in the object
store, given with the call as a Ray object, so Ray fetches it to this machine). The outputs the driver
asks for (`exports`) go back through the object store, moved to the CPU; the others stay on the actor's
device.

Events go to the driver in batches, through one small `EventChannel` actor per driver (at most every
0.1 s while a node runs, the rest with its result); cancellation reaches an actor through its `cancel`
method, which runs beside the node (its own concurrency group), and a task through `ray.cancel`.
"""
from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass, replace
from typing import Any

import ray

from ..errors import Cancelled
from ..node import CancelToken, NodeSpec
from .cache import ResultCache
from .task import NodeTask, Services, run_task, spec_for

FLUSH_SECONDS = 0.1
SENT = "sent"  # first in a node's last events when earlier ones went through the channel


@dataclass(frozen=True)
class Resident:
    """An argument that is output `output` of the node keyed `key`, kept in the actor that runs the task."""

    key: str
    output: str


@dataclass(frozen=True)
class Shipped:
    """An argument that is output `output` of the `index`-th outputs object given with the call."""

    index: int
    output: str


@dataclass(frozen=True)
class Call:
    """One node call sent to a worker: the task (arguments as markers), the node type when the worker's own
    registry may not have it, the outputs to send back, and where events go."""

    task: NodeTask
    spec: NodeSpec | None
    exports: tuple[str, ...]
    run: str
    item: int
    channel: Any = None  # an EventChannel handle, None: nobody listens
    threads: int = 0  # torch CPU threads for the node (the driver's count: the same numbers as a local run)


def where() -> str:
    """This worker, for messages: host and process id."""
    return f"pid {os.getpid()} on {socket.gethostname()}"


def _arguments(call: Call, outputs: list[dict[str, Any]], resident: ResultCache | None, device: Any) -> NodeTask:
    from ..types import move_to_device

    arguments = {}
    for name, value in call.task.arguments.items():
        if isinstance(value, Shipped):
            value = move_to_device(outputs[value.index][value.output], device)
        elif isinstance(value, Resident):
            value = resident.get(value.key)[value.output]
        arguments[name] = value
    return replace(call.task, arguments=arguments)


class _Events:
    """A node's events, sent to the driver in batches."""

    def __init__(self, call: Call):
        self.call = call
        self.batch: list[Any] = []
        self.sent = time.monotonic()
        self.last: Any = None  # the latest batch sent

    def emit(self, event: Any) -> None:
        self.batch.append(event)
        if time.monotonic() - self.sent > FLUSH_SECONDS:
            self.last = self.call.channel.put.remote(self.call.run, self.call.item, self.batch)
            self.batch, self.sent = [], time.monotonic()

    def rest(self) -> list[Any]:
        """The events not sent yet, once those sent have reached the channel (so the driver, which takes
        them from there before this node's result, keeps their order)."""
        if self.last is not None:
            ray.get(self.last)
        rest, self.batch = self.batch, []
        return rest


def _run(call: Call, task: NodeTask, cancel: CancelToken) -> tuple[dict[str, Any], list[Any]]:
    from .events import Event
    from .registry import default_registry

    spec = call.spec or spec_for(task, default_registry())
    if call.threads:
        from .lanes import use_cpu_threads

        use_cpu_threads(call.threads)
    events = _Events(call) if call.channel is not None else None
    if events:
        events.emit(Event("node-start", task.context.node, device=task.context.device))
    try:
        outputs = run_task(spec, task, Services(emit=events.emit if events else None, cancel=cancel))
    finally:
        rest = events.rest() if events else []
    if events is not None and events.last is not None:
        rest.insert(0, SENT)  # the driver takes the batches sent from the channel first
    return outputs, rest


def _exported(outputs: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    import torch

    from ..types import move_to_device

    cpu = torch.device("cpu")
    return {name: move_to_device(outputs[name], cpu) for name in names}


class _Flag(CancelToken):
    """Cancelled when the driver has cancelled this run on this actor."""

    def __init__(self, cancelled: set[str], run: str):  # no super().__init__: `cancelled` is computed here
        self._set = cancelled
        self._run = run

    @property
    def cancelled(self) -> bool:  # type: ignore[override]
        return self._run in self._set

    def cancel(self) -> None:
        self._set.add(self._run)


@ray.remote(num_cpus=0, max_restarts=0, concurrency_groups={"control": 1})
class ModelActor:
    """Holds the models of one group of nodes (see engine/ray_homes.py) and runs that group's nodes."""

    def __init__(self) -> None:
        self.cache = ResultCache()
        self.runs: dict[str, int] = {}  # driver run -> this actor's cache token
        self.cancelled: set[str] = set()

    def where(self) -> str:
        return where()

    @ray.method(num_returns=2)
    def run(self, call: Call, *outputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """Run (or serve from this actor's cache) one node; returns what the driver needs to know and the
        exported outputs."""
        import torch

        token = self.runs.get(call.run)
        if token is None:
            token = self.runs[call.run] = self.cache.begin_run()
        started = time.perf_counter()
        found = self.cache.get(call.task.key, token)
        cached = found is not None
        events: list[Any] = []
        if found is None:
            if call.run in self.cancelled:
                raise Cancelled(f"cancelled before node {call.task.context.node!r}")
            task = _arguments(call, list(outputs), self.cache, torch.device(call.task.context.device))
            found, events = _run(call, task, _Flag(self.cancelled, call.run))
            self.cache.put(call.task.key, found, token)
        meta = {"cached": cached, "events": events, "seconds": time.perf_counter() - started}
        return meta, _exported(found, call.exports)

    def end_run(self, run: str) -> None:
        """The driver's run is over: drop what it did not use (unless another run still uses it)."""
        token = self.runs.pop(run, None)
        if token is not None:
            self.cache.end_run(token)
        self.cancelled.discard(run)

    @ray.method(concurrency_group="control")
    def cancel(self, run: str) -> None:
        """Stop the node of `run` running here at its next step, and any of the run that arrives later."""
        self.cancelled.add(run)


@ray.remote(num_returns=2, max_retries=0)
def run_cpu_task(call: Call, *outputs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run a node that holds no model; all its outputs go back through the object store."""
    import torch

    started = time.perf_counter()
    task = _arguments(call, list(outputs), None, torch.device("cpu"))
    found, events = _run(call, task, CancelToken())
    return {"events": events, "seconds": time.perf_counter() - started}, found


@ray.remote(num_cpus=0, max_restarts=0)
class EventChannel:
    """Events of nodes running on workers, held until the driver takes them."""

    def __init__(self) -> None:
        self.events: dict[str, list[tuple[int, Any]]] = {}

    def put(self, run: str, item: int, events: list[Any]) -> None:
        self.events.setdefault(run, []).extend((item, event) for event in events)

    def take(self, run: str) -> list[tuple[int, Any]]:
        return self.events.pop(run, [])
