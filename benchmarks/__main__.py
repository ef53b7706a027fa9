"""The one entry point of dgraph's benchmarks.

    python -m benchmarks                    # every case; writes benchmarks/results/results.{md,json,png}
    python -m benchmarks --only cli engine  # cases whose name starts with one of these
    python -m benchmarks --list

Run it on an idle machine: the load average is printed beside every case.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from .cases import CASES
from .harness import machine_line, markdown, plot, run_cases

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=[], help="name prefixes of the cases to run")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for results.md/.json/.png")
    args = parser.parse_args()
    cases = [c for c in CASES if not args.only or any(c.name.startswith(p) for p in args.only)]
    if args.list:
        for case in cases:
            print(f"{case.name:32s} {case.what}")
        return
    header = f"# dgraph benchmarks\n\n{machine_line({c.threads for c in cases})}"
    rows = run_cases(cases)
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, header)
    (args.out / "results.md").write_text(table)
    (args.out / "results.json").write_text(json.dumps({"machine": header, "rows": rows}, indent=1) + "\n")
    plot(rows, args.out / "results.png")
    print("\n" + table)
    print(f"written: {os.path.relpath(args.out)}/results.md, results.json, results.png")


if __name__ == "__main__":
    main()
