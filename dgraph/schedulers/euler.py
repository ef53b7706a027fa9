"""Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 2 with optional churn)."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..configuration import register_to_config
from ..errors import ConfigError
from .base import Scheduler, SchedulerOutput, check_choice, gaussian_noise, refuse_unsupported
from .sigma_schedule import SigmaRun, discrete_sigma_schedule


def sigma_x0(prediction_type: str, model_output: torch.Tensor, sample: torch.Tensor, sigma: float) -> torch.Tensor:
    """x0 from a model output on the sigma scale x = x0 + sigma·noise (the model saw x / sqrt(sigma² + 1))."""
    if prediction_type == "epsilon":
        return sample - sigma * model_output
    if prediction_type == "v_prediction":
        return model_output * (-sigma / math.sqrt(sigma ** 2 + 1)) + sample / (sigma ** 2 + 1)
    if prediction_type == "sample":
        return model_output
    raise ConfigError(f"prediction_type {prediction_type!r} is not one of epsilon, sample, v_prediction")


class EulerRun(SigmaRun):
    """One Euler run. `s_churn` > 0 adds noise before each step (stochastic sampling, Karras Alg. 2)."""

    def __init__(self, scheduler, timesteps, sigmas, s_churn=0.0, s_tmin=0.0, s_tmax=float("inf"), s_noise=1.0):
        super().__init__(scheduler, timesteps, sigmas)
        self.churn = dict(s_churn=s_churn, s_tmin=s_tmin, s_tmax=s_tmax, s_noise=s_noise)

    def _step(self, index, model_output, sample, generator, **overrides):
        churn = {**self.churn, **overrides}
        sigma, sigma_next = self.sigma_values[index], self.sigma_values[index + 1]
        sample = sample.to(torch.float32)
        gamma = 0.0
        if churn["s_tmin"] <= sigma <= churn["s_tmax"]:
            gamma = min(churn["s_churn"] / (len(self.sigma_values) - 1), 2 ** 0.5 - 1)
        sigma_hat = sigma * (gamma + 1)
        if gamma > 0:
            noise = gaussian_noise(model_output, generator) * churn["s_noise"]
            sample = sample + noise * math.sqrt(sigma_hat ** 2 - sigma ** 2)
        # epsilon uses the churned sigma; v_prediction the scheduled one (the model saw that scaling).
        x0 = sigma_x0(self.config.prediction_type, model_output, sample,
                      sigma_hat if self.config.prediction_type == "epsilon" else sigma)
        derivative = (sample - x0) / sigma_hat
        prev_sample = (sample + derivative * (sigma_next - sigma_hat)).to(model_output.dtype)
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)


class EulerDiscreteScheduler(Scheduler):
    """Euler sampler over a discrete-time model. `start(n, s_churn=0, s_tmin=0, s_tmax=inf, s_noise=1)`."""

    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas: Sequence[float] | None = None,
                 prediction_type: str = "epsilon", interpolation_type: str = "linear",
                 use_karras_sigmas: bool = False, use_exponential_sigmas: bool = False,
                 use_beta_sigmas: bool = False, sigma_min: float | None = None, sigma_max: float | None = None,
                 timestep_spacing: str = "linspace", timestep_type: str = "discrete", steps_offset: int = 0,
                 rescale_betas_zero_snr: bool = False, final_sigmas_type: str = "zero"):
        owner = "EulerDiscreteScheduler"
        check_choice(owner, "prediction_type", prediction_type, ("epsilon", "sample", "v_prediction"))
        check_choice(owner, "interpolation_type", interpolation_type, ("linear", "log_linear"))
        check_choice(owner, "timestep_type", timestep_type, ("discrete", "continuous"))
        check_choice(owner, "final_sigmas_type", final_sigmas_type, ("zero", "sigma_min"))
        refuse_unsupported(owner, use_exponential_sigmas=(use_exponential_sigmas, False),
                           use_beta_sigmas=(use_beta_sigmas, False))
        self._init_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas,
                            rescale_betas_zero_snr)
        if rescale_betas_zero_snr:
            # Zero terminal SNR makes the last sigma infinite; keep it large but finite.
            self.alphas_cumprod[-1] = 2 ** -24
        self._freeze()

    def start(self, num_inference_steps: int, device=None, s_churn: float = 0.0, s_tmin: float = 0.0,
              s_tmax: float = float("inf"), s_noise: float = 1.0) -> EulerRun:
        config = self.config
        timesteps, sigmas = discrete_sigma_schedule(
            self.alphas_cumprod, config, num_inference_steps, "EulerDiscreteScheduler",
            karras=config.use_karras_sigmas, interpolation=config.interpolation_type,
            final=config.final_sigmas_type, sigma_min=config.sigma_min, sigma_max=config.sigma_max)
        sigmas_t = torch.from_numpy(sigmas)
        if config.timestep_type == "continuous" and config.prediction_type == "v_prediction":
            # Continuous-time v models take c_noise = log(sigma) / 4 (Karras et al. table 1).
            timesteps_t = torch.tensor([0.25 * float(s.log()) for s in sigmas_t[:-1]], dtype=torch.float32)
        else:
            timesteps_t = torch.from_numpy(timesteps)
        return EulerRun(self, timesteps_t.to(device), sigmas_t, s_churn, s_tmin, s_tmax, s_noise)
