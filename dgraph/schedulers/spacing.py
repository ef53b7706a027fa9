"""Which training timesteps a short sampling run visits, and the sigma (noise-to-signal) tables.

Three spacings (Lin et al. 2023, table 2): "linspace" spreads the steps evenly over [0, T-1],
"leading" takes multiples of T // n from 0 (plus `steps_offset`), "trailing" counts down from T-1.
"""
from __future__ import annotations

import numpy as np
import torch

from ..errors import ConfigError

SPACINGS = ("linspace", "leading", "trailing")


def _check(spacing: str, num_train_timesteps: int, num_inference_steps: int, owner: str) -> None:
    if spacing not in SPACINGS:
        raise ConfigError(f"{owner}: timestep_spacing {spacing!r} is not one of {', '.join(SPACINGS)}")
    if not isinstance(num_inference_steps, (int, np.integer)) or num_inference_steps < 1:
        raise ConfigError(f"{owner}: num_inference_steps must be a positive integer, got {num_inference_steps!r}")
    if num_inference_steps > num_train_timesteps:
        raise ConfigError(f"{owner}: num_inference_steps={num_inference_steps} is more than the "
                          f"{num_train_timesteps} timesteps the model was trained with; use at most that many")


def spaced_timesteps(spacing: str, num_train_timesteps: int, num_inference_steps: int, steps_offset: int = 0,
                     round_linspace: bool = True, owner: str = "scheduler") -> np.ndarray:
    """`num_inference_steps` timesteps, descending, as float64.

    The discrete samplers (DDPM, DDIM, PNDM) round "linspace" to integers; the sigma samplers (Euler,
    Heun, LMS) keep the fractional values and interpolate sigma between training steps.
    """
    _check(spacing, num_train_timesteps, num_inference_steps, owner)
    n, T = num_inference_steps, num_train_timesteps
    if spacing == "linspace":
        steps = np.linspace(0, T - 1, n)
        if round_linspace:
            steps = steps.round()
        else:
            steps = steps.astype(np.float32).astype(np.float64)
        return steps[::-1].copy()
    if spacing == "leading":
        return (np.arange(n) * (T // n)).round()[::-1].astype(np.float64) + steps_offset
    return np.round(np.arange(T, 0, -T / n)) - 1.0


def solver_timesteps(spacing: str, num_train_timesteps: int, num_inference_steps: int, steps_offset: int = 0,
                     last_timestep: int | None = None, owner: str = "scheduler") -> np.ndarray:
    """Integer timesteps for the multistep ODE solvers (DPM-Solver, DEIS, UniPC), descending.

    These lay out n + 1 points and drop the one at 0, so the run ends one step above the clean sample
    and the last update goes to the final sigma.
    """
    _check(spacing, num_train_timesteps, num_inference_steps, owner)
    n, T = num_inference_steps, num_train_timesteps
    last = T if last_timestep is None else last_timestep
    if spacing == "linspace":
        steps = np.linspace(0, last - 1, n + 1).round()[::-1][:-1]
    elif spacing == "leading":
        steps = (np.arange(n + 1) * (last // (n + 1))).round()[::-1][:-1] + steps_offset
    else:
        steps = np.arange(last, 0, -T / n).round() - 1
    return steps.astype(np.int64).copy()


def training_sigmas(alphas_cumprod: torch.Tensor) -> np.ndarray:
    """sigma_t = sqrt((1 - alpha_bar_t) / alpha_bar_t) for every training step, ascending in t."""
    return (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).numpy()


def interpolate_sigmas(timesteps: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """sigma at (possibly fractional) timesteps, linear between training steps."""
    return np.interp(timesteps, np.arange(len(sigmas)), sigmas)


def karras_sigmas(sigma_min: float, sigma_max: float, num_steps: int, rho: float = 7.0) -> np.ndarray:
    """Karras et al. 2022 eq. 5: sigmas evenly spaced in sigma^(1/rho), from sigma_max down to sigma_min."""
    ramp = np.linspace(0, 1, num_steps)
    low, high = sigma_min ** (1 / rho), sigma_max ** (1 / rho)
    return (high + ramp * (low - high)) ** rho


def sigmas_to_timesteps(sigmas: np.ndarray, log_training_sigmas: np.ndarray) -> np.ndarray:
    """The fractional training timestep of each sigma, interpolating linearly in log sigma."""
    log_sigma = np.log(np.maximum(sigmas, 1e-10))
    above = log_sigma[None, :] - log_training_sigmas[:, None] >= 0
    low = np.cumsum(above, axis=0).argmax(axis=0).clip(max=len(log_training_sigmas) - 2)
    lo, hi = log_training_sigmas[low], log_training_sigmas[low + 1]
    w = np.clip((lo - log_sigma) / (lo - hi), 0, 1)
    return (1 - w) * low + w * (low + 1)
