"""Training noise schedules: the betas a model was trained with, and what follows from them."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import ConfigError

BETA_SCHEDULES = ("linear", "scaled_linear", "squaredcos_cap_v2", "exp")


def cosine_betas(num_train_timesteps: int, max_beta: float = 0.999, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Betas of the cosine schedule (Nichol & Dhariwal 2021), as GLIDE and improved DDPM use it.

    alpha_bar(t) = cos²((t + s) / (1 + s) · π/2) with s = 0.008.
    """
    return alpha_bar_betas(num_train_timesteps, lambda t: math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2, max_beta,
                           dtype)


def exp_betas(num_train_timesteps: int, max_beta: float = 0.999, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Betas of alpha_bar(t) = exp(-12·t), t in [0, 1] (diffusers' "exp" schedule)."""
    return alpha_bar_betas(num_train_timesteps, lambda t: math.exp(-12.0 * t), max_beta, dtype)


def alpha_bar_betas(num_train_timesteps: int, alpha_bar, max_beta: float = 0.999,
                    dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Betas read off a continuous alpha_bar(t), t in [0, 1], at neighbouring training steps, capped at
    `max_beta` so the last steps stay finite."""
    betas = []
    for i in range(num_train_timesteps):
        ratio = alpha_bar((i + 1) / num_train_timesteps) / alpha_bar(i / num_train_timesteps)
        betas.append(min(1.0 - ratio, max_beta))
    return torch.tensor(betas, dtype=dtype)


def rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(alpha_bar) so that the last step has zero signal (Lin et al. 2023, Alg. 1).

    The first step keeps its value, so the start of the schedule is unchanged.
    """
    root = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    root = (root - last) * (first / (first - last))
    alpha_bar = root ** 2
    alphas = torch.cat([alpha_bar[:1], alpha_bar[1:] / alpha_bar[:-1]])
    return 1.0 - alphas


def make_betas(num_train_timesteps: int, beta_start: float, beta_end: float, beta_schedule: str,
               trained_betas: Sequence[float] | None = None, rescale_betas_zero_snr: bool = False,
               owner: str = "scheduler", dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The betas named by a scheduler config (explicit `trained_betas` win over the schedule), in float32 as
    diffusers makes them, or in `dtype` (float64: as ADM / GLIDE compute their schedules)."""
    if trained_betas is not None:
        betas = torch.tensor(list(trained_betas), dtype=dtype)
        if betas.ndim != 1 or len(betas) == 0:
            raise ConfigError(f"{owner}: trained_betas must be a non-empty list of numbers")
    elif beta_schedule == "linear":
        betas = torch.linspace(beta_start, beta_end, num_train_timesteps, dtype=dtype)
    elif beta_schedule == "scaled_linear":
        # Latent diffusion: linear in sqrt(beta).
        betas = torch.linspace(beta_start ** 0.5, beta_end ** 0.5, num_train_timesteps, dtype=dtype) ** 2
    elif beta_schedule == "squaredcos_cap_v2":
        betas = cosine_betas(num_train_timesteps, dtype=dtype)
    elif beta_schedule == "exp":
        betas = exp_betas(num_train_timesteps, dtype=dtype)

    else:
        raise ConfigError(f"{owner}: beta_schedule {beta_schedule!r} is not supported; "
                          f"use one of {', '.join(BETA_SCHEDULES)} or give trained_betas")
    if rescale_betas_zero_snr:
        betas = rescale_zero_terminal_snr(betas)
    return betas
