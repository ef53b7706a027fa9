"""unCLIP's sampler (Karlo): DDPM's posterior step over a sparse schedule that always ends at t = 0.

It differs from `DDPMScheduler` in three ways, each kept because Karlo's models were sampled so: the
timesteps are round(i · (T - 1) / (n - 1)) for i = n-1 ... 0 (both ends included); the beta of a step is
re-derived from the two alpha_bars it joins (1 - alpha_bar_t / alpha_bar_prev) except between neighbours,
where the training beta is used; and a learned-range variance interpolates between the log of the unfloored
posterior variance and log beta. Only the cosine training schedule exists, as in diffusers.
"""
from __future__ import annotations

import numpy as np
import torch

from ..configuration import register_to_config
from ..errors import ConfigError
from .base import SamplingRun, Scheduler, SchedulerOutput, check_choice, gaussian_noise

VARIANCE_TYPES = ("fixed_small_log", "learned_range")


class UnCLIPRun(SamplingRun):
    """One unCLIP run; step i goes from timesteps[i] to timesteps[i + 1] (to t - 1 after the last)."""

    def __init__(self, scheduler: "UnCLIPScheduler", timesteps: torch.Tensor):
        super().__init__(scheduler, timesteps)
        steps = timesteps.tolist()
        self.previous = steps[1:] + [steps[-1] - 1]

    @property
    def reads_learned_variance(self) -> bool:
        return self.config.variance_type == "learned_range"

    def _step(self, index, model_output, sample, generator, prev_timestep: int | None = None, **options):
        t = int(self.timesteps[index])
        prev = self.previous[index] if prev_timestep is None else int(prev_timestep)
        config, scheduler = self.config, self.scheduler
        predicted_variance = None
        if config.variance_type == "learned_range" and model_output.shape[1] == 2 * sample.shape[1]:
            model_output, predicted_variance = torch.split(model_output, sample.shape[1], dim=1)

        # Float32 scalars, formed as diffusers forms them.
        alpha_bar = scheduler.alphas_cumprod[t]
        alpha_bar_prev = scheduler.alphas_cumprod[prev] if prev >= 0 else torch.tensor(1.0)
        beta_prod, beta_prod_prev = 1 - alpha_bar, 1 - alpha_bar_prev
        if prev == t - 1:
            beta, alpha = scheduler.betas[t], scheduler.alphas[t]
        else:
            beta = 1 - alpha_bar / alpha_bar_prev
            alpha = 1 - beta

        if config.prediction_type == "epsilon":
            x0 = (sample - beta_prod ** 0.5 * model_output) / alpha_bar ** 0.5
        else:
            x0 = model_output
        if config.clip_sample:
            x0 = x0.clamp(-config.clip_sample_range, config.clip_sample_range)
        prev_sample = (alpha_bar_prev ** 0.5 * beta) / beta_prod * x0 + alpha ** 0.5 * beta_prod_prev / beta_prod * sample

        if t > 0:
            noise = gaussian_noise(model_output, generator)
            variance = beta_prod_prev / beta_prod * beta
            if config.variance_type == "fixed_small_log":
                std = torch.exp(0.5 * torch.log(variance.clamp(min=1e-20)))
            else:
                if predicted_variance is None:
                    raise ConfigError("UnCLIPScheduler: variance_type='learned_range' needs a model output with twice "
                                      "the sample's channels (noise prediction, then variance)")
                fraction = (predicted_variance + 1) / 2
                std = (0.5 * (fraction * beta.log() + (1 - fraction) * variance.log())).exp()
            prev_sample = prev_sample + std * noise
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)


class UnCLIPScheduler(Scheduler):
    """The sampler of Karlo's prior, decoder and super-resolution stages (diffusers' `UnCLIPScheduler`).

    `step(..., prev_timestep=...)` on the diffusers-style API steps to a timestep of the caller's choosing;
    a run steps to the next timestep of its schedule.
    """

    shares_configs = False

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, variance_type: str = "fixed_small_log",
                 clip_sample: bool = True, clip_sample_range: float = 1.0, prediction_type: str = "epsilon",
                 beta_schedule: str = "squaredcos_cap_v2"):
        check_choice("UnCLIPScheduler", "variance_type", variance_type, VARIANCE_TYPES)
        check_choice("UnCLIPScheduler", "prediction_type", prediction_type, ("epsilon", "sample"))
        check_choice("UnCLIPScheduler", "beta_schedule", beta_schedule, ("squaredcos_cap_v2",))
        self._init_schedule(num_train_timesteps, 0.0001, 0.02, beta_schedule, None)
        self._freeze()

    def start(self, num_inference_steps: int | None = None, device=None) -> UnCLIPRun:
        """A run of n timesteps from T - 1 down to 0 (every training step if n is None)."""
        total = self.num_train_timesteps
        if num_inference_steps is None:
            return UnCLIPRun(self, torch.arange(total - 1, -1, -1).to(device))
        if not 2 <= num_inference_steps <= total:
            raise ConfigError(f"UnCLIPScheduler: num_inference_steps={num_inference_steps} must lie in [2, {total}] "
                              f"(its schedule always holds both t = {total - 1} and t = 0)")
        ratio = (total - 1) / (num_inference_steps - 1)
        steps = (np.arange(0, num_inference_steps) * ratio).round()[::-1].copy().astype(np.int64)
        return UnCLIPRun(self, torch.from_numpy(steps).to(device))

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, prev_timestep: int | None = None,
             generator: torch.Generator | None = None, return_dict: bool = True):
        """diffusers' call, in its argument order: the step from `timestep` to `prev_timestep`, which defaults
        to timestep - 1 (pass the next timestep of the schedule, as unCLIP's pipelines do, to skip ahead)."""
        prev_timestep = int(timestep) - 1 if prev_timestep is None else int(prev_timestep)
        output = self._run().step(model_output, timestep, sample, generator=generator, prev_timestep=prev_timestep)
        return output if return_dict else (output.prev_sample, output.pred_original_sample)

    def _training_run(self) -> UnCLIPRun:
        # diffusers' UnCLIPScheduler holds every training step until set_timesteps is called.
        return self.start(None)
