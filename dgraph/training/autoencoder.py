"""Train a KL autoencoder from an AutoencoderRecipe."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from ..errors import ConfigError
from ..models import AutoencoderKL
from .datasets import load_dataset
from .losses import autoencoder_loss
from .recipe import AutoencoderRecipe
from .trainer import TrainResult, pick_device, run_loop


def build_autoencoder(recipe: AutoencoderRecipe) -> AutoencoderKL:
    torch.manual_seed(recipe.seed)
    try:
        return AutoencoderKL(**{k: v for k, v in recipe.model.items() if not k.startswith("_")})
    except TypeError as error:
        raise ConfigError(f"model: {error}; the keys are AutoencoderKL's config.json keys") from None


@torch.no_grad()
def latent_scaling_factor(model: AutoencoderKL, images: torch.Tensor, batch: int = 256) -> float:
    """1 / std of the posterior samples over `images`, so that scaled latents have unit variance
    (as Rombach et al. 2022 set theirs), measured with a fixed generator."""
    generator = torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    samples = [model.encode(images[i:i + batch].to(device)).latent_dist.sample(generator).cpu() for i in range(0, len(images), batch)]
    return float(1.0 / torch.cat(samples).std())


def train_autoencoder(recipe: AutoencoderRecipe, progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Train, then save the (EMA) weights with save_pretrained into `recipe.output`, with the measured
    latent scaling_factor in its config.json. Resumes from `recipe.checkpoints` when a checkpoint is there."""
    started = time.perf_counter()
    device = pick_device(recipe.train.device)
    data = load_dataset(recipe.data)
    if data.images.shape[1] != recipe.model.get("in_channels", 3):
        raise ConfigError(f"model.in_channels is {recipe.model.get('in_channels', 3)} but the images have "
                          f"{data.images.shape[1]} channels")
    model = build_autoencoder(recipe).to(device)
    images = data.images.to(device)
    opt = recipe.train

    def loss_fn(generator: torch.Generator, step: int):
        index = torch.randint(len(images), (opt.batch_size,), generator=generator).to(device)
        return autoencoder_loss(model, images[index], generator, recipe.loss.kl_weight, recipe.loss.reconstruction)

    checkpoints = Path(recipe.checkpoints or recipe.output + ".checkpoints")
    losses, ema, finished = run_loop(model, opt, recipe.seed, checkpoints, device, loss_fn, progress, stop_after, "autoencoder")
    if not finished:  # stopped early on request: the checkpoint holds the state, nothing is saved yet
        return TrainResult(Path(recipe.output), len(losses), losses[-1] if losses else float("nan"),
                           time.perf_counter() - started, losses)
    if ema is not None:
        ema.copy_to(model)
    model.eval()
    scaling = latent_scaling_factor(model, data.images) if recipe.scaling_factor == "auto" else recipe.scaling_factor
    # The config is fixed at construction: rebuild with the measured factor and the trained weights.
    final = AutoencoderKL.from_config({**model.config, "scaling_factor": round(scaling, 6)})
    final.load_state_dict(model.cpu().state_dict())
    final.save_pretrained(recipe.output)
    return TrainResult(Path(recipe.output), opt.steps, losses[-1] if losses else float("nan"),
                       time.perf_counter() - started, losses)
