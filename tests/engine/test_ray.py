"""The Ray executor on a local Ray instance: outputs bitwise those of the local executor (the bundled digits
graph and a two-branch graph), models reused across executes and graphs, events streamed to the driver,
cancellation, a killed worker, items spread over two workers, and the CLI.

One instance (two CPUs, no dashboard) serves every test here; it starts once (some seconds) and model
actors stay alive between tests, as they do between a user's executes."""
from __future__ import annotations

import re
import sys
import threading
import time
from pathlib import Path

import pytest
import ray
import torch

from dgraph.engine.events import Event
from dgraph.engine.ray_executor import NAMESPACE, RayExecutor, WorkerDied
from dgraph.engine.ray_homes import ACTOR, DRIVER, Home, worker_homes
from dgraph.engine.registry import Registry
from dgraph.errors import Cancelled, DgraphError
from dgraph.graph import Graph
from dgraph.node import CancelToken, Context, node

DIGITS = Path(__file__).resolve().parents[2] / "workflows" / "digits.yaml"


@node("rt.sample", random=True, description="A seeded loop of small matrix products that reports each step.",
      output="value")
def sample(ctx: Context, steps: int = 6) -> torch.Tensor:
    x = torch.randn(32, 32, generator=ctx.generator())
    for i in range(steps):
        x = torch.tanh(x @ x / 32)
        ctx.progress(i + 1, steps)
    return x


@node("rt.add", description="Add two tensors.", output="value")
def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b


TWO_BRANCHES = {
    "dgraph": 1,
    "nodes": {"a": {"type": "rt.sample"}, "b": {"type": "rt.sample", "inputs": {"steps": 9}},
              "sum": {"type": "rt.add", "inputs": {"a": "@a.value", "b": "@b.value"}}},
    "outputs": {"sum": "@sum.value", "a": "@a.value"},
}


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """A local Ray instance for this module; the test node types travel to its workers by value. Nodes run
    with one torch thread here and on the workers (which take the driver's count): two cores, several
    processes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ray.init(num_cpus=2, include_dashboard=False, namespace=NAMESPACE, configure_logging=False,
             log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    RayExecutor.release()
    ray.shutdown()
    torch.set_num_threads(threads)


def test_homes_of_the_digits_graph():
    graph = Graph.load(DIGITS)
    homes = worker_homes(graph.resolved, graph.plan())
    assert homes == {**{n: Home(ACTOR, "text_encoder") for n in ("tokenizer", "text_encoder", "prompt")},
                     **{n: Home(ACTOR, "unet") for n in ("unet", "vae", "scheduler", "cond", "uncond", "guided",
                                                         "noise", "sample", "image")},
                     "save": Home(DRIVER)}


def _kinds(events: list[Event], node: str) -> list[str]:
    return [e.kind for e in events if e.node == node and e.kind != "step"]


def test_digits_equal_local_and_models_stay_loaded(tmp_path):
    graph = Graph.load(DIGITS)
    local = graph.execute(seed=3, steps=8, executor="local", output_dir=tmp_path / "local")
    events: list[Event] = []
    remote = graph.execute(seed=3, steps=8, executor="ray", output_dir=tmp_path / "ray", on_event=events.append)
    assert torch.equal(local.image.tensor, remote.image.tensor)
    # the driver wrote the file, byte for byte the local one (same pixels, same embedded workflow and inputs)
    assert [Path(p).parent for p in remote.files] == [tmp_path / "ray"]
    assert Path(remote.files[0]).read_bytes() == Path(local.files[0]).read_bytes()
    steps = [e.step for e in events if e.kind == "step" and e.node == "sample"]
    assert steps == list(range(1, 9)) and {e.run for e in events} == {events[0].run}
    assert _kinds(events, "sample") == ["node-start", "node-end"]

    events.clear()  # a new seed: the models are where the first execute left them
    graph.execute(seed=4, steps=8, executor="ray", output_dir=tmp_path / "ray", on_event=events.append)
    for loader in ("unet", "vae", "text_encoder"):
        assert _kinds(events, loader) == ["node-cached"]
    assert _kinds(events, "noise") == ["node-start", "node-end"]

    events.clear()  # another graph with the same weights (its own cache, empty) finds them too
    other = Graph.load(DIGITS)
    again = other.execute(seed=3, steps=8, prompt="a handwritten two", executor="ray",
                          output_dir=tmp_path / "ray", on_event=events.append)
    for loader in ("unet", "vae", "text_encoder"):
        assert _kinds(events, loader) == ["node-cached"]
    assert torch.equal(again.image.tensor,  # against the first graph, whose local cache holds the models
                       graph.execute(seed=3, steps=8, prompt="a handwritten two", output_dir=tmp_path / "l2").image.tensor)


def test_two_branches_equal_local():
    registry = Registry()
    for fn in (sample, add):
        registry.add(fn, "tests")
    graph = Graph.load(TWO_BRANCHES, registry=registry)
    local = graph.execute(seed=5, executor="local")
    graph.cache.clear()
    events: list[Event] = []
    remote = graph.execute(seed=5, executor="ray", on_event=events.append)
    assert torch.equal(local.sum, remote.sum) and torch.equal(local.a, remote.a)
    assert [e.step for e in events if e.kind == "step" and e.node == "b"] == list(range(1, 10))
    events.clear()  # a node that ran as a task is served from the driver's cache
    graph.execute(seed=5, executor="ray", on_event=events.append)
    assert _kinds(events, "a") == ["node-cached"]


def _run_in_thread(fn):
    box: dict[str, BaseException] = {}

    def target():
        try:
            fn()
        except BaseException as error:  # noqa: BLE001 - the test reads it
            box["error"] = error

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(120)
    assert not thread.is_alive()
    return box.get("error")


def test_cancel_stops_the_remote_loop_at_its_next_step(tmp_path):
    graph = Graph.load(DIGITS)
    token = CancelToken()
    steps: list[int] = []

    def on_event(event: Event) -> None:
        if event.kind == "step" and event.node == "sample":
            steps.append(event.step)
            token.cancel()

    error = _run_in_thread(lambda: graph.execute(seed=1, steps=1000, executor="ray", cancel=token,
                                                 on_event=on_event, output_dir=tmp_path))
    assert isinstance(error, Cancelled) and str(error) == "cancelled during node 'sample'"
    assert steps and max(steps) < 1000
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


def test_a_node_error_on_a_worker_is_the_error_a_local_run_gives(tmp_path):
    graph = Graph.load(DIGITS)
    errors = []
    for executor in ("local", "ray"):
        with pytest.raises(DgraphError) as caught:
            graph.execute(seed=1, steps=5000, executor=executor, output_dir=tmp_path)
        errors.append(caught.value)
    assert type(errors[0]) is type(errors[1]) and str(errors[0]) == str(errors[1])
    assert str(errors[1]).startswith("node 'sample' (sample.loop): DDIMScheduler: num_inference_steps=5000")


def test_cancel_stops_a_task(tmp_path):
    registry = Registry()
    for fn in (sample, add):
        registry.add(fn, "tests")
    graph = Graph.load({**TWO_BRANCHES, "nodes": {**TWO_BRANCHES["nodes"], "b": {
        "type": "rt.sample", "inputs": {"steps": 10**6}}}}, registry=registry)
    token = CancelToken()
    steps: list[int] = []

    def on_event(event: Event) -> None:
        if event.kind == "step" and event.node == "b":
            steps.append(event.step)
            token.cancel()

    error = _run_in_thread(lambda: graph.execute(seed=1, executor="ray", cancel=token, on_event=on_event))
    assert isinstance(error, Cancelled) and str(error) in ("interrupted during node 'b'", "cancelled during node 'b'")
    assert steps and max(steps) < 10**6


def test_a_killed_worker_names_the_node_and_the_worker(tmp_path):
    graph = Graph.load(DIGITS)

    def on_event(event: Event) -> None:
        if event.kind == "step" and event.node == "sample" and event.step >= 1:
            for entry in ray.util.list_named_actors(all_namespaces=True):
                if entry["namespace"] == NAMESPACE and entry["name"].startswith("dgraph-"):
                    ray.kill(ray.get_actor(entry["name"], namespace=NAMESPACE))

    error = _run_in_thread(lambda: graph.execute(seed=1, steps=1000, executor="ray", on_event=on_event,
                                                 output_dir=tmp_path))
    assert isinstance(error, WorkerDied), error
    assert re.fullmatch(r"node 'sample' \(sample\.loop\): model actor dgraph-[0-9a-f]{24}-0 \(pid \d+ on \S+\) died "
                        r"while running it \(ActorDiedError\); nothing after it ran and no file was written; run "
                        r"again \(a new worker loads the models again\)", str(error)), error
    assert not tmp_path.exists() or not any(tmp_path.iterdir())
    # the next execute starts new workers and runs
    assert graph.execute(seed=1, steps=2, executor="ray", output_dir=tmp_path).files


def test_items_spread_over_two_workers_in_item_order(tmp_path):
    graph = Graph.load(DIGITS)
    prompts = ["a handwritten one", "a handwritten two"]
    started = time.perf_counter()
    results = graph.execute_items([{"prompt": p} for p in prompts], executor=RayExecutor(workers=2), seed=2,
                                  steps=3, output_dir=tmp_path / "ray", pipeline=True)
    assert time.perf_counter() - started < 120
    names = {e["name"] for e in ray.util.list_named_actors(all_namespaces=True) if e["namespace"] == NAMESPACE}
    assert {n.rsplit("-", 1)[1] for n in names if n.startswith("dgraph-")} == {"0", "1"}
    for index, (prompt, result) in enumerate(zip(prompts, results)):
        local = graph.execute(prompt=prompt, seed=2, steps=3, executor="local", output_dir=tmp_path / "local")
        assert torch.equal(local.image.tensor, result.image.tensor)
        assert Path(result.files[0]).name == f"digits_{index:03d}.png"  # files numbered in the items' order
        assert Path(result.files[0]).read_bytes() == Path(local.files[0]).read_bytes()


def test_more_gpus_than_the_cluster_has_is_refused_before_anything_runs():
    graph = Graph.load(DIGITS)
    with pytest.raises(DgraphError, match=r"^devices_per_worker=1 but the Ray cluster has 0 GPUs; give at most that, "
                                          r"or 0 to keep the models on the CPU$"):
        graph.execute(executor=RayExecutor(devices_per_worker=1))


def test_run_command_spreads_a_prompt_file(tmp_path, capsys):
    from dgraph.cli import main

    prompts = tmp_path / "prompts.txt"
    prompts.write_text("a handwritten four\na handwritten five\n")
    code = main(["run", str(DIGITS), "--executor", "ray", "--prompt-file", str(prompts), "--steps", "3",
                 "--seed", "7", "-q", "-o", str(tmp_path / "out")])
    out = capsys.readouterr().out
    assert code == 0
    assert "item 0 files: " in out and "item 1 files: " in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["digits_000.png", "digits_001.png"]
    assert main(["run", str(DIGITS), "--ray-workers", "2", "-q", "-o", str(tmp_path / "none")]) == 2
    assert "--ray-workers need --executor ray" in capsys.readouterr().err
