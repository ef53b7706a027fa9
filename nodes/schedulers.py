"""One node per scheduler family: build it from parameters, or from a `scheduler_config.json` source with
parameters overriding the file. Any family reads any other family's config (swap samplers on one model)."""
from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal, Optional

from pydantic import Field

from dgraph.node import Context, node
from dgraph.schedulers import (DDIMScheduler, DDPMScheduler, DEISMultistepScheduler, DPMSolverMultistepScheduler,
                               EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler,
                               LMSDiscreteScheduler, PNDMScheduler, UniPCMultistepScheduler)
from dgraph.schedulers.base import Scheduler as SchedulerBase
from dgraph.types import Scheduler, Source

BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2"]
Prediction = Literal["epsilon", "sample", "v_prediction"]
Spacing = Literal["leading", "trailing", "linspace"]

# Parameters every family takes; None keeps the config file's value (or the family's default).
COMMON: dict[str, Any] = {
    "num_train_timesteps": Optional[Annotated[int, Field(ge=1, le=100_000)]],
    "beta_start": Optional[Annotated[float, Field(gt=0, lt=1)]],
    "beta_end": Optional[Annotated[float, Field(gt=0, lt=1)]],
    "beta_schedule": Optional[BetaSchedule],
    "prediction_type": Optional[Prediction],
    "timestep_spacing": Optional[Spacing],
    "steps_offset": Optional[Annotated[int, Field(ge=0)]],
}
KARRAS = {"use_karras_sigmas": Optional[bool]}
THRESHOLD = {"thresholding": Optional[bool], "dynamic_thresholding_ratio": Optional[Annotated[float, Field(gt=0, le=1)]],
             "sample_max_value": Optional[Annotated[float, Field(gt=0)]]}

FAMILIES: dict[str, tuple[type[SchedulerBase], dict[str, Any]]] = {
    "ddpm": (DDPMScheduler, {"variance_type": Optional[Literal["fixed_small", "fixed_small_log", "fixed_large",
                                                                 "fixed_large_log", "learned", "learned_range"]],
                             "clip_sample": Optional[bool], "rescale_betas_zero_snr": Optional[bool], **THRESHOLD}),
    "ddim": (DDIMScheduler, {"clip_sample": Optional[bool], "set_alpha_to_one": Optional[bool],
                             "rescale_betas_zero_snr": Optional[bool], **THRESHOLD}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": Optional[bool], "set_alpha_to_one": Optional[bool]}),
    "deis": (DEISMultistepScheduler, {"solver_order": Optional[Annotated[int, Field(ge=1, le=3)]], **KARRAS}),
    "dpm_solver": (DPMSolverMultistepScheduler, {
        "solver_order": Optional[Annotated[int, Field(ge=1, le=3)]],
        "algorithm_type": Optional[Literal["dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver"]],
        "solver_type": Optional[Literal["midpoint", "heun"]], **KARRAS}),
    "euler": (EulerDiscreteScheduler, {**KARRAS}),
    "euler_ancestral": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {**KARRAS}),
    "lms": (LMSDiscreteScheduler, {**KARRAS}),
    "unipc": (UniPCMultistepScheduler, {"solver_order": Optional[Annotated[int, Field(ge=1, le=3)]], **KARRAS}),
}


def build_scheduler(cls: type[SchedulerBase], ctx: Context, config: str | None, overrides: dict[str, Any]):
    """The scheduler `cls` from an optional config source, with the given (non-None) overrides."""
    values: dict[str, Any] = {}
    if config is not None:
        values.update(cls.load_config(ctx.resolve_source(config)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls.from_config(values, warn_unknown=False)


def _family_node(family: str, cls: type[SchedulerBase], extras: dict[str, Any]):
    parameters = {**COMMON, **extras}

    def make(ctx: Context, config: Optional[Source] = None, **overrides: Any):
        return build_scheduler(cls, ctx, config, overrides)

    signature = [inspect.Parameter("ctx", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Context),
                 inspect.Parameter("config", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Optional[Source])]
    signature += [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=annotation)
                  for name, annotation in parameters.items()]
    make.__signature__ = inspect.Signature(signature, return_annotation=Scheduler)
    make.__annotations__ = {"ctx": Context, "config": Optional[Source], **parameters, "return": Scheduler}
    make.__name__ = make.__qualname__ = f"scheduler_{family}"
    make.__doc__ = (f"A {cls.__name__}, from parameters or a scheduler_config.json.\n\n"
                    "config: a scheduler_config.json source (folder, hf://repo/scheduler@rev, pkg://...); "
                    "parameters override it")
    return node(f"scheduler.{family}", description=f"{cls.__name__} from parameters or a config file.")(make)


for _family, (_cls, _extras) in FAMILIES.items():
    globals()[f"scheduler_{_family}"] = _family_node(_family, _cls, _extras)
