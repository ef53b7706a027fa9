"""The GLIDE parity fixtures (tests/fixtures/glide, made by its make_fixtures.py under the official code):
their settings and tensors, and tiny models converted from the official-key random weights."""
from __future__ import annotations

import functools
import gzip
import json
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "glide"
sys.path.insert(0, str(FIXTURES))
from glide_weights import random_weights  # noqa: E402


@functools.lru_cache(maxsize=None)
def info() -> dict:
    return json.loads((FIXTURES / "fixtures.json").read_text())


@functools.lru_cache(maxsize=None)
def tensors() -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / "fixtures.safetensors"))


@functools.lru_cache(maxsize=None)
def released_layouts() -> dict[str, dict[str, list[int]]]:
    with gzip.open(FIXTURES / "released_layouts.json.gz", "rt") as handle:
        return json.load(handle)


def options_of(name: str) -> dict:
    data = info()
    if name == "clip-image":
        return data["tiny_clip_image"]
    if name == "clip-text":
        return data["tiny_clip_text"]
    return data["tiny"][name]


def official_checkpoint(name: str, folder: Path) -> Path:
    """The tiny model's random weights under the official keys, as a checkpoint file."""
    path = folder / f"{name}.safetensors"
    save_file(random_weights(info()["shapes"][name], info()["seeds"][name]), str(path))
    return path


def converted(name: str, folder: Path) -> Path:
    """The tiny model converted as `dgraph convert glide CKPT --options` converts it."""
    from dgraph.convert import convert

    return convert("glide", official_checkpoint(name, folder), folder / name, options=options_of(name))
