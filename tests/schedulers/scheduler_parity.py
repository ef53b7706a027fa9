"""Helpers shared by the scheduler tests: a deterministic dummy denoiser and full sampling loops."""
from __future__ import annotations

import inspect
import math

import diffusers
import numpy as np
import torch

import dgraph.schedulers as ours

SHAPE = (2, 3, 8, 8)
DATA_VARIANCE = 0.25


class DummyDenoiser:
    """A fixed nonlinear function of the sample and the timestep that behaves like a trained denoiser.

    It is the ideal denoiser for data ~ N(0, 0.25) plus small nonlinear terms, so sampling loops
    converge to samples of order 1 (a model that is not consistent with any data makes the loops
    diverge, and float32 rounding then swamps any comparison). alpha_bar at a fractional timestep is
    interpolated from the training table.
    """

    def __init__(self, alphas_cumprod: torch.Tensor, prediction_type: str = "epsilon",
                 variance_channels: bool = False):
        self.table = alphas_cumprod.double().numpy()
        self.prediction_type = prediction_type
        self.variance_channels = variance_channels

    def __call__(self, sample: torch.Tensor, t) -> torch.Tensor:
        alpha_bar = float(np.interp(float(t), np.arange(len(self.table)), self.table))
        a, s = math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar)
        denominator = a * a * DATA_VARIANCE + s * s
        eps = s * sample / denominator + 0.05 * s * torch.tanh(3 * sample)
        x0 = a * DATA_VARIANCE * sample / denominator + 0.05 * torch.sin(2 * sample)
        if self.prediction_type == "epsilon":
            out = eps
        elif self.prediction_type == "sample":
            out = x0
        else:
            out = a * eps - s * x0
        if self.variance_channels:
            out = torch.cat([out, torch.tanh(sample + 0.01 * float(t))], dim=1)
        return out


def initial_sample(seed: int = 0) -> torch.Tensor:
    return torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))


def run_loop(stepper_owner, steps: int, model, seed: int = 0, start_options=None, step_options=None,
             use_run: bool = True) -> torch.Tensor:
    """Sample with a scheduler (ours through a run, or a diffusers one through set_timesteps)."""
    generator = torch.Generator().manual_seed(1234 + seed)
    if use_run:
        stepper = stepper_owner.start(steps, **(start_options or {}))
    else:
        stepper_owner.set_timesteps(steps)
        stepper = stepper_owner
    options = dict(step_options or {})
    if "generator" in inspect.signature(stepper.step).parameters:
        options["generator"] = generator
    x = initial_sample(seed) * stepper.init_noise_sigma
    for t in stepper.timesteps:
        x = stepper.step(model(stepper.scale_model_input(x, t), t), t, x, **options).prev_sample
    return x


def compare(name: str, config: dict, steps: int, run_options: dict | None = None, seed: int = 0,
            variance_channels: bool = False):
    """(diffusers' result, ours) for one full loop with the same model, noise and config.

    `run_options` go to our `start` and to diffusers' `step` (DDIM's eta, Euler's churn, LMS's order).
    """
    reference = getattr(diffusers, name).from_config(config)
    mine = getattr(ours, name).from_config(config)
    model = DummyDenoiser(reference.alphas_cumprod, config.get("prediction_type", "epsilon"), variance_channels)
    expected = run_loop(reference, steps, model, seed, step_options=run_options, use_run=False)
    got = run_loop(mine, steps, model, seed, start_options=run_options)
    return expected, got
