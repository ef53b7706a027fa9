"""Training recipes: YAML files parsed safely into pydantic models.

A recipe names what is trained (`kind: autoencoder` or `kind: denoiser`), on what data, with which
network config and which optimiser settings. It records the seed and the number of steps, so running it
again reproduces the result. Paths inside a recipe are relative to the recipe file.

Every error in a recipe names the file, the line and the key, e.g.
`digits_unet.yaml:14:3: train.learning_rate: Input should be greater than 0`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..safe_yaml import ParseError, parse_text
from ..errors import ConfigError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class DigitsData(_Strict):
    """scikit-learn's 8×8 handwritten digits (1,797 images), upscaled, each with a prompt about its digit."""

    dataset: Literal["digits"] = "digits"
    size: int = Field(32, ge=8, le=256, description="image side in pixels after upscaling")


class FolderData(_Strict):
    """Every image in a folder (png, jpg, webp, bmp), resized and centre-cropped to `size`.

    Prompts, when a denoiser is conditioned on text, come from a `.txt` file beside each image.
    """

    dataset: Literal["folder"]
    path: str
    size: int = Field(32, ge=8, le=1024)
    channels: Literal[1, 3] = 3


Data = Union[DigitsData, FolderData]


class Optimization(_Strict):
    """AdamW with a linear warm-up, gradient clipping, EMA weights, mixed precision and checkpoints."""

    steps: int = Field(ge=1, description="optimiser steps in total")
    batch_size: int = Field(32, ge=1)
    learning_rate: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = Field(0, ge=0, description="steps over which the learning rate rises linearly from 0")
    grad_clip: Optional[float] = Field(1.0, gt=0, description="clip the global gradient norm (null: off)")
    ema_decay: Optional[float] = Field(None, gt=0, lt=1, description="EMA of the weights (null: off); saved instead of the raw weights")
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    device: str = Field("auto", description="auto (cuda when available, else cpu), cpu, cuda, cuda:1, mps")
    checkpoint_every: int = Field(500, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    log_every: int = Field(50, ge=1)


class AutoencoderLoss(_Strict):
    """Reconstruction (mean squared or absolute error per pixel) plus `kl_weight` × KL per latent element."""

    reconstruction: Literal["mse", "l1"] = "mse"
    kl_weight: float = Field(1e-4, ge=0)


class DenoiserLoss(_Strict):
    """Mean squared error against the scheduler's target (noise, or velocity for v-prediction)."""

    cond_dropout: float = Field(0.1, ge=0, le=1, description="share of prompts replaced by the empty prompt (for guidance)")


class NoiseSchedule(_Strict):
    """The forward process the denoiser is trained on; saved as its scheduler_config.json."""

    num_train_timesteps: int = Field(1000, ge=2)
    beta_start: float = Field(0.00085, gt=0)
    beta_end: float = Field(0.012, gt=0)
    beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2"] = "scaled_linear"
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon"


class _RecipeBase(_Strict):
    seed: int = Field(0, ge=0)
    output: str = Field(description="folder the trained model is saved to (save_pretrained)")
    checkpoints: Optional[str] = Field(None, description="checkpoint folder (default: OUTPUT.checkpoints)")
    data: Data = Field(discriminator="dataset")
    model: dict[str, Any] = Field(description="the network's config (its config.json keys; `_`-prefixed ones are ignored)")
    train: Optimization


class AutoencoderRecipe(_RecipeBase):
    """Train a KL autoencoder (AutoencoderKL) on images."""

    kind: Literal["autoencoder"]
    loss: AutoencoderLoss = AutoencoderLoss()
    scaling_factor: Union[Literal["auto"], float] = Field(
        "auto", description="written to config.json; auto: 1 / std of the training images' latents")


class DenoiserRecipe(_RecipeBase):
    """Train a UNet (UNet2DModel) or a conditioned UNet (UNet2DConditionModel) to denoise.

    With `autoencoder` it works in that frozen autoencoder's latent space (scaled by its scaling_factor);
    with `text_encoder` (and `tokenizer`, default: the same source) it is conditioned on the frozen
    encoder's hidden states of each image's prompt.
    """

    kind: Literal["denoiser"]
    model_class: Literal["UNet2DModel", "UNet2DConditionModel"] = "UNet2DConditionModel"
    autoencoder: Optional[str] = None
    text_encoder: Optional[str] = None
    tokenizer: Optional[str] = None
    max_length: int = Field(16, ge=2, le=512, description="tokens per prompt (prompts are padded to it)")
    scheduler: NoiseSchedule = NoiseSchedule()
    loss: DenoiserLoss = DenoiserLoss()


Recipe = Union[AutoencoderRecipe, DenoiserRecipe]


class _RecipeFile(BaseModel):
    recipe: Recipe = Field(discriminator="kind")


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read and validate a recipe file. Relative paths in it are resolved against the file's folder.

    Raises ConfigError naming `file:line:column: key: problem` for every problem found.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the recipe: {error.strerror or error}") from None
    return parse_recipe(text, str(path), base=path.parent)


def parse_recipe(text: str, filename: str = "<recipe>", base: str | os.PathLike = ".") -> Recipe:
    """Validate recipe text (YAML or JSON); see `load_recipe`."""
    try:
        data, positions = parse_text(text, filename)
    except ParseError as error:
        raise ConfigError(f"{filename}:{error.line}:{error.column}: {error.message}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}:1:1: a recipe is a mapping with kind, output, data, model and train; "
                          f"see workflows/train/digits_vae.yaml")
    try:
        recipe = _RecipeFile(recipe=data).recipe
    except ValidationError as error:
        lines = []
        for problem in error.errors():
            loc = _key_path(problem["loc"][1:])
            key = ".".join(str(p) for p in loc)
            if not loc:  # no kind matched: point at `kind`
                loc, key = ("kind",), "kind"
            extra = problem["type"] == "extra_forbidden"
            line, column = positions.of(loc, key=extra)
            message = "unknown key; check its spelling" if extra else problem["msg"]
            lines.append(f"{filename}:{line}:{column}: {key}: {message}")
        raise ConfigError("invalid recipe:\n  " + "\n  ".join(lines)) from None
    unknown = _unknown_model_keys(recipe)
    if unknown:
        cls = _model_class_name(recipe)
        lines = [f"{filename}:{':'.join(map(str, positions.of(('model', k), key=True)))}: model.{k}: not a "
                 f"config key of {cls}; check its spelling" for k in unknown]
        raise ConfigError("invalid recipe:\n  " + "\n  ".join(lines))
    return _resolve_paths(recipe, Path(base))


def _model_class_name(recipe: Recipe) -> str:
    return "AutoencoderKL" if isinstance(recipe, AutoencoderRecipe) else recipe.model_class


def _unknown_model_keys(recipe: Recipe) -> list[str]:
    from .. import models

    accepted = getattr(models, _model_class_name(recipe)).init_parameters()
    return [key for key in recipe.model if key not in accepted and not key.startswith("_")]


def _key_path(loc: tuple) -> tuple:
    """pydantic's location without the tags it adds after a discriminated field (`denoiser.data.folder.path`
    → `data.path`): those are not keys of the file."""
    out: list = []
    for i, part in enumerate(loc):
        if (i == 0 and part in ("autoencoder", "denoiser")) or (i > 0 and loc[i - 1] == "data" and part in ("digits", "folder")):
            continue
        out.append(part)
    return tuple(out)


def _resolve(value: Optional[str], base: Path) -> Optional[str]:
    """Local paths relative to the recipe; hf:// and pkg:// sources, and absolute paths, as they are."""
    if value is None or "://" in value or os.path.isabs(value):
        return value
    return str((base / value).resolve())


def _resolve_paths(recipe: Recipe, base: Path) -> Recipe:
    updates: dict[str, Any] = {"output": _resolve(recipe.output, base),
                               "checkpoints": _resolve(recipe.checkpoints, base)}
    if isinstance(recipe, DenoiserRecipe):
        for key in ("autoencoder", "text_encoder", "tokenizer"):
            updates[key] = _resolve(getattr(recipe, key), base)
    if isinstance(recipe.data, FolderData):
        updates["data"] = recipe.data.model_copy(update={"path": _resolve(recipe.data.path, base)})
    return recipe.model_copy(update=updates)
