"""Train a denoising UNet from a DenoiserRecipe: in pixel space or a frozen autoencoder's latent space,
unconditioned or conditioned on a frozen text encoder's hidden states."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ConfigError
from ..models import AutoencoderKL, UNet2DConditionModel, UNet2DModel
from ..schedulers import DDPMScheduler
from ..text import encode, load_text_encoder, load_tokenizer, tokenize
from .datasets import ImageDataset, load_dataset
from .losses import denoiser_loss
from .recipe import DenoiserRecipe
from .trainer import TrainResult, pick_device, run_loop

UNET_CLASSES = {"UNet2DModel": UNet2DModel, "UNet2DConditionModel": UNet2DConditionModel}


def build_scheduler(recipe: DenoiserRecipe) -> DDPMScheduler:
    """The training noise schedule; clip_sample is off because latents are not bounded to [-1, 1]."""
    return DDPMScheduler(**recipe.scheduler.model_dump(), clip_sample=recipe.autoencoder is None)


def build_unet(recipe: DenoiserRecipe) -> nn.Module:
    torch.manual_seed(recipe.seed)
    cls = UNET_CLASSES[recipe.model_class]
    try:
        return cls(**{k: v for k, v in recipe.model.items() if not k.startswith("_")})
    except TypeError as error:
        raise ConfigError(f"model: {error}; the keys are {recipe.model_class}'s config.json keys") from None


@dataclass
class PromptTable:
    """Every distinct prompt of a dataset encoded once: hidden states (P, L, D) and masks (P, L).

    Row 0 is the empty prompt, the unconditional branch that guidance contrasts against. `choices[i]`
    lists the rows that may stand for image i.
    """

    hidden: torch.Tensor
    mask: torch.Tensor
    choices: list[list[int]]

    def pick(self, generator: torch.Generator, index: torch.Tensor, dropout: float) -> torch.Tensor:
        """One row per image in `index`: a random wording of its prompt, or (with probability `dropout`) row 0."""
        u = torch.rand(len(index), generator=generator)
        drop = torch.rand(len(index), generator=generator) < dropout
        rows = [self.choices[i][min(int(v * len(self.choices[i])), len(self.choices[i]) - 1)] if self.choices[i] else 0
                for i, v in zip(index.tolist(), u.tolist())]
        return torch.where(drop, torch.zeros(len(rows), dtype=torch.long), torch.tensor(rows))


@torch.no_grad()
def encode_prompts(data: ImageDataset, tokenizer, text_encoder, max_length: int, device: torch.device) -> PromptTable:
    texts = [""] + sorted({p for prompts in data.prompts for p in prompts})
    row = {t: i for i, t in enumerate(texts)}
    hidden, mask = [], []
    for start in range(0, len(texts), 64):
        batch = tokenize(tokenizer, texts[start:start + 64], max_length=max_length)
        h, m = encode(text_encoder, batch.to(device))
        hidden.append(h.float())
        mask.append(m)
    return PromptTable(torch.cat(hidden), torch.cat(mask), [[row[p] for p in prompts] for prompts in data.prompts])


@torch.no_grad()
def encode_images(vae: AutoencoderKL, images: torch.Tensor, batch: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Posterior mean and std of every image: latents are sampled from them afresh at each step."""
    means, stds = [], []
    for start in range(0, len(images), batch):
        posterior = vae.encode(images[start:start + batch]).latent_dist
        means.append(posterior.mean.float())
        stds.append(posterior.std.float())
    return torch.cat(means), torch.cat(stds)


def train_denoiser(recipe: DenoiserRecipe, progress: bool = True, stop_after: int | None = None) -> TrainResult:
    """Train, then save the (EMA) UNet with save_pretrained into `recipe.output`, with the training
    noise schedule beside it as scheduler_config.json. Resumes from `recipe.checkpoints`."""
    started = time.perf_counter()
    device = pick_device(recipe.train.device)
    data = load_dataset(recipe.data)
    scheduler = build_scheduler(recipe)
    images = data.images.to(device)
    if recipe.autoencoder:
        vae = AutoencoderKL.from_pretrained(recipe.autoencoder, device=device).eval().requires_grad_(False)
        mean, std = encode_images(vae, images)
        scaling = float(vae.config.scaling_factor)
        del vae
    conditioned = recipe.model_class == "UNet2DConditionModel"
    if conditioned:
        if not recipe.text_encoder:
            raise ConfigError("text_encoder: a UNet2DConditionModel needs a text encoder to condition on")
        if not any(data.prompts):
            raise ConfigError("data: a conditioned UNet needs prompts; this dataset has none")
        tokenizer = load_tokenizer(recipe.tokenizer or recipe.text_encoder)
        text_encoder = load_text_encoder(recipe.text_encoder, device=device).eval()
        table = encode_prompts(data, tokenizer, text_encoder, recipe.max_length, device)
        del text_encoder
        hidden = table.hidden.to(device)
    model = build_unet(recipe).to(device)
    opt = recipe.train
    timesteps_total = recipe.scheduler.num_train_timesteps

    def loss_fn(generator: torch.Generator, step: int):
        index = torch.randint(len(images), (opt.batch_size,), generator=generator)
        if recipe.autoencoder:
            eps = torch.randn(mean[index].shape, generator=generator).to(device)
            x0 = (mean[index.to(device)] + std[index.to(device)] * eps) * scaling
        else:
            x0 = images[index.to(device)]
        timesteps = torch.randint(timesteps_total, (opt.batch_size,), generator=generator).to(device)
        noise = torch.randn(x0.shape, generator=generator).to(device)
        conditioning = {}
        if conditioned:
            rows = table.pick(generator, index, recipe.loss.cond_dropout).to(device)
            # All max_length states, padding included, and no mask: what the sampling nodes feed a UNet
            # (as diffusers' text-to-image pipelines do) unless its config asks for the mask.
            conditioning = {"encoder_hidden_states": hidden[rows]}
        loss = denoiser_loss(model, scheduler, x0, noise, timesteps, recipe.scheduler.prediction_type, **conditioning)
        return loss, {}

    checkpoints = Path(recipe.checkpoints or recipe.output + ".checkpoints")
    losses, ema, finished = run_loop(model, opt, recipe.seed, checkpoints, device, loss_fn, progress, stop_after, "denoiser")
    if not finished:  # stopped early on request: the checkpoint holds the state, nothing is saved yet
        return TrainResult(Path(recipe.output), len(losses), losses[-1] if losses else float("nan"),
                           time.perf_counter() - started, losses)
    if ema is not None:
        ema.copy_to(model)
    model.eval().cpu().save_pretrained(recipe.output)
    scheduler.save_config(recipe.output)
    return TrainResult(Path(recipe.output), opt.steps, losses[-1] if losses else float("nan"),
                       time.perf_counter() - started, losses)
