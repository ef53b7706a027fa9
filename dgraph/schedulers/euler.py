"""Euler's method on the probability-flow ODE (Karras et al. 2022, Algorithm 2 with optional churn)."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..configuration import register_to_config
from ..errors import ConfigError
from .base import RunOption, Scheduler, SchedulerOutput, check_choice, gaussian_noise
from .sigma_schedule import (SigmaRun, check_one_schedule, discrete_sigma_schedule, refuse_timesteps_with_spacing,
                             training_sigma_schedule)
from .spacing import sigma_spacing


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
    run_options = {
        "s_churn": RunOption(0.0, "Euler's stochastic churn (Karras et al. 2022): 0 is the deterministic sampler"),
        "s_tmin": RunOption(0.0, "Euler: churn only at sigmas at or above this"),
        "s_tmax": RunOption(float("inf"), "Euler: churn only at sigmas at or below this"),
        "s_noise": RunOption(1.0, "Euler: scale of the churn noise"),
    }

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
        sigma_spacing(self.config, owner)  # refuses two spacings at once
        self._init_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas,
                            rescale_betas_zero_snr)
        if rescale_betas_zero_snr:
            # Zero terminal SNR makes the last sigma infinite; keep it large but finite.
            self.alphas_cumprod[-1] = 2 ** -24
        self._freeze()

    def start(self, num_inference_steps: int | None = None, device=None, timesteps: Sequence[float] | None = None,
              sigmas: Sequence[float] | None = None, s_churn: float = 0.0, s_tmin: float = 0.0,
              s_tmax: float = float("inf"), s_noise: float = 1.0) -> EulerRun:
        """A run of n spaced steps, or over given `timesteps`, or given `sigmas` (n + 1, ending where the run ends).

        s_churn, s_tmin, s_tmax, s_noise: Karras' stochastic churn (0 = the deterministic sampler).
        """
        owner = "EulerDiscreteScheduler"
        config = self.config
        check_one_schedule(owner, num_inference_steps, timesteps=timesteps, sigmas=sigmas)
        spacing = sigma_spacing(config, owner)
        refuse_timesteps_with_spacing(owner, spacing, timesteps)
        if timesteps is not None and config.timestep_type == "continuous" and config.prediction_type == "v_prediction":
            raise ConfigError(f"{owner}: timesteps=[...] cannot be used with timestep_type='continuous' and "
                              f"prediction_type='v_prediction'; pass num_inference_steps or sigmas")
        steps, sigma_table = discrete_sigma_schedule(
            self.alphas_cumprod, config, num_inference_steps, owner, spacing=spacing,
            interpolation=config.interpolation_type, final=config.final_sigmas_type, sigma_min=config.sigma_min,
            sigma_max=config.sigma_max, timesteps=timesteps, sigmas=sigmas)
        return self._make_run(steps, sigma_table, device, s_churn, s_tmin, s_tmax, s_noise)

    def _make_run(self, steps, sigma_table, device=None, *churn) -> EulerRun:
        sigmas_t = torch.from_numpy(sigma_table)
        if self.config.timestep_type == "continuous" and self.config.prediction_type == "v_prediction":
            # Continuous-time v models take c_noise = log(sigma) / 4 (Karras et al. table 1).
            timesteps_t = torch.tensor([0.25 * float(s.log()) for s in sigmas_t[:-1]], dtype=torch.float32)
        else:
            timesteps_t = torch.from_numpy(steps)
        return EulerRun(self, timesteps_t.to(device), sigmas_t, *churn)

    def _training_run(self) -> EulerRun:
        return self._make_run(*training_sigma_schedule(self.alphas_cumprod))
