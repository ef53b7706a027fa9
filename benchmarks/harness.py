"""The benchmark harness: declared A/B pairs, measured alike, interleaved, checked equal, then compared.

A case is two sides, A (dgraph) and B (the reference: diffusers, a plain script, a smaller graph, the
bare interpreter). A side is either

- a `Command`: a whole fresh process, timed from start to exit, with its peak RSS (from `wait4`), for
  costs that belong to a process (cold start, `--help`, `validate`); it is started by a small launcher
  process, because Linux counts the peak RSS of the process that forked it into a child's; or
- an `InProcess` function: run in a fresh worker process (`python -m benchmarks.worker`) that builds the
  side (`setup`, not timed), calls it `warmup` times, then times `repeat` calls; for warm costs.

Both sides of a case get the same environment (threads, dtype is the side's to fix and the case's to
declare), the same warm-ups and the same number of calls. Rounds alternate A B / B A, so drifting
load falls on both. Before any time is compared, the outputs of A and B are checked with the case's
`check` (equal, or within `atol`); a case whose outputs differ is reported as such and gets no ratio.

Per round the ratio A/B of the round's medians is taken; the table gives each side's median with its
min-max over every timed call, and the ratio's median with its min-max over the rounds, beside the
machine's load average.
"""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


@dataclass(frozen=True)
class Command:
    """A whole process: `argv` ({python}, {root}, {out} are filled in); `output(out_dir)` reads what it made."""

    argv: Sequence[str]
    output: Callable[[Path], Any] | None = None
    label: str = ""
    exit_codes: tuple[int, ...] = (0,)  # exits that are a result, not a failure (validate's 1: problems found)


@dataclass(frozen=True)
class InProcess:
    """`setup(**params)` returns a callable; each call is timed and returns the side's output."""

    setup: Callable[..., Callable[[], Any]]
    params: dict = field(default_factory=dict)
    per: float = 1.0  # divide times by this (per node, per step) so that sides of different size compare
    label: str = ""


@dataclass(frozen=True)
class Case:
    name: str
    what: str
    a: Command | InProcess
    b: Command | InProcess
    goal: float | None = None  # the ratio A/B should be at most this
    atol: float | None = 0.0  # outputs within this (0: identical); None: outputs not compared
    rounds: int = 3
    warmup: int = 1
    repeat: int = 3
    threads: int = 1
    prepare: Callable[[Path], dict] | None = None  # builds shared files once; returns params for both sides
    unit: str = "s"
    absolute: str = ""  # a goal on A's own figures, printed beside (e.g. "< 0.5 s, < 100 MB")
    # "wall", or "cpu" (a worker thread's CPU time; a command's user + system time) for single-threaded
    # work, which a shared machine's other processes would otherwise charge to whichever side they hit.
    clock: str = "wall"


@dataclass
class SideResult:
    times: list[float] = field(default_factory=list)
    round_medians: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)
    output: Any = None


def environment(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    # Compiled modules as an installed package has them: without .pyc files dgraph's own modules would be
    # compiled from source in every fresh process, while the reference libraries' were compiled at install.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads), PYTHONPATH=str(ROOT),
               HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    return env


def _fill(argv: Sequence[str], out: Path, params: dict) -> list[str]:
    return [a.format(python=PYTHON, root=ROOT, out=out, **params) for a in argv]


def run_command(side: Command, out: Path, env: dict, params: dict, clock: str = "wall") -> tuple[float, float, Any]:
    """Seconds (wall, or the process's user + system CPU time), peak RSS (MB) and output of one fresh process."""
    out.mkdir(parents=True, exist_ok=True)
    argv = _fill(side.argv, out, params)
    report = out / ".launcher.json"
    process = subprocess.run([PYTHON, "-S", "-c", _LAUNCHER, str(report), *argv], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    text = process.stdout.decode(errors="replace")
    measured = json.loads(report.read_text())
    if measured["exit"] not in side.exit_codes:
        raise RuntimeError(f"{' '.join(argv)} exited {measured['exit']}:\n{text[-3000:]}")
    output = side.output(out) if side.output else None
    seconds = measured["cpu"] if clock == "cpu" else measured["wall"]
    return seconds, measured["maxrss_kb"] / 1024, output


# Forks and times the measured process from a small interpreter: a child's peak RSS on Linux starts at
# that of the process it was forked from (the harness holds torch: 500 MB), the launcher's is ~10 MB.
_LAUNCHER = """
import json, os, sys, time
report, argv = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(argv[0], argv)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(report, "w") as f:
    json.dump({"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "maxrss_kb": usage.ru_maxrss,
               "exit": os.waitstatus_to_exitcode(status)}, f)
"""


def run_inprocess(case: Case, which: str, out: Path, env: dict) -> tuple[list[float], float, Any]:
    """Times of the `repeat` calls (after `warmup`), peak RSS and output, from a fresh worker process."""
    out.mkdir(parents=True, exist_ok=True)
    argv = [PYTHON, "-m", "benchmarks.worker", case.name, which, str(out)]
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    _, status, usage = os.wait4(process.pid, 0)
    text = process.stdout.read().decode(errors="replace")
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"worker {case.name}/{which} failed:\n{text[-3000:]}")
    report = json.loads((out / "report.json").read_text())
    output = np.load(out / "output.npy") if (out / "output.npy").exists() else None
    return report["times"], usage.ru_maxrss / 1024, output


def outputs_match(a: Any, b: Any, atol: float | None) -> str:
    """'' when the outputs agree; otherwise what differs."""
    if atol is None:
        return ""
    if a is None or b is None:
        return "a side gave no output to compare"
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        return f"shapes differ: {a.shape} vs {b.shape}"
    if atol == 0:
        return "" if np.array_equal(a, b) else f"not identical (max diff {np.abs(a.astype(float) - b).max():.3g})"
    diff = float(np.abs(a.astype(np.float64) - b.astype(np.float64)).max())
    return "" if diff <= atol else f"max diff {diff:.3g} > {atol}"


def run_case(case: Case, scratch: Path, log=print) -> dict:
    env = environment(case.threads)
    params = case.prepare(scratch / "shared") if case.prepare else {}
    (scratch / "shared").mkdir(parents=True, exist_ok=True)
    (scratch / "params.json").write_text(json.dumps(params))
    env["DGRAPH_BENCH_PARAMS"] = str(scratch / "params.json")
    load_before = os.getloadavg()[0]
    results = {"A": SideResult(), "B": SideResult()}
    for round_ in range(case.rounds):
        order = ("A", "B") if round_ % 2 == 0 else ("B", "A")
        for which in order:
            side = case.a if which == "A" else case.b
            result = results[which]
            out = scratch / f"{which}{round_}"
            if isinstance(side, Command):
                times, rss, output = [], 0.0, None
                for _ in range(case.warmup):  # the page cache and .pyc files, alike for both
                    run_command(side, out / "warmup", env, params)
                for i in range(case.repeat):
                    seconds, rss_i, output = run_command(side, out / str(i), env, params, case.clock)
                    times.append(seconds)
                    rss = max(rss, rss_i)
            else:
                times, rss, output = run_inprocess(case, which, out, env)
                times = [t / side.per for t in times]
            result.times += times
            result.round_medians.append(statistics.median(times))
            result.peak_rss_mb.append(rss)
            if round_ == 0:
                result.output = output
        log(f"  round {round_ + 1}/{case.rounds}: A {_figure(results['A'].round_medians[-1], case.unit)}, "
            f"B {_figure(results['B'].round_medians[-1], case.unit)}")
    mismatch = outputs_match(results["A"].output, results["B"].output, case.atol)
    ratios = [a / b for a, b in zip(results["A"].round_medians, results["B"].round_medians)]
    row = {"case": case.name, "what": case.what, "unit": case.unit, "goal": case.goal, "absolute": case.absolute,
           "outputs": "differ: " + mismatch if mismatch else ("checked equal" if case.atol == 0 else
                                                             "not compared" if case.atol is None else f"within {case.atol:g}"),
           "load": [round(load_before, 2), round(os.getloadavg()[0], 2)], "rounds": case.rounds, "clock": case.clock,
           "calls_per_round": case.repeat}
    for which, result in results.items():
        side = case.a if which == "A" else case.b
        row[which] = {"label": side.label, "median": statistics.median(result.times), "min": min(result.times),
                      "max": max(result.times), "peak_rss_mb": max(result.peak_rss_mb)}
    if not mismatch:
        row["ratio"] = {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios)}
        row["met"] = None if case.goal is None else row["ratio"]["median"] <= case.goal
    return row


def run_cases(cases: Sequence[Case], log=print, done: Callable[[list[dict]], None] | None = None) -> list[dict]:
    """Run the cases in order; `done(rows so far)` after each."""
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="dgraph-bench-") as tmp:
        for case in cases:
            log(f"{case.name}: {case.what}  (load {os.getloadavg()[0]:.2f})")
            try:
                rows.append(run_case(case, Path(tmp) / case.name, log))
            except Exception as error:  # one broken case must not hide the others' figures
                log(f"  failed: {error}")
                rows.append({"case": case.name, "what": case.what, "error": str(error)[-500:]})
            if done is not None:
                done(rows)
    return rows


# ---- reporting ---------------------------------------------------------------------------------------
def _figure(value: float, unit: str) -> str:
    if unit == "s" and value < 0.1:
        return f"{value * 1e3:.3g} ms"
    if unit == "us":
        return f"{value * 1e6:.3g} µs"
    return f"{value:.3g} {unit}"


def markdown(rows: list[dict], header: str) -> str:
    lines = [header, "",
             "| case | A | B | A median (min–max) | B median (min–max) | A/B median (min–max) | goal | outputs | load |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['case']} | | | | | failed: {row['error'][:80]} | | | |")
            continue
        a, b, unit = row["A"], row["B"], row["unit"]
        spread = lambda s: f"{_figure(s['median'], unit)} ({_figure(s['min'], unit)}–{_figure(s['max'], unit)})"
        if "ratio" in row:
            r = row["ratio"]
            ratio = f"**{r['median']:.2f}** ({r['min']:.2f}–{r['max']:.2f})"
        else:
            ratio = "—"
        goal = f"≤ {row['goal']:g}" if row["goal"] is not None else ""
        if row.get("clock") == "cpu":
            unit_note = " (CPU time)"
        else:
            unit_note = ""
        if row.get("met") is not None:
            goal += " ✓" if row["met"] else " ✗"
        if row["absolute"]:
            goal += ("; " if goal else "") + f"A {row['absolute']} (A: {_figure(a['median'], unit)}, {a['peak_rss_mb']:.0f} MB)"
        lines.append(f"| {row['case']}{unit_note} | {a['label']} | {b['label']} | {spread(a)} | {spread(b)} | {ratio} | {goal} "
                     f"| {row['outputs']} | {row['load'][0]:.1f}→{row['load'][1]:.1f} |")
    lines += ["", "A/B below 1: dgraph is faster. Ratios are per round (A and B interleaved, fresh processes); "
              "min–max of a side spans every timed call, of a ratio every round."]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Ratios per case with their min–max, on a log axis, with 1.0 and each goal marked (PIL only)."""
    import math

    from PIL import Image, ImageDraw

    rows = [r for r in rows if "ratio" in r]
    left, right, top, bar_h, gap = 260, 40, 40, 18, 10
    width, height = 900, top + len(rows) * (bar_h + gap) + 50
    low, high = 0.05, 20.0
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)

    def x_of(value: float) -> float:
        value = min(max(value, low), high)
        return left + (math.log10(value) - math.log10(low)) / (math.log10(high) - math.log10(low)) * (width - left - right)

    for tick in (0.1, 0.2, 0.5, 1, 2, 5, 10):
        x = x_of(tick)
        draw.line([(x, top - 10), (x, height - 40)], fill="#000" if tick == 1 else "#ddd", width=1)
        draw.text((x - 8, height - 35), f"{tick:g}", fill="#333")
    draw.text((left, 10), "dgraph / reference (A/B): median and min-max over rounds, log scale; red mark = goal",
              fill="#000")
    for i, row in enumerate(rows):
        y = top + i * (bar_h + gap)
        r = row["ratio"]
        met = row.get("met")
        colour = "#4a8" if met else "#d54" if met is False else "#58b"
        draw.text((10, y + 3), row["case"][:38], fill="#000")
        draw.rectangle([x_of(low), y, x_of(r["median"]), y + bar_h], fill=colour)
        draw.line([(x_of(r["min"]), y + bar_h / 2), (x_of(r["max"]), y + bar_h / 2)], fill="#000", width=2)
        for edge in (r["min"], r["max"]):
            draw.line([(x_of(edge), y + 3), (x_of(edge), y + bar_h - 3)], fill="#000", width=2)
        if row["goal"] is not None:
            gx = x_of(row["goal"])
            draw.line([(gx, y - 2), (gx, y + bar_h + 2)], fill="#c00", width=3)
        draw.text((x_of(max(r["max"], r["median"])) + 6, y + 3), f"{r['median']:.2f}", fill="#000")
    image.save(path)


def machine_line(threads: set[int]) -> str:
    import platform

    import torch

    return (f"Python {platform.python_version()}, torch {torch.__version__}, {os.cpu_count()} CPUs, "
            f"threads per side: {', '.join(map(str, sorted(threads)))}, float32, "
            f"load average at start {os.getloadavg()[0]:.2f}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
