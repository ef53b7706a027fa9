"""Where each node of a plan runs under the Ray executor, decided before anything runs.

Nodes joined by an object port (a model, a denoiser, a scheduler, a tokenizer: values that hold weights or
wrap them) form one group, because such values never cross a process: a group that loads a model runs in
one model actor, named after its first model-loading node (its *root*). Nodes of a group without a model
run as Ray tasks, and so does every node joined to no group (a value that crosses goes through the object
store). Nodes that write files run in the driver, so that files land in the driver's output folder.

    homes = worker_homes(resolved, plan)   # node -> Home
"""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import DgraphError
from .placement import OBJECT_PORTS, loads_model
from .plan import Plan
from .validate import Resolved
from .workflow import Link

DRIVER = "driver"
TASK = "task"
ACTOR = "actor"


@dataclass(frozen=True)
class Home:
    """`kind` is DRIVER, TASK or ACTOR; an ACTOR home names the group's root (a model-loading node)."""

    kind: str
    root: str = ""


def worker_homes(resolved: Resolved, plan: Plan) -> dict[str, Home]:
    """Each planned node's home (see the module docstring)."""
    parent = {name: name for name in plan.order}

    def find(name: str) -> str:
        while parent[name] != name:
            parent[name] = parent[parent[name]]
            name = parent[name]
        return name

    for name in plan.order:
        for binding in resolved.nodes[name].bindings.values():
            if isinstance(binding, Link) and binding.node in parent:
                port = resolved.nodes[binding.node].spec.outputs[binding.output].type.name
                if port in OBJECT_PORTS:
                    parent[find(name)] = find(binding.node)
    roots: dict[str, str] = {}  # group -> its first model-loading node
    for name in plan.order:
        if loads_model(resolved.nodes[name]):
            roots.setdefault(find(name), name)
    homes: dict[str, Home] = {}
    for name in plan.order:
        root = roots.get(find(name))
        if resolved.nodes[name].spec.effect:
            if root is not None:
                raise DgraphError(
                    f"node {name!r} ({resolved.nodes[name].spec.type_name}) writes files and uses the model of "
                    f"node {root!r}: on Ray, nodes that write files run in the driver and models stay in their "
                    "worker; run this workflow with --executor local or parallel")
            homes[name] = Home(DRIVER)
        else:
            homes[name] = Home(ACTOR, root) if root is not None else Home(TASK)
    return homes
