"""The benchmark harness compares outputs before times, interleaves the sides and reports spreads."""
from __future__ import annotations

import numpy as np

from benchmarks.harness import Case, Command, markdown, outputs_match, run_case

WRITE = "import pathlib, sys; pathlib.Path(sys.argv[1], 'out.txt').write_text(sys.argv[2])"


def _read(folder):
    return np.frombuffer((folder / "out.txt").read_bytes(), dtype=np.uint8)


def test_outputs_are_compared_before_any_ratio(tmp_path):
    order = tmp_path / "order.txt"
    log = f"import sys; open({str(order)!r}, 'a').write(sys.argv[1])"
    same = Case("t.same", "two sides, same output",
                Command(["{python}", "-c", WRITE + "; " + log.replace("sys.argv[1]", "'A'"), "{out}", "7"], _read, "a"),
                Command(["{python}", "-c", WRITE + "; " + log.replace("sys.argv[1]", "'B'"), "{out}", "7"], _read, "b"),
                goal=100.0, rounds=3, warmup=0, repeat=1)
    row = run_case(same, tmp_path / "same", log=lambda *_: None)
    assert order.read_text() == "ABBAAB"  # rounds alternate which side goes first
    assert row["outputs"] == "checked equal" and row["met"] is True
    assert row["ratio"]["min"] <= row["ratio"]["median"] <= row["ratio"]["max"]
    assert row["A"]["peak_rss_mb"] > 1
    differ = Case("t.differ", "outputs differ", Command(["{python}", "-c", WRITE, "{out}", "7"], _read, "a"),
                  Command(["{python}", "-c", WRITE, "{out}", "8"], _read, "b"), rounds=1, warmup=0, repeat=1)
    row = run_case(differ, tmp_path / "differ", log=lambda *_: None)
    assert row["outputs"] == "differ: not identical (max diff 1)" and "ratio" not in row
    assert "| t.differ | a | b |" in markdown([row], "# t")


def test_tolerances():
    a = np.array([1.0, 2.0])
    assert outputs_match(a, a + 1e-6, 1e-5) == ""
    assert outputs_match(a, a + 1e-3, 1e-5) == "max diff 0.001 > 1e-05"
    assert outputs_match(a, a[:1], 0.0) == "shapes differ: (2,) vs (1,)"
    assert outputs_match(None, a, 0.0) == "a side gave no output to compare"
    assert outputs_match(None, None, None) == ""


def test_a_partial_run_replaces_its_rows_and_keeps_the_others():
    from benchmarks.__main__ import merged

    saved = [{"case": "a", "v": 1}, {"case": "b", "v": 2}, {"case": "c", "v": 3}]
    assert merged(saved, [{"case": "b", "v": 20}, {"case": "d", "v": 4}]) == [
        {"case": "a", "v": 1}, {"case": "b", "v": 20}, {"case": "c", "v": 3}, {"case": "d", "v": 4}]


def test_a_partial_run_adds_its_machine_line_beneath_the_saved_ones():
    from benchmarks.__main__ import header_for

    line = "Python 3.11, 2 CPUs, load average at start 1.00; 2026-12-01 10:00 UTC"
    whole = header_for(None, line, [])
    assert whole == f"# dgraph benchmarks\n\n{line}"
    later = header_for(whole, "Python 3.11, 2 CPUs, load average at start 4.00; 2026-12-01 11:00 UTC", ["ray", "cli"])
    assert later == (f"# dgraph benchmarks\n\n{line}  \n"
                     "Python 3.11, 2 CPUs, load average at start 4.00 (ray, cli); 2026-12-01 11:00 UTC")
