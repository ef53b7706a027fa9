"""Progress events delivered to a callback while a graph runs."""
from __future__ import annotations

from dataclasses import dataclass


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
