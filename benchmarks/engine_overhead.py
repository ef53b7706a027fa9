"""Engine overhead: `dgraph validate` over the shipped workflows (wall time and peak RSS) and the engine's
cost per node at 1,000 and 10,000 nodes, measured by the harness (the cases `cli.validate` and `engine.*`).

    python benchmarks/engine_overhead.py        # the same as: python -m benchmarks --only cli.validate engine

Goals: `dgraph validate` under 0.5 s and 100 MB; every engine stage linear within 1.3x from 1k to 10k
nodes; a first execute under 50 µs per node at 10k.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cases import CASES  # noqa: E402
from benchmarks.harness import markdown, run_cases  # noqa: E402


def main() -> None:
    rows = run_cases([c for c in CASES if c.name == "cli.validate" or c.name.startswith("engine.")])
    print("\n" + markdown(rows, "# engine overhead"))
    validate = next(r for r in rows if r["case"] == "cli.validate")
    if "A" in validate:
        print(f"dgraph validate: {validate['A']['median']:.2f} s wall (min {validate['A']['min']:.2f}), "
              f"peak RSS {validate['A']['peak_rss_mb']:.0f} MB   (goal < 0.5 s, < 100 MB)")


if __name__ == "__main__":
    main()
