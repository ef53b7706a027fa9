"""Engine overhead: the executor's cost per node on a 1,000-node chain of trivial nodes, the YAML parse time
per node (with positions) at 1,000 and 10,000 nodes, and the wall time of `dgraph validate` over the shipped
workflows (with what costs the time).

    python benchmarks/engine_overhead.py

Goals: under 50 µs per node; YAML parsing under 100 µs per node; `dgraph validate` under 0.5 s.
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


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
    from dgraph.graph import Graph

    yaml_parse()

    n = 1000
    data = chain(n)
    graph = Graph.load(data)
    assert graph.execute().total == float(n)

    def cold():
        graph.cache.clear()
        graph.execute()

    def fresh_graph():
        Graph.load(data).execute()

    cold_s = best_of(cold)
    warm_s = best_of(graph.execute)
    whole_s = best_of(fresh_graph, 3)
    print(f"1,000-node chain of math.add ({n} nodes)")
    print(f"  execute, every node runs:        {cold_s * 1e6 / n:7.1f} µs per node   (goal < 50)")
    print(f"  execute, every node cached:      {warm_s * 1e6 / n:7.1f} µs per node")
    print(f"  load + validate + plan + execute:{whole_s * 1e6 / n:7.1f} µs per node")

    shipped = sorted(str(p) for p in (ROOT / "workflows").glob("*.yaml"))
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dgraph", "validate", *shipped], capture_output=True, text=True)
    wall = time.perf_counter() - start
    assert done.returncode == 0, done.stdout + done.stderr
    imports = subprocess.run([sys.executable, "-c", "import time; s=time.perf_counter(); import torch; "
                              "t=time.perf_counter(); import nodes; from dgraph.engine.registry import default_registry; "
                              "default_registry(); print(t-s, time.perf_counter()-t)"], capture_output=True, text=True)
    torch_s, catalogue_s = map(float, imports.stdout.split())
    from dgraph.graph import read_workflow_text

    def validate_all():
        for file in shipped:
            text, name, base = read_workflow_text(file)
            assert not Graph.from_text(text, name, base=base).problems

    in_process = best_of(validate_all)
    print(f"\n`dgraph validate` over {len(shipped)} shipped workflows: {wall:.2f} s wall (goal < 0.5 s)")
    print(f"  importing torch:                       {torch_s:.2f} s")
    print(f"  importing the node catalogue (+libs):  {catalogue_s:.2f} s")
    print(f"  parsing and validating the files:      {in_process * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
