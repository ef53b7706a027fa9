"""Node declarations the pipeline recipes share (pipelines.py, cascades.py, stable_diffusion.py, unclip.py).

Only node type names and links: like the recipes, this imports neither the engine nor the node catalogue.
"""
from __future__ import annotations

from typing import Any


def guided_pair(p: str, denoiser: str, inputs: dict[str, Any], branches: dict[str, tuple[str, str]],
                scale: str, rescale: str | None = None) -> dict[str, Any]:
    """{p}cond and {p}uncond, two `denoiser` nodes of one network with `inputs` and each branch's conditioning
    (`branches`: input name -> (conditional value, unconditional value)), and {p}guided, their classifier-free
    guidance at `scale` (and guidance `rescale`)."""
    nodes: dict[str, Any] = {}
    for index, branch in enumerate(("cond", "uncond")):
        nodes[f"{p}{branch}"] = {"type": denoiser,
                                 "inputs": {**inputs, **{name: values[index] for name, values in branches.items()}}}
    guidance = {"cond": f"@{p}cond.denoiser", "uncond": f"@{p}uncond.denoiser", "scale": scale}
    if rescale is not None:
        guidance["rescale"] = rescale
    nodes[f"{p}guided"] = {"type": "guidance.cfg", "inputs": guidance}
    return nodes
