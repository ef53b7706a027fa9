"""The parallel executor: every node whose inputs are ready runs at once, on its device's lane.

    g.execute(executor="parallel")                                   # independent branches at the same time
    g.execute(executor=ParallelExecutor(devices=["cuda:0", "cuda:1"]))  # nodes placed by memory over two GPUs
    g.execute_items([{"prompt": "a"}, {"prompt": "b"}], executor="parallel", pipeline=True)

The driver (the calling thread) keeps the run: it tracks which nodes are ready from the plan's
dependencies, hands each ready node to a worker as a task (engine/task.py), and receives its outputs.
Workers only run tasks: one thread per CUDA device (on its own stream, engine/lanes.py) and a small CPU
pool whose workers split the CPU threads between them. Randomness comes per node from the seed and the
node's name, so the outputs are bitwise those of the local executor whatever runs beside what.

A failing node cancels its run: the nodes still running stop at their next step, nothing new starts, and
the error that is raised names the failing node. Items run through one schedule when `run_items` is
given several requests: a node of item k waits for the same node of item k-1 (stages keep the item order,
so files are numbered in it), and otherwise item k+1's first stage runs while item k's later ones do.
"""
from __future__ import annotations

import heapq
import os
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Sequence

import torch

from ..errors import Cancelled, DgraphError
from ..node import CancelToken
from .cache import value_digest
from .events import Event, new_run, stamping
from .executor import Executor, RunRequest, placement
from .jobs import Job, job_graph
from .lanes import Lane, carry, use_cpu_threads
from .offload import offload
from .task import RunState, Services, prepare, run_task


class _RunCancel(CancelToken):
    """Cancelled when the caller's token is, or when a node of the run failed."""

    def __init__(self, parent: CancelToken):  # no super().__init__: `cancelled` is computed here
        self._parent = parent
        self._failed = False

    @property
    def cancelled(self) -> bool:  # type: ignore[override]
        return self._failed or self._parent.cancelled

    def cancel(self) -> None:
        self._failed = True


class ParallelExecutor(Executor):
    """Runs ready nodes concurrently: a worker per CUDA device, `cpu_workers` for CPU nodes.

    devices: devices to place nodes without `device:` over, by memory (`cuda:0`, `cuda:1:24GiB`; see
        engine/placement.py); None places as the local executor does (`device=` of execute, else the CPU).
    cpu_workers: CPU nodes running at once (default: the usable cores, at most 4).
    cpu_threads: torch threads shared by the CPU nodes running at once (default: the caller's count); a CPU
        node running alone takes no more than the caller's count.
    offload: keep weights of models that fit no device on the CPU, moving them for each use.
    """

    def __init__(self, devices: Sequence[str] | None = None, *, cpu_workers: int | None = None,
                 cpu_threads: int | None = None, offload: bool = False):
        self.devices = list(devices) if devices else None
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        self.cpu_workers = cpu_workers or max(1, min(usable, 4))
        self.cpu_threads = cpu_threads
        self.offload = offload

    def run(self, request: RunRequest) -> dict[str, Any]:
        return self.run_items([request], item_events=False)[0]

    def run_items(self, requests: Sequence[RunRequest], *, item_events: bool = True) -> list[dict[str, Any]]:
        """Run several requests (the items of one graph) through one schedule; outputs in their order."""
        return _Schedule(self, list(requests), item_events).run()

    def devices_for(self, request: RunRequest) -> tuple[dict[str, torch.device], dict[str, torch.device]]:
        """Each planned node's device, and the device each offloaded model node's model computes on (its
        loader itself runs on the CPU)."""
        if self.devices:
            from .placement import place

            chosen = place(request.resolved, request.plan, self.devices, base=request.base, offload=self.offload)
            devices = {name: placement(chosen.devices[name], None, False) for name in request.plan.order}
            offloaded = {name: devices[name] for name in chosen.offloaded}
            devices.update({name: torch.device("cpu") for name in offloaded})
            return devices, offloaded
        cached: dict[str | None, torch.device] = {}
        for name in request.plan.order:
            wanted = request.resolved.nodes[name].device
            if wanted not in cached:
                cached[wanted] = placement(wanted, request.device, request.force_device)
        return {name: cached[request.resolved.nodes[name].device] for name in request.plan.order}, {}


class _Schedule:
    """One call of `run_items`: the driver's bookkeeping."""

    def __init__(self, executor: ParallelExecutor, requests: list[RunRequest], item_events: bool):
        self.executor = executor
        self.requests = requests
        first = requests[0]
        self.cancel = _RunCancel(first.cancel)
        self.run_id = new_run()
        self.lock = threading.Lock()  # one event at a time reaches the callback
        self.listener = first.on_event
        self.item_events = item_events
        self.states = [RunState({n: value_digest(v) for n, v in r.inputs.items()}) for r in requests]
        # placed before the cache hears of the run: a placement error leaves nothing behind
        self.placed, self.offloaded = zip(*(executor.devices_for(r) for r in requests)) if requests else ((), ())
        self.tokens = [r.cache.begin_run() for r in requests]
        self.lanes: dict[torch.device, Lane] = {}
        for devices in self.placed:
            for device in devices.values():
                if device not in self.lanes:
                    self.lanes[device] = Lane(device)
        self.lane_of: dict[Job, Lane] = {}
        self.done_event: dict[Job, Any] = {}
        self.caller_threads = torch.get_num_threads()
        self.total_threads = executor.cpu_threads or self.caller_threads

    # ---- events -------------------------------------------------------------------------------------
    def emitter(self, item: int):
        return stamping(self.listener, self.run_id, item if self.item_events else -1, self.lock)

    # ---- the driver loop ----------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        emit = stamping(self.listener, self.run_id, -1, self.lock)  # "plan" and "done" belong to no item
        order, waiting, children = job_graph(self.requests)  # every stage keeps the item order
        ready = [(item, order[(item, name)], name) for (item, name), count in waiting.items() if count == 0]
        heapq.heapify(ready)
        if emit:
            emit(Event("plan", total=len(order)))
        pools: dict[torch.device, ThreadPoolExecutor] = {}
        # never more CPU nodes at once than threads to give them
        cpu_slots = max(1, min(self.executor.cpu_workers, self.total_threads))
        slots = {device: (cpu_slots if device.type == "cpu" else 1) for device in self.lanes}
        busy = {device: 0 for device in self.lanes}
        finished: queue.Queue[tuple[Job, torch.device, Future]] = queue.Queue()
        running = 0
        error: BaseException | None = None
        try:
            while ready or running:
                if not running and len(ready) == 1 and error is None and not self.cancel.cancelled \
                        and self._inline(ready[0]):
                    # One CPU node and nothing else running (a chain): run it here, sparing the handoff.
                    item, _, name = heapq.heappop(ready)
                    job = (item, name)
                    self.lane_of[job] = self.lanes[self.placed[item][name]]
                    try:
                        result = self._work(job, self.lane_of[job], 0)
                    except Exception as failure:  # noqa: BLE001 - raised below, after the bookkeeping
                        error = failure
                        self.cancel.cancel()
                        continue
                    self._store(job, result, children, waiting, order, ready)
                    continue
                if error is None and not self.cancel.cancelled:
                    ready, started = self._dispatch(ready, pools, slots, busy, finished)
                    running += started
                elif not running:
                    break
                if not running:  # nothing could start: every ready node's lane is full (cannot happen) or cancelled
                    break
                try:
                    job, device, future = finished.get(timeout=0.1)
                except queue.Empty:
                    continue
                running -= 1
                busy[device] -= 1
                failure = future.exception()
                if failure is not None:
                    if error is None or (isinstance(error, Cancelled) and not isinstance(failure, Cancelled)):
                        error = failure
                    self.cancel.cancel()  # the others stop at their next step
                    continue
                self._store(job, future.result(), children, waiting, order, ready)
        except KeyboardInterrupt:
            self.cancel.cancel()  # the workers stop at their next step; shutting the pools down waits for them
            error = Cancelled("interrupted")
        finally:
            for pool in pools.values():
                pool.shutdown(wait=True)
            for lane in self.lanes.values():
                lane.synchronize()
            for request, token in zip(self.requests, self.tokens):
                request.cache.end_run(token)
        if error is not None:
            raise error
        left = [name for (item, name) in order if name not in self.states[item].keys]
        if left:  # cancelled between nodes: nothing was running to raise it
            raise Cancelled(f"cancelled before node {left[0]!r}")
        if emit:
            emit(Event("done"))
        return [{out: state.values[(link.node, link.output)] for out, link in request.plan.outputs.items()}
                for request, state in zip(self.requests, self.states)]

    def _inline(self, entry: tuple[int, int, str]) -> bool:
        """Whether a lone ready node can run in the driver's thread: a CPU node, at the caller's thread count."""
        item, _, name = entry
        return self.placed[item][name].type == "cpu" and self._alone() == self.caller_threads

    def _alone(self) -> int:
        """Threads for a CPU node running alone: the budget, but no more than the caller runs with (the CLI
        keeps that below the cores on purpose, see cli.cpu_threads)."""
        return min(self.total_threads, self.caller_threads)

    def _dispatch(self, ready, pools, slots, busy, finished) -> tuple[list, int]:
        """Start every ready node whose lane has a free worker; returns the rest and how many started."""
        held, started = [], 0
        cpu_ready = sum(1 for item, _, name in ready if self.placed[item][name].type == "cpu")
        while ready:
            item, index, name = heapq.heappop(ready)
            device = self.placed[item][name]
            if busy[device] >= slots[device]:
                held.append((item, index, name))
                continue
            threads = 0
            if device.type == "cpu":  # split the CPU threads between the CPU nodes about to run together
                together = min(slots[device], busy[device] + cpu_ready)
                threads = self._alone() if together <= 1 else max(1, self.total_threads // together)
                cpu_ready -= 1
            pool = pools.get(device)
            if pool is None:
                pool = pools[device] = ThreadPoolExecutor(slots[device], thread_name_prefix=f"dgraph-{device}")
            job = (item, name)
            self.lane_of[job] = self.lanes[device]
            future = pool.submit(self._work, job, self.lanes[device], threads)
            future.add_done_callback(lambda f, job=job, device=device: finished.put((job, device, f)))
            busy[device] += 1
            started += 1
        for entry in held:
            heapq.heappush(ready, entry)
        return ready, started

    def _store(self, job: Job, result: tuple[str, dict[str, Any], Any], children: dict[Job, list[Job]],
               waiting: dict[Job, int], order: dict[Job, int], ready: list) -> None:
        """Keep a finished node's outputs and ready the nodes that waited only for it."""
        item, name = job
        key, outputs, done = result
        state = self.states[item]
        state.keys[name] = key
        self.done_event[job] = done
        for output, value in outputs.items():
            state.values[(name, output)] = value
        for child in children.get(job, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (child[0], order[child], child[1]))

    # ---- a worker -----------------------------------------------------------------------------------
    def _work(self, job: Job, lane: Lane, threads: int) -> tuple[str, dict[str, Any], Any]:
        item, name = job
        request = self.requests[item]
        node = request.resolved.nodes[name]
        emit = self.emitter(item)
        if threads:
            use_cpu_threads(threads)
        if self.cancel.cancelled:
            raise Cancelled(f"cancelled before node {name!r}")

        def move(value: Any, device: torch.device, producer: str) -> Any:
            source = (item, producer)
            return carry(value, self.lane_of.get(source), self.done_event.get(source), lane)

        def waiting() -> None:
            if self.cancel.cancelled:
                raise Cancelled(f"cancelled before node {name!r}")

        with lane.active():
            task = prepare(node, lane.device, self.states[item], request, move)
            token = self.tokens[item]
            # an effect (writing files) happens on every run: never served from the cache
            outputs = None if node.spec.effect else request.cache.claim(task.key, token, waiting)
            if outputs is not None:
                if emit:
                    emit(Event("node-cached", name, device=str(lane.device)))
            else:
                if emit:
                    emit(Event("node-start", name, device=str(lane.device)))
                started = time.perf_counter()
                try:
                    outputs = run_task(node.spec, task, Services(emit=emit, cancel=self.cancel))
                except BaseException:
                    request.cache.release(task.key)
                    raise
                if name in self.offloaded[item]:
                    outputs = {k: offload(v, self.offloaded[item][name]) if isinstance(v, torch.nn.Module) else v
                               for k, v in outputs.items()}
                request.cache.put(task.key, outputs, token)
                if emit:
                    emit(Event("node-end", name, seconds=time.perf_counter() - started, device=str(lane.device)))
            return task.key, outputs, lane.finished()


def make_executor(name: str | Executor | None, **options: Any) -> Executor:
    """An executor from its name (`local`, `parallel`, `ray`) or as given; `options` go to the parallel or Ray one."""
    from .executor import LocalExecutor

    if isinstance(name, Executor):
        return name
    if name in (None, "local"):
        if any(v for v in options.values()):
            used = ", ".join(k for k, v in options.items() if v)
            raise DgraphError(f"{used} need the parallel executor: add --executor parallel "
                              "(executor='parallel' in Python)")
        return LocalExecutor()
    if name == "parallel":
        return ParallelExecutor(**options)
    if name == "ray":
        from .ray_executor import RayExecutor  # imports ray only when asked for

        return RayExecutor(**options)
    raise DgraphError(f"unknown executor {name!r}; choose local, parallel or ray")
