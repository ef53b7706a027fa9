"""The schedulers used the way diffusers users write their code, against diffusers doing the same.

Noising (training, img2img, inpainting), stepping before `set_timesteps`, custom timesteps and
sigmas, the sigma spacings and solver options of the configs, half precision, and configs handed
from one library to the other.
"""
from __future__ import annotations

import inspect
import warnings

import diffusers
import pytest
import torch

import dgraph.schedulers as ours
from dgraph.errors import ConfigError
from scheduler_parity import DummyDenoiser, initial_sample

SIGMA_FAMILIES = ["EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "HeunDiscreteScheduler",
                  "LMSDiscreteScheduler"]
SOLVER_FAMILIES = ["DPMSolverMultistepScheduler", "UniPCMultistepScheduler", "DEISMultistepScheduler"]
ALPHA_FAMILIES = ["DDPMScheduler", "DDIMScheduler", "PNDMScheduler"]
SCALED = {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012}


def pair(name: str, config: dict | None = None):
    """(diffusers' scheduler, ours) built from the same config."""
    config = dict(config or {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diffusers' deprecation notices
        return getattr(diffusers, name).from_config(config), getattr(ours, name).from_config(config)


def clean_and_noise(batch: int = 3):
    generator = torch.Generator().manual_seed(7)
    return torch.randn(batch, 4, 6, 6, generator=generator), torch.randn(batch, 4, 6, 6, generator=generator)


def loop(stepper, model, steps=None, sample=None, timesteps=None, generator_seed: int = 5, **step_options):
    """Step over `timesteps` (default: the stepper's), with a generator where the stepper takes one."""
    if "generator" in inspect.signature(stepper.step).parameters:
        step_options["generator"] = torch.Generator().manual_seed(generator_seed)
    x = initial_sample() * stepper.init_noise_sigma if sample is None else sample
    for t in (stepper.timesteps if timesteps is None else timesteps):
        x = stepper.step(model(stepper.scale_model_input(x, t), t), t, x, **step_options).prev_sample
    return x


def assert_close(expected: torch.Tensor, got: torch.Tensor, tolerance: float = 1e-5):
    assert torch.isfinite(expected).all()
    error = (expected.double() - got.double()).abs().max().item()
    assert error <= tolerance * max(1.0, expected.abs().max().item()), f"max |diff| = {error:.3g}"


# ---- add_noise and scale_model_input --------------------------------------------------------------------
def test_euler_add_noise_is_on_the_sigma_scale():
    # The case that showed it: x0 = noise = 1 at t = 600 of the scaled-linear schedule is 1 + sigma_600.
    theirs, mine = pair("EulerDiscreteScheduler", SCALED)
    ones, t = torch.ones(1, 1, 1, 1), torch.tensor([600])
    expected = theirs.add_noise(ones, ones, t)
    alpha_bar = theirs.alphas_cumprod[600].item()
    assert expected.item() == pytest.approx(1 + ((1 - alpha_bar) / alpha_bar) ** 0.5, rel=1e-6)

    assert torch.equal(mine.add_noise(ones, ones, t), expected)


@pytest.mark.parametrize("name", SIGMA_FAMILIES + ALPHA_FAMILIES)
@pytest.mark.parametrize("config", [{}, SCALED])
def test_add_noise_before_set_timesteps_equals_diffusers(name, config):
    # The training path: integer timesteps, one per item, no set_timesteps.
    theirs, mine = pair(name, config)
    x0, noise = clean_and_noise()
    t = torch.tensor([0, 417, 999])
    assert_close(theirs.add_noise(x0, noise, t), mine.add_noise(x0, noise, t), 1e-6)


@pytest.mark.parametrize("name", SIGMA_FAMILIES + SOLVER_FAMILIES + ALPHA_FAMILIES)
@pytest.mark.parametrize("config", [{}, {**SCALED, "use_karras_sigmas": True}])
def test_add_noise_with_the_runs_own_timesteps_equals_diffusers(name, config):
    # set_timesteps, then noise to timesteps of the run (float ones for the sigma samplers), as img2img does.
    if name in ALPHA_FAMILIES:
        config = {k: v for k, v in config.items() if k != "use_karras_sigmas"}
    theirs, mine = pair(name, config)
    theirs.set_timesteps(10)
    mine.set_timesteps(10)
    assert torch.equal(theirs.timesteps.double(), mine.timesteps.double())
    x0, noise = clean_and_noise()
    t = theirs.timesteps[[0, 4, 8]]
    assert_close(theirs.add_noise(x0, noise, t), mine.add_noise(x0, noise, t), 1e-6)


@pytest.mark.parametrize("name", SIGMA_FAMILIES + SOLVER_FAMILIES)
def test_img2img_begin_index_and_inpainting_equal_diffusers(name):
    # img2img: enter the schedule at step 3 (set_begin_index), noise there, then sample; inpainting
    # noises the known region again at the current step after each step.
    config = {**SCALED, "use_karras_sigmas": True} if name != "EulerAncestralDiscreteScheduler" else SCALED
    theirs, mine = pair(name, config)
    model = DummyDenoiser(theirs.alphas_cumprod)
    x0, noise = clean_and_noise(2)
    results = []
    for scheduler in (theirs, mine):
        scheduler.set_timesteps(8)
        begin = 3 * scheduler.order
        timesteps = scheduler.timesteps[begin:]
        scheduler.set_begin_index(begin)
        x = scheduler.add_noise(x0, noise, timesteps[:1].repeat(2))
        first_input = scheduler.scale_model_input(x, timesteps[0])
        options = {"generator": torch.Generator().manual_seed(3)} \
            if "generator" in inspect.signature(scheduler.step).parameters else {}
        for t in timesteps:
            x = scheduler.step(model(scheduler.scale_model_input(x, t), t), t, x, **options).prev_sample
            x = torch.cat([scheduler.add_noise(x0[:1], noise[:1], t.reshape(1)), x[1:]])
        results.append((first_input, x))
    (their_input, their_x), (my_input, my_x) = results
    assert_close(their_input, my_input, 1e-6)
    assert_close(their_x, my_x)


@pytest.mark.parametrize("name", SIGMA_FAMILIES)
@pytest.mark.parametrize("steps", [None, 20])
@pytest.mark.parametrize("position, as_int", [(0, False), (0, True), (6, False), (6, True)])
def test_scale_model_input_for_integer_and_float_timesteps_equals_diffusers(name, steps, position, as_int):
    # Before set_timesteps (the training schedule) and after; the timestep as the run's float or as an int.
    theirs, mine = pair(name, {**SCALED, "timestep_spacing": "leading", "steps_offset": 1})
    if steps is not None:
        theirs.set_timesteps(steps)
        mine.set_timesteps(steps)
    timestep = theirs.timesteps[position]
    if as_int:
        timestep = int(timestep)
    x = initial_sample()
    assert torch.equal(theirs.scale_model_input(x, timestep), mine.scale_model_input(x, timestep))
    assert theirs.step_index == mine.step_index


def test_add_noise_refuses_timesteps_that_are_not_whole_or_not_in_the_run():
    with pytest.raises(ConfigError) as error:
        ours.DDPMScheduler().add_noise(torch.zeros(1), torch.zeros(1), torch.tensor([3.5]))
    assert str(error.value) == ("DDPMScheduler: add_noise needs whole training timesteps, got [3.5]; round them, "
                                "or call set_timesteps and pass timesteps of that run")
    scheduler = ours.EulerDiscreteScheduler()
    scheduler.set_timesteps(10)
    with pytest.raises(ConfigError) as error:
        scheduler.add_noise(torch.zeros(1), torch.zeros(1), torch.tensor([600]))
    assert str(error.value) == ("EulerDiscreteScheduler: timestep 600.0 is not in this run's timesteps; "
                                "pass one of run.timesteps")


# ---- DDPM's arithmetic ---------------------------------------------------------------------------------
@pytest.mark.parametrize("config", [{}, {"variance_type": "fixed_small_log"}, {"variance_type": "fixed_large"},
                                    {**SCALED, "prediction_type": "v_prediction", "clip_sample": False},
                                    {"beta_schedule": "squaredcos_cap_v2", "variance_type": "learned_range"}])
@pytest.mark.parametrize("steps", [50, 1000])
def test_ddpm_long_loops_equal_diffusers(config, steps):
    # Small t is where float64 coefficients used to drift: every step of a 1000-step loop visits it.
    theirs, mine = pair("DDPMScheduler", config)
    variance = config.get("variance_type") == "learned_range"
    model = DummyDenoiser(theirs.alphas_cumprod, config.get("prediction_type", "epsilon"), variance)
    theirs.set_timesteps(steps)
    assert_close(loop(theirs, model), loop(mine.start(steps), model))


# ---- stepping before set_timesteps ---------------------------------------------------------------------
def test_ddpm_loop_over_training_steps_without_set_timesteps():
    # diffusers' own first example: for t in reversed(range(1000)): x = s.step(model(x, t), t, x).prev_sample
    theirs, mine = pair("DDPMScheduler", {"num_train_timesteps": 1000})
    model = DummyDenoiser(theirs.alphas_cumprod)
    results = [loop(s, model, timesteps=reversed(range(1000))) for s in (theirs, mine)]
    assert_close(*results)
    assert mine.num_inference_steps is None and mine.previous_timestep(500) == 499


@pytest.mark.parametrize("name", SIGMA_FAMILIES)
def test_sigma_samplers_step_without_set_timesteps(name):
    theirs, mine = pair(name, {"num_train_timesteps": 200})
    model = DummyDenoiser(theirs.alphas_cumprod)
    assert torch.equal(theirs.timesteps, mine.timesteps)
    assert mine.init_noise_sigma == pytest.approx(float(theirs.init_noise_sigma), rel=1e-7)
    assert_close(loop(theirs, model), loop(mine, model))


# ---- custom timesteps and sigmas -----------------------------------------------------------------------
CUSTOM_TIMESTEPS = [999, 850, 700, 520, 400, 260, 180, 90, 35, 7]


@pytest.mark.parametrize("name", ["DDPMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler",
                                  "HeunDiscreteScheduler"])
def test_set_timesteps_with_custom_timesteps_equals_diffusers(name):
    theirs, mine = pair(name, SCALED)
    model = DummyDenoiser(theirs.alphas_cumprod)
    theirs.set_timesteps(timesteps=CUSTOM_TIMESTEPS)
    mine.set_timesteps(timesteps=CUSTOM_TIMESTEPS)
    assert torch.equal(theirs.timesteps.double(), mine.timesteps.double())
    assert_close(loop(theirs, model), loop(mine, model))


def test_euler_with_custom_sigmas_equals_diffusers():
    theirs, mine = pair("EulerDiscreteScheduler", SCALED)
    model = DummyDenoiser(theirs.alphas_cumprod)
    sigmas = [14.6, 9.0, 5.5, 3.1, 1.7, 0.9, 0.4, 0.1, 0.0]
    theirs.set_timesteps(sigmas=sigmas)
    mine.set_timesteps(sigmas=sigmas)
    assert torch.equal(theirs.timesteps, mine.timesteps)
    assert_close(loop(theirs, model), loop(mine, model))


def test_custom_schedules_are_refused_with_a_sigma_spacing_or_twice():
    with pytest.raises(ConfigError) as error:
        ours.EulerDiscreteScheduler(use_karras_sigmas=True).start(timesteps=CUSTOM_TIMESTEPS)
    assert str(error.value) == ("EulerDiscreteScheduler: timesteps=[...] cannot be used with use_karras_sigmas=True; "
                                "pass num_inference_steps, or build the scheduler without use_karras_sigmas")
    with pytest.raises(ConfigError) as error:
        ours.EulerDiscreteScheduler().start(10, sigmas=[1.0, 0.0])
    assert str(error.value) == ("EulerDiscreteScheduler: pass exactly one of num_inference_steps, timesteps, sigmas "
                                "(got num_inference_steps, sigmas)")


# ---- config options ------------------------------------------------------------------------------------
OPTION_CASES = [
    (name, {**SCALED, spacing: True}, order)
    for spacing in ("use_beta_sigmas", "use_exponential_sigmas")
    for name, order in [("EulerDiscreteScheduler", {}), ("HeunDiscreteScheduler", {}), ("LMSDiscreteScheduler", {}),
                        ("DPMSolverMultistepScheduler", {"solver_order": 3}),
                        ("UniPCMultistepScheduler", {"final_sigmas_type": "sigma_min"}),
                        ("DEISMultistepScheduler", {"solver_order": 3})]
] + [
    ("DPMSolverMultistepScheduler", {"use_lu_lambdas": True}, {}),
    ("DPMSolverMultistepScheduler", {**SCALED, "use_lu_lambdas": True, "solver_order": 3}, {}),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver++", "solver_order": 3}, {}),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver", "final_sigmas_type": "sigma_min"}, {}),
    ("DPMSolverMultistepScheduler", {"algorithm_type": "sde-dpmsolver", "solver_type": "heun",
                                     "final_sigmas_type": "sigma_min", "prediction_type": "v_prediction"}, {}),
    ("DPMSolverMultistepScheduler", {"final_sigmas_type": "sigma_min", "use_exponential_sigmas": True}, {}),
    ("EulerDiscreteScheduler", {"final_sigmas_type": "sigma_min", "use_beta_sigmas": True, "sigma_min": 0.05,
                                "sigma_max": 10.0}, {}),
    ("HeunDiscreteScheduler", {"beta_schedule": "exp"}, {}),
]


@pytest.mark.parametrize("name, config, extra", OPTION_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(OPTION_CASES)])
def test_config_options_equal_diffusers(name, config, extra):
    theirs, mine = pair(name, {**config, **extra})
    model = DummyDenoiser(theirs.alphas_cumprod, config.get("prediction_type", "epsilon"))
    for steps in (6, 25):
        theirs.set_timesteps(steps)
        mine.set_timesteps(steps)
        assert torch.equal(theirs.timesteps.double(), mine.timesteps.double())
        torch.testing.assert_close(mine.sigmas, theirs.sigmas.float(), rtol=1e-6, atol=0)
        assert_close(loop(theirs, model), loop(mine, model))


def test_exp_beta_schedule_equals_diffusers():
    assert torch.equal(ours.HeunDiscreteScheduler(beta_schedule="exp").betas,
                       diffusers.HeunDiscreteScheduler(beta_schedule="exp").betas)


def test_ddpm_previous_timestep_equals_diffusers():
    theirs, mine = pair("DDPMScheduler")
    assert mine.previous_timestep(10) == theirs.previous_timestep(10) == 9
    for kwargs in ({"num_inference_steps": 10}, {"timesteps": CUSTOM_TIMESTEPS}):
        theirs.set_timesteps(**kwargs)
        mine.set_timesteps(**kwargs)
        for t in theirs.timesteps:
            assert int(mine.previous_timestep(t)) == int(theirs.previous_timestep(t))


@pytest.mark.parametrize("name", list(ours.SCHEDULERS))
def test_compatibles_name_the_classes_diffusers_names(name):
    theirs, mine = pair(name)
    names = {cls.__name__ for cls in mine.compatibles}
    assert type(mine) in mine.compatibles
    # unCLIP's sampler reads only its own configs (diffusers lists no other class as compatible with it).
    sharing = {other for other, cls in ours.SCHEDULERS.items() if cls.shares_configs} if mine.shares_configs else {name}
    assert names == sharing and names <= {cls.__name__ for cls in theirs.compatibles}


# ---- half precision ------------------------------------------------------------------------------------
HALF_CASES = [(name, {"skip_prk_steps": True} if name == "PNDMScheduler" else {}) for name in ours.SCHEDULERS] + [
    (name, {"solver_order": 3}) for name in SOLVER_FAMILIES] + [
    ("EulerDiscreteScheduler", {"use_karras_sigmas": True}), ("PNDMScheduler", {}),
    ("DDPMScheduler", {"variance_type": "learned_range"})]


@pytest.mark.parametrize("half", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("sample_half, output_half", [(True, True), (True, False), (False, True)])
@pytest.mark.parametrize("name, config", HALF_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(HALF_CASES)])
def test_half_precision_runs_like_diffusers(name, config, half, sample_half, output_half):
    """Every family runs on half-precision samples and model outputs, returns diffusers' dtype, and lands
    as close to the float32 result as diffusers does."""
    variance = config.get("variance_type") == "learned_range"
    exact_model = DummyDenoiser(pair(name, config)[0].alphas_cumprod, variance_channels=variance)

    def model(x, t):
        out = exact_model(x.float(), t)
        return out.to(half) if output_half else out

    def run(scheduler, dtype_model, sample_dtype):
        scheduler.set_timesteps(10)
        start = (initial_sample() * scheduler.init_noise_sigma).to(sample_dtype)
        return loop(scheduler, dtype_model, sample=start)

    sample_dtype = half if sample_half else torch.float32
    exact = run(pair(name, config)[0], exact_model, torch.float32)
    theirs, mine = pair(name, config)
    got = run(mine, model, sample_dtype)
    assert torch.isfinite(got).all()
    try:
        expected = run(theirs, model, sample_dtype)
    except RuntimeError:
        return  # diffusers fails here itself (UniPC order 3 on a half sample and a float32 output); we run
    assert got.dtype == expected.dtype
    their_error = (expected.float() - exact).abs().max().item()
    my_error = (got.float() - exact).abs().max().item()
    assert my_error <= max(2 * their_error, 16 * torch.finfo(half).eps), (my_error, their_error)


# ---- configs handed between the libraries --------------------------------------------------------------
# (a scaled-linear v-prediction config, which unCLIP's cosine-only sampler refuses as diffusers' does)
@pytest.mark.parametrize("name", [name for name, cls in ours.SCHEDULERS.items() if cls.shares_configs])
def test_diffusers_builds_from_our_config_and_we_from_theirs(name):
    config = {**SCALED, "timestep_spacing": "trailing", "prediction_type": "v_prediction"}
    theirs, mine = pair(name, config)
    rebuilt = getattr(diffusers, name).from_config(mine.config)
    assert isinstance(mine.config, dict)
    for key, value in mine.config.items():
        if key in rebuilt.config and key not in ("algorithm_type", "solver_type"):
            assert rebuilt.config[key] == value or list(rebuilt.config[key]) == list(value), key
    assert torch.equal(rebuilt.alphas_cumprod, mine.alphas_cumprod)
    assert dict(getattr(ours, name).from_config(theirs.config).config) == dict(mine.config)
