"""The sampling loop: a denoiser, a scheduler run, initial noise -> samples."""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import ConfigError
from ..schedulers.base import SamplingRun
from .gradient_guidance import guidance_hooks


@torch.no_grad()
def sample(denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], run: SamplingRun, noise: torch.Tensor,
           generator: torch.Generator | None = None, callback: Callable[[int, int], None] | None = None,
           clamp: float | None = None, **step_options) -> torch.Tensor:
    """Denoise `noise` (standard normal) over every timestep of `run`.

    `callback(step, total)` is called after each step (progress, and the place where a cancellation
    raises). `clamp` clips the sample to [-clamp, clamp] after every step (DiffWave's sampler does, for
    audio). `step_options` go to each `run.step` (e.g. `eta` for DDIM). A model output with learned-variance
    channels (twice the sample's, as DiT's and PixArt's) keeps only the prediction for samplers that do not
    read a variance, as diffusers' pipelines do. A denoiser with guidance hooks (`GradientGuidance`'s gradient,
    `KnownRegion`'s x0 transform) gives them at each step, and they go to `run.step` (DDPM and DDIM take them).
    """
    x = noise * run.init_noise_sigma
    timesteps = run.timesteps
    total = len(timesteps)
    for i, t in enumerate(timesteps):
        model_input = run.scale_model_input(x, t)
        model_output = denoiser(model_input, t)
        if model_output.shape[1] == 2 * x.shape[1] and not run.reads_learned_variance:
            model_output = model_output[:, : x.shape[1]]  # a learned variance this sampler has no use for
        hooks = guidance_hooks(denoiser, model_input, t)
        refused = [name for name in hooks if name not in run.guidance_hooks]
        if refused:
            raise ConfigError(f"{type(run.scheduler).__name__} takes no {' and no '.join(refused)} (CLIP or classifier "
                              f"guidance, inpainting by x0); use DDPMScheduler or DDIMScheduler")
        x = run.step(model_output, t, x, generator=generator, **step_options, **hooks).prev_sample
        if clamp is not None:
            x = x.clamp(-clamp, clamp)
        if callback is not None:
            callback(i + 1, total)
    return x
