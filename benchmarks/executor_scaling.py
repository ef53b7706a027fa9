"""Executor scaling: what running nodes at once buys, measured in one run.

    python benchmarks/executor_scaling.py            # CPU figures; the GPU cases say what they need
    STEPS=30 python benchmarks/executor_scaling.py   # longer sampling loops (default 12 steps)
    REPEAT=8 python benchmarks/executor_scaling.py   # more timed rounds of case 1 (default 4)

1. Two equal independent branches, `parallel` (2 CPU workers, one thread each) against `local` with one
   thread (goal on 2 cores: >= 1.6x), in two sizes:
   a. the bundled digits model (1.2 M parameters, 8x8 latents) sampled twice from different noise, sharing
      the loaded models. Its steps are short (a few ms), so the Python of each step, which holds the
      GIL, is a large part of them: two threads cannot overlap much of it.
   b. the same graph with a random-weight UNet2DConditionModel of 25 M parameters at 32x32 latents
      (BIG_STEPS steps, default 3): the steps are torch compute that releases the GIL.
   Beside each engine ratio is the ceiling: the same UNet calls (same shapes, same count) in two bare
   Python threads against one after another, with no engine at all. The engine's own cost is the gap
   between the two; the rest is what the GIL and the machine's cores allow.
2. A 2-stage cascade over N items, pipelined: on 2 CUDA devices against 1 (goal >= 1.8x items/s); needs
   two GPUs. Its CPU analogue (the stages on 2 CPU workers of one thread each against one after another)
   is printed too.
3. Executor overhead per node on the 1,000-node chain of math.add, local and parallel (goal < 50 us).
4. Offload: a sampling loop with its UNet offloaded against resident (needs a GPU; on the CPU offloading
   copies to the same memory and is not measured).

Each figure is the best of a few runs after a first one (the first loads models and warms caches); the
load average is printed beside them, since the cores may be shared. Case 1 times its four runs in turn
(local, parallel, bare one after another, bare threads) so that a neighbour's load falls on all four.
"""
from __future__ import annotations

import copy
import itertools
import os
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
STEPS = int(os.environ.get("STEPS", "12"))  # sampling steps per branch / stage
REPEAT = int(os.environ.get("REPEAT", "4"))  # timed rounds of case 1, its best counts
BIG_STEPS = int(os.environ.get("BIG_STEPS", "3"))  # sampling steps per branch of the compute-bound case
# The compute-bound case's UNet: 25 M parameters, 32x32 latents, MiniLM's 384-wide context.
BIG_UNET = dict(sample_size=32, in_channels=4, out_channels=4, block_out_channels=[64, 128, 256],
                layers_per_block=2, down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
                cross_attention_dim=384, attention_head_dim=8, norm_num_groups=32)


def best_of(fn, repeat: int = 2) -> float:
    fn()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def two_branches(unet: str | None = None):
    """digits.yaml with its sampling branch (noise -> sample -> image) doubled; `unet`: another UNet folder."""
    from dgraph.graph import Graph

    data = Graph.load(ROOT / "workflows" / "digits.yaml").to_dict()
    nodes = data["nodes"]
    if unet is not None:
        nodes["unet"]["inputs"]["source"] = unet
    for name in ("noise", "sample", "image"):
        twin = copy.deepcopy(nodes[name])
        for key, value in (twin.get("inputs") or {}).items():
            if isinstance(value, str) and value.split(".")[0] in ("@noise", "@sample"):
                twin["inputs"][key] = value.replace("@noise.", "@noise_b.").replace("@sample.", "@sample_b.")
        nodes[f"{name}_b"] = twin
    del nodes["save"]
    data["outputs"] = {"a": "@image.image", "b": "@image_b.image"}
    graph = Graph(data, filename="two-branches", base=str(ROOT / "workflows"))
    graph.check()
    return graph


def cascade():
    """Two stages (each a digits sampling loop) where stage 2 reads stage 1's result: the shape of a cascade."""
    from dgraph.graph import Graph

    graph = two_branches()
    data = graph.to_dict()
    del data["nodes"]["noise_b"]
    data["nodes"]["sample_b"]["inputs"]["latents"] = "@sample.latent"  # stage 2 refines stage 1
    data["outputs"] = {"out": "@image_b.image"}
    result = Graph(data, filename="cascade", base=str(ROOT / "workflows"))
    result.check()
    return result


def big_unet(folder: Path) -> str:
    """A random-weight UNet (BIG_UNET) saved into `folder`; returns its path."""
    from dgraph.models import UNet2DConditionModel

    torch.manual_seed(0)
    UNet2DConditionModel(**BIG_UNET).save_pretrained(folder)
    return str(folder)


def bare_threads(unet_folder: Path, batch: int, steps: int):
    """The ceiling for two branches: `steps` UNet calls of `batch` latents (the cond/uncond halves of the
    prompts of a branch), twice. Returns two callables: one after another, and in two bare threads of one
    torch thread each."""
    import threading

    from dgraph.models import UNet2DConditionModel

    unet = UNet2DConditionModel.from_pretrained(unet_folder).eval()
    size = unet.config.sample_size
    x = torch.randn(batch, unet.config.in_channels, size, size)
    context = torch.randn(batch, 16, unet.config.cross_attention_dim)

    def branch() -> None:
        torch.set_num_threads(1)
        with torch.no_grad():
            for step in range(steps):
                unet(x, 999 - step, context)

    def together() -> None:
        threads = [threading.Thread(target=branch) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    return (lambda: (branch(), branch())), together


def branches_case(label: str, graph, unet_folder: Path, inputs: dict, seeds, executor) -> None:
    """Case 1: `graph`'s two branches under `local` at one thread and `parallel` at one thread a branch,
    and the bare-thread ceiling; the four are timed in turn, REPEAT rounds, so that each sees the same
    load on shared cores; the best round of each counts."""
    torch.set_num_threads(1)
    prompts = inputs["prompt"] if isinstance(inputs["prompt"], list) else [inputs["prompt"]]
    serial, threaded = bare_threads(unet_folder, 2 * len(prompts), inputs["steps"])
    runs = {"local": lambda: graph.execute(seed=next(seeds), **inputs),
            "parallel": lambda: graph.execute(executor=executor, seed=next(seeds), **inputs),
            "serial": serial, "threaded": threaded}
    best = {name: float("inf") for name in runs}
    for name, fn in runs.items():  # warm-up: models load, caches fill
        fn()
    for _ in range(REPEAT):
        for name, fn in runs.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    same = all(torch.equal(a.tensor, b.tensor) for a, b in zip(
        graph.execute(seed=1, **inputs).values(), graph.execute(executor=executor, seed=1, **inputs).values()))
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"1{label}")
    print(f"   local, 1 thread:                {best['local']:6.3f} s")
    print(f"   parallel, 2 workers x 1 thread: {best['parallel']:6.3f} s   {best['local'] / best['parallel']:.2f}x "
          f"local (goal >= 1.6); bitwise equal: {same}")
    print(f"   ceiling, bare UNet calls:       {best['serial']:6.3f} s one after another, {best['threaded']:6.3f} s in "
          f"two threads: {best['serial'] / best['threaded']:.2f}x   (load average {load:.2f})")


def main() -> None:
    from dgraph.engine.parallel import ParallelExecutor

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"torch {torch.__version__}, {len(os.sched_getaffinity(0))} usable cores, load average {load:.2f}")

    # 1 -------------------------------------------------------------------------------------------
    seeds = itertools.count(10)  # a new seed each run: the models come from the cache, the sampling runs
    # the caller at one thread: a node alone runs on one, the two branches at once on one each
    parallel_executor = ParallelExecutor(cpu_workers=2, cpu_threads=2)
    graph = two_branches()
    branches_case(f"a. two equal independent branches: digits (1.2 M parameters, 8x8 latents), {STEPS} steps each, "
                  "2 prompts, models shared", graph, ROOT / "workflows" / "digits" / "unet",
                  dict(prompt=["7", "3"], steps=STEPS), seeds, parallel_executor)
    with tempfile.TemporaryDirectory() as folder:
        big = two_branches(big_unet(Path(folder) / "unet"))
        branches_case(f"b. two equal independent branches, compute-bound: a random UNet of 25 M parameters at 32x32 "
                      f"latents, {BIG_STEPS} steps each, 1 prompt", big, Path(folder) / "unet",
                      dict(prompt="7", steps=BIG_STEPS), seeds, parallel_executor)
        big.cache.clear()

    # 2 -------------------------------------------------------------------------------------------
    stages = cascade()
    items = [{"prompt": p} for p in ["0", "1", "2", "3"]]
    torch.set_num_threads(1)
    serial = best_of(lambda: [stages.execute(seed=s, steps=STEPS, **item) for s in [next(seeds)] for item in items], 2)
    piped = best_of(lambda: stages.execute_items(items, executor=parallel_executor, seed=next(seeds), steps=STEPS), 2)
    print(f"2. a 2-stage cascade over {len(items)} items")
    if torch.cuda.device_count() >= 2:
        one = ParallelExecutor(devices=["cuda:0"])
        two = ParallelExecutor(devices=["cuda:0", "cuda:1"])
        t1 = best_of(lambda: stages.execute_items(items, executor=one, seed=next(seeds), steps=STEPS), 2)
        t2 = best_of(lambda: stages.execute_items(items, executor=two, seed=next(seeds), steps=STEPS), 2)
        print(f"   2 GPUs {len(items) / t2:.2f} items/s vs 1 GPU {len(items) / t1:.2f}: {t1 / t2:.2f}x (goal >= 1.8)")
    else:
        print(f"   on 2 GPUs vs 1: needs two CUDA devices (torch sees {torch.cuda.device_count()}); not measured")
    print(f"   CPU analogue: pipelined on 2 workers x 1 thread {len(items) / piped:.2f} items/s vs one by one "
          f"on 1 thread {len(items) / serial:.2f} items/s: {serial / piped:.2f}x")

    # 3 -------------------------------------------------------------------------------------------
    from dgraph.graph import Graph

    import importlib.util

    spec = importlib.util.spec_from_file_location("engine_overhead", ROOT / "benchmarks" / "engine_overhead.py")
    overhead = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(overhead)
    chain = Graph.load(overhead.chain(1000))
    print("3. executor overhead per node, 1,000-node chain of math.add (goal < 50 us)")
    for name, executor in (("local", None), ("parallel", ParallelExecutor())):
        def cold():
            chain.cache.clear()
            chain.execute(executor=executor)
        print(f"   {name:8}: {best_of(cold) * 1e6 / 1000:6.1f} us per node")

    # 4 -------------------------------------------------------------------------------------------
    print("4. offload (weights on the CPU, moved to the GPU for each use) vs resident:", end=" ")
    if torch.cuda.is_available():
        from dgraph.engine.offload import offload
        from dgraph.models import UNet2DConditionModel

        unet = UNet2DConditionModel.from_pretrained(ROOT / "workflows" / "digits" / "unet").eval()
        x = torch.randn(2, 4, 8, 8, device="cuda")
        context = torch.randn(2, 16, unet.config.cross_attention_dim, device="cuda")
        resident = unet.to("cuda")
        with torch.no_grad():
            t_res = best_of(lambda: (resident(x, 10, context), torch.cuda.synchronize()))
            moved = offload(UNet2DConditionModel.from_pretrained(ROOT / "workflows" / "digits" / "unet").eval(), "cuda")
            t_off = best_of(lambda: (moved(x, 10, context), torch.cuda.synchronize()))
        print(f"{t_res * 1e3:.2f} ms vs {t_off * 1e3:.2f} ms a call")
    else:
        print("needs a GPU; not measured")


if __name__ == "__main__":
    main()
