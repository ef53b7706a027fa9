"""Pick a model class from the `_class_name` of its config.json, as diffusers' pipelines record it."""
from __future__ import annotations

import os

import torch

from ..configuration import read_json
from ..errors import ConfigError
from ..hub import Source, as_source, fetch_file
from .modeling import ModelMixin


def model_classes() -> dict[str, type[ModelMixin]]:
    """Every model class dgraph provides, by its (diffusers) class name."""
    from . import (AutoencoderKL, DiffWaveModel, DiTTransformer2DModel, FastDiffModel, GlideCLIPImageEncoder,
                   GlideCLIPTextEncoder, GlideText2ImUNet, HiFiGANGenerator, LDMBertModel, PixArtTransformer2DModel,
                   PriorTransformer, UNet2DConditionModel, UNet2DModel, UNet3DConditionModel, UnCLIPTextProjModel,
                   VQModel)

    classes = (UNet2DModel, UNet2DConditionModel, UNet3DConditionModel, AutoencoderKL, VQModel, LDMBertModel,
               FastDiffModel, DiffWaveModel, HiFiGANGenerator, DiTTransformer2DModel, PixArtTransformer2DModel,
               PriorTransformer, UnCLIPTextProjModel, GlideText2ImUNet, GlideCLIPImageEncoder, GlideCLIPTextEncoder)
    return {cls.__name__: cls for cls in classes}


# diffusers' generic Transformer2DModel, which its loader maps onto the family class by norm_type.
_BY_NORM_TYPE = {"Transformer2DModel": {"ada_norm_zero": "DiTTransformer2DModel",
                                        "ada_norm_single": "PixArtTransformer2DModel"}}


def class_name_of(config: dict) -> str | None:
    """The dgraph class for a config.json: its `_class_name`, or for a `Transformer2DModel` the family
    class its norm_type names (DiT for "ada_norm_zero", PixArt for "ada_norm_single")."""
    name = config.get("_class_name")
    return _BY_NORM_TYPE.get(name, {}).get(config.get("norm_type"), name)


def load_model(pretrained: str | os.PathLike | Source, subfolder: str | None = None, revision: str | None = None,
               *, expect: tuple[str, ...] = (), **kwargs) -> ModelMixin:
    """Load whichever dgraph model class `config.json` names. `expect` restricts the acceptable classes
    (e.g. the UNets) so a VAE folder given where a UNet belongs is a clear error, not a shape mismatch.

    A single-file checkpoint (`model.safetensors`, original Stable Diffusion layout) gives its UNet or its
    autoencoder, whichever `expect` allows, or the component named after `#` (`model.safetensors#vae`).
    """
    source = as_source(pretrained, subfolder, revision)
    if source.is_single_file:
        return _load_from_single_file(source, expect, **kwargs)
    config = read_json(fetch_file(source, "config.json"))
    name = class_name_of(config)
    classes = model_classes()
    if name not in classes:
        raise ConfigError(f"{source}: config.json names _class_name={name!r}, which dgraph does not provide; "
                          f"known: {', '.join(sorted(classes))}")
    if expect and name not in expect:
        raise ConfigError(f"{source}: holds a {name}, but a {' or '.join(expect)} is expected here")
    return classes[name].from_pretrained(source, config=config, **kwargs)


# The dgraph classes a single-file checkpoint's components are.
_SINGLE_FILE_CLASSES = {"unet": "UNet2DConditionModel", "vae": "AutoencoderKL"}


def _load_from_single_file(source: Source, expect: tuple[str, ...], torch_dtype: torch.dtype | None = None,
                           device: str | torch.device | None = None, variant: str | None = None,
                           allow_pickle: bool = False) -> ModelMixin:
    from .single_file import load_component

    if variant:
        raise ConfigError(f"{source}: variant={variant!r} names files in a model folder; a single-file checkpoint "
                          f"has none (drop the variant)")
    allowed = tuple(name for name, cls in _SINGLE_FILE_CLASSES.items() if not expect or cls in expect)
    if not allowed:
        raise ConfigError(f"{source}: a single-file checkpoint holds a UNet2DConditionModel, an AutoencoderKL and "
                          f"text encoders, but a {' or '.join(expect)} is expected here")
    what = " or ".join(_SINGLE_FILE_CLASSES[name] for name in allowed)
    return load_component(source, allowed, what, torch_dtype=torch_dtype, device=device)


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
