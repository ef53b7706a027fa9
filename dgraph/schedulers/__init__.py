"""Noise schedules and samplers with diffusers-compatible configs (`scheduler_config.json`).

Every scheduler is an immutable object built from its config; sampling state lives in the run that
`scheduler.start(num_inference_steps)` returns, so runs on one scheduler are independent:

    run = scheduler.start(50)
    x = torch.randn(shape, generator=g) * run.init_noise_sigma
    for t in run.timesteps:
        x = run.step(model(run.scale_model_input(x, t), t), t, x, generator=g).prev_sample

The diffusers-style `set_timesteps` / `step` on the scheduler itself works too (over a default run).
Part of a schedule (img2img `strength`, SDXL's `denoising_start` / `denoising_end`): `run.partial(...)`,
then step over `run.loop_timesteps` from `run.initial_sample(noise, image)` (see partial.py).
"""
from __future__ import annotations

import os
from typing import Any, Mapping

from ..errors import ConfigError
from ..hub import Source
from .base import RunOption, SamplingRun, Scheduler, SchedulerOutput
from .ddim import DDIMScheduler
from .ddpm import DDPMScheduler
from .deis import DEISMultistepScheduler
from .dpm_solver import DPMSolverMultistepScheduler
from .euler import EulerDiscreteScheduler
from .euler_ancestral import EulerAncestralDiscreteScheduler
from .heun import HeunDiscreteScheduler
from .lms import LMSDiscreteScheduler
from .partial import Window, partial_window
from .pndm import PNDMScheduler
from .unipc import UniPCMultistepScheduler
from .vocoder_schedules import (DIFFWAVE_BETAS_6, ExplicitBetaSchedule, DIFFWAVE_TRAINING, FASTDIFF_BETAS, FASTDIFF_BETAS_3,
                                FASTDIFF_BETAS_4, FASTDIFF_BETAS_6, FASTDIFF_BETAS_8, FASTDIFF_LJSPEECH_BETAS_4,
                                FASTDIFF_TRAINING, fractional_timesteps)

SCHEDULERS: dict[str, type[Scheduler]] = {
    cls.__name__: cls
    for cls in (DDPMScheduler, DDIMScheduler, PNDMScheduler, DEISMultistepScheduler, DPMSolverMultistepScheduler,
                EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, HeunDiscreteScheduler,
                LMSDiscreteScheduler, UniPCMultistepScheduler)
}


def load_scheduler(pretrained: str | os.PathLike | Source, subfolder: str | None = None,
                   revision: str | None = None, **overrides) -> Scheduler:
    """Build the scheduler a `scheduler_config.json` names in its `_class_name` (folder, Hub repo or package)."""
    config = Scheduler.load_config(pretrained, subfolder, revision)
    name = config.get("_class_name")
    if name not in SCHEDULERS:
        known = ", ".join(sorted(SCHEDULERS))
        raise ConfigError(f"{pretrained}: scheduler_config.json names _class_name={name!r}, which dgraph does not "
                          f"provide; load it with one of {known}, e.g. DDIMScheduler.from_config(config)")
    return SCHEDULERS[name].from_config(config, **overrides)


def select_run_options(scheduler, given: Mapping[str, Any]) -> dict[str, Any]:
    """The options among `given` that `scheduler`'s family declares (`run_options`), for `start`.

    A workflow may pass an option to any family as long as it has the value that leaves a sampler
    unchanged (eta = 0 to Euler, say); any other value for a family without the option is refused,
    so a setting never silently does nothing. None means "not given".
    """
    declared = getattr(scheduler, "run_options", {})
    neutral = {name: option.default for cls in SCHEDULERS.values() for name, option in cls.run_options.items()}
    chosen = {}
    for name, value in given.items():
        if value is None:
            continue
        if name in declared:
            chosen[name] = value
        elif name not in neutral:
            raise ConfigError(f"{name!r} is not a run option of any scheduler; "
                              f"the run options are {', '.join(sorted(neutral))}")
        elif value != neutral[name]:
            takes = ", ".join(declared) or "no run options"
            owners = ", ".join(cls.__name__ for cls in SCHEDULERS.values() if name in cls.run_options)
            raise ConfigError(f"{name}={value!r} only applies to {owners}; {type(scheduler).__name__} takes "
                              f"{takes}: remove {name} or set it to {neutral[name]!r}")
    return chosen


__all__ = [
    "SCHEDULERS", "load_scheduler", "select_run_options", "RunOption", "Scheduler", "SamplingRun", "SchedulerOutput",
    "Window", "partial_window",
    "DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "DEISMultistepScheduler", "DPMSolverMultistepScheduler",
    "EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler", "LMSDiscreteScheduler",
    "UniPCMultistepScheduler",
    "FASTDIFF_BETAS", "FASTDIFF_BETAS_3", "FASTDIFF_BETAS_4", "FASTDIFF_BETAS_6", "FASTDIFF_BETAS_8",
    "FASTDIFF_LJSPEECH_BETAS_4", "FASTDIFF_TRAINING", "DIFFWAVE_BETAS_6", "DIFFWAVE_TRAINING", "fractional_timesteps", "ExplicitBetaSchedule",
]
