"""DEIS multistep (Zhang & Chen 2023): exponential integrator with polynomial extrapolation in log rho.

rho = sigma / alpha; the noise prediction is extrapolated as a Lagrange polynomial in log rho over the
last 1–3 steps, and integrated exactly from rho_s to rho_t.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..configuration import register_to_config
from .base import Scheduler, SchedulerOutput, check_choice, refuse_unsupported
from .solver_schedule import SolverRun, solver_schedule
from .spacing import sigma_spacing


# The weights are evaluated in float32, as in the reference implementation. The third-order ones
# cancel badly (terms of ~40 summing to ~1), so float64 would differ from diffusers by up to 1e-4
# after 25 steps; keeping float32 keeps the two libraries' samples equal to 1e-5.
def _second_order_weight(t: np.float32, b: np.float32, c: np.float32) -> np.float32:
    """Antiderivative in rho of the linear Lagrange basis in log rho through nodes b (value 1) and c (value 0)."""
    return t * (-np.log(c) + np.log(t) - 1) / (np.log(b) - np.log(c))


def _third_order_weight(t: np.float32, b: np.float32, c: np.float32, d: np.float32) -> np.float32:
    """Antiderivative in rho of the quadratic Lagrange basis in log rho through b (value 1), c and d (value 0)."""
    lt, lc, ld = np.log(t), np.log(c), np.log(d)
    numerator = t * (lc * (ld - lt + 1) - ld * lt + ld + lt ** 2 - 2 * lt + 2)
    return numerator / ((np.log(b) - lc) * (np.log(b) - ld))


class DEISRun(SolverRun):
    def _step(self, index, model_output, sample, generator, **options):
        config = self.config
        n = len(self)
        few_steps = config.lower_order_final and n < 15
        # Through x0 for every prediction type (thresholding acts on x0), then back to noise.
        x0 = self._convert(model_output, sample, index, want_x0=True)
        eps = (sample - self.alpha[index] * x0) / self.sigma[index]
        self._remember(eps)
        if config.solver_order == 1 or self.lower_order_nums < 1 or (index == n - 1 and few_steps):
            prev_sample = self._first_order(index, sample)
        elif config.solver_order == 2 or self.lower_order_nums < 2 or (index == n - 2 and few_steps):
            prev_sample = self._second_order(index, sample)
        else:
            prev_sample = self._third_order(index, sample)
        self.lower_order_nums = min(self.lower_order_nums + 1, config.solver_order)
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)

    def _rho(self, index: int) -> np.float32:
        return np.float32(self.sigma[index]) / np.float32(self.alpha[index])

    def _first_order(self, index, sample):
        # float32 scalars, as in the reference: alpha_s is ~5e-5 at the top of a cosine schedule, and
        # the two terms cancel, so a last-bit difference in a coefficient would show in the sample.
        f32 = np.float32
        alpha_t, sigma_t, alpha_s = f32(self.alpha[index + 1]), f32(self.sigma[index + 1]), f32(self.alpha[index])
        h = f32(self.lam[index + 1]) - f32(self.lam[index])
        exp_h = f32(torch.exp(torch.tensor(h)).item())
        return float(alpha_t / alpha_s) * sample - float(sigma_t * (exp_h - 1)) * self.model_outputs[-1]

    def _second_order(self, index, sample):
        rho_t, rho_0, rho_1 = self._rho(index + 1), self._rho(index), self._rho(index - 1)
        w = _second_order_weight
        coef0 = w(rho_t, rho_0, rho_1) - w(rho_0, rho_0, rho_1)
        coef1 = w(rho_t, rho_1, rho_0) - w(rho_0, rho_1, rho_0)
        m0, m1 = self.model_outputs[-1], self.model_outputs[-2]
        return self.alpha[index + 1] * (sample / self.alpha[index] + float(coef0) * m0 + float(coef1) * m1)

    def _third_order(self, index, sample):
        rho_t, rho_0, rho_1, rho_2 = (self._rho(index + 1), self._rho(index), self._rho(index - 1),
                                      self._rho(index - 2))
        w = _third_order_weight
        coef0 = w(rho_t, rho_0, rho_1, rho_2) - w(rho_0, rho_0, rho_1, rho_2)
        coef1 = w(rho_t, rho_1, rho_2, rho_0) - w(rho_0, rho_1, rho_2, rho_0)
        coef2 = w(rho_t, rho_2, rho_0, rho_1) - w(rho_0, rho_2, rho_0, rho_1)
        m0, m1, m2 = self.model_outputs[-1], self.model_outputs[-2], self.model_outputs[-3]
        return self.alpha[index + 1] * (sample / self.alpha[index] + float(coef0) * m0 + float(coef1) * m1
                                        + float(coef2) * m2)


class DEISMultistepScheduler(Scheduler):
    """DEIS multistep sampler (log-rho, orders 1–3)."""

    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas: Sequence[float] | None = None,
                 solver_order: int = 2, prediction_type: str = "epsilon", thresholding: bool = False,
                 dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0,
                 algorithm_type: str = "deis", solver_type: str = "logrho", lower_order_final: bool = True,
                 use_karras_sigmas: bool = False, use_exponential_sigmas: bool = False, use_beta_sigmas: bool = False,
                 use_flow_sigmas: bool = False, flow_shift: float = 1.0, timestep_spacing: str = "linspace",
                 steps_offset: int = 0, use_dynamic_shifting: bool = False, time_shift_type: str = "exponential"):
        owner = "DEISMultistepScheduler"
        if algorithm_type in ("dpmsolver", "dpmsolver++"):
            algorithm_type = "deis"  # a DPM-Solver config read as DEIS, as diffusers does
        if solver_type in ("midpoint", "heun", "bh1", "bh2"):
            solver_type = "logrho"
        check_choice(owner, "algorithm_type", algorithm_type, ("deis",))
        check_choice(owner, "solver_type", solver_type, ("logrho",))
        check_choice(owner, "solver_order", solver_order, (1, 2, 3))
        check_choice(owner, "prediction_type", prediction_type, ("epsilon", "sample", "v_prediction"))
        sigma_spacing(self.config, owner)  # refuses two spacings at once
        refuse_unsupported(owner, use_flow_sigmas=(use_flow_sigmas, False),
                           use_dynamic_shifting=(use_dynamic_shifting, False))
        self._init_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas)
        self._internal_config = type(self.config)({**self.config, "algorithm_type": algorithm_type,
                                                   "solver_type": solver_type})
        self._freeze()

    def start(self, num_inference_steps: int, device=None) -> DEISRun:
        config = self.config
        spacing = sigma_spacing(config, "DEISMultistepScheduler")
        timesteps, sigmas = solver_schedule(self.alphas_cumprod, config, num_inference_steps,
                                            "DEISMultistepScheduler", spacing=spacing,
                                            final="repeat" if spacing is not None else "training_min")
        return DEISRun(self, torch.from_numpy(timesteps).to(device), torch.from_numpy(sigmas), config.solver_order)
