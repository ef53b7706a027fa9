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
                   UNet2DConditionModel, UNet2DModel, UNet3DConditionModel, VQModel)

    classes = (UNet2DModel, UNet2DConditionModel, UNet3DConditionModel, AutoencoderKL, VQModel, LDMBertModel,
               FastDiffModel, DiffWaveModel, HiFiGANGenerator, DiTTransformer2DModel, PixArtTransformer2DModel,
               GlideText2ImUNet, GlideCLIPImageEncoder, GlideCLIPTextEncoder)
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
    (e.g. the UNets) so a VAE folder given where a UNet belongs is a clear error, not a shape mismatch."""
    source = as_source(pretrained, subfolder, revision)
    config = read_json(fetch_file(source, "config.json"))
    name = class_name_of(config)
    classes = model_classes()
    if name not in classes:
        raise ConfigError(f"{source}: config.json names _class_name={name!r}, which dgraph does not provide; "
                          f"known: {', '.join(sorted(classes))}")
    if expect and name not in expect:
        raise ConfigError(f"{source}: holds a {name}, but a {' or '.join(expect)} is expected here")
    return classes[name].from_pretrained(source, config=config, **kwargs)


DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
