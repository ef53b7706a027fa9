"""The sampling loop, its initial noise, and the denoisers that feed it (model adapter and guidance)."""
from __future__ import annotations

from typing import Annotated, Literal, Optional

import torch
from pydantic import Field

from dgraph.errors import ConfigError, DgraphError
from dgraph.node import Context, node
from dgraph.rules import NetworkConditioning
from dgraph.sampling import ClassifierFreeGuidance, DynamicThresholding, ModelDenoiser, network_conditioning, sample
from dgraph.schedulers import select_run_options
from dgraph.types import (VAE, AddedConditions, ClassLabels, Denoiser, DenoiserNetwork, Latent, Scheduler, TextEmbedding,
                          Tokens, UNet)

Size = Annotated[int, Field(ge=1, le=16384)]
# "off", or a torch.compile mode (dgraph.sampling.compiled.COMPILE_MODES).
Compile = Literal["off", "default", "reduce-overhead", "max-autotune"]


def _compile_mode(compile: str) -> str | None:
    return None if compile == "off" else compile


def _vae_geometry(vae) -> tuple[int, int, float, str]:
    config = vae.config
    channels = config.get("latent_channels", config.get("vq_embed_dim") or 3)
    factor = 2 ** (len(config["block_out_channels"]) - 1)
    return channels, factor, float(config.get("scaling_factor", 1.0)), type(vae).__name__


@node("latent.noise", random=True, description="Initial standard normal latents, seeded from the graph seed.")
def latent_noise(ctx: Context, batch_size: Size = 1, channels: Optional[Size] = None, height: Optional[Size] = None,
                 width: Optional[Size] = None, network: Optional[DenoiserNetwork] = None, unet: Optional[UNet] = None,
                 vae: Optional[VAE] = None, context: Optional[TextEmbedding] = None,
                 class_labels: Optional[ClassLabels] = None, tokens: Optional[Tokens] = None,
                 images_per_prompt: Size = 1, temperature: Annotated[float, Field(gt=0, le=10)] = 1.0) -> Latent:
    """Noise drawn on the CPU and moved to the node's device, so a seed gives the same latents everywhere.

    channels: latent channels (default: the VAE's latent channels, else the network's sample channels, else 4)
    height: image height in pixels (default: the network's sample size, times the VAE's factor when there is one)
    width: image width in pixels (default: as height)
    network: take the defaults from this denoiser network's config (a UNet, a transformer...)
    unet: the older name of `network`
    vae: the autoencoder whose latent space this is: sets the size factor and scaling factor
    context: text conditioning; its batch (the number of prompts) replaces batch_size
    class_labels: class conditioning; its batch (the number of labels) replaces batch_size
    tokens: prompt tokens, for networks that encode the text themselves (GLIDE's); their batch replaces batch_size
    images_per_prompt: latents per prompt (the batch is batch_size × images_per_prompt)
    temperature: multiplies the noise (GLIDE's upsampler starts from 0.997 of it)
    """
    scaling, name, factor = 1.0, "", 1
    if context is not None:
        batch_size = context.hidden_states.shape[0]
    elif class_labels is not None:
        batch_size = class_labels.ids.shape[0]
    elif tokens is not None:
        batch_size = tokens.input_ids.shape[0]
    network = network if network is not None else unet
    unet_config = network.config if network is not None else {}
    if vae is not None:
        vae_channels, factor, scaling, name = _vae_geometry(vae)
        channels = channels or vae_channels
    # A network whose input holds more than the sample (GLIDE's: the sample, then the images it reads) says
    # how many channels the sample has; GLIDE's config names its size image_size.
    channels = channels or getattr(network, "sample_channels", None) or unet_config.get("in_channels") or 4
    sample_size = unet_config.get("sample_size") or (unet_config.get("image_size")
                                                     if getattr(network, "sample_channels", None) else None)
    if isinstance(sample_size, (list, tuple)):
        sample_size = sample_size[0]
    height = height or (sample_size * factor if sample_size else 64 * factor)
    width = width or height
    if height % factor or width % factor:
        raise DgraphError(f"height {height} and width {width} must be multiples of the VAE's factor {factor}")
    shape = (batch_size * images_per_prompt, channels, height // factor, width // factor)
    noise = torch.randn(shape, generator=ctx.generator(), dtype=torch.float32)
    if temperature != 1.0:
        noise = noise * temperature
    return Latent(noise.to(ctx.device), scaling_factor=scaling, autoencoder=name)


@node("sample.loop", random=True, description="Denoise latents over a scheduler's timesteps, or over part of "
                                             "them (image-to-image, a base/refiner hand-over).")
def sample_loop(ctx: Context, denoiser: Denoiser, scheduler: Scheduler, latents: Optional[Latent] = None,
                steps: Annotated[int, Field(ge=1, le=10_000)] = 50,
                eta: Optional[Annotated[float, Field(ge=0, le=1)]] = None,
                use_clipped_model_output: Optional[bool] = None,
                s_churn: Optional[Annotated[float, Field(ge=0)]] = None,
                s_tmin: Optional[Annotated[float, Field(ge=0)]] = None,
                s_tmax: Optional[Annotated[float, Field(ge=0)]] = None,
                s_noise: Optional[Annotated[float, Field(gt=0)]] = None,
                order: Optional[Annotated[int, Field(ge=1, le=4)]] = None,
                respacing: Optional[Annotated[str, Field(max_length=200)]] = None,
                clamp: Optional[Annotated[float, Field(gt=0)]] = None,
                image: Optional[Latent] = None,
                strength: Optional[Annotated[float, Field(gt=0, le=1)]] = None,
                denoising_start: Optional[Annotated[float, Field(gt=0, lt=1)]] = None,
                denoising_end: Optional[Annotated[float, Field(gt=0, lt=1)]] = None,
                final_denoiser: Optional[Denoiser] = None, mask: Optional[Latent] = None) -> Latent:
    """Progress is reported per step; a cancellation takes effect between two steps.

    The run options (eta ... order) are those the scheduler families declare (`run_options`); one a
    family does not take is refused unless it has its neutral value (eta 0, s_churn 0, ...). The part
    of the schedule taken (strength, denoising_start, denoising_end) follows diffusers' img2img and
    SDXL pipelines for every family (`SamplingRun.partial`).

    latents: the initial standard normal noise (from latent.noise); with image, the noise it is noised with (default: drawn from this node's seed in the image's shape); with denoising_start, the noisy latents handed over, used as they are
    steps: number of inference steps (of the whole schedule, also when only part of it is taken)
    eta: DDIM's noise scale (0 = deterministic, 1 = DDPM-like)
    use_clipped_model_output: DDIM: re-derive the noise from the clipped x0
    s_churn: Euler's stochastic churn (Karras et al. 2022; 0 = deterministic)
    s_tmin: Euler: churn only at sigmas at or above this
    s_tmax: Euler: churn only at sigmas at or below this (default: no limit)
    s_noise: Euler: scale of the churn noise
    order: LMS: how many past slopes each step uses (default 4)
    respacing: DDPM / DDIM: the timesteps of a GLIDE respacing ("100", "27", "fast27", "10,5,3", "ddim50"); replaces steps
    clamp: clip the sample to [-clamp, clamp] after every step (DiffWave clamps audio at 1)
    image: clean latents to start from (image-to-image): noised to the first step taken, then denoised
    strength: image-to-image: how much of the schedule to run from the image, in (0, 1] (1 = from pure noise)
    denoising_start: continue noisy latents from this fraction of the denoising (the SDXL refiner), in (0, 1)
    denoising_end: stop at this fraction of the denoising and return the noisy latents (the SDXL base), in (0, 1)
    final_denoiser: makes the last step's prediction instead of `denoiser` (unCLIP's super_res_last)
    mask: inpainting with a network that does not read the mask: the latent-size mask (latent.blend_mask; 1 =
        repaint); after each step the rest is the image noised to the next step
    """
    given = dict(eta=eta, use_clipped_model_output=use_clipped_model_output, s_churn=s_churn, s_tmin=s_tmin,
                 s_tmax=s_tmax, s_noise=s_noise, order=order, respacing=respacing)
    if latents is None and image is None:
        raise DgraphError("sample.loop needs latents (the initial noise, from latent.noise) or an image's latents "
                          "to start from: link `latents:` or `image:`")
    if strength is not None and image is None:
        raise DgraphError("sample.loop: strength says how far to noise a clean image, but no image is linked; "
                          "link `image:` to the clean latents, or leave strength out")
    if denoising_start is not None and image is not None:
        raise DgraphError("sample.loop: with denoising_start the loop continues latents that are already noisy "
                          "(link them to `latents:`), so it takes no clean `image:`; to start from a clean image "
                          "use strength instead")
    try:
        options = select_run_options(scheduler, given)
        run = scheduler.start(steps, device=ctx.device, **options)
        if strength is not None or denoising_start is not None or denoising_end is not None:
            run.partial(strength=strength, denoising_start=denoising_start, denoising_end=denoising_end)
    except ConfigError as error:
        raise DgraphError(f"sample.loop: {error}") from None

    ctx.check_cancelled()
    generator = ctx.generator()
    like = latents if latents is not None else image
    start = image.tensor if image is not None else None
    if latents is not None:
        noise = latents.tensor
    else:  # drawn first from the node's generator, then its stochastic steps draw on, as diffusers' img2img does
        noise = torch.randn(image.tensor.shape, generator=generator, dtype=torch.float32)
        noise = noise.to(image.tensor.device, image.tensor.dtype)
    if mask is not None and image is None:
        raise DgraphError("sample.loop: an inpainting mask keeps part of an image: link `image:` to its latents")
    result = sample(denoiser, run, noise, generator=generator, callback=ctx.progress, clamp=clamp, image=start,
                    mask=mask.tensor if mask is not None else None, final_denoiser=final_denoiser)
    return Latent(result, scaling_factor=like.scaling_factor, autoencoder=like.autoencoder)


# Each conditioning input of denoiser.model and the kind of conditioning (dgraph.sampling) it carries; the
# check refuses conditioning the linked network does not take, where its loader declared what it takes.
_CHECK_DENOISER_INPUTS = NetworkConditioning(
    network="network", alias="unet", conditioning={"context": "context", "class_labels": "class_labels", "added": "added"},
    example="@transformer.transformer")


@node("denoiser.model", description="A denoiser network (UNet, transformer...) with its conditioning, for the "
                                    "sampling loop.", check=_CHECK_DENOISER_INPUTS)
def model_denoiser(network: Optional[DenoiserNetwork] = None, unet: Optional[UNet] = None,
                   context: Optional[TextEmbedding] = None, class_labels: Optional[ClassLabels] = None,
                   added: Optional[AddedConditions] = None, compile: Compile = "off") -> Denoiser:
    """Passes each conditioning wired here to the network under the keyword the network declares for it.

    network: the denoiser network (from load.unet, load.transformer, ...)
    unet: the older name of `network`
    context: text hidden states (and their mask, for networks that attend with it), batch 1 or one row per prompt
    class_labels: class ids for class-conditional networks (DiT)
    added: extra conditions the network embeds (PixArt-α's image size and aspect ratio)
    compile: run the network through torch.compile in this mode (reduce-overhead adds CUDA graphs); the
        first step compiles, later steps and later runs on the same loaded network reuse it
    """
    network = network if network is not None else unet
    if network is None:
        raise DgraphError("denoiser.model needs a network: link `network:` to a loader's output")
    if context is None:
        text = {}
    else:  # the mask and a pooled vector travel with the text; only networks that declare them get them
        takes = network_conditioning(network)
        text = dict(context=context.hidden_states,
                    context_mask=context.attention_mask if "context_mask" in takes else None,
                    pooled=context.pooled if "pooled" in takes else None)
    return ModelDenoiser(network, text.get("context"), text.get("context_mask"),
                         class_labels.ids if class_labels is not None else None, pooled=text.get("pooled"),
                         added=added.values if added is not None else None, compile=_compile_mode(compile))


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
