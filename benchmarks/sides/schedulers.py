"""One scheduler's sampling loop over an identity "model" (its output is its input): the per-step cost.

A 1x4x64x64 latent, 50 steps; both libraries get the same noise and the same per-run generator.
"""
from __future__ import annotations

import inspect
import warnings

import torch

STEPS = 50


def _loop(stepper) -> torch.Tensor:
    x = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0)) * stepper.init_noise_sigma
    generator = torch.Generator().manual_seed(1)
    # diffusers' deterministic schedulers (PNDM, DEIS, ...) take no generator.
    options = {"generator": generator} if "generator" in inspect.signature(stepper.step).parameters else {}
    for t in stepper.timesteps:
        x = stepper.step(stepper.scale_model_input(x, t), t, x, **options).prev_sample
    return x


def dgraph_side(name: str):
    import dgraph.schedulers as ours

    scheduler = ours.SCHEDULERS[name]()
    return lambda: _loop(scheduler.start(STEPS))


def diffusers_side(name: str):
    import diffusers

    reference = getattr(diffusers, name)

    def call():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scheduler = reference()
            scheduler.set_timesteps(STEPS)
            return _loop(scheduler)
    return call
