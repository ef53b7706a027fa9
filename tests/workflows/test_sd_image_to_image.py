"""Stable Diffusion / SDXL image-to-image and inpainting against diffusers' pipelines, on small random components
saved by diffusers (sd_components.py). Seeds line up as in test_stable_diffusion.py: the reference reseeds its
one generator between draws, in the order diffusers draws, with the seed of the dgraph node that draws there."""
from __future__ import annotations

import diffusers
import pytest
import torch
from PIL import Image as PILImage

import sd_components
from dgraph.graph import Graph
from dgraph.node import derive_seed
from test_stable_diffusion import TOLERANCE, _reseed_after, one_thread, pixels  # noqa: F401 (one_thread: autouse)


@pytest.fixture(scope="module")
def sd_inpaint(tmp_path_factory):
    return sd_components.sd_inpaint_pipeline(tmp_path_factory.mktemp("sd-inpaint"))


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    return sd_components.write_image_and_mask(tmp_path_factory.mktemp("pictures"), 16, 24)


def _seeded(seed: int, *after: tuple[object, str, str]) -> torch.Generator:
    """A generator seeded for the first drawing node; after each (owner, method) it is reseeded for the next."""
    names = ["noise", *[name for _, _, name in after]]
    generator = torch.Generator().manual_seed(derive_seed(seed, names[0]))
    for owner, method, name in after:
        _reseed_after(owner, method, generator, derive_seed(seed, name))
    return generator


def test_sd_inpainting_unet_equals_diffusers(sd_inpaint, files):
    image, mask = files
    prompts = ["a red fox", "the sea at night"]
    ours = Graph.from_pretrained(sd_inpaint).execute(outputs=["image"], prompt=prompts, image=str(image),
                                                     mask=str(mask), seed=3, steps=4, guidance_scale=5.0)
    pipe = diffusers.StableDiffusionInpaintPipeline.from_pretrained(sd_inpaint)
    # Strength 1: fresh noise ("noise"), then the masked image's latents are sampled ("masked_latents").
    generator = _seeded(3, (pipe, "prepare_latents", "masked_latents"), (pipe, "prepare_mask_latents", "sample"))
    theirs = pipe(prompt=prompts, image=PILImage.open(image), mask_image=PILImage.open(mask), height=16, width=24,
                  num_inference_steps=4,
                  guidance_scale=5.0, generator=generator, output_type="pt").images
    assert theirs.shape == (2, 3, 16, 24)
    assert (pixels(ours) - theirs).abs().max() < TOLERANCE
