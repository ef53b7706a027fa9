"""Heun's second-order method on the probability-flow ODE (Karras et al. 2022, Algorithm 1).

Each step takes two model calls: an Euler predictor to the next sigma, then a corrector that averages
the two slopes. The run's timesteps list every model call, so all but the first appear twice.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..configuration import register_to_config
from .base import Scheduler, SchedulerOutput, check_choice
from .euler import sigma_x0
from .sigma_schedule import SigmaRun, check_one_schedule, discrete_sigma_schedule, refuse_timesteps_with_spacing
from .spacing import sigma_spacing


class HeunRun(SigmaRun):
    def __init__(self, scheduler, timesteps, sigmas):
        super().__init__(scheduler, timesteps, sigmas)
        self.prev_derivative: torch.Tensor | None = None
        self.dt: float | None = None
        self.first_sample: torch.Tensor | None = None

    @property
    def state_in_first_order(self) -> bool:
        return self.dt is None

    def _step(self, index, model_output, sample, generator, **options):
        config = self.config
        if self.state_in_first_order:
            sigma, sigma_next = self.sigma_values[index], self.sigma_values[index + 1]
            x0 = sigma_x0(config.prediction_type, model_output, sample, sigma)
        else:
            sigma, sigma_next = self.sigma_values[index - 1], self.sigma_values[index]
            x0 = sigma_x0(config.prediction_type, model_output, sample, sigma_next)
        if config.clip_sample:
            x0 = x0.clamp(-config.clip_sample_range, config.clip_sample_range)

        if self.state_in_first_order:
            derivative = (sample - x0) / sigma
            self.prev_derivative, self.dt, self.first_sample = derivative, sigma_next - sigma, sample
            prev_sample = sample + derivative * self.dt
        else:
            derivative = ((sample - x0) / sigma_next + self.prev_derivative) / 2
            prev_sample = self.first_sample + derivative * self.dt
            self.prev_derivative, self.dt, self.first_sample = None, None, None
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)


class HeunDiscreteScheduler(Scheduler):
    """Heun sampler; `order = 2` model calls per step."""

    order = 2

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.00085, beta_end: float = 0.012,
                 beta_schedule: str = "linear", trained_betas: Sequence[float] | None = None,
                 prediction_type: str = "epsilon", use_karras_sigmas: bool = False,
                 use_exponential_sigmas: bool = False, use_beta_sigmas: bool = False, clip_sample: bool = False,
                 clip_sample_range: float = 1.0, timestep_spacing: str = "linspace", steps_offset: int = 0):
        owner = "HeunDiscreteScheduler"
        check_choice(owner, "prediction_type", prediction_type, ("epsilon", "sample", "v_prediction"))
        sigma_spacing(self.config, owner)  # refuses two spacings at once
        self._init_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        self._freeze()

    def start(self, num_inference_steps: int | None = None, device=None,
              timesteps: Sequence[float] | None = None) -> HeunRun:
        """A run of n spaced steps (2n - 1 model calls), or over given `timesteps`."""
        owner = "HeunDiscreteScheduler"
        check_one_schedule(owner, num_inference_steps, timesteps=timesteps)
        spacing = sigma_spacing(self.config, owner)
        refuse_timesteps_with_spacing(owner, spacing, timesteps)
        steps, sigmas = discrete_sigma_schedule(self.alphas_cumprod, self.config, num_inference_steps, owner,
                                                spacing=spacing, timesteps=timesteps)
        sigmas_t = torch.from_numpy(sigmas)
        timesteps_t = torch.from_numpy(steps)
        # Every sigma between the first and the last is visited twice (predictor, then corrector).
        sigmas_t = torch.cat([sigmas_t[:1], sigmas_t[1:-1].repeat_interleave(2), sigmas_t[-1:]])
        timesteps_t = torch.cat([timesteps_t[:1], timesteps_t[1:].repeat_interleave(2)])
        return HeunRun(self, timesteps_t.to(device), sigmas_t)

    def _training_run(self) -> HeunRun:
        # diffusers' Heun sets a run of every training step at construction.
        return self.start(self.num_train_timesteps)
