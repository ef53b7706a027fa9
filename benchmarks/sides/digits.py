"""The bundled digits job, warm: dgraph's graph beside the plain diffusers script, models loaded once.

"Equal work": every call encodes a new prompt and draws new noise on both sides. "Cached": dgraph's
graph with the prompt unchanged and a new seed, where its content cache serves the text embeddings;
the script has no cache and encodes again. That is a figure of its own, never mixed with equal work.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .calls import calls

ROOT = Path(__file__).resolve().parents[2]
PROMPTS = ["a handwritten seven", "the number 3", "0", "a five", "nine", "an eight", "one", "a two"]


def _pixels(image) -> np.ndarray:
    return (image.clamp(0, 1) * 255).round().to(dtype=__import__("torch").uint8).numpy()


def dgraph_side(cached: bool = False):
    from dgraph.graph import Graph

    graph = Graph.load(ROOT / "workflows" / "digits.yaml")

    def run(prompt: str, seed: int):
        image = graph.execute(outputs=["image"], prompt=PROMPTS[0] if cached else prompt, seed=seed).image
        return _pixels(image.to_range(0.0, 1.0).tensor)
    return calls(run, PROMPTS)


def diffusers_side(cached: bool = False):
    from .digits_diffusers import DigitsScript

    script = DigitsScript()
    return calls(lambda prompt, seed: _pixels(script(PROMPTS[0] if cached else prompt, seed)), PROMPTS)


def png_pixels(folder: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(folder / "digits_000.png"))
