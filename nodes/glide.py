"""GLIDE's nodes: its converted models, the denoiser of its UNet (prompt tokens, low-resolution image,
inpainting image and mask), CLIP guidance and inpainting by x0 replacement."""
from __future__ import annotations

from typing import Annotated, Literal, NamedTuple, Optional

from pydantic import Field

from dgraph.errors import DgraphError
from dgraph.models.auto import DTYPES, load_model
from dgraph.node import Context, node
from dgraph.sampling import GradientGuidance, KnownRegion, ModelDenoiser, load_noised_clip
from dgraph.sampling.inpainting import known_mask
from dgraph.sampling.super_resolution import quantize_8bit
from dgraph.schedulers import DDIMScheduler, DDPMScheduler
from dgraph.text import load_tokenizer
from dgraph.types import Denoiser, DenoiserNetwork, Image, NoisedCLIP, Scheduler, Source, Tokenizer, Tokens

Dtype = Literal["float32", "float16", "bfloat16"]


class GlideModel(NamedTuple):
    network: DenoiserNetwork
    tokenizer: Tokenizer
    scheduler: Scheduler


@node("load.glide", description="Load a converted GLIDE UNet (base, upsampler, inpainting; `dgraph convert glide`) "
                                "with its tokenizer and its diffusion as a DDPM or DDIM scheduler.")
def load_glide(ctx: Context, source: Source, dtype: Dtype = "float32",
               sampler: Literal["ddpm", "ddim"] = "ddpm") -> GlideModel:
    """source: the folder `dgraph convert glide` wrote (config.json, weights, tokenizer, scheduler_config.json)
    sampler: the scheduler made from the folder's diffusion (the notebooks: DDPM for the base, DDIM for the upsampler)
    """
    folder = ctx.resolve_source(source)
    model = load_model(folder, expect=("GlideText2ImUNet",), torch_dtype=DTYPES[dtype], device=ctx.device)
    config = DDPMScheduler.load_config(folder)
    scheduler = (DDPMScheduler if sampler == "ddpm" else DDIMScheduler).from_config(config, warn_unknown=False)
    return GlideModel(model.eval().requires_grad_(False), load_tokenizer(folder), scheduler)


@node("load.noised_clip", output="clip",
      description="Load GLIDE's noised CLIP (image and text encoders) for CLIP guidance.")
def load_noised_clip_node(ctx: Context, image_encoder: Source, text_encoder: Source,
                          dtype: Dtype = "float32") -> NoisedCLIP:
    """image_encoder: the folder converted from clip_image_enc.pt
    text_encoder: the folder converted from clip_text_enc.pt (it holds CLIP's tokenizer too)
    """
    return load_noised_clip(ctx.resolve_source(image_encoder), ctx.resolve_source(text_encoder),
                            torch_dtype=DTYPES[dtype], device=ctx.device)


@node("denoiser.glide", description="GLIDE's UNet with a prompt's tokens (and, for its upsampler and inpainting "
                                    "models, the low-resolution image, the known image and its mask).")
def glide_denoiser(network: DenoiserNetwork, tokens: Tokens, low_res: Optional[Image] = None,
                   inpaint_image: Optional[Image] = None, inpaint_mask: Optional[Image] = None,
                   invert_mask: bool = False) -> Denoiser:
    """tokens: the prompt's tokens (text.tokenize with the model folder's tokenizer; "" for guidance's other branch)
    low_res: the image to upsample (super-resolution models), rounded to 8 bits as GLIDE's notebooks do
    inpaint_image: the image to inpaint (inpainting models), at the sample's size
    inpaint_mask: white where the image is known and kept, black where it is painted (resized to the sample's size)
    invert_mask: the mask is drawn the other way round (white where painted)
    """
    config = getattr(network, "config", {})
    if type(network).__name__ != "GlideText2ImUNet":
        raise DgraphError(f"denoiser.glide drives GLIDE's UNet (load.glide), not a {type(network).__name__}")
    images = {}
    if config.get("super_res"):
        if low_res is None:
            raise DgraphError("this GLIDE model upsamples: link `low_res:` to the image to upsample")
        images["low_res"] = quantize_8bit(low_res.to_range(-1.0, 1.0).tensor.float())
    elif low_res is not None:
        raise DgraphError("this GLIDE model does not upsample (super_res is false): remove `low_res:`")
    if config.get("inpaint"):
        if inpaint_image is None or inpaint_mask is None:
            raise DgraphError("this GLIDE model inpaints: link `inpaint_image:` and `inpaint_mask:`")
        size = (config["image_size"], config["image_size"])
        mask = known_mask(inpaint_mask.to_range(0.0, 1.0).tensor, size, invert_mask)
        images["inpaint_image"] = inpaint_image.to_range(-1.0, 1.0).tensor.float() * mask
        images["inpaint_mask"] = mask
    elif inpaint_image is not None or inpaint_mask is not None:
        raise DgraphError("this GLIDE model does not inpaint (inpaint is false): remove `inpaint_image:` and "
                          "`inpaint_mask:`")
    return ModelDenoiser(network, tokens=tokens.input_ids, tokens_mask=tokens.attention_mask, **images)


@node("guidance.clip", description="CLIP guidance (GLIDE): the noised CLIP's similarity to the prompt, its "
                                   "gradient scaled by the step's variance, shifts each step.")
def clip_guidance(denoiser: Denoiser, clip: NoisedCLIP, prompt: list[str],
                  scale: Annotated[float, Field(ge=0, le=1000)] = 3.0) -> Denoiser:
    """Needs a DDPM or DDIM sampling loop, at the noised CLIP's image size (64 px: GLIDE's base model).

    prompt: what to draw (one prompt, or one per sample)
    scale: guidance scale (GLIDE's notebook: 3)
    """
    return GradientGuidance(denoiser, clip.gradient(list(prompt)), scale)


@node("guidance.known_region", description="Inpainting: the predicted x0 set to the known image where the mask "
                                           "is white, at every step (GLIDE's denoised_fn).")
def known_region(denoiser: Denoiser, image: Image, mask: Image, invert_mask: bool = False,
                 size: Optional[Annotated[int, Field(ge=1, le=16384)]] = None) -> Denoiser:
    """Needs a DDPM or DDIM sampling loop.

    image: the known image (at the sample's size)
    mask: white where the image is known and kept, black where it is painted
    invert_mask: the mask is drawn the other way round (white where painted)
    size: the sample's size in pixels (default: the image's)
    """
    pixels = image.to_range(-1.0, 1.0).tensor.float()
    side = size or pixels.shape[-1]
    keep = known_mask(mask.to_range(0.0, 1.0).tensor, (side, side), invert_mask)
    return KnownRegion(denoiser, pixels * keep, keep)
