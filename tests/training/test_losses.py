"""Training objectives: the denoiser's noised input and target against diffusers' scheduler; the
autoencoder loss by its definition; loss falls on a fixed batch."""
from __future__ import annotations

import diffusers
import torch
import torch.nn.functional as F

from dgraph.models import AutoencoderKL, UNet2DModel
from dgraph.schedulers import DDPMScheduler
from dgraph.training.losses import autoencoder_loss, denoiser_loss, denoiser_target

SCHEDULE = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")


class Recorder(torch.nn.Module):
    """Returns a fixed function of its input, and remembers what it was called with."""

    def forward(self, x, t):
        self.seen = (x.clone(), t.clone())
        return 0.5 * x


def test_denoiser_loss_matches_diffusers_forward_process():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(4, 4, 8, 8, generator=g), torch.randn(4, 4, 8, 8, generator=g)
    t = torch.tensor([0, 10, 500, 999])
    reference = diffusers.DDPMScheduler(**SCHEDULE, prediction_type="v_prediction")
    ours = DDPMScheduler(**SCHEDULE, prediction_type="v_prediction")
    noisy = reference.add_noise(x0, noise, t)
    model = Recorder()
    for kind, target in (("epsilon", noise), ("v_prediction", reference.get_velocity(x0, noise, t))):
        loss = denoiser_loss(model, ours, x0, noise, t, kind)
        torch.testing.assert_close(model.seen[0], noisy, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(loss, F.mse_loss(0.5 * noisy, target), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(denoiser_target(ours, x0, noise, t, kind), target, rtol=1e-6, atol=1e-6)


def test_autoencoder_loss_is_reconstruction_plus_weighted_kl_per_element():
    torch.manual_seed(0)
    model = AutoencoderKL(in_channels=1, out_channels=1, down_block_types=("DownEncoderBlock2D",) * 2,
                          up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(4, 8), norm_num_groups=4,
                          latent_channels=2, sample_size=8)
    images = torch.rand(3, 1, 8, 8) * 2 - 1
    loss, parts = autoencoder_loss(model, images, torch.Generator().manual_seed(1), kl_weight=0.5)
    posterior = model.encode(images).latent_dist
    decoded = model.decode(posterior.sample(torch.Generator().manual_seed(1))).sample
    kl = posterior.kl().mean() / (2 * 4 * 4)
    assert torch.allclose(loss, F.mse_loss(decoded, images) + 0.5 * kl, atol=1e-6)
    assert parts["kl"] == kl.item()


def test_loss_falls_on_a_fixed_batch():
    torch.manual_seed(0)
    model = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
                        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                        norm_num_groups=4)
    scheduler = DDPMScheduler(**SCHEDULE)
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 1, 8, 8, generator=g)
    noise, t = torch.randn(8, 1, 8, 8, generator=g), torch.randint(0, 1000, (8,), generator=g)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(30):
        loss = denoiser_loss(model, scheduler, x0, noise, t, "epsilon")
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
