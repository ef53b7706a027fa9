"""Partial runs (img2img strength, SDXL's denoising_start / denoising_end) and add_noise, for every family,
against diffusers' schedulers and the timestep selection of its img2img pipelines.

Configs are Stable Diffusion's (scaled-linear betas, steps_offset=1) with each timestep spacing, and
Karras sigmas where the family has them.
"""
from __future__ import annotations

import inspect
import warnings
from types import SimpleNamespace

import diffusers
import pytest
import torch
from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionXLImg2ImgPipeline

import dgraph.schedulers as ours
from dgraph.errors import ConfigError, DgraphError
from dgraph.sampling import sample
from scheduler_parity import DummyDenoiser

SD = {"num_train_timesteps": 1000, "beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear",
      "steps_offset": 1}
FAMILY_EXTRAS = {"PNDMScheduler": {"skip_prk_steps": True}, "DDIMScheduler": {"set_alpha_to_one": False,
                                                                              "clip_sample": False}}


def _configs():
    for name in sorted(ours.SCHEDULERS):
        karras = "use_karras_sigmas" in inspect.signature(ours.SCHEDULERS[name].__init__).parameters
        for spacing in ("leading", "trailing", "linspace"):
            for use_karras in ((False, True) if karras else (False,)):
                config = {**SD, **FAMILY_EXTRAS.get(name, {}), "timestep_spacing": spacing}
                if use_karras:
                    config["use_karras_sigmas"] = True
                yield pytest.param(name, config, id=f"{name}-{spacing}{'-karras' if use_karras else ''}")
    # PNDM with its Runge-Kutta warm-up: a schedule longer than the steps asked for.
    yield pytest.param("PNDMScheduler", {**SD, "timestep_spacing": "leading"}, id="PNDMScheduler-leading-prk")


CONFIGS = list(_configs())


def pair(name: str, config: dict):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return getattr(diffusers, name).from_config(config), ours.SCHEDULERS[name].from_config(config)


def tensors(batch: int = 2):
    generator = torch.Generator().manual_seed(11)
    return torch.randn(batch, 4, 6, 6, generator=generator), torch.randn(batch, 4, 6, 6, generator=generator)


def assert_close(expected: torch.Tensor, got: torch.Tensor, tolerance: float):
    assert torch.isfinite(expected).all()
    error = (expected.double() - got.double()).abs().max().item()
    assert error <= tolerance * max(1.0, expected.abs().max().item()), f"max |diff| = {error:.3g}"


# The pipelines' own timestep selection, called with a stand-in for the pipeline that holds only the scheduler.
def sd_img2img_timesteps(scheduler, steps: int, strength: float) -> torch.Tensor:
    return StableDiffusionImg2ImgPipeline.get_timesteps(SimpleNamespace(scheduler=scheduler), steps, strength, "cpu")[0]


def sdxl_timesteps(scheduler, steps: int, strength=None, denoising_start=None, denoising_end=None):
    """StableDiffusionXLImg2ImgPipeline's timesteps (strength or denoising_start), or StableDiffusionXLPipeline's
    (neither: the whole schedule), then cut at denoising_end."""
    timesteps = scheduler.timesteps
    if strength is not None or denoising_start is not None:
        timesteps, _ = StableDiffusionXLImg2ImgPipeline.get_timesteps(
            SimpleNamespace(scheduler=scheduler), steps, 0.3 if strength is None else strength, "cpu",
            denoising_start=denoising_start)
    if denoising_end is not None:  # StableDiffusionXL(Img2Img)Pipeline.__call__, "Apply denoising_end"
        cutoff = int(round(scheduler.config.num_train_timesteps - denoising_end * scheduler.config.num_train_timesteps))
        timesteps = timesteps[:len(list(filter(lambda ts: ts >= cutoff, timesteps)))]
    return timesteps


def diffusers_loop(scheduler, timesteps, model, x):
    options = {"generator": torch.Generator().manual_seed(5)} \
        if "generator" in inspect.signature(scheduler.step).parameters else {}
    for t in timesteps:
        x = scheduler.step(model(scheduler.scale_model_input(x, t), t), t, x, **options).prev_sample
    return x


# ---- add_noise ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, config", CONFIGS)
def test_add_noise_at_every_timestep_of_a_run_equals_diffusers(name, config):
    # Each timestep of a 10-step run, looked up in the run, and at the same step as a begin index (img2img).
    theirs, mine = pair(name, config)
    theirs.set_timesteps(10)
    x0, noise = tensors()
    run = mine.start(10)
    for index in range(len(theirs.timesteps)):
        t = theirs.timesteps[index:index + 1].repeat(2)
        assert_close(theirs.add_noise(x0, noise, t), run.add_noise(x0, noise, t), 1e-6)
    if not hasattr(theirs, "set_begin_index"):
        return  # DDPM, DDIM and PNDM noise by timestep alone
    for index in range(len(theirs.timesteps)):
        t = theirs.timesteps[index:index + 1].repeat(2)
        theirs.set_begin_index(index)
        entered = mine.start(10)
        entered.set_begin_index(index)
        assert_close(theirs.add_noise(x0, noise, t), entered.add_noise(x0, noise, t), 1e-6)


# ---- the steps a partial run takes ----------------------------------------------------------------------
@pytest.mark.parametrize("name, config", CONFIGS)
@pytest.mark.parametrize("steps", [7, 10])
def test_strength_takes_the_timesteps_of_diffusers_img2img(name, config, steps):
    theirs, mine = pair(name, config)
    theirs.set_timesteps(steps)
    for strength in (0.15, 0.3, 0.5, 0.75, 0.99, 1.0):
        expected = sd_img2img_timesteps(theirs, steps, strength)
        run = mine.start(steps).partial(strength=strength)
        assert torch.equal(run.loop_timesteps.double(), expected.double()), strength
        assert torch.equal(sdxl_timesteps(theirs, steps, strength).double(), expected.double())
        assert run.begin_index == len(theirs.timesteps) - len(expected)
        if hasattr(theirs, "set_begin_index"):  # DDPM, DDIM and PNDM have none: they noise by timestep
            assert theirs.begin_index == run.begin_index


@pytest.mark.parametrize("name, config", CONFIGS)
def test_denoising_start_and_end_take_the_timesteps_of_diffusers_sdxl(name, config):
    theirs, mine = pair(name, config)
    steps = 10
    theirs.set_timesteps(steps)
    cases = [dict(denoising_end=0.8), dict(denoising_start=0.8), dict(denoising_start=0.55),
             dict(denoising_start=0.3, denoising_end=0.75), dict(strength=0.6, denoising_end=0.7),
             dict(denoising_end=0.05), dict(denoising_start=0.92)]
    taken = 0
    for case in cases:
        expected = sdxl_timesteps(theirs, steps, **case)
        if len(expected) == 0:  # diffusers would run no step: we say so
            with pytest.raises(ConfigError, match="leaves no step|stops the run before its first step"):
                mine.start(steps).partial(**case)
            continue
        taken += 1
        run = mine.start(steps).partial(**case)
        assert torch.equal(run.loop_timesteps.double(), expected.double()), case
        if ("denoising_start" in case or "strength" in case) and hasattr(theirs, "set_begin_index"):
            assert run.begin_index == theirs.begin_index, case
    assert taken >= 5


def test_heun_never_enters_between_the_two_halves_of_a_step():
    # 10 steps: 19 timesteps; denoising_start 0.7 leaves 6 below the cutoff, and diffusers takes 7.
    scheduler = ours.HeunDiscreteScheduler.from_config({**SD, "timestep_spacing": "leading"})
    run = scheduler.start(10).partial(denoising_start=0.7)
    assert (run.timesteps < 300).sum() == 6
    assert run.loop_timesteps.tolist() == run.timesteps[12:].tolist()
    # It enters at the first-order half of the step from 301 (index 12), not at the correction to 201.
    assert run.loop_timesteps.tolist() == [301, 201, 201, 101, 101, 1, 1]
    assert run.begin_index == 12


# ---- partial sampling loops -----------------------------------------------------------------------------
@pytest.mark.parametrize("name, config", CONFIGS)
def test_img2img_loop_equals_diffusers(name, config):
    # prepare_latents' noising at the first timestep taken, then the remaining steps.
    theirs, mine = pair(name, config)
    model = DummyDenoiser(theirs.alphas_cumprod)
    image, noise = tensors()
    theirs.set_timesteps(9)
    timesteps = sd_img2img_timesteps(theirs, 9, 0.6)
    expected = diffusers_loop(theirs, timesteps, model, theirs.add_noise(image, noise, timesteps[:1].repeat(2)))
    run = mine.start(9).partial(strength=0.6)
    got = sample(model, run, noise, generator=torch.Generator().manual_seed(5), image=image)
    assert_close(expected, got, 1e-5)


@pytest.mark.parametrize("name, config", CONFIGS)
def test_base_and_refiner_hand_over_equals_diffusers(name, config):
    # The SDXL base stops at denoising_end = 0.75; the refiner takes its noisy latents from denoising_start = 0.75.
    theirs, mine = pair(name, config)
    model = DummyDenoiser(theirs.alphas_cumprod)
    _, noise = tensors()
    theirs.set_timesteps(8)
    base = diffusers_loop(theirs, sdxl_timesteps(theirs, 8, denoising_end=0.75), model,
                          noise * theirs.init_noise_sigma)
    theirs_refiner = pair(name, config)[0]
    theirs_refiner.set_timesteps(8)
    refined = diffusers_loop(theirs_refiner, sdxl_timesteps(theirs_refiner, 8, denoising_start=0.75), model, base)

    my_base = sample(model, mine.start(8).partial(denoising_end=0.75), noise,
                     generator=torch.Generator().manual_seed(5))
    assert_close(base, my_base, 1e-5)
    my_refined = sample(model, mine.start(8).partial(denoising_start=0.75), my_base,
                        generator=torch.Generator().manual_seed(5))
    assert_close(refined, my_refined, 1e-5)


# ---- errors ---------------------------------------------------------------------------------------------
def _run(steps=10):
    return ours.EulerDiscreteScheduler.from_config({**SD, "timestep_spacing": "leading"}).start(steps)


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.5, True])
def test_strength_outside_the_unit_interval_is_refused(strength):
    with pytest.raises(ConfigError) as error:
        _run().partial(strength=strength)
    assert str(error.value) == (f"EulerDiscreteScheduler: strength must be in (0, 1] (1 = start from pure noise, "
                                f"smaller keeps more of the image), got {strength!r}")
    assert isinstance(error.value, DgraphError)


def test_a_strength_that_leaves_no_step_says_what_to_raise():
    with pytest.raises(ConfigError) as error:
        _run(10).partial(strength=0.07)
    assert str(error.value) == ("EulerDiscreteScheduler: strength=0.07 with 10 steps leaves no step to take "
                                "(int(10 × 0.07) = 0); raise strength to at least 0.1 or steps to at least 15")
    assert len(_run(15).partial(strength=0.07).loop_timesteps) == 1
    with pytest.raises(ConfigError, match=r"raise strength to at least 0.3334 or steps to at least 4$"):
        _run(3).partial(strength=0.3)  # 1/3 printed as 0.3333 would still leave no step
    assert len(_run(3).partial(strength=0.3334).loop_timesteps) == len(_run(4).partial(strength=0.3).loop_timesteps) == 1
    assert len(_run(10).partial(strength=0.1).loop_timesteps) == 1


@pytest.mark.parametrize("option", ["denoising_start", "denoising_end"])
@pytest.mark.parametrize("value", [0.0, 1.0, 1.2])
def test_denoising_fractions_outside_the_open_interval_are_refused(option, value):
    with pytest.raises(ConfigError, match=rf"{option} must be a fraction strictly between 0 and 1 .*, got "
                                          rf"{value}; leave {option} out to run the whole schedule"):
        _run().partial(**{option: value})


def test_denoising_start_must_come_before_denoising_end():
    with pytest.raises(ConfigError) as error:
        _run().partial(denoising_start=0.8, denoising_end=0.8)
    assert str(error.value) == ("EulerDiscreteScheduler: denoising_start=0.8 must be smaller than "
                                "denoising_end=0.8")


def test_strength_and_denoising_start_together_are_refused():
    with pytest.raises(ConfigError, match="give strength or denoising_start, not both"):
        _run().partial(strength=0.5, denoising_start=0.5)


def test_windows_that_leave_no_step_are_refused():
    # leading spacing with offset 1: the last timestep is 1, so nothing lies below round(1000 - 999.5) = 0.
    with pytest.raises(ConfigError, match=r"denoising_start=0.9995 leaves no step of this 10-step run \(no timestep "
                                          r"below 0\); lower denoising_start or use more steps"):
        _run().partial(denoising_start=0.9995)
    with pytest.raises(ConfigError, match=r"denoising_end=0.05 stops the run before its first step \(timestep 901 "
                                          r"is below 950\); raise denoising_end or leave it out"):
        _run().partial(denoising_end=0.05)


def test_partial_comes_once_before_stepping():
    run = _run().partial(strength=0.5)
    with pytest.raises(ConfigError, match="partial\\(\\) must come once, on a fresh run, before its first step"):
        run.partial(strength=0.4)


def test_starting_points_that_do_not_fit_the_run_are_refused():
    image, noise = tensors()
    with pytest.raises(ConfigError, match="a run with strength starts from a clean image noised part-way, but was "
                                          "given no image"):
        _run().partial(strength=0.5).initial_sample(noise)
    with pytest.raises(ConfigError, match="a run with denoising_start continues latents that are already noisy"):
        _run().partial(denoising_start=0.5).initial_sample(noise, image)
    with pytest.raises(ConfigError, match=r"the noise \(3, 4, 6, 6\) does not fit the image latents \(2, 4, 6, 6\)"):
        _run().partial(strength=0.5).initial_sample(torch.zeros(3, 4, 6, 6), image)


@pytest.mark.parametrize("name, config", [c for c in CONFIGS if "leading" in c.id])
@pytest.mark.parametrize("strength", [0.7, 1.0])
def test_inpainting_loop_equals_diffusers(name, config, strength):
    # StableDiffusionInpaintPipeline with a 4-channel UNet: after each step the known region is the image
    # noised to the next timestep; at full strength the start is pure noise, not the noised image.
    theirs, mine = pair(name, config)
    model = DummyDenoiser(theirs.alphas_cumprod)
    image, noise = tensors()
    mask = (torch.arange(6) < 3).float().reshape(1, 1, 1, 6)  # 1 = repaint
    theirs.set_timesteps(8)
    timesteps = sd_img2img_timesteps(theirs, 8, strength)
    x = noise * theirs.init_noise_sigma if strength == 1 else theirs.add_noise(image, noise, timesteps[:1].repeat(2))
    options = {"generator": torch.Generator().manual_seed(5)} \
        if "generator" in inspect.signature(theirs.step).parameters else {}
    for i, t in enumerate(timesteps):
        x = theirs.step(model(theirs.scale_model_input(x, t), t), t, x, **options).prev_sample
        known = theirs.add_noise(image, noise, torch.tensor([timesteps[i + 1]])) if i < len(timesteps) - 1 else image
        x = (1 - mask) * known + mask * x

    run = mine.start(8).partial(strength=strength)
    y = run.initial_sample(noise, image if strength < 1 else None)
    generator = torch.Generator().manual_seed(5)
    for i, t in enumerate(run.loop_timesteps):
        y = run.step(model(run.scale_model_input(y, t), t), t, y, generator=generator).prev_sample
        later = run.loop_timesteps[i + 1:i + 2]
        known = run.add_noise(image, noise, later) if len(later) else image
        y = (1 - mask) * known + mask * y
    assert_close(x, y, 1e-5)
    # The library loop does the same; at full strength a run without a window is the same run.
    run = mine.start(8) if strength == 1 else mine.start(8).partial(strength=strength)
    looped = sample(model, run, noise, generator=torch.Generator().manual_seed(5), image=image, mask=mask)
    assert_close(x, looped, 1e-5)


def test_an_inpainting_mask_needs_a_clean_image():
    _, noise = tensors()
    message = "an inpainting mask keeps part of a clean image: give the image's latents as image, and no denoising_start"
    with pytest.raises(ConfigError, match=message):
        sample(lambda x, t: x, _run(), noise, mask=torch.ones(1, 1, 6, 6))
    with pytest.raises(ConfigError, match=message):
        sample(lambda x, t: x, _run().partial(denoising_start=0.5), noise, image=noise, mask=torch.ones(1, 1, 6, 6))
