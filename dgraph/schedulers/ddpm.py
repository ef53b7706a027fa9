"""DDPM (Ho et al. 2020): ancestral sampling from the posterior q(x_{t-1} | x_t, x0).

Also the explicit-beta mode of the diffusion vocoders: `start(betas=FASTDIFF_BETAS_6)` samples the
short chain those betas define and tells the model the fractional training timestep of each step
(see `vocoder_schedules`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..configuration import register_to_config
from ..errors import ConfigError
from .base import SamplingRun, Scheduler, SchedulerOutput, check_choice, gaussian_noise, predicted_x0
from .spacing import RESPACING_OPTION, respaced_timesteps, spaced_timesteps
from .thresholding import dynamic_threshold
from .vocoder_schedules import fractional_timesteps, inference_alphas_cumprod

VARIANCE_TYPES = ("fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range")


def _roots(values: np.ndarray, dtype) -> np.ndarray:
    # Square roots through torch, whose float32 x ** 0.5 is what the reference computes.
    return (torch.from_numpy(np.asarray(values, dtype=dtype)) ** 0.5).numpy()


class DDPMRun(SamplingRun):
    """One DDPM sampling run. Step i goes from alpha_bar[i] to alpha_bar_prev[i].

    The per-step coefficients are formed once, in the dtype of the alpha_bar tables given: float32
    for the training table, operation for operation as diffusers forms them (for small t, 1 - alpha_bar
    is so small that float64 coefficients end a full loop 5e-5 away), float64 for explicit betas.
    """

    def __init__(self, scheduler: "DDPMScheduler", timesteps: torch.Tensor, alpha_bar: np.ndarray,
                 alpha_bar_prev: np.ndarray, noisy: np.ndarray):
        super().__init__(scheduler, timesteps)
        dtype = alpha_bar.dtype
        one = dtype.type(1)
        beta_prod, beta_prod_prev = one - alpha_bar, one - alpha_bar_prev
        current_alpha = alpha_bar / alpha_bar_prev
        current_beta = one - current_alpha
        root_alpha_bar, root_beta_prod, root_prev, root_current = _roots(
            [alpha_bar, beta_prod, alpha_bar_prev, current_alpha], dtype)
        variance = np.maximum(beta_prod_prev / beta_prod * current_beta, dtype.type(1e-20))
        self.root_alpha_bar, self.root_beta_prod = root_alpha_bar.tolist(), root_beta_prod.tolist()
        self.x0_coeff = (root_prev * current_beta / beta_prod).tolist()
        self.sample_coeff = (root_current * beta_prod_prev / beta_prod).tolist()
        self.variance = variance  # the posterior variance, floored so that its log stays finite
        self.current_beta = current_beta
        self.fixed_std = self._fixed_std(dtype)
        self.noisy = noisy.tolist()  # whether step i adds noise

    def _fixed_std(self, dtype) -> list[float] | None:
        variance_type = self.config.variance_type
        if variance_type == "fixed_small":
            return _roots(self.variance, dtype).tolist()
        if variance_type == "fixed_small_log":
            return torch.exp(0.5 * torch.log(torch.from_numpy(self.variance))).tolist()
        if variance_type in ("fixed_large", "fixed_large_log"):
            return _roots(self.current_beta, dtype).tolist()
        return None  # learned: from the model output

    @property
    def reads_learned_variance(self) -> bool:
        return self.config.variance_type in ("learned", "learned_range")

    guidance_hooks = ("gradient", "x0_transform")

    def _step(self, index, model_output, sample, generator, gradient: torch.Tensor | None = None,
              x0_transform=None, **options):
        """`gradient`: the gradient of a guidance log-probability at `sample`; the posterior mean moves by
        the step's variance times it (Sohl-Dickstein et al. 2015; ADM / GLIDE's `condition_mean`).
        `x0_transform`: applied to the predicted x0 before it is clipped (GLIDE's `denoised_fn`)."""
        config = self.config
        predicted_variance = None
        if config.variance_type in ("learned", "learned_range") and model_output.shape[1] == 2 * sample.shape[1]:
            model_output, predicted_variance = torch.split(model_output, sample.shape[1], dim=1)

        x0 = predicted_x0(config.prediction_type, model_output, sample, self.root_alpha_bar[index],
                          self.root_beta_prod[index])
        if x0_transform is not None:
            x0 = x0_transform(x0)
        if config.thresholding:
            x0 = dynamic_threshold(x0, config.dynamic_thresholding_ratio, config.sample_max_value)
        elif config.clip_sample:
            x0 = x0.clamp(-config.clip_sample_range, config.clip_sample_range)

        # Posterior mean, Ho et al. eq. 7.
        prev_sample = self.x0_coeff[index] * x0 + self.sample_coeff[index] * sample
        if gradient is not None:
            prev_sample = prev_sample + self._variance(index, predicted_variance) * gradient.to(prev_sample.dtype)

        if self.noisy[index]:
            noise = gaussian_noise(model_output, generator)
            prev_sample = prev_sample + self._noise_std(index, predicted_variance) * noise
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)

    def _noise_std(self, index, predicted):
        if self.fixed_std is not None:
            return self.fixed_std[index]
        variance_type = self.config.variance_type
        if predicted is None:
            raise ConfigError(f"DDPMScheduler: variance_type={variance_type!r} needs a model output with twice the "
                              f"sample's channels (noise prediction, then variance)")
        if variance_type == "learned":
            return predicted.sqrt()
        # learned_range (improved DDPM / GLIDE): interpolate the log variance between the two fixed ones.
        return torch.exp(0.5 * self._learned_log_variance(index, predicted, self.variance[index]))

    def _learned_log_variance(self, index, predicted, posterior_variance):
        min_log = float(torch.log(torch.tensor(posterior_variance)))
        max_log = float(torch.log(torch.tensor(self.current_beta[index])))
        fraction = (predicted + 1) / 2
        return fraction * max_log + (1 - fraction) * min_log

    def _variance(self, index, predicted):
        """The variance of step `index` (what guidance scales its gradient by). At the last step the
        posterior variance is 0; its log is clipped to the step before's, as improved DDPM clips it."""
        variance_type = self.config.variance_type
        if variance_type not in ("learned", "learned_range"):
            return self.fixed_std[index] ** 2
        if predicted is None:
            raise ConfigError(f"DDPMScheduler: variance_type={variance_type!r} needs a model output with twice the "
                              f"sample's channels (noise prediction, then variance)")
        if variance_type == "learned":
            return predicted
        posterior = self.variance[index]
        if not self.noisy[index] and index > 0:
            posterior = self.variance[index - 1]
        return torch.exp(self._learned_log_variance(index, predicted, posterior))

    def previous_timestep(self, timestep) -> torch.Tensor:
        """The timestep this run steps to from `timestep` (-1 after the last one)."""
        index = self.index_for_timestep(timestep)
        return self.timesteps[index + 1] if index + 1 < len(self.timesteps) else torch.tensor(-1)


class DDPMScheduler(Scheduler):
    """Denoising diffusion probabilistic models: the stochastic sampler the models were trained for.

    `start(n)` visits n of the training timesteps (spacing per `timestep_spacing`); `start(timesteps=[...])`
    a descending list of your own; `start(betas=[...])` an explicit inference beta list (vocoders).
    """

    order = 1
    run_options = {"respacing": RESPACING_OPTION}

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
              betas: Sequence[float] | None = None, respacing: str = "") -> DDPMRun:
        """A new run: n spaced steps (all training steps if n is None), given `timesteps`, or given `betas`.

        `respacing` (GLIDE / ADM's section counts, "ddimN" or "fast27"; see `spacing.respaced_timesteps`)
        picks the timesteps instead, and replaces n; such a run's coefficients are computed in float64, as
        GLIDE computes its respaced schedules."""
        alphas_cumprod = self.alphas_cumprod.numpy()
        if respacing:
            alphas_cumprod = self.alphas_cumprod_float64().numpy()
            if timesteps is not None or betas is not None:
                raise ConfigError("DDPMScheduler.start: respacing picks the timesteps; pass no timesteps or betas")
            num_inference_steps = None
            timesteps = respaced_timesteps(self.num_train_timesteps, respacing, "DDPMScheduler").tolist()
        given = sum(x is not None for x in (num_inference_steps, timesteps, betas))
        if given > 1:
            raise ConfigError("DDPMScheduler.start: pass only one of num_inference_steps, timesteps, betas")
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
        alpha_bar_prev = np.where(prev >= 0, alphas_cumprod[np.maximum(prev, 0)], alphas_cumprod.dtype.type(1.0))
        # Noise is added at every step above t = 0 (so a "trailing" run ends with a noisy step, as in diffusers).
        return DDPMRun(self, torch.from_numpy(steps).to(device), alpha_bar, alpha_bar_prev, steps > 0)

    def _training_run(self) -> DDPMRun:
        # diffusers' DDPM holds every training step from construction on, so a loop over
        # reversed(range(num_train_timesteps)) works without set_timesteps.
        return self.start(timesteps=range(self.num_train_timesteps - 1, -1, -1))

    def previous_timestep(self, timestep) -> int | torch.Tensor:
        """The timestep after `timestep` in the default run (t - 1 before `set_timesteps`)."""
        if self._default_run is None:
            return timestep - 1
        return self._default_run.previous_timestep(timestep)
