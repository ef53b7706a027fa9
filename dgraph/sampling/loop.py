"""The sampling loop: a denoiser, a scheduler run, initial noise -> samples."""
from __future__ import annotations

from typing import Callable

import torch

from ..errors import ConfigError
from ..schedulers.base import SamplingRun, fit_image_to_noise


@torch.no_grad()
def sample(denoiser: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], run: SamplingRun, noise: torch.Tensor,
           generator: torch.Generator | None = None, callback: Callable[[int, int], None] | None = None,
           clamp: float | None = None, image: torch.Tensor | None = None, mask: torch.Tensor | None = None,
           **step_options) -> torch.Tensor:
    """Denoise `noise` (standard normal) over the timesteps of `run` (all, or the window `run.partial` chose).

    With `image` (clean latents) the loop starts from the image noised with `noise` to the run's first
    step (img2img: `run.partial(strength=...)`); after `run.partial(denoising_start=...)` `noise` is the
    latents handed over, already noisy there (see `SamplingRun.initial_sample`).

    `mask` (with `image`; 1 where the image is repainted, broadcast over the latents) is inpainting with
    a network that does not read the mask, as StableDiffusionInpaintPipeline does for 4-channel UNets:
    the loop starts from pure noise when it takes the whole schedule (strength 1) and from the noised
    image otherwise, and after each step the kept region is the image noised to the next step (the
    clean image after the last).

    `callback(step, total)` is called after each step (progress, and the place where a cancellation
    raises). `clamp` clips the sample to [-clamp, clamp] after every step (DiffWave's sampler does, for
    audio). `step_options` go to each `run.step` (e.g. `eta` for DDIM). A model output with learned-variance
    channels (twice the sample's, as DiT's and PixArt's) keeps only the prediction for samplers that do not
    read a variance, as diffusers' pipelines do.
    """
    timesteps = run.loop_timesteps
    total = len(timesteps)
    if mask is None:
        x = run.initial_sample(noise, image)
    else:
        owner = type(run.scheduler).__name__
        if image is None or (run.window is not None and run.window.continues_noisy):
            raise ConfigError(f"{owner}: an inpainting mask keeps part of a clean image: give the image's latents "
                              f"as image, and no denoising_start")
        image = fit_image_to_noise(image, noise, owner)
        if run.begin_index is None:
            run.set_begin_index(0)  # the pipeline always sets one: the blend then noises to the current step
        x = run.initial_sample(noise, image if run.begin_index > 0 else None)
    for i, t in enumerate(timesteps):
        model_output = denoiser(run.scale_model_input(x, t), t)
        if model_output.shape[1] == 2 * x.shape[1] and not run.reads_learned_variance:
            model_output = model_output[:, : x.shape[1]]  # a learned variance this sampler has no use for
        x = run.step(model_output, t, x, generator=generator, **step_options).prev_sample
        if clamp is not None:
            x = x.clamp(-clamp, clamp)
        if mask is not None:
            known = run.add_noise(image, noise, timesteps[i + 1:i + 2]) if i + 1 < total else image
            x = (1 - mask) * known + mask * x
        if callback is not None:
            callback(i + 1, total)
    return x
