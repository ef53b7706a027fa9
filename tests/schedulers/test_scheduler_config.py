"""scheduler_config.json in both directions, class lookup, and the errors a config can cause."""
from __future__ import annotations

import json
import logging

import diffusers
import pytest
import torch

import dgraph.schedulers as ours
from dgraph.errors import ConfigError

NAMES = sorted(ours.SCHEDULERS)

# Non-default options per family, so the round trips carry real values.
OPTIONS = {
    "DDPMScheduler": {"variance_type": "learned_range", "beta_schedule": "squaredcos_cap_v2", "timestep_spacing": "trailing"},
    "DDIMScheduler": {"set_alpha_to_one": False, "steps_offset": 1, "beta_schedule": "scaled_linear",
                      "beta_start": 0.00085, "beta_end": 0.012, "prediction_type": "v_prediction"},
    "PNDMScheduler": {"skip_prk_steps": True, "steps_offset": 1},
    "DEISMultistepScheduler": {"solver_order": 3, "use_karras_sigmas": True},
    "DPMSolverMultistepScheduler": {"solver_order": 3, "algorithm_type": "sde-dpmsolver++", "use_karras_sigmas": True},
    "EulerDiscreteScheduler": {"use_karras_sigmas": True, "timestep_spacing": "leading", "steps_offset": 1},
    "EulerAncestralDiscreteScheduler": {"timestep_spacing": "trailing", "prediction_type": "v_prediction"},
    "HeunDiscreteScheduler": {"use_karras_sigmas": True, "beta_schedule": "scaled_linear"},
    "LMSDiscreteScheduler": {"use_karras_sigmas": True, "num_train_timesteps": 500},
    "UniPCMultistepScheduler": {"solver_type": "bh1", "disable_corrector": [0], "final_sigmas_type": "sigma_min"},
    "UnCLIPScheduler": {"variance_type": "learned_range", "clip_sample_range": 5.0, "prediction_type": "sample"},
}


def _same_schedule(mine, theirs, steps=13):
    run = mine.start(steps)
    theirs.set_timesteps(steps)
    assert torch.equal(run.timesteps.double(), theirs.timesteps.double())
    if run.sigmas is not None:
        torch.testing.assert_close(run.sigmas, theirs.sigmas.float(), rtol=1e-6, atol=0)


def test_the_registry_names_diffusers_classes():
    assert NAMES == sorted(["DDPMScheduler", "DDIMScheduler", "PNDMScheduler", "DEISMultistepScheduler",
                            "DPMSolverMultistepScheduler", "EulerDiscreteScheduler",
                            "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler", "LMSDiscreteScheduler",
                            "UniPCMultistepScheduler", "UnCLIPScheduler"])
    for name, cls in ours.SCHEDULERS.items():
        assert cls.config_name == "scheduler_config.json" == getattr(diffusers, name).config_name


@pytest.mark.parametrize("name", NAMES)
def test_file_written_by_dgraph_loads_in_diffusers(name, tmp_path):
    mine = ours.SCHEDULERS[name](**OPTIONS[name])
    mine.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "scheduler_config.json").read_text())
    assert saved["_class_name"] == name
    theirs = getattr(diffusers, name).from_pretrained(tmp_path)
    for key, value in OPTIONS[name].items():
        assert theirs.config[key] == value
    _same_schedule(mine, theirs)


@pytest.mark.parametrize("name", NAMES)
def test_file_written_by_diffusers_loads_in_dgraph(name, tmp_path, caplog):
    getattr(diffusers, name)(**OPTIONS[name]).save_pretrained(tmp_path)
    with caplog.at_level(logging.WARNING, logger="dgraph"):
        mine = ours.SCHEDULERS[name].from_pretrained(tmp_path)
        loaded = ours.load_scheduler(str(tmp_path))
    assert caplog.records == []  # every key diffusers writes is understood
    assert type(loaded) is type(mine)
    assert dict(loaded.config) == dict(mine.config)
    for key, value in OPTIONS[name].items():
        assert mine.config[key] == value
    _same_schedule(mine, getattr(diffusers, name).from_pretrained(tmp_path))


def test_load_scheduler_picks_the_class_and_applies_overrides(tmp_path):
    ours.DDIMScheduler(steps_offset=1).save_pretrained(tmp_path / "scheduler")
    scheduler = ours.load_scheduler(tmp_path, subfolder="scheduler", clip_sample=False)
    assert isinstance(scheduler, ours.DDIMScheduler)
    assert scheduler.config.steps_offset == 1 and scheduler.config.clip_sample is False


def test_swapping_samplers_on_one_config_is_quiet(caplog):
    ddpm = ours.DDPMScheduler(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012)
    with caplog.at_level(logging.WARNING, logger="dgraph"):
        for cls in ours.DDPMScheduler().compatibles:
            swapped = cls.from_config({"_class_name": "DDPMScheduler", **ddpm.config})
            assert swapped.config.beta_schedule == "scaled_linear"
    assert caplog.records == []
    assert torch.equal(ours.DDIMScheduler.from_config(ddpm.config).alphas_cumprod, ddpm.alphas_cumprod)


def test_unknown_keys_in_a_file_of_the_same_class_warn(tmp_path, caplog):
    (tmp_path / "scheduler_config.json").write_text(json.dumps(
        {"_class_name": "DDIMScheduler", "steps_offset": 1, "warp_factor": 9, "_diffusers_version": "0.30.0"}))
    with caplog.at_level(logging.WARNING, logger="dgraph"):
        scheduler = ours.DDIMScheduler.from_pretrained(tmp_path)
    assert scheduler.config.steps_offset == 1
    assert [r.getMessage() for r in caplog.records] == ["config: DDIMScheduler ignores unknown config keys: warp_factor"]


def test_unknown_class_name_is_refused(tmp_path):
    (tmp_path / "scheduler_config.json").write_text(json.dumps({"_class_name": "KarrasVeScheduler"}))
    with pytest.raises(ConfigError) as error:
        ours.load_scheduler(str(tmp_path))
    assert str(error.value) == (
        f"{tmp_path}: scheduler_config.json names _class_name='KarrasVeScheduler', which dgraph does not provide; "
        f"load it with one of {', '.join(NAMES)}, e.g. DDIMScheduler.from_config(config)")


@pytest.mark.parametrize("cls, config, message", [
    (ours.DDPMScheduler, {"beta_schedule": "sigmoid"},
     "DDPMScheduler: beta_schedule 'sigmoid' is not supported; use one of linear, scaled_linear, "
     "squaredcos_cap_v2, exp or give trained_betas"),
    (ours.DDPMScheduler, {"variance_type": "huge"},
     "DDPMScheduler: variance_type='huge' is not supported; use one of 'fixed_small', 'fixed_small_log', "
     "'fixed_large', 'fixed_large_log', 'learned', 'learned_range'"),
    (ours.EulerDiscreteScheduler, {"use_exponential_sigmas": True, "use_karras_sigmas": True},
     "EulerDiscreteScheduler: use_karras_sigmas, use_exponential_sigmas are set together; set at most one of them"),
    (ours.DPMSolverMultistepScheduler, {"use_flow_sigmas": True},
     "DPMSolverMultistepScheduler: use_flow_sigmas=True is not supported by dgraph; remove it from the config "
     "or set it to False"),
    (ours.DPMSolverMultistepScheduler, {"algorithm_type": "sde-dpmsolver", "solver_order": 3,
                                        "final_sigmas_type": "sigma_min"},
     "DPMSolverMultistepScheduler: algorithm_type='sde-dpmsolver' has no third-order update; use solver_order 1 "
     "or 2, or algorithm_type='sde-dpmsolver++'"),

    (ours.DPMSolverMultistepScheduler, {"algorithm_type": "dpmsolver"},
     "DPMSolverMultistepScheduler: final_sigmas_type='zero' needs a data-prediction algorithm; use "
     "algorithm_type='dpmsolver++' or final_sigmas_type='sigma_min'"),
    (ours.PNDMScheduler, {"num_train_timesteps": -1},
     "PNDMScheduler: num_train_timesteps must be a positive integer, got -1"),
    (ours.UniPCMultistepScheduler, {"solver_order": 4},
     "UniPCMultistepScheduler: solver_order=4 is not supported; use one of 1, 2, 3"),
])
def test_bad_configs_say_what_and_how_to_fix(cls, config, message):
    with pytest.raises(ConfigError) as error:
        cls.from_config(config)
    assert str(error.value) == message


def test_pndm_runge_kutta_needs_four_steps():
    with pytest.raises(ConfigError) as error:
        ours.PNDMScheduler().start(3)
    assert str(error.value) == ("PNDMScheduler: the Runge-Kutta warm-up needs num_inference_steps >= 4, got 3; "
                                "ask for more steps or set skip_prk_steps=True")
    assert len(ours.PNDMScheduler(skip_prk_steps=True).start(3)) == 4


def test_a_diffusers_deis_config_reads_as_dpm_solver_plus_plus():
    scheduler = ours.DPMSolverMultistepScheduler.from_config(diffusers.DEISMultistepScheduler().config)
    assert scheduler.config.algorithm_type == "dpmsolver++" and scheduler.config.solver_type == "midpoint"
    assert scheduler.config.algorithm_type == diffusers.DPMSolverMultistepScheduler.from_config(
        diffusers.DEISMultistepScheduler().config).config.algorithm_type


# unCLIP's sampler has one spacing of its own and takes no spacing keys (as in diffusers): its own tests.
@pytest.mark.parametrize("name", [name for name in NAMES if ours.SCHEDULERS[name].shares_configs])
@pytest.mark.parametrize("spacing, offset", [("linspace", 0), ("leading", 1), ("trailing", 0)])
def test_timesteps_and_sigmas_equal_diffusers(name, spacing, offset):
    config = {"timestep_spacing": spacing, "steps_offset": offset}
    for steps in ((4, 30) if name == "PNDMScheduler" else (1, 4, 30)):
        _same_schedule(ours.SCHEDULERS[name](**config), getattr(diffusers, name)(**config), steps)


def test_from_the_hub_cache_by_repo_id_and_subfolder(hub_cache):
    # Config files in the form those repos publish them (diffusers writes extra bookkeeping keys).
    hub_cache.add("google/ddpm-cifar10-32", "scheduler_config.json", json.dumps({
        "_class_name": "DDPMScheduler", "_diffusers_version": "0.1.1", "beta_end": 0.02, "beta_schedule": "linear",
        "beta_start": 0.0001, "clip_sample": True, "num_train_timesteps": 1000, "trained_betas": None,
        "variance_type": "fixed_large"}))
    hub_cache.add("CompVis/ldm-text2im-large-256", "scheduler/scheduler_config.json", json.dumps({
        "_class_name": "DDIMScheduler", "_diffusers_version": "0.0.4", "beta_end": 0.012,
        "beta_schedule": "scaled_linear", "beta_start": 0.00085, "clip_sample": False,
        "num_train_timesteps": 1000, "set_alpha_to_one": False, "timestep_values": None, "trained_betas": None}))
    ddpm = ours.DDPMScheduler.from_pretrained("google/ddpm-cifar10-32")
    assert ddpm.config.variance_type == "fixed_large"
    ddim = ours.load_scheduler("hf://CompVis/ldm-text2im-large-256/scheduler")
    assert isinstance(ddim, ours.DDIMScheduler) and ddim.config.set_alpha_to_one is False
    same = ours.DDIMScheduler.from_pretrained("CompVis/ldm-text2im-large-256", subfolder="scheduler")
    assert dict(same.config) == dict(ddim.config)
    assert ddim.start(50).timesteps[:3].tolist() == [980, 960, 940]
