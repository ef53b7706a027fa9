"""PNDM / PLMS (Liu et al. 2022): pseudo numerical methods on the DDIM transfer function.

With `skip_prk_steps=True` this is PLMS: linear multistep (Adams–Bashforth) on the noise prediction,
warmed up with a two-evaluation step. Otherwise the first steps use pseudo Runge–Kutta (4 model
calls per step) and the rest pseudo linear multistep.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..configuration import register_to_config
from ..errors import ConfigError
from .base import SamplingRun, Scheduler, SchedulerOutput, check_choice
from .spacing import spaced_timesteps


class PNDMRun(SamplingRun):
    """One PNDM run: its Runge–Kutta and multistep history live here."""

    def __init__(self, scheduler: "PNDMScheduler", timesteps: torch.Tensor, prk_timesteps: np.ndarray,
                 num_inference_steps: int):
        super().__init__(scheduler, timesteps)
        self.prk_timesteps = prk_timesteps
        self.stride = scheduler.num_train_timesteps // num_inference_steps
        self._requested_steps = num_inference_steps
        self.counter = 0
        self.ets: list[torch.Tensor] = []  # past noise predictions, oldest first
        self.cur_model_output: torch.Tensor | float = 0.0
        self.cur_sample: torch.Tensor | None = None
        self._coefficients: dict[tuple[int, int], tuple[float, ...]] = {}  # per (t, prev t)
        self._timestep_values = timesteps.tolist()

    def requested_steps(self) -> int:
        # The warm-up repeats timesteps, so the schedule is longer than the steps asked for.
        return self._requested_steps

    def _step(self, index, model_output, sample, generator, **options):
        timestep = self._timestep_values[index]
        if self.counter < len(self.prk_timesteps) and not self.config.skip_prk_steps:
            return self._step_prk(model_output, timestep, sample)
        return self._step_plms(model_output, timestep, sample)

    def _step_prk(self, model_output, timestep, sample):
        # Four evaluations per step: at t, twice at t - stride/2, and at t - stride (RK4 weights 1/6, 1/3, 1/3, 1/6).
        half = self.stride // 2
        prev_timestep = timestep - (0 if self.counter % 2 else half)
        timestep = int(self.prk_timesteps[self.counter // 4 * 4])
        phase = self.counter % 4
        if phase == 0:
            self.cur_model_output = self.cur_model_output + (1 / 6) * model_output
            self.ets.append(model_output)
            self.cur_sample = sample
        elif phase in (1, 2):
            self.cur_model_output = self.cur_model_output + (1 / 3) * model_output
        else:
            model_output = self.cur_model_output + (1 / 6) * model_output
            self.cur_model_output = 0.0
        start = self.cur_sample if self.cur_sample is not None else sample
        self.counter += 1
        return self._transfer(start, timestep, prev_timestep, model_output)

    def _step_plms(self, model_output, timestep, sample):
        if not self.config.skip_prk_steps and len(self.ets) < 3:
            raise ConfigError("PNDMScheduler: the multistep phase needs the 3 Runge-Kutta warm-up steps first; "
                              "step through run.timesteps from the start")
        prev_timestep = timestep - self.stride
        if self.counter != 1:
            self.ets = self.ets[-3:]
            self.ets.append(model_output)
        else:
            # Second half of the warm-up step: evaluate again one stride lower and average.
            prev_timestep, timestep = timestep, timestep + self.stride

        ets = self.ets
        if len(ets) == 1 and self.counter == 0:
            self.cur_sample = sample
        elif len(ets) == 1 and self.counter == 1:
            model_output = (model_output + ets[-1]) / 2
            sample, self.cur_sample = self.cur_sample, None
        elif len(ets) == 2:
            model_output = (3 * ets[-1] - ets[-2]) / 2
        elif len(ets) == 3:
            model_output = (23 * ets[-1] - 16 * ets[-2] + 5 * ets[-3]) / 12
        else:
            model_output = (1 / 24) * (55 * ets[-1] - 59 * ets[-2] + 37 * ets[-3] - 9 * ets[-4])
        self.counter += 1
        return self._transfer(sample, timestep, prev_timestep, model_output)

    def _transfer(self, sample, timestep, prev_timestep, model_output):
        """Liu et al. eq. 11: the DDIM step from `timestep` to `prev_timestep` for a given noise estimate.

        The coefficients are formed in float32 in the reference's order: at the first step
        sqrt(alpha_bar_prev / alpha_bar) is ~30, so their last bits show in the result.
        """
        key = (timestep, prev_timestep)
        if key not in self._coefficients:
            self._coefficients[key] = self._transfer_coefficients(timestep, prev_timestep)
        root_alpha_bar, root_beta, sample_coeff, output_coeff, denominator = self._coefficients[key]
        if self.config.prediction_type == "v_prediction":
            model_output = root_alpha_bar * model_output + root_beta * sample
        prev_sample = sample_coeff * sample - output_coeff * model_output / denominator
        # x0 is not part of the update; compute it only if it is read.
        return SchedulerOutput(prev_sample, lambda: (sample - root_beta * model_output) / root_alpha_bar)

    def _transfer_coefficients(self, timestep: int, prev_timestep: int) -> tuple[float, ...]:
        # numpy float32 scalars round +, -, *, / exactly as float32 tensors do, at a fraction of the
        # cost; the square roots go through torch, whose x ** 0.5 is not always numpy's sqrt.
        table = self.scheduler.alphas_cumprod.numpy()
        alpha_bar = table[timestep]
        alpha_bar_prev = table[prev_timestep] if prev_timestep >= 0 else np.float32(self.scheduler.final_alpha_cumprod)
        beta, beta_prev = 1 - alpha_bar, 1 - alpha_bar_prev
        radicands = [alpha_bar, beta, alpha_bar_prev / alpha_bar, beta_prev, alpha_bar * beta * alpha_bar_prev]
        root_alpha_bar, root_beta, ratio, root_beta_prev, root_product = (
            torch.tensor(radicands, dtype=torch.float32) ** 0.5).numpy()
        denominator = alpha_bar * root_beta_prev + root_product
        return (float(root_alpha_bar), float(root_beta), float(ratio), float(alpha_bar_prev - alpha_bar),
                float(denominator))


class PNDMScheduler(Scheduler):
    """Pseudo numerical methods for diffusion models; PLMS with `skip_prk_steps=True` (Stable Diffusion's)."""

    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas: Sequence[float] | None = None,
                 skip_prk_steps: bool = False, set_alpha_to_one: bool = False, prediction_type: str = "epsilon",
                 timestep_spacing: str = "leading", steps_offset: int = 0):
        check_choice("PNDMScheduler", "prediction_type", prediction_type, ("epsilon", "v_prediction"))
        self._init_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        self.final_alpha_cumprod = 1.0 if set_alpha_to_one else float(self.alphas_cumprod[0])
        self._freeze()

    def start(self, num_inference_steps: int, device=None) -> PNDMRun:
        """A new run. With Runge–Kutta warm-up it makes more model calls than `num_inference_steps`."""
        T, n = self.num_train_timesteps, num_inference_steps
        if not self.config.skip_prk_steps and isinstance(n, int) and n < 4:
            raise ConfigError(f"PNDMScheduler: the Runge-Kutta warm-up needs num_inference_steps >= 4, got {n}; "
                              f"ask for more steps or set skip_prk_steps=True")
        ascending = spaced_timesteps(self.config.timestep_spacing, T, n, self.config.steps_offset,
                                     owner="PNDMScheduler")[::-1].astype(np.int64)
        if self.config.skip_prk_steps:
            # The warm-up evaluates the second-lowest step twice, hence the repeat.
            prk = np.array([], dtype=np.int64)
            plms = np.concatenate([ascending[:-1], ascending[-2:-1], ascending[-1:]])[::-1]
        else:
            pairs = np.array(ascending[-4:]).repeat(2) + np.tile(np.array([0, T // n // 2]), 4)
            prk = pairs[:-1].repeat(2)[1:-1][::-1]
            plms = ascending[:-3][::-1]
        steps = np.concatenate([prk, plms]).astype(np.int64)
        return PNDMRun(self, torch.from_numpy(steps).to(device), prk.copy(), n)
