"""Explicit inference betas (FastDiff, DiffWave): fractional timesteps and the short reverse chain."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dgraph.errors import ConfigError
from dgraph.schedulers import (DIFFWAVE_BETAS_6, DIFFWAVE_TRAINING, FASTDIFF_BETAS, FASTDIFF_TRAINING,
                               DDPMScheduler, fractional_timesteps)


def test_published_lists_have_their_lengths():
    assert {n: len(b) for n, b in FASTDIFF_BETAS.items()} == {3: 3, 4: 4, 6: 6, 8: 8}
    assert DIFFWAVE_BETAS_6 == (0.0001, 0.001, 0.01, 0.05, 0.2, 0.5)


def test_diffwave_fast_schedule_maps_to_its_fractional_steps():
    # Values of DiffWave's inference code for its 50-step training schedule (computed there in float64).
    scheduler = DDPMScheduler(**DIFFWAVE_TRAINING)
    steps = fractional_timesteps(DIFFWAVE_BETAS_6, scheduler.alphas_cumprod)
    np.testing.assert_allclose(steps, [0.0, 0.894134, 4.086654, 10.451817, 22.992493, 42.918643], atol=2e-5)


@pytest.mark.parametrize("count, expected", [
    (3, [3.630738, 42.111871, 429.112306]),
    (4, [7.414140, 23.467377, 74.992248, 498.053759]),
    (6, [0.069881, 1.842560, 9.017787, 37.113812, 144.461662, 450.885147]),
    (8, [0.0, 0.878720, 5.155736, 22.001494, 87.440803, 314.639779, 476.180438, 603.922492]),
])
def test_fastdiff_schedules_map_to_fractional_steps(count, expected):
    scheduler = DDPMScheduler(**FASTDIFF_TRAINING)
    np.testing.assert_allclose(fractional_timesteps(FASTDIFF_BETAS[count], scheduler.alphas_cumprod), expected,
                               atol=1e-5)


def test_noise_levels_outside_training_go_to_the_nearest_end():
    scheduler = DDPMScheduler(num_train_timesteps=10, beta_start=0.01, beta_end=0.02)
    # 1e-4 is less noise than training step 0 has; 0.9 more than step 9.
    assert fractional_timesteps([1e-4, 0.9], scheduler.alphas_cumprod).tolist() == [0.0, 9.0]


def _fastdiff_reference(betas, model, x, generator):
    """The reverse chain as FastDiff's sampling code writes it, with the same noise draws."""
    betas = torch.tensor(betas, dtype=torch.float64)
    alpha_bar = torch.cumprod(1 - betas, 0)
    for n in range(len(betas) - 1, -1, -1):
        eps = model(x, n)
        x = (x - (betas[n] / torch.sqrt(1 - alpha_bar[n])).float() * eps) / torch.sqrt(1 - betas[n]).float()
        if n > 0:
            sigma = torch.sqrt(betas[n] * (1 - alpha_bar[n - 1]) / (1 - alpha_bar[n])).float()
            x = x + sigma * torch.randn(x.shape, generator=generator)
    return x


@pytest.mark.parametrize("count", [3, 4, 6, 8])
def test_explicit_beta_run_follows_the_fastdiff_chain(count):
    scheduler = DDPMScheduler(**FASTDIFF_TRAINING, clip_sample=False)
    run = scheduler.start(betas=FASTDIFF_BETAS[count])
    expected_steps = fractional_timesteps(FASTDIFF_BETAS[count], scheduler.alphas_cumprod)[::-1].copy()
    torch.testing.assert_close(run.timesteps, torch.from_numpy(expected_steps).float())
    assert len(run) == count and run.init_noise_sigma == 1.0

    x0 = torch.randn(1, 1, 256, generator=torch.Generator().manual_seed(0))

    def model(x, step):  # a fixed nonlinear function of the waveform and the step number
        return 0.5 * torch.tanh(x) + 0.01 * (step + 1)

    expected = _fastdiff_reference(FASTDIFF_BETAS[count], model, x0, torch.Generator().manual_seed(9))
    x, generator = x0, torch.Generator().manual_seed(9)
    for i, t in enumerate(run.timesteps):
        x = run.step(model(x, count - 1 - i), t, x, generator=generator).prev_sample
    torch.testing.assert_close(x, expected, rtol=0, atol=1e-5)


def test_bad_inference_betas_are_refused():
    with pytest.raises(ConfigError) as error:
        DDPMScheduler().start(betas=[0.1, 1.5])
    assert str(error.value) == ("DDPMScheduler.start: betas must be a non-empty list of numbers in (0, 1), "
                                "got [0.1, 1.5]")
    with pytest.raises(ConfigError) as error:
        DDPMScheduler().start(4, betas=[0.1])
    assert str(error.value) == "DDPMScheduler.start: pass only one of num_inference_steps, timesteps, betas"
