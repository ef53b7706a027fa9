"""Small graph algorithms over adjacency dicts (node -> successors), in insertion order.

The engine needs only these three; each is linear in nodes + edges and iterative, so a 10,000-node
chain neither recurses nor pays for a general graph library's import (networkx: 0.2-0.5 s).
"""
from __future__ import annotations

from typing import Hashable, Iterable, Mapping, Sequence, TypeVar

N = TypeVar("N", bound=Hashable)


def strongly_connected(successors: Mapping[N, Sequence[N]]) -> list[list[N]]:
    """The strongly connected components (Tarjan's algorithm, without recursion)."""
    index: dict[N, int] = {}
    low: dict[N, int] = {}
    on_stack: set[N] = set()
    stack: list[N] = []
    components: list[list[N]] = []
    for root in successors:
        if root in index:
            continue
        work = [(root, iter(successors[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(successors[child])))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    components.append(component)
    return components


def find_cycle(successors: Mapping[N, Sequence[N]], members: Iterable[N]) -> list[N]:
    """One cycle among `members` (a strongly connected component), as the nodes in order along it.

    Depth-first from the first member (in the order of `successors`), following edges in their order.
    """
    inside = set(members)
    start = next(node for node in successors if node in inside)
    path: list[N] = [start]
    position = {start: 0}
    work = [iter(successors[start])]
    seen = {start}
    while work:
        for child in work[-1]:
            if child not in inside:
                continue
            if child in position:
                return path[position[child]:]
            if child in seen:
                continue
            seen.add(child)
            position[child] = len(path)
            path.append(child)
            work.append(iter(successors[child]))
            break
        else:
            work.pop()
            del position[path.pop()]
    raise ValueError("the members hold no cycle")


def topological_order(successors: Mapping[N, Sequence[N]]) -> list[N]:
    """Every node after all its predecessors (Kahn's algorithm); the graph must be acyclic."""
    waiting = {node: 0 for node in successors}
    for children in successors.values():
        for child in children:
            waiting[child] += 1
    ready = [node for node, count in waiting.items() if count == 0]
    order: list[N] = []
    while ready:
        node = ready.pop()
        order.append(node)
        for child in successors[node]:
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    if len(order) != len(waiting):
        raise ValueError("the graph has a cycle")
    return order
