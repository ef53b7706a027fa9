"""Progress events delivered to a callback while a graph runs."""
from __future__ import annotations

import dataclasses
import itertools
import threading
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Event:
    """`kind` is one of: "plan", "node-start", "node-end", "node-cached", "step", "done".

    "step" events carry `step` (1-based) and `total`; "node-end" events carry `seconds`; "plan" carries
    `total` (the number of nodes to run). `run` names the execution an event belongs to (several may run at
    once on one callback); `item` is the item's index when a graph runs over a list of items, else -1.
    """

    kind: str
    node: str = ""
    step: int = 0
    total: int = 0
    seconds: float = 0.0
    device: str = ""
    run: str = ""
    item: int = -1


_RUNS = itertools.count(1)


def new_run() -> str:
    """A name for one execution, unique in this process ("run-1", "run-2", ...)."""
    return f"run-{next(_RUNS)}"


def stamping(listener: Callable[[Event], None] | None, run: str, item: int = -1,
             lock: threading.Lock | None = None) -> Callable[[Event], None] | None:
    """`listener`, given each event with its run and item filled in (one event at a time under `lock`)."""
    if listener is None:
        return None

    def emit(event: Event) -> None:
        event = dataclasses.replace(event, run=run, item=item)
        if lock is None:
            listener(event)
        else:
            with lock:
                listener(event)

    return emit
