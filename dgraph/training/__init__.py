"""Training recipes for autoencoders and denoisers: `dgraph train RECIPE.yaml` or `train("RECIPE.yaml")`."""
from __future__ import annotations

import os

from .autoencoder import train_autoencoder
from .datasets import DIGIT_NAMES, ImageDataset, digit_prompts, digits_images, load_digits_dataset, load_image_folder
from .denoiser import train_denoiser
from .ema import EMA
from .optim import warmup_factor
from .recipe import AutoencoderRecipe, DenoiserRecipe, load_recipe, parse_recipe
from .trainer import Interrupted, TrainResult


def train(recipe: str | os.PathLike | AutoencoderRecipe | DenoiserRecipe, progress: bool = True,
          stop_after: int | None = None) -> TrainResult:
    """Run a recipe (a file or a parsed recipe) to the end, resuming from its checkpoints if there are any."""
    if not isinstance(recipe, (AutoencoderRecipe, DenoiserRecipe)):
        recipe = load_recipe(recipe)
    if isinstance(recipe, AutoencoderRecipe):
        return train_autoencoder(recipe, progress, stop_after)
    return train_denoiser(recipe, progress, stop_after)


__all__ = ["train", "load_recipe", "parse_recipe", "AutoencoderRecipe", "DenoiserRecipe", "TrainResult",
           "Interrupted", "EMA", "warmup_factor", "train_autoencoder", "train_denoiser", "ImageDataset",
           "load_digits_dataset", "load_image_folder", "digits_images", "digit_prompts", "DIGIT_NAMES"]
