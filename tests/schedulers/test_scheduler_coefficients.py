"""Training-schedule tables and the forward process, against diffusers."""
from __future__ import annotations

import diffusers
import pytest
import torch

import dgraph.schedulers as ours

SCHEDULES = [
    {},
    {"beta_schedule": "scaled_linear", "beta_start": 0.00085, "beta_end": 0.012},
    {"beta_schedule": "squaredcos_cap_v2"},
    {"beta_schedule": "squaredcos_cap_v2", "rescale_betas_zero_snr": True},
    {"trained_betas": [0.001, 0.01, 0.1, 0.3], "num_train_timesteps": 4},
]


@pytest.mark.parametrize("config", SCHEDULES)
def test_tables_equal_diffusers(config):
    mine, theirs = ours.DDPMScheduler(**config), diffusers.DDPMScheduler(**config)
    assert torch.equal(mine.betas, theirs.betas)
    assert torch.equal(mine.alphas_cumprod, theirs.alphas_cumprod)
    t = torch.tensor([0, 1, len(mine) - 1])
    assert torch.equal(mine.beta_t(t), theirs.betas[t])
    assert torch.equal(mine.alpha_t(t), theirs.alphas[t])
    assert torch.equal(mine.alpha_bar_t(t), theirs.alphas_cumprod[t])


def test_posterior_variance_equals_diffusers():
    mine, theirs = ours.DDPMScheduler(), diffusers.DDPMScheduler()
    for t in (1, 10, 500, 999):
        torch.testing.assert_close(mine.posterior_variance(t), theirs._get_variance(t), rtol=1e-6, atol=0)
    # Over a longer jump, as in a 10-step run (999 -> 899).
    theirs.set_timesteps(10)
    torch.testing.assert_close(mine.posterior_variance(900, 800), theirs._get_variance(900), rtol=1e-6, atol=0)
    assert float(mine.posterior_variance(0)) == 0.0


def test_add_noise_and_velocity_equal_diffusers():
    mine, theirs = ours.DDIMScheduler(beta_schedule="scaled_linear"), diffusers.DDIMScheduler(beta_schedule="scaled_linear")
    generator = torch.Generator().manual_seed(0)
    x0 = torch.randn(3, 4, 5, 5, generator=generator)
    noise = torch.randn(3, 4, 5, 5, generator=generator)
    t = torch.tensor([0, 321, 999])
    assert torch.equal(mine.add_noise(x0, noise, t), theirs.add_noise(x0, noise, t))
    assert torch.equal(mine.get_velocity(x0, noise, t), theirs.get_velocity(x0, noise, t))


def test_timesteps_outside_training_are_refused():
    from dgraph.errors import ConfigError

    with pytest.raises(ConfigError) as error:
        ours.DDPMScheduler(num_train_timesteps=10).alpha_bar_t(10)
    assert str(error.value) == "DDPMScheduler: timestep 10 is outside [0, 9]"
