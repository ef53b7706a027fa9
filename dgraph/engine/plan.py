"""Planning: prune to what the requested outputs need, and order it topologically."""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field

from ..errors import DgraphError
from .collector import collector_paused
from .validate import Resolved
from .workflow import Link


@dataclass(frozen=True)
class Plan:
    order: tuple[str, ...]  # the nodes to run, dependencies first
    outputs: dict[str, Link]  # the graph outputs to return
    # node -> the planned nodes it reads from: what a concurrent executor needs beyond the flat order
    dependencies: dict[str, tuple[str, ...]] = field(default_factory=dict)

    def dependents(self) -> dict[str, tuple[str, ...]]:
        """node -> the planned nodes that read from it (in plan order)."""
        children: dict[str, list[str]] = {name: [] for name in self.order}
        for name in self.order:
            for parent in self.dependencies.get(name, ()):
                children[parent].append(name)
        return {name: tuple(c) for name, c in children.items()}


def _upstream(resolved: Resolved) -> dict[str, tuple[str, ...]]:
    """node -> the nodes it reads from, each once, sorted (links to graph inputs are not edges)."""
    nodes = resolved.nodes
    return {name: tuple(sorted({b.node for b in node.bindings.values() if isinstance(b, Link) and b.node in nodes}))
            for name, node in nodes.items()}


def make_plan(resolved: Resolved, wanted: list[str] | None = None) -> Plan:
    """The nodes needed for `wanted` graph outputs (all declared outputs by default; every node when the
    workflow declares none), in a deterministic topological order (ties broken by name)."""
    # Planning allocates a few containers per node that all stay alive until it returns; with the cyclic
    # collector running, a large graph paid for full collections of the whole heap (see collector.py).
    with collector_paused():
        return _make_plan(resolved, wanted)


def _make_plan(resolved: Resolved, wanted: list[str] | None) -> Plan:
    upstream = _upstream(resolved)
    if resolved.outputs:
        names = list(resolved.outputs) if wanted is None else wanted
        unknown = [n for n in names if n not in resolved.outputs]
        if unknown:
            raise DgraphError(f"unknown graph output(s) {', '.join(map(repr, unknown))}; "
                              f"this workflow has: {', '.join(resolved.outputs)}")
        outputs = {n: resolved.outputs[n] for n in names}
        targets = {link.node for link in outputs.values()}
    else:
        if wanted:
            raise DgraphError("this workflow declares no outputs to choose from")
        outputs, targets = {}, set(resolved.nodes)
    needed: set[str] = set()
    stack = list(targets)
    while stack:  # everything the targets depend on
        name = stack.pop()
        if name not in needed:
            needed.add(name)
            stack.extend(upstream[name])
    # Kahn's algorithm with a heap: the same order every time, whatever the file's node order. The
    # nodes are walked in the file's order (not a set's hash order) and edges kept in lists: at 10,000
    # nodes, hopping through memory in hash order cost more per node than the work itself.
    ordered = [name for name in upstream if name in needed]
    waiting: dict[str, int] = {}
    downstream: dict[str, list[str]] = {name: [] for name in ordered}
    for name in ordered:
        parents = upstream[name]  # each parent once: a node linked twice to one parent waits for it once
        waiting[name] = len(parents)
        for parent in parents:
            downstream[parent].append(name)
    ready = [name for name, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        name = heapq.heappop(ready)
        order.append(name)
        for child in downstream[name]:
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    dependencies = {name: upstream[name] for name in order}
    return Plan(tuple(order), outputs, dependencies)
