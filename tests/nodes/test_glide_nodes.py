"""GLIDE's nodes refuse inputs their model does not read, by name; masks read as GLIDE's notebook makes them."""
from __future__ import annotations

import pytest
import torch

from dgraph.errors import DgraphError
from dgraph.models.glide import GlideText2ImUNet
from dgraph.sampling.inpainting import known_mask
from dgraph.types import Image, Tokens
from nodes.glide import glide_denoiser

TINY = dict(image_size=16, num_channels=32, num_res_blocks=1, channel_mult="1,2", num_head_channels=16,
            attention_resolutions="8", text_ctx=4, xf_width=32, xf_layers=1, xf_heads=2)
TOKENS = Tokens(torch.zeros(1, 4, dtype=torch.long), torch.ones(1, 4, dtype=torch.long))
PICTURE = Image(torch.zeros(1, 3, 16, 16), value_range=(-1.0, 1.0))


@pytest.mark.parametrize("options, images, message", [
    (dict(super_res=True), {}, "this GLIDE model upsamples: link `low_res:`"),
    ({}, dict(low_res=PICTURE), "this GLIDE model does not upsample (super_res is false): remove `low_res:`"),
    (dict(inpaint=True), dict(inpaint_image=PICTURE), "this GLIDE model inpaints: link `inpaint_image:` and `inpaint_mask:`"),
    ({}, dict(inpaint_mask=PICTURE), "this GLIDE model does not inpaint (inpaint is false)"),
])
def test_denoiser_glide_refuses_images_its_model_does_not_read(options, images, message):
    with torch.device("meta"):
        model = GlideText2ImUNet(**TINY, **options)
    with pytest.raises(DgraphError, match=message.replace("(", r"\(").replace(")", r"\)")):
        glide_denoiser(model, TOKENS, **images)


def test_a_mask_is_its_first_channel_enlarged_by_nearest_neighbour_and_rounded():
    pixels = torch.zeros(1, 3, 4, 4)
    pixels[:, :, :1] = 0.9  # the first row white: kept
    mask = known_mask(pixels, (8, 8))
    assert mask.shape == (1, 1, 8, 8)
    assert mask[0, 0, :2].eq(1).all() and mask[0, 0, 2:].eq(0).all()
    assert torch.equal(known_mask(pixels, (8, 8), invert=True), 1 - mask)
