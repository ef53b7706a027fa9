"""One node per scheduler family: build it from parameters, or from a `scheduler_config.json` source with
parameters overriding the file. Any family reads any other family's config (swap samplers on one model)."""
from __future__ import annotations

import inspect
from typing import Annotated, Any, Literal, Optional

from pydantic import Field

from dgraph.node import Context, node
from dgraph.schedulers import (DDIMScheduler, DDPMScheduler, DEISMultistepScheduler, DPMSolverMultistepScheduler,
                               EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler,
                               LMSDiscreteScheduler, PNDMScheduler, UnCLIPScheduler, UniPCMultistepScheduler,
                               load_scheduler)
from dgraph.schedulers.base import Scheduler as SchedulerBase
from dgraph.types import Scheduler, Source

BetaSchedule = Literal["linear", "scaled_linear", "squaredcos_cap_v2", "exp"]
Prediction = Literal["epsilon", "sample", "v_prediction"]
Spacing = Literal["leading", "trailing", "linspace"]
Order = Optional[Annotated[int, Field(ge=1, le=3)]]
FinalSigmas = Optional[Literal["zero", "sigma_min"]]

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
# The sigma spacings (at most one of them may be set).
SIGMA_SPACINGS = {"use_karras_sigmas": Optional[bool], "use_exponential_sigmas": Optional[bool],
                  "use_beta_sigmas": Optional[bool]}
THRESHOLD = {"thresholding": Optional[bool], "dynamic_thresholding_ratio": Optional[Annotated[float, Field(gt=0, le=1)]],
             "sample_max_value": Optional[Annotated[float, Field(gt=0)]]}

# The one table of scheduler node types: node type "scheduler.<family>" builds that class, with the
# common parameters and the family's own. Run-time options (DDIM's eta, Euler's churn, LMS's order)
# are not here: each class declares them (`run_options`) and `sample.loop` takes them.
FAMILIES: dict[str, tuple[type[SchedulerBase], dict[str, Any]]] = {
    "ddpm": (DDPMScheduler, {"variance_type": Optional[Literal["fixed_small", "fixed_small_log", "fixed_large",
                                                                 "fixed_large_log", "learned", "learned_range"]],
                             "clip_sample": Optional[bool], "rescale_betas_zero_snr": Optional[bool], **THRESHOLD}),
    "ddim": (DDIMScheduler, {"clip_sample": Optional[bool], "set_alpha_to_one": Optional[bool],
                             "rescale_betas_zero_snr": Optional[bool], **THRESHOLD}),
    "pndm": (PNDMScheduler, {"skip_prk_steps": Optional[bool], "set_alpha_to_one": Optional[bool]}),
    "deis": (DEISMultistepScheduler, {"solver_order": Order, **SIGMA_SPACINGS}),
    "dpm_solver": (DPMSolverMultistepScheduler, {
        "solver_order": Order,
        "algorithm_type": Optional[Literal["dpmsolver++", "sde-dpmsolver++", "dpmsolver", "sde-dpmsolver"]],
        "solver_type": Optional[Literal["midpoint", "heun"]], "use_lu_lambdas": Optional[bool],
        "final_sigmas_type": FinalSigmas, **SIGMA_SPACINGS}),
    "euler": (EulerDiscreteScheduler, {"final_sigmas_type": FinalSigmas, **SIGMA_SPACINGS}),
    "euler_ancestral": (EulerAncestralDiscreteScheduler, {}),
    "heun": (HeunDiscreteScheduler, {**SIGMA_SPACINGS}),
    "lms": (LMSDiscreteScheduler, {**SIGMA_SPACINGS}),
    "unipc": (UniPCMultistepScheduler, {"solver_order": Order, "final_sigmas_type": FinalSigmas, **SIGMA_SPACINGS}),
}


def build_scheduler(cls: type[SchedulerBase], ctx: Context, config: str | None, overrides: dict[str, Any]):
    """The scheduler `cls` from an optional config source, with the given (non-None) overrides."""
    values: dict[str, Any] = {}
    if config is not None:
        values.update(cls.load_config(ctx.resolve_source(config)))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return cls.from_config(values, warn_unknown=False)


def family_node(family: str):
    """The node type `scheduler.<family>` of the FAMILIES table: its class, from parameters or a config file."""
    cls, extras = FAMILIES[family]
    parameters = {**COMMON, **extras}

    def make(ctx: Context, config: Optional[Source] = None, **overrides: Any):
        return build_scheduler(cls, ctx, config, overrides)

    # The node's parameters come from the table (pydantic reads them off the signature).
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


scheduler_ddpm = family_node("ddpm")
scheduler_ddim = family_node("ddim")
scheduler_pndm = family_node("pndm")
scheduler_deis = family_node("deis")
scheduler_dpm_solver = family_node("dpm_solver")
scheduler_euler = family_node("euler")
scheduler_euler_ancestral = family_node("euler_ancestral")
scheduler_heun = family_node("heun")
scheduler_lms = family_node("lms")
scheduler_unipc = family_node("unipc")


# unCLIP's sampler has a fixed cosine schedule and spacing of its own, so it takes none of COMMON's keys.
@node("scheduler.unclip", description="UnCLIPScheduler (Karlo's prior, decoder and super-resolution sampler) from "
                                      "parameters or a config file.")
def scheduler_unclip(ctx: Context, config: Optional[Source] = None,
                     num_train_timesteps: Optional[Annotated[int, Field(ge=2, le=100_000)]] = None,
                     variance_type: Optional[Literal["fixed_small_log", "learned_range"]] = None,
                     clip_sample: Optional[bool] = None,
                     clip_sample_range: Optional[Annotated[float, Field(gt=0)]] = None,
                     prediction_type: Optional[Literal["epsilon", "sample"]] = None) -> Scheduler:
    """An UnCLIPScheduler, from parameters or a scheduler_config.json.

    config: a scheduler_config.json source (folder, hf://repo/scheduler@rev, pkg://...); parameters override it
    variance_type: fixed_small_log (the prior, super-resolution) or learned_range (the decoder's learned variance)
    clip_sample: clip the predicted x0 to [-clip_sample_range, clip_sample_range]
    """
    return build_scheduler(UnCLIPScheduler, ctx, config, dict(
        num_train_timesteps=num_train_timesteps, variance_type=variance_type, clip_sample=clip_sample,
        clip_sample_range=clip_sample_range, prediction_type=prediction_type))


@node("load.scheduler", description="Load the scheduler a scheduler_config.json names (its _class_name).")
def load_scheduler_node(ctx: Context, config: Source) -> Scheduler:
    """A pipeline's own sampler, whichever family it is (PNDM for SD 1.x, Euler for SDXL, ...); to swap it,
    use the family's node (scheduler.euler, ...) with the same config.

    config: a scheduler_config.json source (folder, hf://repo/scheduler@rev, pkg://...)
    """
    return load_scheduler(ctx.resolve_source(config))
