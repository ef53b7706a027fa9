"""DDPM (Ho et al. 2020): ancestral sampling from the posterior q(x_{t-1} | x_t, x0).

Also the explicit-beta mode of the diffusion vocoders: `start(betas=FASTDIFF_BETAS_6)` samples the
short chain those betas define and tells the model the fractional training timestep of each step
(see `vocoder_schedules`).
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..configuration import register_to_config
from ..errors import ConfigError
from .base import SamplingRun, Scheduler, SchedulerOutput, check_choice, gaussian_noise, predicted_x0
from .spacing import spaced_timesteps
from .thresholding import dynamic_threshold
from .vocoder_schedules import fractional_timesteps, inference_alphas_cumprod

VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range")


class DDPMRun(SamplingRun):
    """One DDPM sampling run. Step i goes from alpha_bar[i] to alpha_bar_prev[i]."""

    def __init__(self, scheduler: "DDPMScheduler", timesteps: torch.Tensor, alpha_bar: np.ndarray,
                 alpha_bar_prev: np.ndarray, noisy: np.ndarray):
        super().__init__(scheduler, timesteps)
        self.alpha_bar = alpha_bar.tolist()
        self.alpha_bar_prev = alpha_bar_prev.tolist()
        self.noisy = noisy.tolist()  # whether step i adds noise

    @property
    def reads_learned_variance(self) -> bool:
        return self.config.variance_type in ("learned", "learned_range")

    def _step(self, index, model_output, sample, generator, **options):
        config = self.config
        predicted_log_variance = None
        if config.variance_type in ("learned", "learned_range") and model_output.shape[1] == 2 * sample.shape[1]:
            model_output, predicted_log_variance = torch.split(model_output, sample.shape[1], dim=1)

        alpha_bar, alpha_bar_prev = self.alpha_bar[index], self.alpha_bar_prev[index]
        alpha = alpha_bar / alpha_bar_prev  # of this (possibly multi-step) transition
        beta = 1 - alpha
        x0 = predicted_x0(config.prediction_type, model_output, sample, math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar))
        if config.thresholding:
            x0 = dynamic_threshold(x0, config.dynamic_thresholding_ratio, config.sample_max_value)
        elif config.clip_sample:
            x0 = x0.clamp(-config.clip_sample_range, config.clip_sample_range)

        # Posterior mean, Ho et al. eq. 7.
        x0_coeff = math.sqrt(alpha_bar_prev) * beta / (1 - alpha_bar)
        sample_coeff = math.sqrt(alpha) * (1 - alpha_bar_prev) / (1 - alpha_bar)
        prev_sample = x0_coeff * x0 + sample_coeff * sample

        if self.noisy[index]:
            noise = gaussian_noise(model_output, generator)
            std = self._noise_std(alpha_bar, alpha_bar_prev, beta, predicted_log_variance)
            prev_sample = prev_sample + std * noise
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)

    def _noise_std(self, alpha_bar, alpha_bar_prev, beta, predicted):
        variance_type = self.config.variance_type
        # The posterior variance is 0 at the last step; it is floored so its log stays finite.
        posterior = max((1 - alpha_bar_prev) / (1 - alpha_bar) * beta, 1e-20)
        if variance_type in ("fixed_small", "fixed_small_log"):
            return math.sqrt(posterior)
        if variance_type in ("fixed_large", "fixed_large_log"):
            return math.sqrt(beta)
        if predicted is None:
            raise ConfigError(f"DDPMScheduler: variance_type={variance_type!r} needs a model output with twice the "
                              f"sample's channels (noise prediction, then variance)")
        if variance_type == "learned":
            return predicted.sqrt()
        # learned_range (improved DDPM / GLIDE): interpolate the log variance between the two fixed ones.
        fraction = (predicted + 1) / 2
        log_variance = fraction * math.log(beta) + (1 - fraction) * math.log(posterior)
        return torch.exp(0.5 * log_variance)


class DDPMScheduler(Scheduler):
    """Denoising diffusion probabilistic models: the stochastic sampler the models were trained for.

    `start(n)` visits n of the training timesteps (spacing per `timestep_spacing`); `start(timesteps=[...])`
    a descending list of your own; `start(betas=[...])` an explicit inference beta list (vocoders).
    """

    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas: Sequence[float] | None = None,
                 variance_type: str = "fixed_small", clip_sample: bool = True, prediction_type: str = "epsilon",
                 thresholding: bool = False, dynamic_thresholding_ratio: float = 0.995,
                 clip_sample_range: float = 1.0, sample_max_value: float = 1.0, timestep_spacing: str = "leading",
                 steps_offset: int = 0, rescale_betas_zero_snr: bool = False):
        check_choice("DDPMScheduler", "variance_type", variance_type, VARIANCE_TYPES)
        check_choice("DDPMScheduler", "prediction_type", prediction_type, ("epsilon", "sample", "v_prediction"))
        self._init_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas,
                            rescale_betas_zero_snr)
        self._freeze()

    def start(self, num_inference_steps: int | None = None, device=None, timesteps: Sequence[int] | None = None,
              betas: Sequence[float] | None = None) -> DDPMRun:
        """A new run: n spaced steps (all training steps if n is None), given `timesteps`, or given `betas`."""
        given = sum(x is not None for x in (num_inference_steps, timesteps, betas))
        if given > 1:
            raise ConfigError("DDPMScheduler.start: pass only one of num_inference_steps, timesteps, betas")
        alphas_cumprod = self.alphas_cumprod.double().numpy()
        if betas is not None:
            inference = inference_alphas_cumprod(betas, owner="DDPMScheduler.start")[::-1]
            steps = fractional_timesteps(betas, self.alphas_cumprod)[::-1].copy()
            timesteps_t = torch.from_numpy(steps).float()
            noisy = np.arange(len(steps)) < len(steps) - 1  # every step but the last, as the vocoders do
            return DDPMRun(self, timesteps_t.to(device), inference, np.append(inference[1:], 1.0), noisy)
        if timesteps is not None:
            steps = np.asarray(list(timesteps), dtype=np.int64)
            if np.any(steps[1:] >= steps[:-1]):
                raise ConfigError(f"DDPMScheduler.start: timesteps must be strictly descending, got {steps.tolist()}")
            if steps[0] >= self.num_train_timesteps or steps[-1] < 0:
                raise ConfigError(f"DDPMScheduler.start: timesteps must lie in [0, {self.num_train_timesteps - 1}]")
        else:
            n = self.num_train_timesteps if num_inference_steps is None else num_inference_steps
            steps = spaced_timesteps(self.config.timestep_spacing, self.num_train_timesteps, n,
                                     self.config.steps_offset, owner="DDPMScheduler").astype(np.int64)
        alpha_bar = alphas_cumprod[steps]
        prev = np.append(steps[1:], -1)
        alpha_bar_prev = np.where(prev >= 0, alphas_cumprod[np.maximum(prev, 0)], 1.0)
        # Noise is added at every step above t = 0 (so a "trailing" run ends with a noisy step, as in diffusers).
        return DDPMRun(self, torch.from_numpy(steps).to(device), alpha_bar, alpha_bar_prev, steps > 0)
