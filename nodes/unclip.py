"""unCLIP (DALL-E 2 / Karlo): the diffusion prior on CLIP embeddings, the decoder's conditioning, and the image
its super-resolution stage reads."""
from __future__ import annotations

from typing import Annotated, Optional

import torch
from pydantic import Field

from dgraph.errors import DgraphError
from dgraph.node import Context, node
from dgraph.sampling import DecoderDenoiser, ImageConditionedDenoiser, decoder_conditioning, upscale
from dgraph.types import (Denoiser, DenoiserNetwork, Image, ImageEmbedding, Latent, Source, TextEmbedding,
                          TextProjection, UNet)
from nodes.models import Dtype, _load
from nodes.text import PromptEmbeddings

Size = Annotated[int, Field(ge=1, le=16384)]


@node("load.prior", output="prior", description="Load unCLIP's diffusion prior (PriorTransformer).")
def load_prior(ctx: Context, source: Source, dtype: Dtype = "float32", variant: str = "") -> DenoiserNetwork:
    """source: where the prior's config.json and weights are"""
    return _load(ctx, source, dtype, variant, False, ("PriorTransformer",))


@node("load.text_proj", output="text_proj", description="Load unCLIP's text projection (UnCLIPTextProjModel).")
def load_text_proj(ctx: Context, source: Source, dtype: Dtype = "float32", variant: str = "") -> TextProjection:
    """source: where the text projection's config.json and weights are"""
    return _load(ctx, source, dtype, variant, False, ("UnCLIPTextProjModel",))


@node("prior.noise", random=True, output="latent",
      description="Initial standard normal image embeddings [batch, embedding_dim] for a diffusion prior.")
def prior_noise(ctx: Context, prior: DenoiserNetwork, context: TextEmbedding, images_per_prompt: Size = 1) -> Latent:
    """Drawn on the CPU from the graph seed, like latent.noise, but one vector per image.

    context: the prompts' text conditioning; its batch is the number of prompts
    images_per_prompt: embeddings per prompt
    """
    shape = (context.hidden_states.shape[0] * images_per_prompt, prior.config["embedding_dim"])
    return Latent(torch.randn(shape, generator=ctx.generator(), dtype=torch.float32).to(ctx.device))


@node("prior.image_embedding", output="image_embedding",
      description="The prior's sampled embeddings in CLIP's scale (undoing its training normalisation).")
def prior_image_embedding(prior: DenoiserNetwork, latents: Latent) -> ImageEmbedding:
    if not hasattr(prior, "post_process_latents"):
        raise DgraphError(f"{type(prior).__name__} is not a diffusion prior; link a load.prior output here")
    parameter = next(prior.parameters())
    with torch.no_grad():
        embeds = prior.post_process_latents(latents.tensor.to(parameter.device, parameter.dtype))
    return ImageEmbedding(embeds.float(), encoder=type(prior).__name__)


@node("unclip.decoder_conditioning", description="unCLIP's decoder conditioning of both guidance branches: extra "
                                                 "context tokens from the image embedding before the text states, and "
                                                 "the time embedding.")
def unclip_decoder_conditioning(text_proj: TextProjection, image_embedding: ImageEmbedding, prompt: TextEmbedding,
                                uncond: TextEmbedding, images_per_prompt: Size = 1) -> PromptEmbeddings:
    """Each result holds the decoder's context, its keep-mask and (as `pooled`) the time embedding the UNet's
    identity class embedding adds. The unconditional branch uses the learned unconditional image embedding.

    image_embedding: one per image to make, or one per prompt (then repeated images_per_prompt times)
    prompt: the prompts' CLIP text (clip.encode_prompt's cond); uncond: the empty prompts' (its uncond)
    images_per_prompt: images per prompt
    """
    for text, name in ((prompt, "prompt"), (uncond, "uncond")):
        if text.pooled is None:
            raise DgraphError(f"unclip.decoder_conditioning: {name} has no projected text embedding; make it with "
                              f"clip.encode_prompt")
    rows = prompt.hidden_states.shape[0] * images_per_prompt
    image = image_embedding.embeds
    if rows % image.shape[0]:
        raise DgraphError(f"unclip.decoder_conditioning: {image.shape[0]} image embeddings do not divide the {rows} "
                          f"images to make")
    image = image.repeat_interleave(rows // image.shape[0], dim=0)

    def per_image(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.repeat_interleave(rows // tensor.shape[0], dim=0)

    cond = decoder_conditioning(text_proj, image, per_image(prompt.pooled), per_image(prompt.hidden_states),
                                per_image(prompt.attention_mask))
    empty = decoder_conditioning(text_proj, None, uncond.pooled, uncond.hidden_states, uncond.attention_mask)
    return PromptEmbeddings(*(TextEmbedding(context, mask, time, encoder="UnCLIPTextProjModel")
                                 for context, mask, time in (cond, empty)))


@node("denoiser.unclip_decoder", description="unCLIP's decoder UNet with one branch's conditioning (context under "
                                             "its mask, time embedding as class embedding).")
def unclip_decoder_denoiser(unet: UNet, context: TextEmbedding) -> Denoiser:
    """context: a branch of unclip.decoder_conditioning"""
    if context.pooled is None or context.attention_mask is None:
        raise DgraphError("denoiser.unclip_decoder: link a branch of unclip.decoder_conditioning as context")
    if unet.config.get("class_embed_type") != "identity":
        raise DgraphError("denoiser.unclip_decoder: this UNet has no identity class embedding; unCLIP's decoder "
                          "adds the image embedding to its time embedding (class_embed_type 'identity')")
    return DecoderDenoiser(unet, context.hidden_states, context.attention_mask, context.pooled)


@node("unclip.upscale", description="The decoder's image clamped to [-1, 1] and resized bicubically (antialiased) to "
                                    "a super-resolution UNet's sample size.")
def unclip_upscale(image: Image, unet: Optional[UNet] = None, height: Optional[Size] = None,
                   width: Optional[Size] = None) -> Image:
    """unet: take the size from this UNet's sample_size
    height: the size in pixels (default: the UNet's sample size)
    width: as height unless given
    """
    sample_size = unet.config.get("sample_size") if unet is not None else None
    if isinstance(sample_size, (list, tuple)):
        sample_size = sample_size[0]
    height = height or sample_size
    if height is None:
        raise DgraphError("unclip.upscale: give a unet or a height")
    pixels = image.to_range(-1.0, 1.0).tensor.float().clamp(-1, 1)
    return Image(upscale(pixels, (height, width or height)), value_range=(-1.0, 1.0))


@node("denoiser.super_resolution", description="A UNet that reads an upscaled image beside the sample (unCLIP's "
                                               "super-resolution stage: no noise augmentation, no class labels).")
def super_resolution_denoiser(unet: UNet, image: Image) -> Denoiser:
    """image: the upscaled image (unclip.upscale), concatenated with the sample along channels"""
    return ImageConditionedDenoiser(unet, image.to_range(-1.0, 1.0).tensor)
