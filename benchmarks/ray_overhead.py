"""What running on Ray costs and buys, on a local Ray instance (one machine).

    python benchmarks/ray_overhead.py             # writes benchmarks/results/ray_overhead.md and .json
    ITEMS=6 python benchmarks/ray_overhead.py     # a larger batch for case 3 (default 4 prompts)

1. The 1,000-node chain of math.add: time per node, executor="ray" (every node a Ray task) against
   "local" (every node run in this thread), each from an empty cache.
2. The bundled digits graph (13 nodes, 20 DDIM steps), models loaded, a new seed each call: ray against
   local, and the difference per node. On a shared machine Ray's worker processes get their own share
   of the cores beside the neighbours' processes, which a single local process does not.
3. A batch of prompts (`execute_items`) over 2 model workers against 1 (RayExecutor(workers=N)), models
   loaded in both.

Every run uses one torch thread (nodes on Ray run with the driver's count), so case 3 measures what a
second worker process adds, not a thread split. Each figure is the median of ROUNDS runs (default 3) after
a first, untimed one; the load average is printed beside them, since the cores may be shared.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ROUNDS = int(os.environ.get("ROUNDS", "3"))
ITEMS = int(os.environ.get("ITEMS", "4"))
CHAIN = 1_000


def median_of(fn, rounds: int = ROUNDS) -> float:
    fn()  # untimed: starts workers, loads models
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def chain_case() -> dict:
    from benchmarks.engine_overhead import chain
    from dgraph import Graph

    graph = Graph.load(chain(CHAIN))
    out = {}
    for executor in ("local", "ray"):
        def run(executor=executor):
            graph.cache.clear()
            assert graph.execute(executor=executor).total == float(CHAIN)
        out[executor] = median_of(run) / CHAIN * 1e6
    return {"case": "chain", "what": f"{CHAIN:,}-node math.add chain, per node (us)", "local": out["local"],
            "ray": out["ray"], "ratio": out["ray"] / out["local"]}


def digits_case() -> dict:
    import torch

    from dgraph import Graph

    graph = Graph.load(ROOT / "workflows" / "digits.yaml")
    out = {}
    for executor in ("local", "ray"):
        seeds = iter(range(1000))

        def run(executor=executor):
            graph.execute(executor=executor, seed=next(seeds), output_dir="/tmp/dgraph-ray-bench")
        out[executor] = median_of(run)
    check = [graph.execute(executor=e, seed=5, output_dir="/tmp/dgraph-ray-bench").image.tensor for e in ("local", "ray")]
    assert torch.equal(*check), "ray and local differ"
    nodes = len(graph.plan().order)
    return {"case": "digits", "what": f"digits graph ({nodes} nodes, 20 steps), warm, per run (s)",
            "local": out["local"], "ray": out["ray"], "ratio": out["ray"] / out["local"],
            "per_node_ms": (out["ray"] - out["local"]) / nodes * 1e3}


def batch_case() -> dict:
    from dgraph import Graph
    from dgraph.engine.ray_executor import RayExecutor

    graph = Graph.load(ROOT / "workflows" / "digits.yaml")
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    items = [{"prompt": f"a handwritten {words[i % 10]}"} for i in range(ITEMS)]
    out = {}
    seeds = iter(range(1000))
    for workers in (1, 2):
        executor = RayExecutor(workers=workers)

        def run(executor=executor):  # a new seed each batch: the noise and what follows are computed again
            graph.execute_items(items, executor=executor, seed=next(seeds), pipeline=False,
                                output_dir="/tmp/dgraph-ray-bench")
        out[workers] = median_of(run)
    return {"case": "batch", "what": f"{ITEMS} prompts of the digits graph, per batch (s): 2 workers vs 1",
            "local": out[1], "ray": out[2], "ratio": out[2] / out[1]}


def main() -> None:
    import ray
    import torch

    torch.set_num_threads(1)
    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, namespace="dgraph", configure_logging=False,
             log_to_driver=False)
    startup = time.perf_counter() - started
    rows = [chain_case(), digits_case(), batch_case()]
    load = os.getloadavg()[0]
    ray.shutdown()
    lines = ["# Ray executor overhead (local Ray instance)", "",
             f"`python benchmarks/ray_overhead.py`; {os.cpu_count()} cores, load average {load:.2f}, "
             f"ray.init {startup:.1f} s, median of {ROUNDS} after one untimed run.", "",
             "| case | A (local / 1 worker) | B (ray / 2 workers) | B/A |", "|---|---|---|---|"]
    for row in rows:
        extra = f" ({row['per_node_ms']:.1f} ms a node more)" if "per_node_ms" in row else ""
        lines.append(f"| {row['what']} | {row['local']:.4g} | {row['ray']:.4g}{extra} | {row['ratio']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    results = ROOT / "benchmarks" / "results"
    (results / "ray_overhead.md").write_text(text)
    (results / "ray_overhead.json").write_text(json.dumps({"load": load, "startup_s": startup, "rows": rows},
                                                          indent=1) + "\n")


if __name__ == "__main__":
    main()
