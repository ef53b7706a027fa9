"""GLIDE / ADM respacing against the official `space_timesteps` (its outputs are GLIDE fixtures), the respaced
DDPM / DDIM runs, and guidance by gradient (classifier guidance) through the sampling loop."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dgraph.errors import ConfigError, DgraphError
from dgraph.sampling import GradientGuidance, sample
from dgraph.schedulers import DDIMScheduler, DDPMScheduler, EulerDiscreteScheduler
from dgraph.schedulers.spacing import respaced_timesteps

FIXTURES = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "glide" / "fixtures.json").read_text())


@pytest.mark.parametrize("respacing", sorted(FIXTURES["respacing"]))
def test_respacing_visits_the_official_timesteps(respacing):
    steps = respaced_timesteps(1000, respacing)
    assert steps.tolist() == sorted(FIXTURES["respacing"][respacing], reverse=True)


def test_sections_of_unequal_size_round_as_the_official_code():
    assert sorted(respaced_timesteps(300, "10,15,20").tolist()) == FIXTURES["respacing_300"]["10,15,20"]


@pytest.mark.parametrize("respacing, message", [
    ("abc", "respacing 'abc' is not a step count, comma-separated section counts, ddimN or fast27"),
    ("600,500", "cannot take 600 steps from a section of 500 of the 1000 training steps"),
    ("ddim999", "no integer stride gives exactly 999 of 1000 steps"),
])
def test_bad_respacings_say_what_is_wrong(respacing, message):
    with pytest.raises(ConfigError, match=message):
        respaced_timesteps(1000, respacing)


def test_a_respaced_ddpm_run_steps_between_the_kept_timesteps():
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", variance_type="learned_range")
    run = scheduler.start(50, respacing="fast27")  # the respacing replaces the step count
    assert run.timesteps.tolist() == respaced_timesteps(1000, "fast27").tolist()
    # Each step's beta is 1 - alpha_bar(t) / alpha_bar(t_next), from the float64 schedule.
    alpha_bar = scheduler.alphas_cumprod_float64()
    t, t_next = run.timesteps[0].item(), run.timesteps[1].item()
    assert run.current_beta[0] == pytest.approx(1 - (alpha_bar[t] / alpha_bar[t_next]).item(), rel=1e-12)
    ddim = DDIMScheduler(beta_schedule="squaredcos_cap_v2").start(None, respacing="27")
    assert len(ddim) == 27 and ddim.alpha_bar_prev[-1] == 1.0


def test_a_gradient_shifts_the_ddpm_mean_by_the_variance():
    scheduler = DDPMScheduler(variance_type="fixed_small", clip_sample=False)
    x, eps, gradient = torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4), torch.randn(1, 3, 4, 4)
    plain = scheduler.start(timesteps=[500, 0]).step(eps, 500, x, generator=torch.Generator().manual_seed(0))
    guided = scheduler.start(timesteps=[500, 0]).step(eps, 500, x, generator=torch.Generator().manual_seed(0),
                                                       gradient=gradient)
    variance = scheduler.posterior_variance(500, 0)
    assert torch.allclose(guided.prev_sample - plain.prev_sample, variance * gradient, atol=1e-6)


def test_a_sampler_without_guidance_hooks_refuses_a_gradient():
    denoiser = GradientGuidance(lambda x, t: torch.zeros_like(x), lambda x, t: torch.ones_like(x))
    with pytest.raises(DgraphError, match="EulerDiscreteScheduler takes no gradient .* use DDPMScheduler or "
                                          "DDIMScheduler"):
        sample(denoiser, EulerDiscreteScheduler().start(2), torch.zeros(1, 3, 4, 4))


def test_classifier_guidance_takes_the_same_path_with_the_log_softmax_gradient():
    """For a linear classifier, ∇_x log softmax(Wx + b)_y = W_y - Σ_k p_k W_k."""
    from dgraph.sampling import ClassifierGradient

    torch.manual_seed(0)
    weight, bias = torch.randn(5, 48), torch.randn(5)
    classifier = lambda x, t: x.flatten(1) @ weight.T + bias  # noqa: E731
    x, labels = torch.randn(2, 3, 4, 4), torch.tensor([1, 4])
    probs = torch.softmax(classifier(x, None), dim=-1)
    expected = (weight[labels] - probs @ weight).reshape(2, 3, 4, 4)
    assert torch.allclose(ClassifierGradient(classifier, labels)(x, torch.tensor(10)), expected, atol=1e-5)

    # The loop asks the guidance for its (scaled) gradient at each step's sample and hands it to the step.
    scheduler = DDPMScheduler(variance_type="fixed_small", clip_sample=False)
    eps = lambda x, t: torch.zeros_like(x)  # noqa: E731
    gradient = ClassifierGradient(classifier, labels)
    guided = sample(GradientGuidance(eps, gradient, scale=2.0), scheduler.start(timesteps=[500, 400]), x,
                    generator=torch.Generator().manual_seed(1))
    run, by_hand, noise = scheduler.start(timesteps=[500, 400]), x, torch.Generator().manual_seed(1)
    for t in run.timesteps:
        by_hand = run.step(eps(by_hand, t), t, by_hand, generator=noise, gradient=2.0 * gradient(by_hand, t)).prev_sample
    assert torch.equal(guided, by_hand)
    plain = sample(eps, scheduler.start(timesteps=[500, 400]), x, generator=torch.Generator().manual_seed(1))
    assert (guided - plain).abs().max() > 1e-3
