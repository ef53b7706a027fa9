"""Linear multistep (Adams–Bashforth in sigma) on the probability-flow ODE, after k-diffusion's `sample_lms`."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..configuration import register_to_config
from .base import RunOption, Scheduler, SchedulerOutput, check_choice
from .euler import sigma_x0
from .sigma_schedule import SigmaRun, discrete_sigma_schedule
from .spacing import sigma_spacing


def lms_coefficient(sigmas: Sequence[float], order: int, index: int, which: int) -> float:
    """∫ from sigma_i to sigma_{i+1} of the Lagrange basis polynomial of the `which`-th past sigma.

    The integrand is a polynomial, so it is integrated exactly rather than by quadrature.
    """
    nodes = [sigmas[index - k] for k in range(order)]
    polynomial = np.poly1d([1.0])
    for k, node in enumerate(nodes):
        if k != which:
            polynomial *= np.poly1d([1.0, -node]) / (nodes[which] - node)
    integral = polynomial.integ()
    return float(integral(sigmas[index + 1]) - integral(sigmas[index]))


class LMSRun(SigmaRun):
    def __init__(self, scheduler, timesteps, sigmas, order: int):
        super().__init__(scheduler, timesteps, sigmas)
        self.lms_order = order
        self.derivatives: list[torch.Tensor] = []  # newest last

    def _step(self, index, model_output, sample, generator, order: int | None = None):
        sigma = self.sigma_values[index]
        x0 = sigma_x0(self.config.prediction_type, model_output, sample, sigma)
        self.derivatives.append((sample - x0) / sigma)
        max_order = self.lms_order if order is None else order
        if len(self.derivatives) > max_order:
            self.derivatives.pop(0)
        used = min(index + 1, max_order)
        coefficients = [lms_coefficient(self.sigma_values, used, index, k) for k in range(used)]
        prev_sample = sample + sum(c * d for c, d in zip(coefficients, reversed(self.derivatives)))
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)


class LMSDiscreteScheduler(Scheduler):
    """LMS sampler; `start(n, order=4)` sets how many past slopes each step uses."""

    order = 1
    run_options = {"order": RunOption(4, "LMS: how many past slopes each step uses (1-4)")}

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas: Sequence[float] | None = None,
                 use_karras_sigmas: bool = False, use_exponential_sigmas: bool = False,
                 use_beta_sigmas: bool = False, prediction_type: str = "epsilon",
                 timestep_spacing: str = "linspace", steps_offset: int = 0):
        owner = "LMSDiscreteScheduler"
        check_choice(owner, "prediction_type", prediction_type, ("epsilon", "sample", "v_prediction"))
        sigma_spacing(self.config, owner)  # refuses two spacings at once
        self._init_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        self._freeze()

    def start(self, num_inference_steps: int, device=None, order: int = 4) -> LMSRun:
        owner = "LMSDiscreteScheduler"
        timesteps, sigmas = discrete_sigma_schedule(self.alphas_cumprod, self.config, num_inference_steps, owner,
                                                    spacing=sigma_spacing(self.config, owner))
        return LMSRun(self, torch.from_numpy(timesteps).to(device), torch.from_numpy(sigmas), order)

    def _training_run(self) -> LMSRun:
        # diffusers' LMS sets a run of every training step at construction.
        return self.start(self.num_train_timesteps)

