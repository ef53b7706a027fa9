"""Which training timesteps a short sampling run visits, and the sigma (noise-to-signal) tables.

Three spacings (Lin et al. 2023, table 2): "linspace" spreads the steps evenly over [0, T-1],
"leading" takes multiples of T // n from 0 (plus `steps_offset`), "trailing" counts down from T-1.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import ConfigError
from .base import RunOption

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


def exponential_sigmas(sigma_min: float, sigma_max: float, num_steps: int) -> np.ndarray:
    """Sigmas evenly spaced in log sigma, from sigma_max down to sigma_min."""
    return np.exp(np.linspace(math.log(sigma_max), math.log(sigma_min), num_steps))


def beta_sigmas(sigma_min: float, sigma_max: float, num_steps: int, a: float = 0.6, b: float = 0.6) -> np.ndarray:
    """Sigmas at the quantiles of a Beta(a, b) distribution (Lee et al. 2024, "Beta sampling is all you need"):
    with a = b < 1 the steps crowd at both ends of [sigma_min, sigma_max]."""
    quantiles = beta_ppf(1 - np.linspace(0, 1, num_steps), a, b)
    return sigma_min + quantiles * (sigma_max - sigma_min)


SIGMA_SPACINGS = {"karras": "use_karras_sigmas", "exponential": "use_exponential_sigmas", "beta": "use_beta_sigmas"}


def sigma_spacing(config, owner: str) -> str | None:
    """Which of the Karras / exponential / beta sigma spacings a config asks for (None: the plain table)."""
    chosen = [name for name, key in SIGMA_SPACINGS.items() if config.get(key)]
    if len(chosen) > 1:
        keys = ", ".join(SIGMA_SPACINGS[name] for name in chosen)
        raise ConfigError(f"{owner}: {keys} are set together; set at most one of them")
    return chosen[0] if chosen else None


def spaced_sigmas(spacing: str, sigma_min: float, sigma_max: float, num_steps: int) -> np.ndarray:
    """`num_steps` sigmas from sigma_max down to sigma_min in the named spacing (see `SIGMA_SPACINGS`)."""
    make = {"karras": karras_sigmas, "exponential": exponential_sigmas, "beta": beta_sigmas}[spacing]
    return make(sigma_min, sigma_max, num_steps)


def _beta_continued_fraction(x: np.ndarray, a: float, b: float) -> np.ndarray:
    # The continued fraction of the incomplete beta function, evaluated by the modified Lentz method.
    tiny = 1e-300
    c = np.ones_like(x)
    d = 1 - (a + b) * x / (a + 1)
    d = 1 / np.where(np.abs(d) < tiny, tiny, d)
    h = d.copy()
    for m in range(1, 300):
        for numerator in (m * (b - m) * x / ((a - 1 + 2 * m) * (a + 2 * m)),
                          -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 1 + 2 * m))):
            d = 1 + numerator * d
            d = 1 / np.where(np.abs(d) < tiny, tiny, d)
            c = 1 + numerator / c
            c = np.where(np.abs(c) < tiny, tiny, c)
            h = h * d * c
        if np.all(np.abs(d * c - 1) < 1e-15):
            break
    return h



def beta_cdf(x: np.ndarray, a: float, b: float) -> np.ndarray:
    """The regularised incomplete beta function I_x(a, b), the CDF of Beta(a, b), in float64."""
    x = np.clip(np.asarray(x, dtype=np.float64), 0.0, 1.0)
    inner = np.clip(x, 1e-300, 1 - 1e-16)
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * np.log(inner) + b * np.log1p(-inner))
    front = np.exp(log_front)
    # The fraction converges fast below the mean; above it, use the symmetry I_x(a, b) = 1 - I_{1-x}(b, a).
    low = x < (a + 1) / (a + b + 2)
    result = np.empty_like(x)
    result[low] = front[low] * _beta_continued_fraction(inner[low], a, b) / a
    result[~low] = 1 - front[~low] * _beta_continued_fraction(1 - inner[~low], b, a) / b
    return np.where(x <= 0, 0.0, np.where(x >= 1, 1.0, result))



def beta_ppf(q: np.ndarray, a: float, b: float) -> np.ndarray:
    """The inverse of `beta_cdf` (quantiles of Beta(a, b)), by bisection to float64 precision."""
    q = np.asarray(q, dtype=np.float64)
    low, high = np.zeros_like(q), np.ones_like(q)
    for _ in range(60):
        middle = (low + high) / 2
        below = beta_cdf(middle, a, b) < q
        low, high = np.where(below, middle, low), np.where(below, high, middle)
    return np.where(q <= 0, 0.0, np.where(q >= 1, 1.0, (low + high) / 2))



def sigmas_to_timesteps(sigmas: np.ndarray, log_training_sigmas: np.ndarray) -> np.ndarray:
    """The fractional training timestep of each sigma, interpolating linearly in log sigma."""
    log_sigma = np.log(np.maximum(sigmas, 1e-10))
    above = log_sigma[None, :] - log_training_sigmas[:, None] >= 0
    low = np.cumsum(above, axis=0).argmax(axis=0).clip(max=len(log_training_sigmas) - 2)
    lo, hi = log_training_sigmas[low], log_training_sigmas[low + 1]
    w = np.clip((lo - log_sigma) / (lo - hi), 0, 1)
    return (1 - w) * low + w * (low + 1)


# The run option of the samplers that take a respacing (DDPM, DDIM).
RESPACING_OPTION = RunOption("", "visit the timesteps of a respacing (GLIDE's \"100\", \"27\", \"fast27\", or "
                                 "\"10,5,3\", \"ddim50\") instead of `steps` spaced ones")


def respaced_timesteps(num_train_timesteps: int, respacing: str, owner: str = "scheduler") -> np.ndarray:
    """The training timesteps a respaced run visits (ADM / GLIDE's `space_timesteps`), descending.

    `respacing` is "N" (N steps evenly over [0, T-1], rounded), "n1,n2,..." (the steps cut into as many
    equal sections, n_i evenly within section i), "ddimN" (the integer stride that gives exactly N steps,
    from 0) or "fast27" (GLIDE's upsampler: "10,10,3,2,2" with its noisiest step T-1 moved to T-3).
    """
    text = str(respacing).strip()
    T = num_train_timesteps
    if text.startswith("ddim"):
        try:
            wanted = int(text[len("ddim"):])
        except ValueError:
            raise ConfigError(f"{owner}: respacing {respacing!r}: write ddimN with N a number of steps") from None
        for stride in range(1, T):
            if len(range(0, T, stride)) == wanted:
                return np.arange(0, T, stride, dtype=np.int64)[::-1].copy()
        raise ConfigError(f"{owner}: respacing {respacing!r}: no integer stride gives exactly {wanted} of {T} steps")
    if text == "fast27":
        steps = set(respaced_timesteps(T, "10,10,3,2,2", owner).tolist())
        steps.discard(T - 1)  # the noisiest step gives DDIM artifacts (GLIDE's note): use T - 3 instead
        steps.add(T - 3)
        return np.array(sorted(steps, reverse=True), dtype=np.int64)
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        raise ConfigError(f"{owner}: respacing {respacing!r} is not a step count, comma-separated section counts, "
                          f"ddimN or fast27") from None
    size, extra = divmod(T, len(counts))
    steps: set[int] = set()
    start = 0
    for i, count in enumerate(counts):
        section = size + (1 if i < extra else 0)
        if count < 1 or count > section:
            raise ConfigError(f"{owner}: respacing {respacing!r}: cannot take {count} steps from a section of "
                              f"{section} of the {T} training steps")
        stride = 1 if count <= 1 else (section - 1) / (count - 1)
        # The position is accumulated and rounded as Python rounds (halves to even), as the official code
        # does: j * stride instead picks other steps where the sum's rounding error crosses a half.
        position = 0.0
        for _ in range(count):
            steps.add(start + round(position))
            position += stride
        start += section
    return np.array(sorted(steps, reverse=True), dtype=np.int64)
