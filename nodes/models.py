"""Model loaders and the autoencoder nodes. Weights load from safetensors; a pickle only with allow_pickle.

A single-file Stable Diffusion checkpoint is a source too: `model.safetensors` gives `load.unet` its UNet
and `load.vae` its autoencoder (`model.safetensors#vae` names the component; dgraph.models.single_file)."""
from __future__ import annotations

from typing import Literal, Optional

import torch

from dgraph.errors import DgraphError
from dgraph.models.auto import DTYPES, load_model, model_classes
from dgraph.node import Context, node
from dgraph.rules import ParamFromLiteral
from dgraph.types import VAE, DenoiserNetwork, Image, Latent, Source, UNet

Dtype = Literal["float32", "float16", "bfloat16"]
UNETS = ("UNet2DModel", "UNet2DConditionModel", "UNet3DConditionModel")
VAES = ("AutoencoderKL", "VQModel")
TRANSFORMERS = ("DiTTransformer2DModel", "PixArtTransformer2DModel")
TransformerClass = Literal["DiTTransformer2DModel", "PixArtTransformer2DModel"]


def _load(ctx: Context, source: str, dtype: str, variant: str | None, allow_pickle: bool, expect: tuple[str, ...]):
    model = load_model(ctx.resolve_source(source), expect=expect, torch_dtype=DTYPES[dtype], device=ctx.device,
                       variant=variant or None, allow_pickle=allow_pickle)
    return model.eval().requires_grad_(False)


@node("load.unet", description="Load a UNet (2D, conditioned or 3D) from a folder, hf://repo/sub@rev or pkg://, "
                             "or a single-file Stable Diffusion checkpoint (model.safetensors).")
def load_unet(ctx: Context, source: Source, dtype: Dtype = "float32", variant: str = "",
              allow_pickle: bool = False) -> UNet:
    """source: where the UNet's config.json and weights are, or a single-file checkpoint (model.safetensors)
    variant: weights variant such as fp16 (diffusion_pytorch_model.fp16.safetensors)
    allow_pickle: accept pickled .bin weights (read with weights_only=True) when no safetensors exist
    """
    return _load(ctx, source, dtype, variant, allow_pickle, UNETS)


# A loader told the class knows, before loading, what conditioning the network takes.
_DECLARED_NETWORK = ParamFromLiteral(
    output="transformer", port="DenoiserNetwork", param="takes", literal="class_name",
    table={name: ",".join(kind for kind in model_classes()[name].conditioning if kind != "context_mask")
           for name in TRANSFORMERS})


@node("load.transformer", output="transformer", refine=_DECLARED_NETWORK,
      description="Load a diffusion transformer (DiT, PixArt-α) from a folder, hf://repo/sub@rev or pkg://.")
def load_transformer(ctx: Context, source: Source, class_name: Optional[TransformerClass] = None,
                     dtype: Dtype = "float32", variant: str = "", allow_pickle: bool = False) -> DenoiserNetwork:
    """A diffusers `Transformer2DModel` config loads as the family class its norm_type names. Given a
    `class_name`, the workflow is checked against the conditioning that class takes before anything loads.

    source: where the transformer's config.json and weights are
    class_name: the class the folder must hold (checked when it loads)
    variant: weights variant such as fp16
    allow_pickle: accept pickled .bin weights (read with weights_only=True) when no safetensors exist
    """
    return _load(ctx, source, dtype, variant, allow_pickle, (class_name,) if class_name else TRANSFORMERS)


@node("load.vae", description="Load an autoencoder (KL or VQ) from a folder, hf://repo/sub@rev or pkg://, "
                            "or a single-file Stable Diffusion checkpoint (model.safetensors).")
def load_vae(ctx: Context, source: Source, dtype: Dtype = "float32", variant: str = "",
             allow_pickle: bool = False) -> VAE:
    """source: where the autoencoder's config.json and weights are, or a single-file checkpoint (model.safetensors)"""
    return _load(ctx, source, dtype, variant, allow_pickle, VAES)


def _check_autoencoder(latents: Latent, vae) -> None:
    made_by, name = latents.autoencoder, type(vae).__name__
    if made_by and made_by != name:
        raise DgraphError(f"these latents belong to a {made_by}, not to the {name} given to decode them")


@torch.no_grad()
def decode_latents(vae, latents: Latent) -> torch.Tensor:
    """Pixels in [-1, 1] from latents scaled by `latents.scaling_factor`."""
    _check_autoencoder(latents, vae)
    parameter = next(vae.parameters())
    z = latents.tensor.to(parameter.device, parameter.dtype) / latents.scaling_factor
    return vae.decode(z).sample.float()


@node("vae.decode", description="Decode latents into images with an autoencoder.")
def vae_decode(vae: VAE, latents: Latent) -> Image:
    return Image(decode_latents(vae, latents), value_range=(-1.0, 1.0))


@node("vae.encode", random=True, description="Encode images into latents (scaled by the VAE's scaling factor).")
def vae_encode(ctx: Context, vae: VAE, image: Image, sample: bool = False) -> Latent:
    """sample: draw from the KL posterior instead of taking its mean"""
    parameter = next(vae.parameters())
    pixels = image.to_range(-1.0, 1.0).tensor.to(parameter.device, parameter.dtype)
    scaling = float(vae.config.get("scaling_factor", 1.0))
    with torch.no_grad():
        encoded = vae.encode(pixels)
        if "latent_dist" in encoded:  # a KL posterior
            posterior = encoded.latent_dist
            z = posterior.sample(ctx.generator()) if sample else posterior.mean
        else:
            z = encoded.latents
    return Latent(z.float() * scaling, scaling_factor=scaling, autoencoder=type(vae).__name__)
