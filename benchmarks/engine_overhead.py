"""Engine overhead: `dgraph validate` over the shipped workflows (wall time and peak RSS) and the engine's
cost per node at 1,000 and 10,000 nodes, measured by the harness (the cases `cli.validate` and `engine.*`),
and the YAML parse time per node, positions included.

    python benchmarks/engine_overhead.py        # the same as: python -m benchmarks --only cli.validate engine

Goals: YAML parsing under 100 µs per node with positions; `dgraph validate` under 0.5 s and 100 MB; every engine stage linear within 1.3x from 1k to 10k
nodes; a first execute under 50 µs per node at 10k.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cases import CASES  # noqa: E402
from benchmarks.harness import markdown, run_cases  # noqa: E402


def chain(n: int) -> dict:
    nodes = {"n0": {"type": "math.add", "inputs": {"a": 0.0, "b": 1.0}}}
    for i in range(1, n):
        nodes[f"n{i}"] = {"type": "math.add", "inputs": {"a": f"@n{i - 1}.value", "b": 1.0}}
    return {"dgraph": 1, "nodes": nodes, "outputs": {"total": f"@n{n - 1}.value"}}


def best_of(fn, repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def yaml_parse() -> None:
    """Parse time of a chain's YAML text, positions included, with libyaml's events and without."""
    from dgraph import safe_yaml
    from dgraph.engine.workflow import dump_text

    print("YAML parsing with positions (dgraph.safe_yaml)")
    for n in (1000, 10_000):
        text = dump_text(chain(n))
        backends = ["c", "python"] if safe_yaml._CEvents is not None else ["python"]
        for backend in backends if n == 1000 else backends[:1]:
            seconds = best_of(lambda: safe_yaml.parse_text(text, backend=backend), 3)
            label = "libyaml events" if backend == "c" else "pure-Python parser"
            print(f"  {n:6,} nodes, {label + ':':20} {seconds * 1e6 / n:7.1f} µs per node   (goal < 100)")
    print()


def main() -> None:
    yaml_parse()
    rows = run_cases([c for c in CASES if c.name == "cli.validate" or c.name.startswith("engine.")])
    print("\n" + markdown(rows, "# engine overhead"))
    validate = next(r for r in rows if r["case"] == "cli.validate")
    if "A" in validate:
        print(f"dgraph validate: {validate['A']['median']:.2f} s wall (min {validate['A']['min']:.2f}), "
              f"peak RSS {validate['A']['peak_rss_mb']:.0f} MB   (goal < 0.5 s, < 100 MB)")


if __name__ == "__main__":
    main()
