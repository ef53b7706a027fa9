"""The parallel executor: branches overlap, a failure or a cancel in one branch stops the other, CPU threads
are split, the cache holds under concurrent executes, items pipeline, and outputs equal the local ones."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
import torch

from dgraph.engine.cache import ResultCache
from dgraph.engine.events import Event
from dgraph.engine.executor import LocalExecutor
from dgraph.engine.parallel import ParallelExecutor, make_executor
from dgraph.engine.registry import Registry
from dgraph.errors import Cancelled, DgraphError
from dgraph.graph import Graph
from dgraph.node import CancelToken, Context, node

THREADS: dict[str, int] = {}
CALLS: list[str] = []


@node("par.sample", random=True, description="A seeded loop of small matrix products that reports each step.",
      output="value")
def sample(ctx: Context, steps: int = 6, pause: float = 0.02) -> torch.Tensor:
    THREADS[ctx.node] = torch.get_num_threads()
    x = torch.randn(32, 32, generator=ctx.generator())
    for i in range(steps):
        time.sleep(pause)  # stands for work that releases the GIL, as torch's kernels do
        x = torch.tanh(x @ x / 32)
        ctx.progress(i + 1, steps)
    return x


@node("par.add", description="Add two tensors.", output="value")
def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b


@node("par.fail_at", description="Fails at a given step.", output="value")
def fail_at(ctx: Context, step: int = 2) -> torch.Tensor:
    for i in range(10):
        time.sleep(0.02)
        ctx.progress(i + 1, 10)
        if i + 1 == step:
            raise ValueError("broke at step 2")
    return torch.zeros(1)


@node("par.save", description="Write a tensor's bytes as a file.", output="paths", effect=True)
def save(ctx: Context, value: torch.Tensor) -> list[str]:
    CALLS.append(ctx.node)
    return [str(p) for p in ctx.write_files("t", ".bin", [value.numpy().tobytes()])]


@node("par.load", description="Pretend to load a model, slowly (counts calls).", output="value")
def load(name: str = "m") -> torch.Tensor:
    CALLS.append("load")
    time.sleep(0.05)
    return torch.arange(32.0)


@pytest.fixture(autouse=True)
def two_threads():
    """The parallel executor runs as many CPU nodes at once as it has threads (by default the caller's
    count, which other tests' CLI runs change): give these tests two, whatever ran before."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def registry():
    reg = Registry()
    for fn in (sample, add, fail_at, save, load):
        reg.add(fn, "tests")
    THREADS.clear()
    CALLS.clear()
    return reg


TWO_BRANCHES = {
    "dgraph": 1,
    "nodes": {"a": {"type": "par.sample"}, "b": {"type": "par.sample"},
              "sum": {"type": "par.add", "inputs": {"a": "@a.value", "b": "@b.value"}}},
    "outputs": {"sum": "@sum.value", "a": "@a.value"},
}


def _timed(events: list[tuple[float, Event]]):
    return lambda event: events.append((time.perf_counter(), event))


def test_plan_exposes_dependencies(registry):
    plan = Graph.load(TWO_BRANCHES, registry=registry).plan()
    assert plan.dependencies == {"a": (), "b": (), "sum": ("a", "b")}
    assert plan.dependents() == {"a": ("sum",), "b": ("sum",), "sum": ()}


def test_independent_branches_overlap_and_equal_local(registry):
    graph = Graph.load(TWO_BRANCHES, registry=registry)
    local = graph.execute(seed=5, executor="local")
    graph.cache.clear()
    events: list[tuple[float, Event]] = []
    parallel = graph.execute(seed=5, executor="parallel", on_event=_timed(events))
    assert torch.equal(local.sum, parallel.sum) and torch.equal(local.a, parallel.a)
    steps = {name: [t for t, e in events if e.kind == "step" and e.node == name] for name in "ab"}
    assert min(steps["a"]) < max(steps["b"]) and min(steps["b"]) < max(steps["a"])  # each starts before the other ends
    assert {e.run for _, e in events} == {events[0][1].run} and events[0][1].run.startswith("run-")
    assert [e.kind for _, e in events if e.node == "sum"] == ["node-start", "node-end"]


def test_concurrent_cpu_nodes_split_the_threads(registry):
    graph = Graph.load(TWO_BRANCHES, registry=registry)
    graph.execute(seed=1, executor=ParallelExecutor(cpu_workers=2, cpu_threads=2))
    assert THREADS == {"a": 1, "b": 1}  # per thread (OpenMP): the caller's own count is untouched
    graph.cache.clear()
    chain = Graph.load({"dgraph": 1, "nodes": {"a": {"type": "par.sample"}}, "outputs": {"a": "@a.value"}},
                       registry=registry)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        chain.execute(seed=1, executor=ParallelExecutor(cpu_workers=2, cpu_threads=2))
        assert THREADS["a"] == 2  # alone, a node gets them all
        torch.set_num_threads(1)
        graph.cache.clear()
        graph.execute(seed=1, executor=ParallelExecutor(cpu_workers=2, cpu_threads=2))
        assert THREADS == {"a": 1, "b": 1}  # a budget beyond the caller's count goes to nodes running together
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_failure_in_one_branch_stops_the_other_and_writes_nothing(registry, tmp_path):
    graph = Graph.load({
        "dgraph": 1,
        "nodes": {"slow": {"type": "par.sample", "inputs": {"steps": 50}}, "bad": {"type": "par.fail_at"},
                  "save": {"type": "par.save", "inputs": {"value": "@slow.value"}}},
        "outputs": {"files": "@save.paths", "bad": "@bad.value"},
    }, registry=registry)
    events: list[tuple[float, Event]] = []
    with pytest.raises(DgraphError, match=r"^node 'bad' \(par.fail_at\) failed: ValueError: broke at step 2$"):
        graph.execute(executor="parallel", output_dir=tmp_path, on_event=_timed(events))
    slow = [(e.kind, e.step) for _, e in events if e.node == "slow"]
    assert slow[0] == ("node-start", 0) and ("step", 50) not in slow  # stopped at its next step
    assert "node-end" not in [kind for kind, _ in slow]
    assert CALLS == [] and list(tmp_path.iterdir()) == []  # the save never started; no partial file
    assert len(graph.cache) == 0


def test_cancel_stops_all_branches(registry, tmp_path):
    graph = Graph.load({**TWO_BRANCHES, "nodes": {
        "a": {"type": "par.sample", "inputs": {"steps": 50}}, "b": {"type": "par.sample", "inputs": {"steps": 50}},
        "sum": {"type": "par.add", "inputs": {"a": "@a.value", "b": "@b.value"}}}}, registry=registry)
    cancel = CancelToken()
    seen: list[Event] = []

    def on_event(event: Event) -> None:
        seen.append(event)
        if event.kind == "step" and event.node == "a" and event.step == 3:
            cancel.cancel()

    with pytest.raises(Cancelled, match="cancelled during node"):
        graph.execute(executor="parallel", cancel=cancel, on_event=on_event)
    for name in "ab":
        assert max(e.step for e in seen if e.kind == "step" and e.node == name) < 10
    assert not [e for e in seen if e.node == "sum"]


def test_cache_hammered_by_concurrent_executes(registry):
    graph = Graph.load({
        "dgraph": 1,
        "nodes": {"model": {"type": "par.load"}, "noise": {"type": "par.sample", "inputs": {"steps": 2, "pause": 0}},
                  "out": {"type": "par.add", "inputs": {"a": "@model.value", "b": "@noise.value"}}},
        "outputs": {"out": "@out.value"},
    }, registry=registry)
    expected = {seed: Graph.load(graph.to_dict(), registry=registry).execute(seed=seed).out for seed in range(4)}
    CALLS.clear()
    results: dict[int, list[torch.Tensor]] = {seed: [] for seed in range(4)}
    failures: list[BaseException] = []

    def worker(seed: int) -> None:
        try:
            for _ in range(3):
                results[seed].append(graph.execute(seed=seed, executor="parallel").out)
        except BaseException as error:  # noqa: BLE001 - reported below
            failures.append(error)

    threads = [threading.Thread(target=worker, args=(seed % 4,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    assert CALLS == ["load"]  # computed once, while seven other executes waited for it
    for seed, outs in results.items():
        assert len(outs) == 6 and all(torch.equal(out, expected[seed]) for out in outs)


def test_cache_end_run_keeps_what_a_concurrent_run_uses():
    cache = ResultCache()
    first, second = cache.begin_run(), cache.begin_run()
    cache.put("shared", {"v": 1}, first)
    cache.put("mine", {"v": 2}, first)
    assert cache.get("shared", second) == {"v": 1}
    cache.put("theirs", {"v": 3}, second)
    cache.end_run(first)
    assert set(cache._entries) == {"shared", "mine", "theirs"}
    cache.end_run(second)  # the next run begun drops what it does not use
    third = cache.begin_run()
    cache.get("shared", third)
    cache.end_run(third)
    assert set(cache._entries) == {"shared"}


def test_items_pipelined_equal_items_one_by_one(registry, tmp_path):
    graph = Graph.load({
        "dgraph": 1,
        "inputs": {"steps": {"type": "int", "default": 3}},
        "nodes": {"first": {"type": "par.sample", "inputs": {"steps": "$steps"}},
                  "second": {"type": "par.sample", "inputs": {"steps": 4}},
                  "join": {"type": "par.add", "inputs": {"a": "@first.value", "b": "@second.value"}},
                  "save": {"type": "par.save", "inputs": {"value": "@join.value"}}},
        "outputs": {"value": "@join.value", "files": "@save.paths"},
    }, registry=registry)
    items = [{"steps": n} for n in (2, 3, 4, 5)]
    one_by_one = [graph.execute(seed=9, output_dir=tmp_path / "a", **item) for item in items]
    graph.cache.clear()
    events: list[tuple[float, Event]] = []
    piped = graph.execute_items(items, seed=9, output_dir=tmp_path / "b", on_event=_timed(events))
    assert [r.seed for r in piped] == [9] * 4
    for a, b in zip(one_by_one, piped):
        assert torch.equal(a.value, b.value)
        assert Path(a.files[0]).name == Path(b.files[0]).name  # files numbered in item order
        assert Path(a.files[0]).read_bytes() == Path(b.files[0]).read_bytes()
    firsts = {e.item: t for t, e in events if e.kind == "node-start" and e.node == "first"}
    joins = {e.item: t for t, e in events if e.kind == "node-end" and e.node == "join"}
    assert firsts[1] < joins[0]  # item 1's first stage began before item 0 was through


def test_executor_names(registry):
    assert isinstance(make_executor("local"), LocalExecutor)
    assert isinstance(make_executor("parallel"), ParallelExecutor)
    with pytest.raises(DgraphError, match="unknown executor 'dask'; choose local, parallel or ray"):
        make_executor("dask")
    with pytest.raises(DgraphError, match="devices need the parallel executor: add --executor parallel"):
        make_executor("local", devices=["cpu"])


NOISE = """\
dgraph: 1
inputs:
  prompt: {type: Text, default: "x"}
nodes:
  noise: {type: tensor.noise, inputs: {shape: [1, 3, 8, 8]}}
  other: {type: tensor.noise, inputs: {shape: [1, 3, 8, 8]}}
  image: {type: image.from_tensor, inputs: {tensor: "@noise.tensor", low: -2.0, high: 2.0}}
  save: {type: image.save, inputs: {image: "@image.image", prefix: noise}}
outputs:
  files: "@save.paths"
  other: "@other.tensor"
"""


def test_run_command_flags(tmp_path, capsys):
    from dgraph.cli import main

    workflow = tmp_path / "noise.yaml"
    workflow.write_text(NOISE)
    out = tmp_path / "out"
    assert main(["run", str(workflow), "--executor", "parallel", "--seed", "3", "-q", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"files: {out / 'noise_000.png'}" in printed
    local = tmp_path / "local"
    assert main(["run", str(workflow), "--seed", "3", "-q", "-o", str(local)]) == 0
    assert (out / "noise_000.png").read_bytes() == (local / "noise_000.png").read_bytes()
    capsys.readouterr()
    assert main(["run", str(workflow), "--executor", "local", "--devices", "cpu", "-q"]) == 2
    assert capsys.readouterr().err == "dgraph run: --devices need --executor parallel\n"
    assert main(["run", str(workflow), "--pipeline", "-q"]) == 2
    assert capsys.readouterr().err == ("dgraph run: --pipeline runs a list of items: give several prompts with "
                                       "--prompt-file\n")
    prompts = tmp_path / "p.txt"
    prompts.write_text("a\nb\n")
    assert main(["run", str(workflow), "--pipeline", "--prompt-file", str(prompts), "--seed", "3", "-q",
                 "-o", str(tmp_path / "items")]) == 0
    printed = capsys.readouterr().out
    assert f"item 0 files: {tmp_path / 'items' / 'noise_000.png'}" in printed
    assert "item 1 other: tensor (1, 3, 8, 8) float32" in printed


@node("par.interrupt", description="Sends Ctrl-C to the main thread at step 3.", output="value")
def interrupt(ctx: Context) -> torch.Tensor:
    import _thread

    for i in range(50):
        time.sleep(0.02)
        ctx.progress(i + 1, 50)
        if i + 1 == 3:
            _thread.interrupt_main()
    return torch.zeros(1)


def test_ctrl_c_in_the_driver_stops_every_branch(registry):
    registry.add(interrupt, "tests")
    graph = Graph.load({"dgraph": 1, "nodes": {
        "a": {"type": "par.interrupt"}, "b": {"type": "par.sample", "inputs": {"steps": 50}}},
        "outputs": {"a": "@a.value", "b": "@b.value"}}, registry=registry)
    seen: list[Event] = []
    with pytest.raises(Cancelled, match="^interrupted$"):
        graph.execute(executor="parallel", on_event=seen.append)
    for name in "ab":
        assert max(e.step for e in seen if e.kind == "step" and e.node == name) < 50
    assert not [e for e in seen if e.kind == "node-end"] and len(graph.cache) == 0


def test_progress_shows_every_running_node():
    import io

    from dgraph.progress import ProgressPrinter

    stream = io.StringIO()
    printer = ProgressPrinter(stream=stream, every=0.0)
    for event in [Event("plan", total=2), Event("node-start", "a", item=0), Event("node-start", "a", item=1),
                  Event("step", "a", step=1, total=2, item=0), Event("step", "a", step=1, total=2, item=1),
                  Event("step", "a", step=2, total=2, item=1), Event("node-end", "a", seconds=0.5, item=1, device="cpu"),
                  Event("step", "a", step=2, total=2, item=0), Event("node-end", "a", seconds=0.7, item=0, device="cpu")]:
        printer(event)
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == ["    a[1]: step 2/2", "[1/2] a[1] (cpu) 0.50s",
                                                      "    a[0]: step 2/2", "[2/2] a[0] (cpu) 0.70s"]
