"""What the in-process sides share: a call that takes the next prompt and seed each time, and the initial
noise dgraph's `latent.noise` node named "noise" draws for a seed (so a reference side starts from it too)."""
from __future__ import annotations

from typing import Any, Callable, Sequence


def calls(run: Callable[[str, int], Any], prompts: Sequence[str]) -> Callable[[], Any]:
    """A zero-argument call: the i-th runs `run(prompts[i % len(prompts)], 10 + i)`, so every call is new work."""
    state = {"i": 0}

    def call():
        i = state["i"]
        state["i"] += 1
        return run(prompts[i % len(prompts)], 10 + i)
    return call


def graph_noise(seed: int, shape: tuple[int, ...]):
    """Standard normal noise of `shape`, from the generator a graph's node "noise" gets for `seed`."""
    import torch

    from dgraph.node import derive_seed

    return torch.randn(shape, generator=torch.Generator().manual_seed(derive_seed(seed, "noise")))
