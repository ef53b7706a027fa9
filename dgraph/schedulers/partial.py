"""Runs over part of their schedule: image-to-image `strength` and SDXL's `denoising_start` / `denoising_end`.

A partial run keeps its whole schedule (the multistep solvers' step rules depend on where a step sits in
it); only the steps it takes are a window [begin, end) of its timesteps. The window follows diffusers'
pipelines exactly:

- strength s (StableDiffusionImg2ImgPipeline): of n steps the last min(int(n·s), n) are taken; a
  second-order sampler (Heun, two timesteps per step) enters at index t_start·order.
- denoising_start f (the SDXL refiner): the timesteps below round(T - f·T) are taken (T training
  steps); for a second-order sampler an even count grows by one so that the run never enters between
  the two halves of a step. The input is then latents already noisy at that point (no noising).
- denoising_end f (the SDXL base): the run stops before its first timestep below round(T - f·T), and
  hands its still-noisy latents over.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class Window:
    """The steps a partial run takes: timesteps[begin:end], and whether it enters at `begin` (img2img,
    refiner) so that stepping and noising start there, and whether its input is already noisy there."""

    begin: int
    end: int
    enters: bool
    continues_noisy: bool


def _fraction(owner: str, name: str, value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{owner}: {name} must be a fraction strictly between 0 and 1 ({what}), got {value!r}; "
                          f"leave {name} out to run the whole schedule")
    return float(value)


def _cutoff(num_train_timesteps: int, fraction: float) -> int:
    """The training timestep where a fraction of the denoising is done, as diffusers rounds it."""
    return int(round(num_train_timesteps - fraction * num_train_timesteps))


def strength_start(owner: str, steps: int, strength: float) -> int:
    """t_start: how many of `steps` steps a run with img2img `strength` skips (diffusers' get_timesteps)."""
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0 < strength <= 1:
        raise ConfigError(f"{owner}: strength must be in (0, 1] (1 = start from pure noise, smaller keeps more "
                          f"of the image), got {strength!r}")
    taken = min(int(steps * strength), steps)
    if taken < 1:
        needed = math.ceil(1 / strength)
        while int(needed * strength) < 1:  # float rounding of steps · strength
            needed += 1
        lowest = math.ceil(1e4 / steps) / 1e4  # 1 / steps, rounded up so that the advice works as printed
        while int(steps * lowest) < 1:
            lowest += 1e-4
        raise ConfigError(f"{owner}: strength={strength} with {steps} steps leaves no step to take "
                          f"(int({steps} × {strength}) = 0); raise strength to at least {lowest:g} or "
                          f"steps to at least {needed}")
    return steps - taken


def partial_window(timesteps: torch.Tensor, order: int, steps: int, num_train_timesteps: int, owner: str,
                   strength: float | None = None, denoising_start: float | None = None,
                   denoising_end: float | None = None) -> Window:
    """The window of `timesteps` (a run of `steps` requested steps, `order` model calls per step) to take."""
    total = len(timesteps)
    if strength is not None and denoising_start is not None:
        raise ConfigError(f"{owner}: give strength or denoising_start, not both (denoising_start fixes where the "
                          f"run starts, strength would be ignored as diffusers ignores it)")
    if denoising_end is not None:
        denoising_end = _fraction(owner, "denoising_end", denoising_end, "the part of the denoising done before "
                                                                         "the run stops")
    begin, enters, continues_noisy = 0, False, False
    if strength is not None:
        begin, enters = strength_start(owner, steps, strength) * order, True
    elif denoising_start is not None:
        denoising_start = _fraction(owner, "denoising_start", denoising_start, "the part of the denoising done "
                                                                               "before the run starts")
        if denoising_end is not None and denoising_start >= denoising_end:
            raise ConfigError(f"{owner}: denoising_start={denoising_start} must be smaller than "
                              f"denoising_end={denoising_end}")
        cutoff = _cutoff(num_train_timesteps, denoising_start)
        taken = int((timesteps < cutoff).sum())
        if order == 2 and taken % 2 == 0:
            taken += 1  # every timestep but the first is doubled: never enter between a step's two halves
        if taken < 1 or taken > total:
            raise ConfigError(f"{owner}: denoising_start={denoising_start} leaves no step of this {steps}-step run "
                              f"(no timestep below {cutoff}); lower denoising_start or use more steps")
        begin, enters, continues_noisy = total - taken, True, True
    end = total
    if denoising_end is not None:
        cutoff = _cutoff(num_train_timesteps, denoising_end)
        kept = int((timesteps[begin:] >= cutoff).sum())
        if kept < 1:
            first = float(timesteps[begin])
            raise ConfigError(f"{owner}: denoising_end={denoising_end} stops the run before its first step "
                              f"(timestep {first:g} is below {cutoff}); raise denoising_end or leave it out")
        end = begin + kept
    return Window(begin, end, enters, continues_noisy)
