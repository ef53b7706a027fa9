"""The jobs of a run over several items: each (item, node name), what it waits for, and who waits for it.

The parallel and Ray executors schedule the same way: a job is ready once every job it waits for has
ended. A node waits for its plan dependencies within its item, and — where the executor keeps the item
order for it — for the same node of the previous item (a pipelined stage, a node that writes files).
"""
from __future__ import annotations

from typing import Callable, Sequence

from .executor import RunRequest

Job = tuple[int, str]  # (item, node name)


def job_graph(requests: Sequence[RunRequest], keeps_order: Callable[[int, str], bool] = lambda item, name: True
              ) -> tuple[dict[Job, int], dict[Job, int], dict[Job, list[Job]]]:
    """(each job's position in its item's plan order, how many jobs each waits for, the jobs waiting for each).

    `keeps_order(item, name)`: whether the node waits for its own run in the previous item (when that item's
    plan has it)."""
    order: dict[Job, int] = {}
    waiting: dict[Job, int] = {}
    children: dict[Job, list[Job]] = {}
    for item, request in enumerate(requests):
        for index, name in enumerate(request.plan.order):
            job = (item, name)
            order[job] = index
            parents = [(item, p) for p in request.plan.dependencies.get(name, ())]
            if item > 0 and name in requests[item - 1].plan.dependencies and keeps_order(item, name):
                parents.append((item - 1, name))
            waiting[job] = len(parents)
            for parent in parents:
                children.setdefault(parent, []).append(job)
    return order, waiting, children
