"""Super-resolution stages of cascades: the previous image noise-augmented, and the denoiser that reads it."""
from __future__ import annotations

from typing import Annotated, Optional

import torch
from pydantic import Field

from dgraph.node import Context, node
from dgraph.sampling import ImageConditionedDenoiser, network_conditioning, noise_augment
from dgraph.types import VAE, Denoiser, Image, Latent, Scheduler, TextEmbedding, UNet
from nodes.sampling import Compile, _compile_mode, _vae_geometry, latent_noise

NoiseLevel = Annotated[int, Field(ge=0, le=10_000)]
Size = Annotated[int, Field(ge=1, le=16384)]


@node("image.noise_augment", random=True,
      description="Resize an image for a super-resolution stage and noise it to a chosen level.")
def noise_augment_node(ctx: Context, image: Image, scheduler: Scheduler, noise_level: NoiseLevel = 250,
                       unet: Optional[UNet] = None, height: Optional[Size] = None, width: Optional[Size] = None,
                       resize: bool = True) -> Image:
    """The image is taken to [-1, 1], resized bilinearly (corners aligned) and then noised by `scheduler`'s
    forward process at timestep `noise_level`, with noise seeded from the graph seed.

    scheduler: the stage's noising schedule (IF's image_noising_scheduler, the x4 upscaler's low_res_scheduler)
    noise_level: the timestep of that schedule; the stage's denoiser must be given the same level
    unet: take the size from this UNet's sample_size
    height: the stage's image height in pixels (default: the UNet's sample size)
    width: the stage's image width (default: as height)
    resize: false keeps the image's own size (the x4 upscaler works at the low resolution)
    """
    pixels = image.to_range(-1.0, 1.0).tensor.float()
    size = None
    if resize:
        sample_size = unet.config.get("sample_size") if unet is not None else None
        if isinstance(sample_size, (list, tuple)):
            sample_size = sample_size[0]
        height = height or sample_size or pixels.shape[-2]
        size = (height, width or height)
    augmented = noise_augment(pixels.cpu(), scheduler, noise_level, ctx.generator(), size)
    return Image(augmented.to(ctx.device), value_range=(-1.0, 1.0))


@node("denoiser.image_conditioned",
      description="A UNet that reads a noise-augmented image beside the sample and the noise level (super-resolution).")
def image_conditioned_denoiser(unet: UNet, image: Image, noise_level: NoiseLevel = 250,
                               context: Optional[TextEmbedding] = None, compile: Compile = "off") -> Denoiser:
    """image: the augmented low-resolution image (from image.noise_augment), concatenated with the sample
    noise_level: the level the image was noised to, given to the UNet as class labels
    context: text hidden states for cross-attention (batch 1 or one row per prompt)
    compile: run the UNet through torch.compile in this mode (as denoiser.model's)
    """
    pixels = image.to_range(-1.0, 1.0).tensor
    labels = torch.tensor([noise_level], dtype=torch.long)
    hidden = context.hidden_states if context is not None else None
    mask = context.attention_mask if context is not None and "context_mask" in network_conditioning(unet) else None
    return ImageConditionedDenoiser(unet, pixels, hidden, mask, labels, compile=_compile_mode(compile))


@node("latent.noise_for_image", random=True,
      description="Initial latents the size of an image (a latent upscaler works at its input's resolution).")
def noise_for_image(ctx: Context, image: Image, vae: VAE, context: Optional[TextEmbedding] = None,
                    images_per_prompt: Size = 1) -> Latent:
    """Standard normal latents of the VAE's channels with the image's height and width, seeded from the
    graph seed; the decoded result is the VAE's factor larger than the image.

    context: text conditioning; its batch (the number of prompts) sets the batch
    images_per_prompt: latents per prompt
    """
    height, width = image.tensor.shape[-2:]
    factor = _vae_geometry(vae)[1]
    return latent_noise(ctx, batch_size=image.tensor.shape[0], height=height * factor, width=width * factor,
                        vae=vae, context=context, images_per_prompt=images_per_prompt)
