"""The two training objectives: a KL autoencoder's, and a denoiser's through the scheduler's forward process."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.outputs import first_output


def autoencoder_loss(model: nn.Module, images: torch.Tensor, generator: torch.Generator | None,
                     kl_weight: float, reconstruction: str = "mse") -> tuple[torch.Tensor, dict[str, float]]:
    """Reconstruction error per pixel of a sampled latent's decoding, plus kl_weight × KL per latent element.

    Sampling the posterior (not its mean) trains the decoder on the spread of latents a diffusion model
    will later produce; the KL term keeps that spread near a unit Gaussian.
    """
    posterior = model.encode(images).latent_dist
    decoded = model.decode(posterior.sample(generator)).sample
    error = F.mse_loss(decoded.float(), images.float()) if reconstruction == "mse" else \
        F.l1_loss(decoded.float(), images.float())
    kl = posterior.kl().float().mean() / posterior.mean[0].numel()
    return error + kl_weight * kl, {"rec": error.item(), "kl": kl.item()}


def denoiser_target(scheduler, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
                    prediction_type: str) -> torch.Tensor:
    """What the network learns to predict from the noised sample: the noise, or the velocity (v-prediction)."""
    if prediction_type == "epsilon":
        return noise
    if prediction_type == "v_prediction":
        return scheduler.get_velocity(x0, noise, timesteps)
    raise ValueError(f"unknown prediction_type {prediction_type!r}")


def denoiser_loss(model: nn.Module, scheduler, x0: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor,
                  prediction_type: str, **conditioning) -> torch.Tensor:
    """Mean squared error between the network's output on add_noise(x0, noise, t) and its target."""
    noisy = scheduler.add_noise(x0, noise, timesteps)
    output = first_output(model(noisy, timesteps, **conditioning))
    target = denoiser_target(scheduler, x0, noise, timesteps, prediction_type)
    return F.mse_loss(output.float(), target.float())
