"""The Ray executor: the same tasks on a Ray cluster, models resident in long-lived actors.

    g.execute(prompt="a fox", executor="ray")                      # starts a local Ray instance if none runs
    g.execute(executor=RayExecutor(address="auto", devices_per_worker=1))
    g.execute_items([{"prompt": "a"}, {"prompt": "b"}], executor=RayExecutor(workers=2))

The driver (the calling thread) keeps the run as the parallel executor's does: the ready set, the
cache, events, cancellation, and every file write. Where nodes run (engine/ray_homes.py): a group of
nodes joined by models, denoisers or schedulers runs in one `ModelActor` (engine/ray_worker.py), named
after its first model-loading node's content key, so it outlives the execute: the next execute (a new
seed, another prompt, another graph with the same weights) finds the model there and does not load it
again. Other nodes run as Ray tasks (one CPU each); nodes that write files run in the driver. Values that
cross processes go through Ray's object store, moved to the CPU; values used by the next node in the same
actor stay there, on its device.

Items (`run_items`) spread over `workers` replicas of every actor, item k on replica k % workers; with
`pipeline`, node N of item k also waits for node N of item k-1, as in the parallel executor. Files are
always written in item order.

A worker that dies gives an error naming the node and the worker; nodes downstream never start, so
nothing after the failure is written.
"""
from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from typing import Any, Sequence

from ..errors import Cancelled, DgraphError
from .cache import static_key, value_digest
from .events import Event, new_run, stamping
from .executor import Executor, RunRequest
from .jobs import Job, job_graph
from .ray_homes import ACTOR, DRIVER, Home, worker_homes
from .registry import GROUP
from .task import RunState, Services, prepare, run_task
from .workflow import Link, Literal

NAMESPACE = "dgraph"

_ACTORS: dict[str, Any] = {}  # actor name -> handle: held by the driver, so executes reuse them
_WHERE: dict[str, Any] = {}  # actor name -> a ref to its `where()` (asked at creation, read when it dies)
_CHANNEL: list[Any] = []
_SESSION: list[Any] = [None]  # the Ray job the handles above belong to


class WorkerDied(DgraphError):
    """A Ray worker died while it ran a node (killed, out of memory, its machine gone)."""


@dataclass(frozen=True)
class Remote:
    """A node's output living on the cluster: in the object store (`ref`, the node's exported outputs) and,
    for a node run in an actor, in that actor's cache under `key`."""

    ref: Any
    output: str
    actor: str
    key: str


class RayExecutor(Executor):
    """Runs nodes on a Ray cluster (see the module docstring).

    address: the cluster to join ("auto", "ray://host:10001"); None joins the instance this process already
        started, else starts a local one.
    workers: replicas of each model actor that items spread over (default: GPUs in the cluster divided by
        `devices_per_worker`, else 1).
    devices_per_worker: GPUs each model actor holds (a fraction shares one; 0 keeps models on the CPU;
        default: 1 if the cluster has a GPU, else 0).
    keep: actors outlive this driver (Ray's detached actors), so the next driver on the cluster finds the
        models loaded; `release()` ends them.
    threads: torch CPU threads of each node on a worker (default: this process's count, so the numbers
        are bitwise those of a local run: a different count changes the last bits of CPU reductions).
    """

    spreads_items = True  # execute_items hands it every item, pipelined or not

    def __init__(self, address: str | None = None, *, workers: int | None = None,
                 devices_per_worker: float | None = None, keep: bool = False, threads: int | None = None,
                 devices: Sequence[str] | None = None):
        if devices:
            raise DgraphError("--devices places nodes over this machine's devices; on Ray each model actor holds "
                              "its own GPU: use --ray-workers (workers=) and devices_per_worker")
        self.address = address
        self.workers = workers
        self.devices_per_worker = devices_per_worker
        self.keep = keep
        self.threads = threads

    # ---- the cluster --------------------------------------------------------------------------------
    def connect(self) -> None:
        """Join the cluster (or start a local instance) unless this process already has."""
        try:
            import ray
        except ImportError:
            raise DgraphError("the Ray executor needs Ray: pip install 'dgraph[ray]'") from None

        if not ray.is_initialized():
            try:
                ray.init(address=self.address, namespace=NAMESPACE, include_dashboard=False,
                         configure_logging=False)
            except ConnectionError as error:
                raise DgraphError(f"--ray-address {self.address}: no Ray cluster there ({error}); start one with "
                                  "`ray start --head` or leave out --ray-address to start a local instance") from None
        job = ray.get_runtime_context().get_job_id()
        if _SESSION[0] != job:  # this process joined another instance since: the old handles mean nothing there
            _ACTORS.clear()
            _WHERE.clear()
            _CHANNEL.clear()
            _SESSION[0] = job

    def gpus(self) -> float:
        import ray

        available = ray.cluster_resources().get("GPU", 0)
        if self.devices_per_worker is None:
            return 1.0 if available >= 1 else 0.0
        if self.devices_per_worker > available:  # Ray would wait for such a worker forever
            raise DgraphError(f"devices_per_worker={self.devices_per_worker:g} but the Ray cluster has {available:g} "
                              "GPUs; give at most that, or 0 to keep the models on the CPU")
        return self.devices_per_worker

    def replicas(self) -> int:
        import ray

        if self.workers:
            return self.workers
        gpus = self.gpus()
        return max(1, int(ray.cluster_resources().get("GPU", 0) // gpus)) if gpus else 1

    def actor(self, name: str, gpus: float) -> Any:
        """The model actor called `name`, holding `gpus` GPUs, created (or found on the cluster) on first
        use (its name carries its root's content key, which holds the device, so one name means one kind)."""
        handle = _ACTORS.get(name)
        if handle is None:
            from .ray_worker import ModelActor

            options: dict[str, Any] = dict(name=name, namespace=NAMESPACE, get_if_exists=True,
                                           num_gpus=gpus, scheduling_strategy="SPREAD")
            if self.keep:
                options["lifetime"] = "detached"
            handle = _ACTORS[name] = ModelActor.options(**options).remote()
            _WHERE[name] = handle.where.remote()
        return handle

    def channel(self) -> Any:
        if not _CHANNEL:
            from .ray_worker import EventChannel

            _CHANNEL.append(EventChannel.remote())
        return _CHANNEL[0]

    @staticmethod
    def release() -> None:
        """End every model actor this driver uses (their models leave memory)."""
        import ray

        for name in list(_ACTORS):
            ray.kill(_ACTORS.pop(name))
            _WHERE.pop(name, None)

    # ---- running ------------------------------------------------------------------------------------
    def run(self, request: RunRequest) -> dict[str, Any]:
        return self.run_items([request], item_events=False)[0]

    def run_items(self, requests: Sequence[RunRequest], *, pipeline: bool = True,
                  item_events: bool = True) -> list[dict[str, Any]]:
        """Run the items of one graph, spread over the actors' replicas; outputs in the items' order."""
        self.connect()
        return _Schedule(self, list(requests), pipeline, item_events).run()


def _installed_packs() -> set[str]:
    return {ep.name for ep in entry_points(group=GROUP)}


class _Schedule:
    """One call of `run_items`: the driver's bookkeeping."""

    def __init__(self, executor: RayExecutor, requests: list[RunRequest], pipeline: bool, item_events: bool):
        import ray
        import torch

        self.ray = ray
        self.executor = executor
        self.requests = requests
        self.pipeline = pipeline
        self.item_events = item_events
        self.homes = [worker_homes(r.resolved, r.plan) for r in requests]  # before anything runs
        self.run_id = f"{new_run()}-{id(self):x}-{time.time_ns()}"
        self.listener = requests[0].on_event
        self.channel = executor.channel() if self.listener else None
        self.cancel_token = requests[0].cancel
        self.states = [RunState({n: value_digest(v) for n, v in r.inputs.items()}) for r in requests]
        self.replicas = executor.replicas()
        self.gpus = executor.gpus()
        self.actor_device = torch.device("cuda:0")  # an actor sees the GPUs Ray gave it, from 0
        self.cpu = torch.device("cpu")
        self.threads = executor.threads or torch.get_num_threads()
        self.root_keys: dict[Job, str] = {}
        self.used_actors: dict[str, Any] = {}
        self.installed = _installed_packs()
        self.exports = [self._exports(r, h) for r, h in zip(requests, self.homes)]
        # meta ref -> (job, key, outputs ref, actor name, actor handle)
        self.in_flight: dict[Any, tuple[Job, str, Any, str, Any]] = {}
        self.pooled = list(_ACTORS.values())  # actors kept from earlier runs (one may have died since)
        self.answered: set[int] = set()  # ids of the actor handles that ran a node of this run
        self.emitters = [stamping(self.listener, self.run_id, i if item_events else -1) for i in range(len(requests))]
        self.error: BaseException | None = None
        self.cancelled_remote = False
        self.tokens = [r.cache.begin_run() for r in requests]  # last: an error above leaves the caches as they were

    # ---- planning -----------------------------------------------------------------------------------
    @staticmethod
    def _exports(request: RunRequest, homes: dict[str, Home]) -> dict[str, tuple[str, ...]]:
        """Each node's outputs that leave its worker: read by a node elsewhere, or a graph output."""
        wanted: dict[str, set[str]] = {name: set() for name in request.plan.order}
        for name in request.plan.order:
            for binding in request.resolved.nodes[name].bindings.values():
                if isinstance(binding, Link) and binding.node in wanted:
                    producer, consumer = homes[binding.node], homes[name]
                    if producer.kind != ACTOR or producer != consumer:
                        wanted[binding.node].add(binding.output)
        for link in request.plan.outputs.values():
            wanted[link.node].add(link.output)
        return {name: tuple(sorted(outputs)) for name, outputs in wanted.items()}

    def _on_cpu(self, item: int, name: str) -> bool:
        request = self.requests[item]
        return request.resolved.nodes[name].device == "cpu" or (request.force_device and request.device == "cpu")

    def _gpus(self, item: int, root: str) -> float:
        """GPUs of the actor for the group of `root`: none when its model is placed on the CPU."""
        return 0.0 if self._on_cpu(item, root) else self.gpus

    def _device(self, item: int, name: str) -> Any:
        home = self.homes[item][name]
        if home.kind != ACTOR or self._on_cpu(item, name) or not self._gpus(item, home.root):
            return self.cpu
        return self.actor_device

    def _actor_name(self, item: int, name: str) -> str:
        """The actor running node `name` of `item`: named after its group root's content key, or, for a root
        with linked inputs (whose key needs them first), after what its literals are."""
        home = self.homes[item][name]
        job = (item, home.root)
        if job not in self.root_keys:
            request = self.requests[item]
            root = request.resolved.nodes[home.root]
            if any(isinstance(b, Link) for b in root.bindings.values()):
                spec = root.spec
                self.root_keys[job] = static_key(spec.type_name, spec.version, [
                    (k, value_digest(b.value)) for k, b in root.bindings.items() if isinstance(b, Literal)])
            else:
                task = prepare(root, self._device(item, home.root), self.states[item], request, lambda v, d, p: v)
                self.root_keys[job] = task.key
        return f"dgraph-{self.root_keys[job][:24]}-{item % self.replicas}"

    # ---- the driver loop ----------------------------------------------------------------------------
    def run(self) -> list[dict[str, Any]]:
        ray = self.ray
        emit = stamping(self.listener, self.run_id, -1)
        # Pipelined stages keep the item order; nodes in the driver (files) always do.
        order, waiting, children = job_graph(
            self.requests, lambda item, name: self.pipeline or self.homes[item][name].kind == DRIVER)
        ready = [(item, order[(item, name)], name) for (item, name), count in waiting.items() if count == 0]
        heapq.heapify(ready)
        if emit:
            emit(Event("plan", total=len(order)))
        drained = time.monotonic()
        try:
            while ready or self.in_flight:
                stopping = self.error is not None or self.cancel_token.cancelled
                if stopping:
                    self._cancel_remote()
                while ready and not stopping:
                    entry = heapq.heappop(ready)
                    try:
                        result = self._dispatch(entry)
                    except Exception as failure:  # noqa: BLE001 - raised below, after the bookkeeping
                        self._fail(failure)
                        break
                    if result is not None:
                        self._store(result, children, waiting, order, ready)
                if not self.in_flight:
                    break
                done, _ = ray.wait(list(self.in_flight), num_returns=1, timeout=0.05)
                if self.channel is not None and time.monotonic() - drained > 0.1:  # long nodes' batches
                    self._drain()
                    drained = time.monotonic()
                for ref in done:
                    job, key, outputs_ref, actor, handle = self.in_flight.pop(ref)
                    try:
                        meta = ray.get(ref)
                    except Exception as failure:  # noqa: BLE001
                        self._forget(outputs_ref)
                        if self._found_dead(failure, actor, handle):  # a worker that died before this run
                            heapq.heappush(ready, (job[0], order[job], job[1]))
                        else:
                            self._fail(self._explain(failure, job, actor))
                        continue
                    if actor:
                        self.answered.add(id(handle))
                    result = self._finished(job, key, outputs_ref, actor, meta)
                    if not stopping:
                        self._store(result, children, waiting, order, ready)
        except KeyboardInterrupt:
            self._fail(Cancelled("interrupted"))
            self._cancel_remote()
            self._wait_in_flight()
        finally:
            for name, handle in self.used_actors.items():
                handle.end_run.remote(self.run_id)
            for request, token in zip(self.requests, self.tokens):
                request.cache.end_run(token)
        if self.error is not None:
            raise self.error
        left = [name for (item, name) in order if name not in self.states[item].keys]
        if left:  # cancelled between nodes: nothing was running to raise it
            raise Cancelled(f"cancelled before node {left[0]!r}")
        results = self._outputs()
        if emit:
            emit(Event("done"))
        return results

    def _found_dead(self, failure: BaseException, actor: str, handle: Any) -> bool:
        """Whether `failure` says that an actor kept from an earlier run had died before this run asked it
        anything; then it leaves the pool, and the node goes to a new actor of the same name."""
        from ray import exceptions

        if not actor or not isinstance(failure, exceptions.RayActorError) or id(handle) in self.answered \
                or not any(h is handle for h in self.pooled):
            return False
        if _ACTORS.get(actor) is handle:
            del _ACTORS[actor]
            _WHERE.pop(actor, None)
        return True

    def _forget(self, ref: Any) -> None:
        """Read a failed call's second result too, so Ray does not report its error as unhandled."""
        try:
            self.ray.get(ref, timeout=1)
        except Exception:  # noqa: BLE001 - the same failure, already handled through the first result
            pass

    def _fail(self, failure: BaseException) -> None:
        if self.error is None or (isinstance(self.error, Cancelled) and not isinstance(failure, Cancelled)):
            self.error = failure

    def _cancel_remote(self) -> None:
        """Stop the run's remote work at its next step (actors) or at once (tasks)."""
        if self.cancelled_remote:
            return
        self.cancelled_remote = True
        for handle in self.used_actors.values():
            handle.cancel.remote(self.run_id)
        for ref, (job, key, outputs_ref, actor, handle) in self.in_flight.items():
            if not actor:
                self.ray.cancel(ref)

    def _wait_in_flight(self) -> None:
        if self.in_flight:
            self.ray.wait(list(self.in_flight), num_returns=len(self.in_flight), timeout=30)
            self.in_flight.clear()

    def _drain(self) -> None:
        for item, event in self.ray.get(self.channel.take.remote(self.run_id)):
            self.emitters[item](event)

    # ---- one node -----------------------------------------------------------------------------------
    def _dispatch(self, entry: tuple[int, int, str]):
        """Start one ready node: returns its result when it is done at once (the driver ran it, or the
        cache had it), None when it went to a worker."""
        from .ray_worker import Call, Resident, Shipped, run_cpu_task

        item, _, name = entry
        request = self.requests[item]
        node = request.resolved.nodes[name]
        home = self.homes[item][name]
        emit = self.emitters[item]
        device = self._device(item, name)
        if home.kind == DRIVER:
            return self._run_here(item, name)
        actor_name = ""
        if home.kind == ACTOR:
            actor_name = self._actor_name(item, name)
        refs: list[Any] = []

        def move(value: Any, device: Any, producer: str) -> Any:
            if not isinstance(value, Remote):
                return value
            if actor_name and value.actor == actor_name:
                return Resident(value.key, value.output)
            for index, ref in enumerate(refs):
                if ref is value.ref:
                    return Shipped(index, value.output)
            refs.append(value.ref)
            return Shipped(len(refs) - 1, value.output)

        task = prepare(node, device, self.states[item], request, move)
        # the workflow goes only to nodes that write files (provenance), and those run here
        task = replace(task, context=replace(task.context, workflow=None))
        if home.kind != ACTOR:
            found = request.cache.get(task.key, self.tokens[item])
            if found is not None:
                if emit:
                    emit(Event("node-cached", name, device=str(device)))
                return (item, name), task.key, found
        spec = None if node.spec.pack in self.installed else node.spec
        call = Call(task, spec, self.exports[item][name], self.run_id, item if self.item_events else -1,
                    self.channel, self.threads)
        handle = None
        if actor_name:
            handle = self.executor.actor(actor_name, self._gpus(item, home.root))
            self.used_actors[actor_name] = handle
            meta_ref, outputs_ref = handle.run.remote(call, *refs)
        else:
            meta_ref, outputs_ref = run_cpu_task.remote(call, *refs)
        self.in_flight[meta_ref] = ((item, name), task.key, outputs_ref, actor_name, handle)
        return None

    def _finished(self, job: Job, key: str, outputs_ref: Any, actor: str, meta: dict[str, Any]):
        item, name = job
        emit = self.emitters[item]
        device = str(self._device(item, name))
        if emit:
            from .ray_worker import SENT

            events = meta["events"]
            if events and events[0] == SENT:  # some went through the channel: those first
                self._drain()
                events = events[1:]
            for event in events:
                emit(event)
            if meta.get("cached"):
                emit(Event("node-cached", name, device=device))
            else:
                emit(Event("node-end", name, seconds=meta["seconds"], device=device))
        node = self.requests[item].resolved.nodes[name]
        outputs = {output: Remote(outputs_ref, output, actor, key) for output in node.spec.outputs}
        if not actor:
            self.requests[item].cache.put(key, outputs, self.tokens[item])
        return job, key, outputs

    def _run_here(self, item: int, name: str):
        """A node that writes files, run in the driver: its inputs come from the object store."""
        request = self.requests[item]
        node = request.resolved.nodes[name]
        emit = self.emitters[item]
        wanted = [v for (i, _), v in self._inputs_of(item, name) if isinstance(v, Remote)]
        fetched = dict(zip((id(v.ref) for v in wanted), self.ray.get([v.ref for v in wanted]))) if wanted else {}

        def move(value: Any, device: Any, producer: str) -> Any:
            return fetched[id(value.ref)][value.output] if isinstance(value, Remote) else value

        task = prepare(node, self.cpu, self.states[item], request, move)
        if emit:
            emit(Event("node-start", name, device="cpu"))
        started = time.perf_counter()
        outputs = run_task(node.spec, task, Services(emit=emit, cancel=self.cancel_token))
        if emit:
            emit(Event("node-end", name, seconds=time.perf_counter() - started, device="cpu"))
        return (item, name), task.key, outputs

    def _inputs_of(self, item: int, name: str):
        state = self.states[item]
        for binding in self.requests[item].resolved.nodes[name].bindings.values():
            if isinstance(binding, Link):
                yield (item, binding.node), state.values[(binding.node, binding.output)]

    def _store(self, result, children, waiting, order, ready) -> None:
        (item, name), key, outputs = result
        state = self.states[item]
        state.keys[name] = key
        for output, value in outputs.items():
            state.values[(name, output)] = value
        for child in children.get((item, name), ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, (child[0], order[child], child[1]))

    def _outputs(self) -> list[dict[str, Any]]:
        wanted = {}
        for request, state in zip(self.requests, self.states):
            for link in request.plan.outputs.values():
                value = state.values[(link.node, link.output)]
                if isinstance(value, Remote):
                    wanted[id(value.ref)] = value.ref
        fetched = dict(zip(wanted, self.ray.get(list(wanted.values())))) if wanted else {}
        results = []
        for request, state in zip(self.requests, self.states):
            out = {}
            for name, link in request.plan.outputs.items():
                value = state.values[(link.node, link.output)]
                out[name] = fetched[id(value.ref)][value.output] if isinstance(value, Remote) else value
            results.append(out)
        return results

    def _explain(self, failure: BaseException, job: Job, actor: str) -> BaseException:
        """A worker's failure as the project's error: the node's own error, or which worker died."""
        from ray import exceptions

        item, name = job
        node = self.requests[item].resolved.nodes[name]
        if isinstance(failure, exceptions.TaskCancelledError):
            return Cancelled(f"cancelled during node {name!r}")
        if isinstance(failure, exceptions.RayTaskError) and isinstance(failure.cause, BaseException) \
                and not isinstance(failure.cause, exceptions.RayError):
            return failure.cause
        if isinstance(failure, (exceptions.RayActorError, exceptions.WorkerCrashedError,
                                exceptions.ObjectLostError, exceptions.NodeDiedError)):
            worker = f"model actor {actor}" if actor else "its Ray task's worker"
            if actor:
                _ACTORS.pop(actor, None)
                where_ref = _WHERE.pop(actor, None)
                try:
                    worker += f" ({self.ray.get(where_ref, timeout=1)})" if where_ref is not None else ""
                except Exception:  # noqa: BLE001 - it died before it could say where it ran
                    pass
            return WorkerDied(f"node {name!r} ({node.spec.type_name}): {worker} died while running it "
                              f"({type(failure).__name__}); nothing after it ran and no file was written; run "
                              "again (a new worker loads the models again)")
        return failure
