"""The sigma schedule of the k-diffusion style samplers (Euler, Euler ancestral, Heun, LMS).

These samplers work on x = x0 + sigma·noise, with sigma = sqrt((1 - alpha_bar) / alpha_bar): the model
input is the sample divided by sqrt(sigma² + 1), and the run is a list of sigmas ending in 0.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from .base import SamplingRun
from .spacing import interpolate_sigmas, karras_sigmas, sigmas_to_timesteps, spaced_timesteps, training_sigmas


def discrete_sigma_schedule(alphas_cumprod: torch.Tensor, config, num_inference_steps: int, owner: str,
                            karras: bool = False, interpolation: str = "linear", final: str = "zero",
                            sigma_min: float | None = None, sigma_max: float | None = None):
    """(timesteps, sigmas) for n steps: n fractional timesteps and n + 1 sigmas (float32 arrays).

    Karras sigmas run from the largest to the smallest of the spaced sigmas (or `sigma_max` /
    `sigma_min`) and are mapped back to fractional timesteps for the model.
    """
    T = len(alphas_cumprod)
    timesteps = spaced_timesteps(config.timestep_spacing, T, num_inference_steps, config.steps_offset,
                                 round_linspace=False, owner=owner).astype(np.float32)
    table = training_sigmas(alphas_cumprod)
    log_table = np.log(table)
    if interpolation == "log_linear":
        # Evenly spaced in log sigma over the whole training range (n + 1 values).
        sigmas = torch.linspace(float(np.log(table[-1])), float(np.log(table[0])), num_inference_steps + 1).exp().numpy()
    else:
        sigmas = interpolate_sigmas(timesteps, table)
    if karras:
        low = sigma_min if sigma_min is not None else float(sigmas[-1])
        high = sigma_max if sigma_max is not None else float(sigmas[0])
        sigmas = karras_sigmas(low, high, num_inference_steps)
        timesteps = sigmas_to_timesteps(sigmas, log_table)
    last = 0.0 if final == "zero" else float(table[0])
    sigmas = np.concatenate([sigmas, [last]]).astype(np.float32)
    return timesteps.astype(np.float32), sigmas


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

    def scale_model_input(self, sample: torch.Tensor, timestep=None) -> torch.Tensor:
        """sample / sqrt(sigma² + 1), the unit-variance input the model was trained on."""
        sigma = self.sigma_values[self._current_index(timestep)]
        return sample / math.sqrt(sigma ** 2 + 1)
