"""What running on Ray costs and buys, on a local Ray instance (one machine).

    python benchmarks/ray_overhead.py             # writes benchmarks/results/ray_overhead.md and .json
    python -m benchmarks --only ray               # the same pairs through the harness (fresh processes)

1. The 1,000-node chain of math.add: time per node, executor="ray" (every node a Ray task) against
   "local" (every node run in this thread), each from an empty cache.
2. The bundled digits graph (13 nodes, 20 DDIM steps), models loaded, a new prompt and seed each call:
   ray against local, and the difference per node. On a shared machine Ray's worker processes get their
   own share of the cores beside the neighbours' processes, which a single local process does not.
3. A batch of 4 digits prompts (`execute_items`) over 2 model workers against 1 (RayExecutor(workers=N)),
   models loaded in both, a new seed each batch.

The sides are benchmarks/sides/ray_cluster.py's, run here in one process on one Ray instance: one
torch thread each, both sides' first outputs checked equal, then ROUNDS (default 3) timed calls of each,
alternating; the figures are medians, with the load average beside them, since the cores may be shared.
"""
from __future__ import annotations

import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.sides import ray_cluster  # noqa: E402

ROUNDS = int(os.environ.get("ROUNDS", "3"))
CHAIN = 1_000


def pair(name: str, what: str, a, b, per: int = 1, scale: float = 1.0) -> dict:
    """Time side A against side B: their first (untimed) outputs must be equal."""
    assert np.array_equal(np.asarray(a()), np.asarray(b())), f"{name}: the two sides differ"
    times: dict[str, list[float]] = {"a": [], "b": []}
    for round_ in range(ROUNDS):
        for side in ("ab" if round_ % 2 == 0 else "ba"):
            call = a if side == "a" else b
            started = time.perf_counter()
            call()
            times[side].append((time.perf_counter() - started) / per * scale)
    a_time, b_time = statistics.median(times["a"]), statistics.median(times["b"])
    return {"case": name, "what": what, "a": a_time, "b": b_time, "ratio": a_time / b_time}


def main() -> None:
    import ray

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, namespace="dgraph", configure_logging=False,
             log_to_driver=False)
    startup = time.perf_counter() - started
    rows = [
        pair("ray.chain", f"{CHAIN:,}-node math.add chain, per node (µs): ray (A) vs local (B)",
             ray_cluster.chain_side("ray", CHAIN), ray_cluster.chain_side("local", CHAIN), per=CHAIN, scale=1e6),
        pair("ray.digits_warm", "digits job, models loaded, per run (s): ray (A) vs local (B)",
             ray_cluster.digits_side("ray"), ray_cluster.digits_side("local")),
        pair("ray.batch", "4 digits prompts as items, per batch (s): 2 workers (A) vs 1 (B)",
             ray_cluster.batch_side(2), ray_cluster.batch_side(1)),
    ]
    rows[1]["per_node_ms"] = (rows[1]["a"] - rows[1]["b"]) / 13 * 1e3
    load = os.getloadavg()[0]
    ray.shutdown()
    lines = ["# Ray executor overhead (local Ray instance)", "",
             f"`python benchmarks/ray_overhead.py`: {os.cpu_count()} cores, load average {load:.2f}, "
             f"ray.init {startup:.1f} s, medians of {ROUNDS} rounds after one untimed call of each side.", "",
             "| case | what | A | B | A/B |", "|---|---|---|---|---|"]
    for row in rows:
        extra = f" ({row['per_node_ms']:+.1f} ms a node)" if "per_node_ms" in row else ""
        lines.append(f"| {row['case']} | {row['what']} | {row['a']:.4g}{extra} | {row['b']:.4g} | {row['ratio']:.2f} |")
    text = "\n".join(lines) + "\n"
    print(text)
    results = ROOT / "benchmarks" / "results"
    (results / "ray_overhead.md").write_text(text)
    (results / "ray_overhead.json").write_text(json.dumps({"load": load, "startup_s": startup, "rows": rows},
                                                          indent=1) + "\n")


if __name__ == "__main__":
    main()
