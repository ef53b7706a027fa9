"""UniPC multistep (Zhao et al. 2023): a unified predictor (UniP) and corrector (UniC), orders 1–3.

After each model call the corrector refines the previous step's result using the new model output;
the predictor then takes the next step. B(h) is h (bh1) or e^h - 1 (bh2).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..configuration import register_to_config
from .base import Scheduler, SchedulerOutput, check_choice, refuse_unsupported
from .solver_schedule import SolverRun, solver_schedule
from .spacing import sigma_spacing


class UniPCRun(SolverRun):
    def __init__(self, scheduler, timesteps, sigmas, solver_order):
        super().__init__(scheduler, timesteps, sigmas, solver_order)
        self.last_sample: torch.Tensor | None = None
        self.this_order = 1

    def _step(self, index, model_output, sample, generator, **options):
        config = self.config
        predict_x0 = config.predict_x0
        converted = self._convert(model_output, sample, index, want_x0=predict_x0, threshold_noise=False)
        if index > 0 and (index - 1) not in config.disable_corrector and self.last_sample is not None:
            sample = self._correct(index, converted, self.last_sample, sample, self.this_order)
        self._remember(converted)

        order = min(config.solver_order, len(self) - index) if config.lower_order_final else config.solver_order
        self.this_order = min(order, self.lower_order_nums + 1)  # warm up the multistep history
        self.last_sample = sample
        prev_sample = self._predict(index, sample, self.this_order)
        self.lower_order_nums = min(self.lower_order_nums + 1, config.solver_order)
        x0 = converted if predict_x0 else self._x0_from_eps(converted, sample, index)
        return SchedulerOutput(prev_sample=prev_sample, pred_original_sample=x0)

    # The coefficients are formed in float32, operation for operation as in the reference
    # implementation (numpy float32 scalars for + - * /, torch for expm1 and the linear solves). At
    # the first step of a cosine schedule alpha is ~5e-5, and a last-bit difference in a coefficient
    # would be amplified far beyond 1e-5 in the sample.
    def _coefficients(self, h: np.float32, rks: list[np.float32], order: int):
        """hh, h·phi_1(hh), B(h), and the matrix R and right-hand side b of the order conditions (eq. 8)."""
        hh = -h if self.config.predict_x0 else h
        h_phi_1 = _expm1(hh)
        h_phi_k = h_phi_1 / hh - 1
        b_h = hh if self.config.solver_type == "bh1" else _expm1(hh)
        factorial = 1
        R, b = [], []
        ranks = torch.tensor(np.array(rks, dtype=np.float32))
        for i in range(1, order + 1):
            R.append(torch.pow(ranks, i - 1))
            b.append(h_phi_k * factorial / b_h)
            factorial *= i + 1
            h_phi_k = h_phi_k / hh - 1 / factorial
        return h_phi_1, b_h, torch.stack(R), torch.tensor(np.array(b, dtype=np.float32))

    def _base_update(self, t: int, s: int, x: torch.Tensor, m0: torch.Tensor, h_phi_1: np.float32) -> torch.Tensor:
        f32 = np.float32
        if self.config.predict_x0:
            return float(f32(self.sigma[t]) / f32(self.sigma[s])) * x - float(f32(self.alpha[t]) * h_phi_1) * m0
        return float(f32(self.alpha[t]) / f32(self.alpha[s])) * x - float(f32(self.sigma[t]) * h_phi_1) * m0

    def _scale(self, t: int, b_h: np.float32) -> float:
        return float(np.float32(self.alpha[t] if self.config.predict_x0 else self.sigma[t]) * b_h)

    def _differences(self, index_of, s: int, h: np.float32, order: int, m0: torch.Tensor):
        """Ratios r_k of past log-SNR steps to h, and the scaled output differences D1_k."""
        rks, d1s = [], []
        for i in range(1, order):
            rk = (np.float32(self.lam[index_of(i)]) - np.float32(self.lam[s])) / h
            rks.append(rk)
            d1s.append((self.model_outputs[-(i + 1)] - m0) / float(rk))
        rks.append(np.float32(1.0))
        return rks, d1s

    def _predict(self, index, x, order):
        with np.errstate(divide="ignore", invalid="ignore"):
            t, s = index + 1, index
            h = np.float32(self.lam[t]) - np.float32(self.lam[s])
            m0 = self.model_outputs[-1]
            rks, d1s = self._differences(lambda i: index - i, s, h, order, m0)
            h_phi_1, b_h, R, b = self._coefficients(h, rks, order)
            x_t = self._base_update(t, s, x, m0, h_phi_1)
            if d1s:
                rhos = torch.ones(1) * 0.5 if order == 2 else torch.linalg.solve(R[:-1, :-1], b[:-1])
                differences = torch.stack(d1s, dim=1)
                # The coefficients are solved in float32 on the CPU; use them where and as the outputs are.
                rhos = rhos.to(differences.device, differences.dtype)
                x_t = x_t - self._scale(t, b_h) * torch.einsum("k,bkc...->bc...", rhos, differences)
            return x_t.to(x.dtype)

    def _correct(self, index, model_t, last_sample, this_sample, order):
        with np.errstate(divide="ignore", invalid="ignore"):
            t, s = index, index - 1
            h = np.float32(self.lam[t]) - np.float32(self.lam[s])
            m0 = self.model_outputs[-1]
            rks, d1s = self._differences(lambda i: index - (i + 1), s, h, order, m0)
            h_phi_1, b_h, R, b = self._coefficients(h, rks, order)
            rhos = torch.ones(1) * 0.5 if order == 1 else torch.linalg.solve(R, b)
            x_t = self._base_update(t, s, last_sample, m0, h_phi_1)
            correction = 0
            if d1s:
                differences = torch.stack(d1s, dim=1)
                correction = torch.einsum("k,bkc...->bc...", rhos[:-1].to(differences.device, differences.dtype),
                                          differences)

            correction = correction + float(rhos[-1]) * (model_t - m0)
            return (x_t - self._scale(t, b_h) * correction).to(this_sample.dtype)


def _expm1(x: np.float32) -> np.float32:
    """e^x - 1 in float32, as torch computes it."""
    return np.float32(torch.expm1(torch.tensor(x, dtype=torch.float32)).item())


class UniPCMultistepScheduler(Scheduler):
    """UniPC; `solver_type` bh1 / bh2, `predict_x0`, `disable_corrector` (list of step indices)."""

    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas: Sequence[float] | None = None,
                 solver_order: int = 2, prediction_type: str = "epsilon", thresholding: bool = False,
                 dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0,
                 predict_x0: bool = True, solver_type: str = "bh2", lower_order_final: bool = True,
                 disable_corrector: Sequence[int] = (), solver_p=None, use_karras_sigmas: bool = False,
                 use_exponential_sigmas: bool = False, use_beta_sigmas: bool = False, use_flow_sigmas: bool = False,
                 flow_shift: float = 1.0, timestep_spacing: str = "linspace", steps_offset: int = 0,
                 final_sigmas_type: str = "zero", rescale_betas_zero_snr: bool = False,
                 use_dynamic_shifting: bool = False, time_shift_type: str = "exponential",
                 sigma_min: float | None = None, sigma_max: float | None = None, shift_terminal: float | None = None):
        owner = "UniPCMultistepScheduler"
        if solver_type not in ("bh1", "bh2") and solver_type in ("midpoint", "heun", "logrho"):
            solver_type = "bh2"  # another solver's config, read as diffusers does
        check_choice(owner, "solver_type", solver_type, ("bh1", "bh2"))
        check_choice(owner, "solver_order", solver_order, (1, 2, 3))
        check_choice(owner, "prediction_type", prediction_type, ("epsilon", "sample", "v_prediction"))
        check_choice(owner, "final_sigmas_type", final_sigmas_type, ("zero", "sigma_min"))
        sigma_spacing(self.config, owner)  # refuses two spacings at once
        refuse_unsupported(owner, solver_p=(solver_p, None), use_flow_sigmas=(use_flow_sigmas, False),
                           use_dynamic_shifting=(use_dynamic_shifting, False), shift_terminal=(shift_terminal, None))
        self._init_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas,
                            rescale_betas_zero_snr)
        if rescale_betas_zero_snr:
            self.alphas_cumprod[-1] = 2 ** -24
        self._internal_config = type(self.config)({**self.config, "solver_type": solver_type,
                                                   "disable_corrector": list(disable_corrector)})
        self._freeze()

    def start(self, num_inference_steps: int, device=None) -> UniPCRun:
        config = self.config
        spacing = sigma_spacing(config, "UniPCMultistepScheduler")
        if config.final_sigmas_type == "zero":
            final = "zero"
        else:
            final = "repeat" if spacing is not None else "training_min"
        timesteps, sigmas = solver_schedule(self.alphas_cumprod, config, num_inference_steps,
                                            "UniPCMultistepScheduler", spacing=spacing, final=final,
                                            sigma_min=config.sigma_min, sigma_max=config.sigma_max)
        return UniPCRun(self, torch.from_numpy(timesteps).to(device), torch.from_numpy(sigmas), config.solver_order)
