"""Training recipes for autoencoders and denoisers: `dgraph train RECIPE.yaml` or `train("RECIPE.yaml")`."""
from __future__ import annotations

import os
from pathlib import Path

from .autoencoder import train_autoencoder
from .datasets import DIGIT_NAMES, ImageDataset, digit_prompts, digits_images, load_digits_dataset, load_image_folder
from .denoiser import train_denoiser
from .ema import EMA
from .folders import claim, mark, recipe_fingerprint
from .optim import warmup_factor
from .recipe import AutoencoderRecipe, DenoiserRecipe, load_recipe, parse_recipe
from .trainer import Interrupted, TrainResult


def train(recipe: str | os.PathLike | AutoencoderRecipe | DenoiserRecipe, progress: bool = True,
          stop_after: int | None = None, root: str | os.PathLike | None = None) -> TrainResult:
    """Run a recipe (a file or a parsed recipe) to the end, resuming from its checkpoints if there are any.

    The output and checkpoint folders must lie inside `root` (default: the current folder) and be new,
    empty, or made by a recipe (dgraph.training.folders).
    """
    if not isinstance(recipe, (AutoencoderRecipe, DenoiserRecipe)):
        recipe = load_recipe(recipe)
    top = Path(root) if root is not None else Path.cwd()
    checkpoints = recipe.checkpoints or recipe.output + ".checkpoints"
    output = claim(recipe.output, "output", top, create=False)
    owner = recipe_fingerprint(recipe)
    claim(checkpoints, "checkpoints", top, owner=owner, create=False)
    claim(checkpoints, "checkpoints", top, owner=owner)
    run = train_autoencoder if isinstance(recipe, AutoencoderRecipe) else train_denoiser
    result = run(recipe, progress, stop_after)
    mark(output)
    return result


__all__ = ["train", "load_recipe", "parse_recipe", "AutoencoderRecipe", "DenoiserRecipe", "TrainResult",
           "Interrupted", "EMA", "warmup_factor", "train_autoencoder", "train_denoiser", "ImageDataset",
           "load_digits_dataset", "load_image_folder", "digits_images", "digit_prompts", "DIGIT_NAMES"]
