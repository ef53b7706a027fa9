"""The Ray executor on a local Ray instance beside the local executor (and 2 workers beside 1), as
harness sides: each setup joins this process's Ray instance, or starts one (untimed).

Every call runs with one torch thread: nodes on Ray run with the driver's count, so a batch over two
workers measures what a second worker process adds, not a thread split.
"""
from __future__ import annotations

import itertools

from .calls import calls
from .digits import PROMPTS, ROOT, _pixels
from .engine import chain


def _connect(executor) -> None:
    import torch

    torch.set_num_threads(1)
    if executor != "local":
        from dgraph.engine.ray_executor import RayExecutor

        RayExecutor().connect()


def chain_side(executor: str = "ray", n: int = 1_000):
    """The n-node math.add chain from an empty cache (on Ray every node is a task); output: total / n."""
    from dgraph.graph import Graph

    _connect(executor)
    graph = Graph(chain(n), filename="<chain>")

    def call():
        graph.cache.clear()
        return graph.execute(executor=executor).total / n
    return call


def digits_side(executor: str = "ray"):
    """The digits job with its models loaded, a new prompt and seed each call; output: the pixels."""
    from dgraph.graph import Graph

    _connect(executor)
    graph = Graph.load(ROOT / "workflows" / "digits.yaml")

    def run(prompt: str, seed: int):
        image = graph.execute(outputs=["image"], prompt=prompt, seed=seed, executor=executor).image
        return _pixels(image.to_range(0.0, 1.0).tensor)
    return calls(run, PROMPTS)


def batch_side(workers: int = 2, items: int = 4):
    """`items` digits prompts as items over `workers` replicas of each model actor, a new seed each batch;
    output: the pixels of every item."""
    import numpy as np

    from dgraph.engine.ray_executor import RayExecutor
    from dgraph.graph import Graph

    _connect("ray")
    graph = Graph.load(ROOT / "workflows" / "digits.yaml")
    executor = RayExecutor(workers=workers)
    seeds = itertools.count(10)

    def call():
        results = graph.execute_items([{"prompt": PROMPTS[i % len(PROMPTS)]} for i in range(items)], outputs=["image"],
                                      executor=executor, seed=next(seeds), pipeline=False)
        return np.stack([_pixels(r.image.to_range(0.0, 1.0).tensor) for r in results])
    return call
