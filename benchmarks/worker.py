"""Runs one in-process side of a case in this fresh process: setup, warm-ups, timed calls.

    python -m benchmarks.worker CASE A|B OUT_DIR      (the harness calls this; writes report.json, output.npy)
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    case_name, which, out = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    from .cases import CASES

    case = next(c for c in CASES if c.name == case_name)
    side = case.a if which == "A" else case.b
    import torch

    torch.set_num_threads(case.threads)
    params = json.loads(Path(os.environ["DGRAPH_BENCH_PARAMS"]).read_text())
    call = side.setup(**{**params, **side.params})
    output = None
    for _ in range(case.warmup):
        output = call()
    clock = time.thread_time if case.clock == "cpu" else time.perf_counter
    times = []
    for _ in range(case.repeat):
        start = clock()
        output = call()
        times.append(clock() - start)
    out.mkdir(parents=True, exist_ok=True)
    if output is not None:
        if isinstance(output, torch.Tensor):
            output = output.detach().cpu().numpy()
        np.save(out / "output.npy", np.asarray(output))
    (out / "report.json").write_text(json.dumps({"times": times}))


if __name__ == "__main__":
    main()
