"""dgraph's built-in node catalogue: thin, typed wrappers over dgraph's library.

Registered through the `dgraph.nodes` entry point (`builtin = "nodes:catalogue"`), exactly as a
third-party node pack registers.
"""
from __future__ import annotations

import importlib

from dgraph.node import spec_of

# One module per concern; each holds node functions only.
MODULES = ("nodes.basic", "nodes.tensor", "nodes.image", "nodes.schedulers", "nodes.sampling", "nodes.models", "nodes.text",
           "nodes.conditioning", "nodes.super_resolution", "nodes.image_to_image", "nodes.audio",
           "nodes.audio_generation", "nodes.clip", "nodes.unclip", "nodes.glide")


def catalogue() -> list:
    """Every node function of the built-in catalogue."""
    found = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        found.extend(value for value in vars(module).values() if spec_of(value) is not None)
    return found
