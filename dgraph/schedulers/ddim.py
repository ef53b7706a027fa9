"""DDIM (Song et al. 2021): the non-Markovian sampler; eta = 0 is deterministic, eta = 1 is DDPM-like."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..configuration import register_to_config
from .base import RunOption, SamplingRun, Scheduler, SchedulerOutput, check_choice, gaussian_noise, predicted_x0
from .spacing import RESPACING_OPTION, respaced_timesteps, spaced_timesteps
from .thresholding import dynamic_threshold


class DDIMRun(SamplingRun):
    """One DDIM run; `eta` and `use_clipped_model_output` are fixed at start and may be overridden per step."""

    def __init__(self, scheduler: "DDIMScheduler", timesteps: torch.Tensor, alpha_bar: np.ndarray,
                 alpha_bar_prev: np.ndarray, eta: float, use_clipped_model_output: bool):
        super().__init__(scheduler, timesteps)
        self.alpha_bar = alpha_bar.tolist()
        self.alpha_bar_prev = alpha_bar_prev.tolist()
        self.eta = eta
        self.use_clipped_model_output = use_clipped_model_output

    guidance_hooks = ("gradient", "x0_transform")

    def _step(self, index, model_output, sample, generator, eta: float | None = None,
              use_clipped_model_output: bool | None = None, variance_noise: torch.Tensor | None = None,
              gradient: torch.Tensor | None = None, x0_transform=None):
        """`gradient`: the gradient of a guidance log-probability at `sample`; it shifts the noise by
        -sqrt(1 - alpha_bar) times it, and x0 with it (Song et al. 2021's score conditioning, as ADM /
        GLIDE's `condition_score` applies it). `x0_transform`: applied to the predicted x0 before it is
        clipped (GLIDE's `denoised_fn`)."""
        config = self.config
        eta = self.eta if eta is None else eta
        use_clipped = self.use_clipped_model_output if use_clipped_model_output is None else use_clipped_model_output
        alpha_bar, alpha_bar_prev = self.alpha_bar[index], self.alpha_bar_prev[index]
        a, s = math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar)

        x0 = predicted_x0(config.prediction_type, model_output, sample, a, s)
        if config.prediction_type == "epsilon":
            eps = model_output
        elif config.prediction_type == "sample":
            eps = (sample - a * x0) / s
        else:
            eps = a * model_output + s * sample
        if x0_transform is not None:
            x0 = x0_transform(x0)
        if config.thresholding:
            x0 = dynamic_threshold(x0, config.dynamic_thresholding_ratio, config.sample_max_value)
        elif config.clip_sample:
            x0 = x0.clamp(-config.clip_sample_range, config.clip_sample_range)
        if use_clipped:
            # Re-derive the noise from the clipped x0 (as the Glide / DDIM code does).
            eps = (sample - a * x0) / s
        if gradient is not None:
            eps = eps - s * gradient.to(eps.dtype)
            x0 = (sample - s * eps) / a

        # Song et al. eq. 12, with sigma_t = eta · sqrt(posterior variance) (eq. 16).
        variance = (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)
        std = eta * math.sqrt(variance)
        # max(0, ...): with eta = 1 and a zero-SNR first step the radicand is 0 up to rounding.
        prev_sample = math.sqrt(alpha_bar_prev) * x0 + math.sqrt(max(0.0, 1 - alpha_bar_prev - std ** 2)) * eps
        if eta > 0:
            noise = variance_noise if variance_noise is not None else gaussian_noise(model_output, generator)
            prev_sample = prev_sample + std * noise
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)


class DDIMScheduler(Scheduler):
    """Denoising diffusion implicit models. `start(n, eta=0.0, use_clipped_model_output=False)`."""

    order = 1
    run_options = {
        "eta": RunOption(0.0, "DDIM's noise scale: 0 is deterministic, 1 is DDPM-like"),
        "use_clipped_model_output": RunOption(False, "re-derive the noise from the clipped x0 (DDIM with clip_sample)"),
        "respacing": RESPACING_OPTION,
    }

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas: Sequence[float] | None = None,
                 clip_sample: bool = True, set_alpha_to_one: bool = True, steps_offset: int = 0,
                 prediction_type: str = "epsilon", thresholding: bool = False,
                 dynamic_thresholding_ratio: float = 0.995, clip_sample_range: float = 1.0,
                 sample_max_value: float = 1.0, timestep_spacing: str = "leading",
                 rescale_betas_zero_snr: bool = False):
        check_choice("DDIMScheduler", "prediction_type", prediction_type, ("epsilon", "sample", "v_prediction"))
        self._init_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas,
                            rescale_betas_zero_snr)
        # alpha_bar after the last step: 1 (a clean sample) or that of step 0 (as in Stable Diffusion).
        self.final_alpha_cumprod = 1.0 if set_alpha_to_one else float(self.alphas_cumprod[0])
        self._freeze()

    def start(self, num_inference_steps: int | None, device=None, eta: float = 0.0,
              use_clipped_model_output: bool = False, respacing: str = "") -> DDIMRun:
        """A new run of `num_inference_steps` steps; `eta` scales the injected noise (0 = deterministic).

        `respacing` (see `spacing.respaced_timesteps`) picks the timesteps instead, each step going to the
        next one of them, as GLIDE's respaced DDIM does (with its schedule computed in float64, as GLIDE's)."""
        T = self.num_train_timesteps
        alphas_cumprod = self.alphas_cumprod.double().numpy()
        if respacing:
            alphas_cumprod = self.alphas_cumprod_float64().numpy()
            steps = respaced_timesteps(T, respacing, "DDIMScheduler")
            prev = np.append(steps[1:], -1)
        else:
            steps = spaced_timesteps(self.config.timestep_spacing, T, num_inference_steps, self.config.steps_offset,
                                     owner="DDIMScheduler").astype(np.int64)
            # The step size is T // n whatever the spacing, as in diffusers, so files and numbers agree.
            prev = steps - T // num_inference_steps
        alpha_bar_prev = np.where(prev >= 0, alphas_cumprod[np.maximum(prev, 0)], self.final_alpha_cumprod)
        return DDIMRun(self, torch.from_numpy(steps).to(device), alphas_cumprod[steps], alpha_bar_prev,
                       eta, use_clipped_model_output)
