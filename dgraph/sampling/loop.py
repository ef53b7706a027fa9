"""The sampling loop: a denoiser, a scheduler run, initial noise -> samples."""
from __future__ import annotations

from typing import Callable

import torch

from ..schedulers.base import SamplingRun


@torch.no_grad()
def sample(denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], run: SamplingRun, noise: torch.Tensor,
           generator: torch.Generator | None = None, callback: Callable[[int, int], None] | None = None,
           clamp: float | None = None, final_denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
           **step_options) -> torch.Tensor:
    """Denoise `noise` (standard normal) over every timestep of `run`.

    `callback(step, total)` is called after each step (progress, and the place where a cancellation
    raises). `clamp` clips the sample to [-clamp, clamp] after every step (DiffWave's sampler does, for
    audio). `step_options` go to each `run.step` (e.g. `eta` for DDIM). A model output with learned-variance
    channels (twice the sample's, as DiT's and PixArt's) keeps only the prediction for samplers that do not
    read a variance, as diffusers' pipelines do. `final_denoiser`, when given, makes the last step's prediction
    instead of `denoiser` (unCLIP's super-resolution stage has a network trained for that step alone).
    """
    x = noise * run.init_noise_sigma
    timesteps = run.timesteps
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        step_denoiser = final_denoiser if final_denoiser is not None and i == total - 1 else denoiser
        model_output = step_denoiser(run.scale_model_input(x, t), t)
        if model_output.shape[1] == 2 * x.shape[1] and not run.reads_learned_variance:
            model_output = model_output[:, : x.shape[1]]  # a learned variance this sampler has no use for
        x = run.step(model_output, t, x, generator=generator, **step_options).prev_sample
        if clamp is not None:
            x = x.clamp(-clamp, clamp)
        if callback is not None:
            callback(i + 1, total)
    return x
