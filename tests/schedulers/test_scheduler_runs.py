"""Sampling runs: independent state per run, the diffusers-style API over a default run, and misuse."""
from __future__ import annotations

import pytest
import torch

import dgraph.schedulers as ours
from dgraph.errors import ConfigError
from dgraph.schedulers.base import gaussian_noise
from scheduler_parity import DummyDenoiser, compare, initial_sample

NAMES = sorted(ours.SCHEDULERS)


def _loop_steps(run, model, x, generator):
    """Yield after each step, so that two loops can be interleaved."""
    x = x * run.init_noise_sigma
    for t in run.timesteps:
        x = run.step(model(run.scale_model_input(x, t), t), t, x, generator=generator).prev_sample
        yield x


def _final(steps):
    result = None
    for result in steps:
        pass
    return result


@pytest.mark.parametrize("name", NAMES)
def test_two_interleaved_runs_equal_two_runs_one_after_the_other(name):
    scheduler = ours.SCHEDULERS[name]()
    model = DummyDenoiser(scheduler.alphas_cumprod)

    def loops():
        first = _loop_steps(scheduler.start(9), model, initial_sample(1), torch.Generator().manual_seed(1))
        second = _loop_steps(scheduler.start(14), model, initial_sample(2), torch.Generator().manual_seed(2))
        return first, second

    first, second = loops()
    sequential = (_final(first), _final(second))

    first, second = loops()
    a = b = None
    while True:  # alternate one step of each until both are done
        a_next, b_next = next(first, None), next(second, None)
        if a_next is None and b_next is None:
            break
        a, b = (a_next if a_next is not None else a), (b_next if b_next is not None else b)
    assert torch.equal(a, sequential[0]) and torch.equal(b, sequential[1])
    assert not torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_scheduler_api_is_the_default_run(name):
    scheduler = ours.SCHEDULERS[name]()
    model = DummyDenoiser(scheduler.alphas_cumprod)
    expected = _final(_loop_steps(scheduler.start(8), model, initial_sample(), torch.Generator().manual_seed(5)))

    scheduler.set_timesteps(8)
    generator = torch.Generator().manual_seed(5)
    x = initial_sample() * scheduler.init_noise_sigma
    timesteps = scheduler.timesteps
    for i, t in enumerate(timesteps):
        # unCLIP's step, as diffusers', goes to t - 1 unless told the next timestep (as its pipelines tell it).
        extra = {"prev_timestep": int(timesteps[i + 1]) if i + 1 < len(timesteps) else None} \
            if name == "UnCLIPScheduler" else {}
        x = scheduler.step(model(scheduler.scale_model_input(x, t), t), t, x, generator=generator, **extra).prev_sample
    assert torch.equal(x, expected)
    assert scheduler.step_index == len(scheduler.timesteps)


def test_a_scheduler_cannot_be_changed_after_construction():
    scheduler = ours.DDIMScheduler()
    with pytest.raises(AttributeError) as error:
        scheduler.final_alpha_cumprod = 0.5
    assert str(error.value) == ("DDIMScheduler is immutable after construction; build a new one with "
                                "DDIMScheduler.from_config(scheduler.config, final_alpha_cumprod=...)")
    with pytest.raises(AttributeError):
        scheduler.config.steps_offset = 3


def test_stepping_past_the_end_or_before_set_timesteps_is_an_error():
    # DDIM (like diffusers' DDIM) has no run before set_timesteps; DDPM and the sigma samplers do.
    with pytest.raises(ConfigError) as error:
        ours.DDIMScheduler().step(torch.zeros(1), 999, torch.zeros(1))
    assert str(error.value) == ("DDIMScheduler: call set_timesteps(num_inference_steps) before stepping, "
                                "or use run = scheduler.start(num_inference_steps)")
    scheduler = ours.EulerDiscreteScheduler()
    run = scheduler.start(1)

    run.step(torch.zeros(1), run.timesteps[0], torch.zeros(1))
    with pytest.raises(ConfigError) as error:
        run.step(torch.zeros(1), run.timesteps[0], torch.zeros(1))
    assert str(error.value) == "EulerDiscreteScheduler: this run has already taken all its 1 steps; start a new run"


def test_too_many_steps_and_unknown_timesteps_are_refused():
    with pytest.raises(ConfigError) as error:
        ours.DDIMScheduler(num_train_timesteps=100).start(101)
    assert str(error.value) == ("DDIMScheduler: num_inference_steps=101 is more than the 100 timesteps the model "
                                "was trained with; use at most that many")
    run = ours.DDIMScheduler().start(10)
    with pytest.raises(ConfigError) as error:
        run.step(torch.zeros(1), 555, torch.zeros(1))
    assert str(error.value) == ("DDIMScheduler: timestep 555.0 is not in this run's timesteps; "
                                "pass one of run.timesteps")


@pytest.mark.parametrize("name", ["EulerDiscreteScheduler", "DPMSolverMultistepScheduler", "DDIMScheduler"])
def test_a_run_can_start_part_way_like_img2img(name):
    import diffusers

    mine, theirs = ours.SCHEDULERS[name](), getattr(diffusers, name)()
    model = DummyDenoiser(theirs.alphas_cumprod)
    run = mine.start(10)
    theirs.set_timesteps(10)
    x = y = initial_sample()
    for t in run.timesteps[4:]:
        x = run.step(model(run.scale_model_input(x, t), t), t, x).prev_sample
        y = theirs.step(model(theirs.scale_model_input(y, t), t), t, y).prev_sample
    torch.testing.assert_close(x, y, rtol=0, atol=1e-5)


def test_noise_comes_from_the_given_generator_on_its_device():
    like = torch.zeros(2, 3, dtype=torch.float64)
    noise = gaussian_noise(like, torch.Generator().manual_seed(7))
    assert noise.dtype == torch.float64
    assert torch.equal(noise, torch.randn(2, 3, generator=torch.Generator().manual_seed(7), dtype=torch.float64))


def test_ddim_eta_can_be_set_per_run_or_per_step():
    # eta=1 at start and eta=1 per step agree, and both differ from the deterministic run.
    expected, _ = compare("DDIMScheduler", {}, 10, {"eta": 1.0})
    scheduler = ours.DDIMScheduler()
    model = DummyDenoiser(scheduler.alphas_cumprod)
    run, generator = scheduler.start(10), torch.Generator().manual_seed(1234)
    x = initial_sample()
    for t in run.timesteps:
        x = run.step(model(x, t), t, x, generator=generator, eta=1.0).prev_sample
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-5)
    deterministic, _ = compare("DDIMScheduler", {}, 10)
    assert (deterministic - expected).abs().max() > 0.1


def test_outputs_unpack_like_diffusers():
    scheduler = ours.DDIMScheduler()
    scheduler.set_timesteps(2)
    sample = initial_sample()
    prev, x0 = scheduler.step(torch.zeros_like(sample), scheduler.timesteps[0], sample, return_dict=False)
    output = ours.DDIMScheduler().start(2).step(torch.zeros_like(sample), 500, sample)
    assert torch.equal(output[0], prev) and torch.equal(output[1], x0)


def test_ddpm_custom_timesteps_match_diffusers():
    import diffusers

    custom = [980, 700, 420, 150, 12, 0]
    mine, theirs = ours.DDPMScheduler(), diffusers.DDPMScheduler()
    model = DummyDenoiser(theirs.alphas_cumprod)
    run = mine.start(timesteps=custom)
    theirs.set_timesteps(timesteps=custom)
    assert run.timesteps.tolist() == theirs.timesteps.tolist() == custom
    x = y = initial_sample()
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    for t in run.timesteps:
        x = run.step(model(x, t), t, x, generator=g1).prev_sample
        y = theirs.step(model(y, t), t, y, generator=g2).prev_sample
    torch.testing.assert_close(x, y, rtol=0, atol=1e-5)
    with pytest.raises(ConfigError) as error:
        mine.start(timesteps=[5, 9])
    assert str(error.value) == "DDPMScheduler.start: timesteps must be strictly descending, got [5, 9]"


def test_fixed_large_log_is_the_fixed_large_variance():
    # GLIDE's "max log" variance: log(beta) as the log variance, i.e. noise std sqrt(beta). (diffusers
    # takes the square root of the log itself and returns NaN.)
    def sample(variance_type):
        scheduler = ours.DDPMScheduler(variance_type=variance_type)
        model = DummyDenoiser(scheduler.alphas_cumprod)
        return _final(_loop_steps(scheduler.start(10), model, initial_sample(), torch.Generator().manual_seed(4)))

    log_variant, plain = sample("fixed_large_log"), sample("fixed_large")
    assert torch.isfinite(log_variant).all() and torch.equal(log_variant, plain)
    assert not torch.equal(plain, sample("fixed_small"))
