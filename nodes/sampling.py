"""The sampling loop, its initial noise, and the denoisers that feed it (model adapter and guidance)."""
from __future__ import annotations

import inspect
from typing import Annotated, Optional

import torch
from pydantic import Field

from dgraph.errors import DgraphError
from dgraph.node import Context, node
from dgraph.sampling import ClassifierFreeGuidance, DynamicThresholding, ModelDenoiser, sample
from dgraph.types import VAE, Denoiser, Latent, Scheduler, TextEmbedding, UNet

Size = Annotated[int, Field(ge=1, le=16384)]


def _vae_geometry(vae) -> tuple[int, int, float, str]:
    config = vae.config
    channels = config.get("latent_channels", config.get("vq_embed_dim") or 3)
    factor = 2 ** (len(config["block_out_channels"]) - 1)
    return channels, factor, float(config.get("scaling_factor", 1.0)), type(vae).__name__


@node("latent.noise", random=True, description="Initial standard normal latents, seeded from the graph seed.")
def latent_noise(ctx: Context, batch_size: Size = 1, channels: Optional[Size] = None, height: Optional[Size] = None,
                 width: Optional[Size] = None, unet: Optional[UNet] = None, vae: Optional[VAE] = None,
                 context: Optional[TextEmbedding] = None, images_per_prompt: Size = 1) -> Latent:
    """Noise drawn on the CPU and moved to the node's device, so a seed gives the same latents everywhere.

    channels: latent channels (default: the VAE's latent channels, else the UNet's input channels, else 4)
    height: image height in pixels (default: the UNet's sample size, times the VAE's factor when there is one)
    width: image width in pixels (default: as height)
    unet: take the defaults from this denoising network's config
    vae: the autoencoder whose latent space this is: sets the size factor and scaling factor
    context: text conditioning; its batch (the number of prompts) replaces batch_size
    images_per_prompt: latents per prompt (the batch is batch_size × images_per_prompt)
    """
    scaling, name, factor = 1.0, "", 1
    if context is not None:
        batch_size = context.hidden_states.shape[0]
    unet_config = unet.config if unet is not None else {}
    if vae is not None:
        vae_channels, factor, scaling, name = _vae_geometry(vae)
        channels = channels or vae_channels
    channels = channels or unet_config.get("in_channels") or 4
    sample_size = unet_config.get("sample_size")
    if isinstance(sample_size, (list, tuple)):
        sample_size = sample_size[0]
    height = height or (sample_size * factor if sample_size else 64 * factor)
    width = width or height
    if height % factor or width % factor:
        raise DgraphError(f"height {height} and width {width} must be multiples of the VAE's factor {factor}")
    shape = (batch_size * images_per_prompt, channels, height // factor, width // factor)
    noise = torch.randn(shape, generator=ctx.generator(), dtype=torch.float32)
    return Latent(noise.to(ctx.device), scaling_factor=scaling, autoencoder=name)


@node("sample.loop", random=True, description="Denoise latents over a scheduler's timesteps.")
def sample_loop(ctx: Context, denoiser: Denoiser, scheduler: Scheduler, latents: Latent,
                steps: Annotated[int, Field(ge=1, le=10_000)] = 50,
                eta: Annotated[float, Field(ge=0, le=1)] = 0.0,
                clamp: Optional[Annotated[float, Field(gt=0)]] = None) -> Latent:
    """Progress is reported per step; a cancellation takes effect between two steps.

    steps: number of inference steps
    eta: DDIM's noise scale (0 = deterministic); only for schedulers that take it
    clamp: clip the sample to [-clamp, clamp] after every step (DiffWave clamps audio at 1)
    """
    options = {}
    if "eta" in inspect.signature(scheduler.start).parameters:
        options["eta"] = eta
    elif eta:
        raise DgraphError(f"eta={eta} only applies to DDIM; {type(scheduler).__name__} takes no eta (set it to 0)")
    run = scheduler.start(steps, device=ctx.device, **options)
    ctx.check_cancelled()
    result = sample(denoiser, run, latents.tensor, generator=ctx.generator(), callback=ctx.progress, clamp=clamp)
    return Latent(result, scaling_factor=latents.scaling_factor, autoencoder=latents.autoencoder)


@node("denoiser.model", description="A UNet with its conditioning, as a denoiser for the sampling loop.")
def model_denoiser(unet: UNet, context: Optional[TextEmbedding] = None) -> Denoiser:
    """context: text hidden states for cross-attention UNets (batch 1 or one row per prompt)"""
    if context is None:
        return ModelDenoiser(unet)
    return ModelDenoiser(unet, context.hidden_states, context.attention_mask if _wants_mask(unet) else None)


@node("denoiser.class_embedding", description="A UNet conditioned through its class embedding on one vector per "
                                              "sample (AudioLDM's CLAP text embedding), as a denoiser.",
      output="denoiser")
def class_embedding_denoiser(unet: UNet, context: TextEmbedding) -> Denoiser:
    """context: a text embedding with a pooled vector per prompt (text.embed_prompt); it is the UNet's class_labels"""
    if context.pooled is None:
        raise DgraphError("this text embedding has no pooled vector: make it with text.embed_prompt")
    if getattr(unet, "config", {}).get("class_embed_type") not in ("projection", "simple_projection"):
        raise DgraphError("this UNet has no projected class embedding (class_embed_type 'projection' or "
                          "'simple_projection'); condition it with denoiser.model instead")
    return ModelDenoiser(unet, class_labels=context.pooled)


def _wants_mask(unet) -> bool:
    # diffusers' pipelines pass no attention mask to the UNet for LDM and Stable Diffusion text encoders;
    # a model can ask for it through its config.
    return bool(getattr(unet, "config", {}).get("use_encoder_attention_mask", False))


@node("guidance.cfg", description="Classifier-free guidance of a conditional and an unconditional denoiser.")
def classifier_free_guidance(cond: Denoiser, uncond: Denoiser,
                             scale: Annotated[float, Field(ge=0, le=100)] = 7.5,
                             rescale: Annotated[float, Field(ge=0, le=1)] = 0.0) -> Denoiser:
    """scale: guidance scale (1 = no guidance)
    rescale: guidance rescale φ (0 = off; 0.7 suggested for zero-terminal-SNR models)
    """
    return ClassifierFreeGuidance(cond, uncond, scale, rescale)


@node("guidance.dynamic_threshold", description="Imagen's dynamic thresholding of the predicted x0.")
def dynamic_threshold(denoiser: Denoiser, scheduler: Scheduler,
                      ratio: Annotated[float, Field(gt=0, le=1)] = 0.995,
                      max_value: Annotated[float, Field(ge=1)] = 1.0) -> Denoiser:
    """ratio: the quantile of |x0| used as the threshold
    max_value: the largest threshold allowed
    """
    return DynamicThresholding(denoiser, scheduler.alphas_cumprod, ratio, max_value)
