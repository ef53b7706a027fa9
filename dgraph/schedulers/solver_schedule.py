"""What the multistep ODE solvers (DPM-Solver++, DEIS, UniPC) share: their schedule and the log-SNR.

They work in lambda = log(alpha / sigma), half the log signal-to-noise ratio, where alpha and sigma
here are the signal and noise scales of x_t = alpha·x0 + sigma·noise (alpha² + sigma² = 1).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from .base import SamplingRun, predicted_x0
from .spacing import interpolate_sigmas, sigmas_to_timesteps, solver_timesteps, spaced_sigmas, training_sigmas
from .thresholding import dynamic_threshold


def solver_schedule(alphas_cumprod: torch.Tensor, config, num_inference_steps: int | None, owner: str, *,
                    spacing: str | None, final: str, round_karras_timesteps: bool = True,
                    last_timestep: int | None = None, sigma_min: float | None = None,
                    sigma_max: float | None = None, timesteps: Sequence[int] | None = None):
    """(timesteps int64, sigmas float32) with one more sigma than timesteps.

    `spacing` names a sigma spacing over the training range (karras, exponential, beta, or "lu":
    evenly spaced in log-SNR, Lu et al. 2022); its timesteps are mapped back from the sigmas, and
    rounded for karras and lu (unless `round_karras_timesteps` is False). Given `timesteps` replace
    the spaced ones. `final` names the last sigma: "zero" (the clean sample), "training_min" (the
    smallest training sigma), or "repeat" (the last scheduled sigma again).
    """
    T = len(alphas_cumprod)
    if timesteps is not None:
        steps = np.asarray(list(timesteps), dtype=np.int64)
        num_inference_steps = len(steps)
    else:
        steps = solver_timesteps(config.timestep_spacing, T, num_inference_steps, config.steps_offset,
                                 last_timestep=last_timestep, owner=owner)
    table = training_sigmas(alphas_cumprod)
    if spacing is None:
        sigmas = interpolate_sigmas(steps, table)
    else:
        if spacing == "lu":
            # Evenly spaced in lambda = -log sigma between the ends of the training range.
            low, high = float(np.log(table[0])), float(np.log(table[-1]))
            sigmas = np.exp(high + np.linspace(0, 1, num_inference_steps) * (low - high))
        else:
            # Between the ends of the training range (or the configured ends).
            low = sigma_min if sigma_min is not None else float(table[0])
            high = sigma_max if sigma_max is not None else float(table[-1])
            sigmas = spaced_sigmas(spacing, low, high, num_inference_steps)
        steps = sigmas_to_timesteps(sigmas, np.log(table))
        if spacing in ("karras", "lu") and round_karras_timesteps:
            steps = steps.round()
    last = {"zero": 0.0, "training_min": float(table[0]), "repeat": float(sigmas[-1])}[final]
    sigmas = np.concatenate([sigmas, [last]]).astype(np.float32)
    return steps.astype(np.int64), sigmas


class SolverRun(SamplingRun):
    """A run of a multistep solver: precomputed alpha, sigma and lambda per step, and the output history."""

    def __init__(self, scheduler, timesteps: torch.Tensor, sigmas: torch.Tensor, solver_order: int):
        super().__init__(scheduler, timesteps, sigmas, init_noise_sigma=1.0)
        # Computed in float32 like the reference implementation: the data prediction divides by alpha,
        # which is ~1/157 at the first step, so a last-bit difference here would show in the result.
        # A final sigma of 0 gives lambda = +inf, which the first-order update handles exactly.
        alpha = 1 / ((sigmas.float() ** 2 + 1) ** 0.5)
        sigma = sigmas.float() * alpha
        self.alpha = alpha.tolist()
        self.sigma = sigma.tolist()
        self.lam = (torch.log(alpha) - torch.log(sigma)).tolist()
        self.model_outputs: list[torch.Tensor | None] = [None] * solver_order
        self.lower_order_nums = 0

    def _remember(self, converted: torch.Tensor) -> None:
        self.model_outputs = self.model_outputs[1:] + [converted]

    def _convert(self, model_output: torch.Tensor, sample: torch.Tensor, index: int, want_x0: bool,
                 threshold_noise: bool = True) -> torch.Tensor:
        """The model output as a data prediction (x0) or a noise prediction, thresholded if configured.

        `threshold_noise=False` leaves a noise prediction unthresholded (UniPC thresholds only x0).
        """
        config = self.config
        alpha, sigma = self.alpha[index], self.sigma[index]
        if getattr(config, "variance_type", None) in ("learned", "learned_range"):
            model_output = model_output[:, : sample.shape[1]]  # drop the predicted variance channels
        if want_x0:
            x0 = predicted_x0(config.prediction_type, model_output, sample, alpha, sigma)
            if config.thresholding:
                x0 = dynamic_threshold(x0, config.dynamic_thresholding_ratio, config.sample_max_value)
            return x0
        if config.prediction_type == "epsilon":
            eps = model_output
        elif config.prediction_type == "sample":
            eps = (sample - alpha * model_output) / sigma
        else:
            eps = alpha * model_output + sigma * sample
        if config.thresholding and threshold_noise:
            x0 = dynamic_threshold((sample - sigma * eps) / alpha, config.dynamic_thresholding_ratio,
                                   config.sample_max_value)
            eps = (sample - alpha * x0) / sigma
        return eps

    def _x0_from_eps(self, eps: torch.Tensor, sample: torch.Tensor, index: int) -> torch.Tensor:
        return (sample - self.sigma[index] * eps) / self.alpha[index]

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """alpha·x0 + sigma·noise at the run's own sigma of each timestep (a Karras run's sigmas are not
        the training table's at the rounded timesteps), as diffusers' multistep solvers noise."""
        sigmas = self.sigmas.to(original_samples.device, original_samples.dtype)
        sigma = sigmas[self.noise_indices(timesteps)].flatten()
        alpha = 1 / (sigma ** 2 + 1) ** 0.5
        shape = (-1,) + (1,) * (original_samples.ndim - 1)
        return alpha.reshape(shape) * original_samples + (sigma * alpha).reshape(shape) * noise
