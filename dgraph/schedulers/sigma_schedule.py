"""The sigma schedule of the k-diffusion style samplers (Euler, Euler ancestral, Heun, LMS).

These samplers work on x = x0 + sigma·noise, with sigma = sqrt((1 - alpha_bar) / alpha_bar): the model
input is the sample divided by sqrt(sigma² + 1), and the run is a list of sigmas ending in 0.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError
from .base import SamplingRun
from .spacing import interpolate_sigmas, sigmas_to_timesteps, spaced_sigmas, spaced_timesteps, training_sigmas


def discrete_sigma_schedule(alphas_cumprod: torch.Tensor, config, num_inference_steps: int | None, owner: str,
                            spacing: str | None = None, interpolation: str = "linear", final: str = "zero",
                            sigma_min: float | None = None, sigma_max: float | None = None,
                            timesteps: Sequence[float] | None = None, sigmas: Sequence[float] | None = None):
    """(timesteps, sigmas) for n steps: n fractional timesteps and n + 1 sigmas (float32 arrays).

    The timesteps are spaced per `config.timestep_spacing`, or given (`timesteps`); their sigmas are
    interpolated from the training table. A sigma `spacing` (karras, exponential, beta) replaces them
    by n sigmas between the largest and smallest of those (or `sigma_max` / `sigma_min`), mapped back
    to fractional timesteps for the model. Given `sigmas` (n + 1 of them, the last one included) are
    used as they are.
    """
    table = training_sigmas(alphas_cumprod)
    log_table = np.log(table)
    if sigmas is not None:
        sigmas = np.asarray(list(sigmas), dtype=np.float32)
        if sigmas.ndim != 1 or len(sigmas) < 2:
            raise ConfigError(f"{owner}: sigmas must list at least two values (the last is where the run ends)")
        return sigmas_to_timesteps(sigmas[:-1], log_table).astype(np.float32), sigmas
    if timesteps is not None:
        timesteps = np.asarray(list(timesteps), dtype=np.float32)
        num_inference_steps = len(timesteps)
    else:
        timesteps = spaced_timesteps(config.timestep_spacing, len(alphas_cumprod), num_inference_steps,
                                     config.steps_offset, round_linspace=False, owner=owner).astype(np.float32)
    if interpolation == "log_linear":
        # Evenly spaced in log sigma over the whole training range (n + 1 values).
        values = torch.linspace(float(np.log(table[-1])), float(np.log(table[0])), num_inference_steps + 1).exp().numpy()
    else:
        values = interpolate_sigmas(timesteps, table)
    if spacing is not None:
        low = sigma_min if sigma_min is not None else float(values[-1])
        high = sigma_max if sigma_max is not None else float(values[0])
        values = spaced_sigmas(spacing, low, high, num_inference_steps)
        timesteps = sigmas_to_timesteps(values, log_table)
    last = 0.0 if final == "zero" else float(table[0])
    return timesteps.astype(np.float32), np.concatenate([values, [last]]).astype(np.float32)


def training_sigma_schedule(alphas_cumprod: torch.Tensor):
    """(timesteps, sigmas) over every training step, as diffusers' sigma samplers hold them before
    `set_timesteps`: timesteps T-1 .. 0 and the training sigmas, then 0."""
    table = training_sigmas(alphas_cumprod)
    steps = np.arange(len(table) - 1, -1, -1, dtype=np.float32)
    return steps, np.concatenate([table[::-1], [0.0]]).astype(np.float32)


def refuse_timesteps_with_spacing(owner: str, spacing: str | None, timesteps) -> None:
    """Given timesteps cannot be combined with a sigma spacing (which chooses its own timesteps)."""
    if timesteps is not None and spacing is not None:
        raise ConfigError(f"{owner}: timesteps=[...] cannot be used with use_{spacing}_sigmas=True; "
                          f"pass num_inference_steps, or build the scheduler without use_{spacing}_sigmas")


def check_one_schedule(owner: str, num_inference_steps, **given) -> None:
    """Exactly one of num_inference_steps and the given custom schedules (timesteps, sigmas)."""
    named = [name for name, value in given.items() if value is not None]
    if num_inference_steps is not None:
        named.insert(0, "num_inference_steps")
    if len(named) != 1:
        choices = ", ".join(["num_inference_steps", *given])
        raise ConfigError(f"{owner}: pass exactly one of {choices}" + (f" (got {', '.join(named)})" if named else ""))


class SigmaRun(SamplingRun):
    """A run over a sigma schedule; the model sees the sample scaled to unit variance."""

    def __init__(self, scheduler, timesteps: torch.Tensor, sigmas: torch.Tensor):
        largest = float(sigmas.max())
        if scheduler.config.timestep_spacing in ("linspace", "trailing"):
            init_noise_sigma = largest
        else:
            # "leading" never reaches the top training step; start from a unit-variance sample there.
            init_noise_sigma = math.sqrt(largest ** 2 + 1)
        super().__init__(scheduler, timesteps, sigmas, init_noise_sigma)
        self.sigma_values = sigmas.tolist()
        # In float32 like the reference, so that the model sees bit-identical inputs.
        self.input_scales = ((sigmas.float() ** 2 + 1) ** 0.5).tolist()

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        """sample / sqrt(sigma² + 1), the unit-variance input the model was trained on."""
        return sample / self.input_scales[self._current_index(timestep)]


    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x0 + sigma·noise, with sigma at each timestep of this run (or at the begin index, see `noise_indices`)."""
        sigmas = self.sigmas.to(original_samples.device, original_samples.dtype)
        sigma = sigmas[self.noise_indices(timesteps)].flatten()
        return original_samples + noise * sigma.reshape((-1,) + (1,) * (original_samples.ndim - 1))
