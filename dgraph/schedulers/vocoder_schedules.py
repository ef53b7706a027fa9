"""Short, hand-tuned inference noise schedules of the diffusion vocoders, and how they meet the model.

A vocoder trained on T steps is sampled with a few inference betas instead. Each inference step n
has a noise level sqrt(alpha_bar_n) of its own; the model is told the *fractional training timestep*
with the same noise level, found by linear interpolation of sqrt(alpha_bar) between the two
training steps around it. This is DiffWave's fast-sampling rule (Kong et al. 2021, appendix B) and
the `map_noise_scale_to_time_step` of FastDiff / BDDM; noise levels outside the training range go to
the nearest end (step 0 or T-1), as FastDiff does.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import ConfigError

# FastDiff (Huang et al. 2022): trained on 1000 linear betas from 1e-6 to 0.01.
FASTDIFF_TRAINING = {"num_train_timesteps": 1000, "beta_start": 1e-6, "beta_end": 0.01, "beta_schedule": "linear"}
FASTDIFF_BETAS_3 = (9.0e-05, 9.0e-03, 6.0e-01)
FASTDIFF_BETAS_4 = (3.2176e-04, 2.5743e-03, 2.5376e-02, 7.0414e-01)
FASTDIFF_BETAS_6 = (1.7838445955931093e-06, 2.7984189728158526e-05, 0.00043231004383414984,
                    0.006634317338466644, 0.09357017278671265, 0.6000000238418579)
FASTDIFF_BETAS_8 = (6.689325005027058e-07, 1.0033881153503899e-05, 0.00015496854030061513,
                    0.002387222135439515, 0.035597629845142365, 0.3681158423423767, 0.4735414385795593, 0.5)
# The 4-step schedule FastDiff's LJSpeech config ships as its default (differs from the evaluation list).
FASTDIFF_LJSPEECH_BETAS_4 = (3.6701e-07, 1.7032e-05, 7.908e-04, 7.6146e-01)
FASTDIFF_BETAS = {3: FASTDIFF_BETAS_3, 4: FASTDIFF_BETAS_4, 6: FASTDIFF_BETAS_6, 8: FASTDIFF_BETAS_8}

# DiffWave (Kong et al. 2021): trained on 50 linear betas from 1e-4 to 0.05; 6-step fast schedule.
DIFFWAVE_TRAINING = {"num_train_timesteps": 50, "beta_start": 1e-4, "beta_end": 0.05, "beta_schedule": "linear"}
DIFFWAVE_BETAS_6 = (0.0001, 0.001, 0.01, 0.05, 0.2, 0.5)


def inference_alphas_cumprod(betas: Sequence[float], owner: str = "inference betas") -> np.ndarray:
    """alpha_bar of the inference chain, in float64, ordered like `betas` (least noisy first)."""
    values = np.asarray(list(betas), dtype=np.float64)
    if values.ndim != 1 or len(values) == 0 or not np.all((values > 0) & (values < 1)):
        raise ConfigError(f"{owner}: betas must be a non-empty list of numbers in (0, 1), got {list(betas)!r}")
    return np.cumprod(1.0 - values)


def fractional_timesteps(betas: Sequence[float], training_alphas_cumprod: torch.Tensor) -> np.ndarray:
    """The fractional training timestep of each inference step (least noisy first), as float64."""
    target = np.sqrt(inference_alphas_cumprod(betas))
    levels = np.sqrt(training_alphas_cumprod.double().numpy())  # decreasing in t
    steps = []
    for level in target:
        if level <= levels[-1]:
            steps.append(float(len(levels) - 1))
        elif level >= levels[0]:
            steps.append(0.0)
        else:
            # first t with levels[t+1] <= level <= levels[t]
            t = int(np.nonzero(levels[1:] <= level)[0][0])
            steps.append(t + (levels[t] - level) / (levels[t] - levels[t + 1]))
    return np.asarray(steps)


class ExplicitBetaSchedule:
    """A DDPM scheduler that always samples one explicit beta list (or, with `betas=None`, its whole
    training schedule): what a diffusion vocoder node hands to the sampling loop, which calls `start`."""

    def __init__(self, scheduler, betas: Sequence[float] | None):
        self.scheduler, self.betas = scheduler, None if betas is None else tuple(betas)
        self.alphas_cumprod = scheduler.alphas_cumprod

    def start(self, num_inference_steps: int | None = None, device=None):
        """A run over the explicit betas; `num_inference_steps` is ignored (the list fixes the steps)."""
        if self.betas is not None:
            return self.scheduler.start(device=device, betas=self.betas)
        return self.scheduler.start(self.scheduler.num_train_timesteps, device=device)
