"""The one entry point of dgraph's benchmarks.

    python -m benchmarks                    # every case; writes benchmarks/results/results.{md,json,png}
    python -m benchmarks --only cli engine  # cases whose name starts with one of these; their rows replace
                                            # those of the same name in results.json, the others are kept
    python -m benchmarks --list
    python -m benchmarks --render           # rewrite results.md and results.png from results.json

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
    parser.add_argument("--render", action="store_true", help="only redraw the table and plot from results.json")
    args = parser.parse_args()
    if args.render:
        saved = json.loads((args.out / "results.json").read_text())
        write(saved["rows"], saved["machine"], args.out)
        return
    # In the order of --only's prefixes (most wanted first), else as declared.
    cases = [c for p in args.only for c in CASES if c.name.startswith(p)] if args.only else list(CASES)
    cases = list({c.name: c for c in cases}.values())
    if args.list:
        for case in cases:
            print(f"{case.name:32s} {case.what}")
        return
    line = machine_line({c.threads for c in cases})
    saved_file = args.out / "results.json"
    saved = json.loads(saved_file.read_text()) if args.only and saved_file.exists() else None
    kept = saved["rows"] if saved else []
    header = header_for(saved["machine"] if saved else None, line, args.only)
    # Written after every case, so that an interrupted run keeps what it measured.
    rows = run_cases(cases, done=lambda so_far: write(merged(kept, so_far), header, args.out, quiet=True))
    write(merged(kept, rows), header, args.out)


def header_for(saved: str | None, line: str, only: list[str]) -> str:
    """The results' header: a whole run's machine line; a partial run adds its own, naming what it ran,
    beneath the saved lines of the rows it keeps."""
    if saved is None:
        return f"# dgraph benchmarks\n\n{line}"
    return f"{saved.rstrip()}  \n" + line.replace("; ", f" ({', '.join(only)}); ", 1)


def merged(saved: list[dict], new: list[dict]) -> list[dict]:
    """`saved` rows with those of `new` in place of the ones of the same case (new cases at the end):
    a partial run updates its cases and keeps the others' figures (each row carries its own load)."""
    fresh = {row["case"]: row for row in new}
    rows = [fresh.pop(row["case"], row) for row in saved]
    return rows + list(fresh.values())


def write(rows: list[dict], header: str, out: Path, quiet: bool = False) -> None:
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows, header)
    (out / "results.md").write_text(table)
    (out / "results.json").write_text(json.dumps({"machine": header, "rows": rows}, indent=1) + "\n")
    plot(rows, out / "results.png")
    if not quiet:
        print("\n" + table)
        print(f"written: {os.path.relpath(out)}/results.md, results.json, results.png")


if __name__ == "__main__":
    main()
