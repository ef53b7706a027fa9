"""Euler ancestral: an Euler step down to sigma_down, then fresh noise up to sigma_next (k-diffusion)."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..configuration import register_to_config
from .base import Scheduler, SchedulerOutput, check_choice, gaussian_noise
from .euler import sigma_x0
from .sigma_schedule import SigmaRun, discrete_sigma_schedule, training_sigma_schedule


class EulerAncestralRun(SigmaRun):
    def _step(self, index, model_output, sample, generator, **options):
        sigma, sigma_next = self.sigma_values[index], self.sigma_values[index + 1]
        sample = sample.to(torch.float32)
        x0 = sigma_x0(self.config.prediction_type, model_output, sample, sigma)
        # Split the move to sigma_next into a deterministic part (to sigma_down) and added noise (sigma_up).
        sigma_up = math.sqrt(sigma_next ** 2 * (sigma ** 2 - sigma_next ** 2) / sigma ** 2)
        sigma_down = math.sqrt(sigma_next ** 2 - sigma_up ** 2)
        derivative = (sample - x0) / sigma
        prev_sample = sample + derivative * (sigma_down - sigma)
        prev_sample = prev_sample + gaussian_noise(model_output, generator) * sigma_up
        return SchedulerOutput(prev_sample=prev_sample.to(model_output.dtype), pred_original_sample=x0)


class EulerAncestralDiscreteScheduler(Scheduler):
    """Ancestral Euler sampler: stochastic, one model call per step."""

    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas: Sequence[float] | None = None,
                 prediction_type: str = "epsilon", timestep_spacing: str = "linspace", steps_offset: int = 0,
                 rescale_betas_zero_snr: bool = False):
        check_choice("EulerAncestralDiscreteScheduler", "prediction_type", prediction_type,
                     ("epsilon", "v_prediction"))
        self._init_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas,
                            rescale_betas_zero_snr)
        if rescale_betas_zero_snr:
            self.alphas_cumprod[-1] = 2 ** -24
        self._freeze()

    def start(self, num_inference_steps: int, device=None) -> EulerAncestralRun:
        timesteps, sigmas = discrete_sigma_schedule(self.alphas_cumprod, self.config, num_inference_steps,
                                                    "EulerAncestralDiscreteScheduler")
        return EulerAncestralRun(self, torch.from_numpy(timesteps).to(device), torch.from_numpy(sigmas))

    def _training_run(self) -> EulerAncestralRun:
        timesteps, sigmas = training_sigma_schedule(self.alphas_cumprod)
        return EulerAncestralRun(self, torch.from_numpy(timesteps), torch.from_numpy(sigmas))
