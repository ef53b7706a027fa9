"""Image nodes: tensors to images, and saving PNGs that remember how they were made."""
from __future__ import annotations

import io
from typing import Annotated

import torch
from pydantic import AfterValidator, Field

from dgraph.local_files import open_image
from dgraph.node import Context, node
from dgraph.provenance import png_text
from dgraph.types import Image, Latent, image_to_pil

from .validators import check_prefix

# Checked when the workflow is validated, with its line, not when the node runs.
Prefix = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(check_prefix)]


@node("image.from_tensor", description="Wrap a [batch, channels, height, width] tensor as an Image.")
def from_tensor(tensor: torch.Tensor, low: float = -1.0, high: float = 1.0) -> Image:
    """low: the value that means black; high: the value that means white"""
    if tensor.dim() != 4:
        raise ValueError(f"expected a [batch, channels, height, width] tensor, got shape {tuple(tensor.shape)}")
    return Image(tensor, value_range=(low, high))


@node("image.save", description="Save images as PNG files (with the workflow and its inputs embedded).",
      output="paths", effect=True)
def save(ctx: Context, image: Image, prefix: Prefix = "image",
         embed_workflow: bool = True) -> list[str]:
    """prefix: file name prefix inside the output folder (subfolders allowed); files are PREFIX_000.png,
    PREFIX_001.png, ..., numbered on after the files already there (`--overwrite` starts again at 000)"""
    from PIL import PngImagePlugin

    payloads = []
    for picture in image_to_pil(image):
        info = PngImagePlugin.PngInfo()
        if embed_workflow and ctx.workflow is not None:
            for key, text in png_text(ctx.workflow, ctx.inputs, ctx.base).items():
                info.add_text(key, text)
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG", pnginfo=info)
        payloads.append(buffer.getvalue())
    return [str(path) for path in ctx.write_files(prefix, ".png", payloads)]


@node("image.from_latent", description="Read pixel-space diffusion samples (values in [-1, 1]) as an Image.")
def from_latent(latents: Latent) -> Image:
    if latents.autoencoder:
        raise ValueError(f"these latents belong to a {latents.autoencoder}: decode them with vae.decode")
    return Image(latents.tensor.float(), value_range=(-1.0, 1.0))


@node("image.load", description="Load an image file (PNG, JPEG...) as a batch of one, values in [0, 1].")
def load(ctx: Context, path: str, height: Annotated[int, Field(ge=0, le=16384)] = 0,
         width: Annotated[int, Field(ge=0, le=16384)] = 0) -> Image:
    """path: the image file (relative to the current folder, else to the workflow's folder)
    height: resize to this height (0 keeps the file's)
    width: resize to this width (0 keeps the file's)
    """
    import numpy as np
    from PIL import Image as PILImage

    file = ctx.resolve_path(path)
    with open_image(file, "image") as picture:
        picture = picture.convert("RGB")
        if height or width:
            picture = picture.resize((width or picture.width, height or picture.height), PILImage.BICUBIC)
        array = np.asarray(picture, dtype=np.float32) / 255.0
    return Image(torch.from_numpy(array).permute(2, 0, 1)[None].to(ctx.device), value_range=(0.0, 1.0))
