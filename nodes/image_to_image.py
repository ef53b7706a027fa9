"""Image-to-image and inpainting: noise shaped like an image's latents, the mask from an image file, the image
with the painted area blacked out, and the denoiser of a 9-channel inpainting UNet that reads both beside the
latents."""
from __future__ import annotations

from typing import Annotated, Optional

import torch
from pydantic import Field

from dgraph.errors import DgraphError
from dgraph.node import Context, node
from dgraph.sampling import (ImageConditionedDenoiser, ModelDenoiser, binary_mask, inpainting_condition, latent_mask,
                             masked_image)
from dgraph.types import AddedConditions, Denoiser, Image, Latent, TextEmbedding, UNet


@node("latent.noise_like", random=True, description="Standard normal latents shaped like an image's latents, one "
                                                    "per prompt and image, seeded from the graph seed.")
def noise_like(ctx: Context, latents: Latent, context: Optional[TextEmbedding] = None,
               images_per_prompt: Annotated[int, Field(ge=1, le=16384)] = 1) -> Latent:
    """Drawn on the CPU, so a seed gives the same noise on every device.

    latents: the image's latents (vae.encode); their channels and size are the noise's
    context: text conditioning; its batch (the number of prompts) sets the batch, else the latents' batch
    images_per_prompt: latents per prompt
    """
    batch = context.hidden_states.shape[0] if context is not None else latents.tensor.shape[0]
    shape = (batch * images_per_prompt, *latents.tensor.shape[1:])
    noise = torch.randn(shape, generator=ctx.generator(), dtype=torch.float32)
    return Latent(noise.to(ctx.device), scaling_factor=latents.scaling_factor, autoencoder=latents.autoencoder)


@node("image.mask", description="A black-and-white mask from an image: white (grey at or above half) is painted.")
def mask_node(image: Image) -> Image:
    """Grey levels (PIL's luma) at or above 0.5 become 1 (paint), the rest 0 (keep); one channel, values in [0, 1]."""
    return Image(binary_mask(image.to_range(0.0, 1.0).tensor.float()), value_range=(0.0, 1.0))


@node("image.masked", description="The image with the area to paint set to mid grey, for an inpainting UNet.")
def masked_node(image: Image, mask: Image) -> Image:
    """mask: from image.mask, the image's size (1 = paint)"""
    pixels, keep = image.to_range(-1.0, 1.0).tensor.float(), mask.to_range(0.0, 1.0).tensor
    if tuple(pixels.shape[-2:]) != tuple(keep.shape[-2:]):
        raise DgraphError(f"the mask is {tuple(keep.shape[-2:])} and the image {tuple(pixels.shape[-2:])} pixels: "
                          f"give them the same size (image.load's height and width)")
    return Image(masked_image(pixels, keep.to(pixels.device)), value_range=(-1.0, 1.0))


@node("denoiser.inpainting", description="An inpainting UNet (9 channels) reading the mask and the masked image's "
                                         "latents beside the sample; an ordinary UNet as it is.")
def inpainting_denoiser(unet: UNet, mask: Image, masked_latents: Latent, context: Optional[TextEmbedding] = None,
                        added: Optional[AddedConditions] = None) -> Denoiser:
    """For an ordinary (4-channel) UNet this is the plain denoiser: the sampling loop keeps the unmasked area
    by blending instead (see latent.blend_mask), as diffusers' inpainting pipelines do.

    mask: the image-size mask (image.mask), resized to the latents'
    masked_latents: the VAE latents of the masked image (image.masked, then vae.encode)
    context: text hidden states for cross-attention
    added: SDXL's added conditions (condition.text_time)
    """
    hidden = context.hidden_states if context is not None else None
    values = added.values if added is not None else None
    if not reads_mask(unet, masked_latents):
        return ModelDenoiser(unet, hidden, added=values)
    condition = inpainting_condition(mask.to_range(0.0, 1.0).tensor.float(), masked_latents.tensor.float())
    return ImageConditionedDenoiser(unet, condition, hidden, added=values)


def reads_mask(unet, latents: Latent) -> bool:
    """Whether `unet` is an inpainting UNet (latents + mask + masked latents in), else an ordinary one."""
    latent, channels = latents.tensor.shape[1], unet.config.get("in_channels")
    if channels == latent:
        return False
    if channels != 2 * latent + 1:
        raise DgraphError(f"this UNet reads {channels} channels: neither the {latent} of the latents (an ordinary "
                          f"UNet) nor the {2 * latent + 1} of an inpainting UNet (latents, mask, masked latents)")
    return True


@node("latent.blend_mask", description="The latent-size mask the sampling loop blends with: the mask for an "
                                       "ordinary UNet, all ones (no blending) for an inpainting UNet.", output="mask")
def blend_mask(unet: UNet, mask: Image, latents: Latent) -> Latent:
    """An inpainting UNet paints inside the mask by itself and its pipeline blends nothing; an ordinary UNet is
    kept to the image outside the mask by the loop, as diffusers' inpainting pipelines do for both.

    unet: the UNet that will denoise
    mask: the image-size mask (image.mask)
    latents: the image's latents (their size is the mask's)
    """
    resized = latent_mask(mask.to_range(0.0, 1.0).tensor.float(), latents.tensor.shape[-2:]).to(latents.tensor.device)
    if reads_mask(unet, latents):
        resized = torch.ones_like(resized)
    return Latent(resized)
