"""Image nodes: tensors to images, and saving PNGs that remember how they were made."""
from __future__ import annotations

import io
import json
import re
from typing import Annotated

import torch
from pydantic import Field

from dgraph.configuration import write_bytes_atomic
from dgraph.node import Context, node
from dgraph.types import Image, image_to_pil

_PREFIX = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")

# PNG text keys holding the workflow and its input values; `dgraph run --from-image` reads them back.
WORKFLOW_KEY = "dgraph:workflow"
INPUTS_KEY = "dgraph:inputs"


@node("image.from_tensor", description="Wrap a [batch, channels, height, width] tensor as an Image.")
def from_tensor(tensor: torch.Tensor, low: float = -1.0, high: float = 1.0) -> Image:
    """low: the value that means black; high: the value that means white"""
    if tensor.dim() != 4:
        raise ValueError(f"expected a [batch, channels, height, width] tensor, got shape {tuple(tensor.shape)}")
    return Image(tensor, value_range=(low, high))


@node("image.save", description="Save images as PNG files (with the workflow and its inputs embedded).",
      output="paths")
def save(ctx: Context, image: Image, prefix: Annotated[str, Field(min_length=1, max_length=200)] = "image",
         embed_workflow: bool = True) -> list[str]:
    """prefix: file name prefix inside the output folder (subfolders allowed); files are PREFIX_000.png, ..."""
    if not _PREFIX.match(prefix):
        raise ValueError(f"prefix {prefix!r} may hold only letters, digits, '_', '-', '.' and '/'")
    from PIL import PngImagePlugin

    paths = []
    for index, picture in enumerate(image_to_pil(image)):
        target = ctx.output_path(f"{prefix}_{index:03d}.png")
        info = PngImagePlugin.PngInfo()
        if embed_workflow and ctx.workflow is not None:
            info.add_text(WORKFLOW_KEY, json.dumps(ctx.workflow, sort_keys=False))
            info.add_text(INPUTS_KEY, json.dumps(_jsonable(ctx.inputs)))
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", pnginfo=info)
        write_bytes_atomic(target, buffer.getvalue())
        paths.append(str(target))
    return paths


def _jsonable(values: dict) -> dict:
    out = {}
    for key, value in values.items():
        try:
            json.dumps(value)
            out[key] = value
        except TypeError:
            out[key] = repr(value)
    return out
