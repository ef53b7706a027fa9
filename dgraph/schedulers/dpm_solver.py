"""DPM-Solver and DPM-Solver++ multistep (Lu et al. 2022), orders 1–3, and the SDE variant of DPM-Solver++.

DPM-Solver++ integrates the data prediction x0 exactly in the exponential-integrator form
x_t = (sigma_t / sigma_s)·x_s - alpha_t·(e^{-h} - 1)·D0 + ..., with h = lambda_t - lambda_s; the
higher-order terms use differences of past outputs (D1, D2) as derivative estimates.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..configuration import register_to_config
from ..errors import ConfigError
from .base import Scheduler, SchedulerOutput, check_choice, gaussian_noise, refuse_unsupported
from .sigma_schedule import check_one_schedule
from .solver_schedule import SolverRun, solver_schedule
from .spacing import sigma_spacing

ALGORITHMS = ("dpmsolver++", "dpmsolver", "sde-dpmsolver++", "sde-dpmsolver")
STOCHASTIC = ("sde-dpmsolver++", "sde-dpmsolver")


class DPMSolverRun(SolverRun):
    def _step(self, index, model_output, sample, generator, variance_noise: torch.Tensor | None = None):
        config = self.config
        n = len(self)
        data = config.algorithm_type in ("dpmsolver++", "sde-dpmsolver++")
        few_steps = config.lower_order_final and n < 15
        # Low orders near the end keep few-step runs stable (and the step to sigma = 0 must be first order).
        final_first_order = index == n - 1 and (config.euler_at_final or few_steps or config.final_sigmas_type == "zero")
        final_second_order = index == n - 2 and few_steps

        converted = self._convert(model_output, sample, index, want_x0=data)
        self._remember(converted)
        sample = sample.to(torch.float32)
        noise = None
        if config.algorithm_type in STOCHASTIC:
            noise = variance_noise if variance_noise is not None else gaussian_noise(model_output, generator,
                                                                                   torch.float32)
            noise = noise.to(model_output.device, torch.float32)

        if config.solver_order == 1 or self.lower_order_nums < 1 or final_first_order:
            prev_sample = self._first_order(index, sample, noise)
        elif config.solver_order == 2 or self.lower_order_nums < 2 or final_second_order:
            prev_sample = self._second_order(index, sample, noise)
        else:
            prev_sample = self._third_order(index, sample, noise)
        self.lower_order_nums = min(self.lower_order_nums + 1, config.solver_order)

        x0 = converted if data else self._x0_from_eps(converted, sample, index)
        # The dtype of the converted output (the model output promoted with the sample), as in diffusers.
        return SchedulerOutput(prev_sample=prev_sample.to(converted.dtype), pred_original_sample=x0)

    def _terms(self, index):
        t, s = index + 1, index
        return self.alpha[t], self.sigma[t], self.alpha[s], self.sigma[s], self.lam[t] - self.lam[s]

    def _first_order(self, index, sample, noise):
        alpha_t, sigma_t, alpha_s, sigma_s, h = self._terms(index)
        d0 = self.model_outputs[-1]
        algorithm = self.config.algorithm_type
        if algorithm == "dpmsolver++":
            return (sigma_t / sigma_s) * sample - (alpha_t * (math.exp(-h) - 1.0)) * d0
        if algorithm == "dpmsolver":
            return (alpha_t / alpha_s) * sample - (sigma_t * (math.exp(h) - 1.0)) * d0
        if algorithm == "sde-dpmsolver":
            return ((alpha_t / alpha_s) * sample - 2.0 * (sigma_t * (math.exp(h) - 1.0)) * d0
                    + sigma_t * math.sqrt(math.exp(2 * h) - 1.0) * noise)
        return ((sigma_t / sigma_s * math.exp(-h)) * sample + (alpha_t * (1 - math.exp(-2.0 * h))) * d0
                + sigma_t * math.sqrt(1.0 - math.exp(-2 * h)) * noise)

    def _second_order(self, index, sample, noise):
        alpha_t, sigma_t, alpha_s, sigma_s, h = self._terms(index)
        h_0 = self.lam[index] - self.lam[index - 1]
        m0, m1 = self.model_outputs[-1], self.model_outputs[-2]
        d0, d1 = m0, (h / h_0) * (m0 - m1)
        algorithm, midpoint = self.config.algorithm_type, self.config.solver_type == "midpoint"
        if algorithm == "dpmsolver++":
            phi = alpha_t * (math.exp(-h) - 1.0)
            d1_coeff = -0.5 * phi if midpoint else alpha_t * ((math.exp(-h) - 1.0) / h + 1.0)
            return (sigma_t / sigma_s) * sample - phi * d0 + d1_coeff * d1
        if algorithm == "dpmsolver":
            phi = sigma_t * (math.exp(h) - 1.0)
            d1_coeff = -0.5 * phi if midpoint else -sigma_t * ((math.exp(h) - 1.0) / h - 1.0)
            return (alpha_t / alpha_s) * sample - phi * d0 + d1_coeff * d1
        if algorithm == "sde-dpmsolver":
            phi = sigma_t * (math.exp(h) - 1.0)
            d1_coeff = -phi if midpoint else -2.0 * sigma_t * ((math.exp(h) - 1.0) / h - 1.0)
            return ((alpha_t / alpha_s) * sample - 2.0 * phi * d0 + d1_coeff * d1
                    + sigma_t * math.sqrt(math.exp(2 * h) - 1.0) * noise)
        phi = alpha_t * (1 - math.exp(-2.0 * h))
        d1_coeff = 0.5 * phi if midpoint else alpha_t * ((1.0 - math.exp(-2.0 * h)) / (-2.0 * h) + 1.0)
        return ((sigma_t / sigma_s * math.exp(-h)) * sample + phi * d0 + d1_coeff * d1
                + sigma_t * math.sqrt(1.0 - math.exp(-2 * h)) * noise)

    def _third_order(self, index, sample, noise):
        alpha_t, sigma_t, alpha_s, sigma_s, h = self._terms(index)
        h_0 = self.lam[index] - self.lam[index - 1]
        h_1 = self.lam[index - 1] - self.lam[index - 2]
        r0, r1 = h_0 / h, h_1 / h
        m0, m1, m2 = self.model_outputs[-1], self.model_outputs[-2], self.model_outputs[-3]
        d1_0, d1_1 = (1.0 / r0) * (m0 - m1), (1.0 / r1) * (m1 - m2)
        d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
        d2 = (1.0 / (r0 + r1)) * (d1_0 - d1_1)
        algorithm = self.config.algorithm_type
        if algorithm == "dpmsolver++":
            return ((sigma_t / sigma_s) * sample - (alpha_t * (math.exp(-h) - 1.0)) * m0
                    + (alpha_t * ((math.exp(-h) - 1.0) / h + 1.0)) * d1
                    - (alpha_t * ((math.exp(-h) - 1.0 + h) / h ** 2 - 0.5)) * d2)
        if algorithm == "dpmsolver":
            return ((alpha_t / alpha_s) * sample - (sigma_t * (math.exp(h) - 1.0)) * m0
                    - (sigma_t * ((math.exp(h) - 1.0) / h - 1.0)) * d1
                    - (sigma_t * ((math.exp(h) - 1.0 - h) / h ** 2 - 0.5)) * d2)
        return ((sigma_t / sigma_s * math.exp(-h)) * sample + (alpha_t * (1.0 - math.exp(-2.0 * h))) * m0
                + (alpha_t * ((1.0 - math.exp(-2.0 * h)) / (-2.0 * h) + 1.0)) * d1
                + (alpha_t * ((1.0 - math.exp(-2.0 * h) - 2.0 * h) / (2.0 * h) ** 2 - 0.5)) * d2
                + sigma_t * math.sqrt(1.0 - math.exp(-2 * h)) * noise)


class DPMSolverMultistepScheduler(Scheduler):
    """DPM-Solver(++) multistep; `solver_order` 1–3, `algorithm_type` dpmsolver++ / dpmsolver / sde-dpmsolver++ / sde-dpmsolver."""

    order = 1

    @register_to_config
    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: str = "linear", trained_betas: Sequence[float] | None = None,
                 solver_order: int = 2, prediction_type: str = "epsilon", thresholding: bool = False,
                 dynamic_thresholding_ratio: float = 0.995, sample_max_value: float = 1.0,
                 algorithm_type: str = "dpmsolver++", solver_type: str = "midpoint", lower_order_final: bool = True,
                 euler_at_final: bool = False, use_karras_sigmas: bool = False, use_exponential_sigmas: bool = False,
                 use_beta_sigmas: bool = False, use_lu_lambdas: bool = False, use_flow_sigmas: bool = False,
                 flow_shift: float = 1.0, final_sigmas_type: str = "zero", lambda_min_clipped: float = -float("inf"),
                 variance_type: str | None = None, timestep_spacing: str = "linspace", steps_offset: int = 0,
                 rescale_betas_zero_snr: bool = False, use_dynamic_shifting: bool = False,
                 time_shift_type: str = "exponential"):
        owner = "DPMSolverMultistepScheduler"
        if algorithm_type == "deis":
            algorithm_type = "dpmsolver++"  # diffusers reads a DEIS config this way too
        if solver_type in ("logrho", "bh1", "bh2"):
            solver_type = "midpoint"
        check_choice(owner, "algorithm_type", algorithm_type, ALGORITHMS)
        check_choice(owner, "solver_type", solver_type, ("midpoint", "heun"))
        check_choice(owner, "solver_order", solver_order, (1, 2, 3))
        check_choice(owner, "prediction_type", prediction_type, ("epsilon", "sample", "v_prediction"))
        check_choice(owner, "final_sigmas_type", final_sigmas_type, ("zero", "sigma_min"))
        # variance_type only matters when the model also predicts a variance (learned / learned_range);
        # a DDPM config's fixed_* values are read as "no variance channels".
        refuse_unsupported(owner, use_flow_sigmas=(use_flow_sigmas, False),
                           use_dynamic_shifting=(use_dynamic_shifting, False))
        sigma_spacing(self.config, owner)  # refuses two spacings at once
        if use_lu_lambdas and sigma_spacing(self.config, owner) is not None:
            raise ConfigError(f"{owner}: use_lu_lambdas and use_{sigma_spacing(self.config, owner)}_sigmas are set "
                              f"together; set at most one of them")
        if algorithm_type in ("dpmsolver", "sde-dpmsolver") and final_sigmas_type == "zero":
            raise ConfigError(f"{owner}: final_sigmas_type='zero' needs a data-prediction algorithm; "
                              f"use algorithm_type='dpmsolver++' or final_sigmas_type='sigma_min'")
        if algorithm_type == "sde-dpmsolver" and solver_order == 3:
            raise ConfigError(f"{owner}: algorithm_type='sde-dpmsolver' has no third-order update; "
                              f"use solver_order 1 or 2, or algorithm_type='sde-dpmsolver++'")

        self._init_schedule(num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas,
                            rescale_betas_zero_snr)
        if rescale_betas_zero_snr:
            self.alphas_cumprod[-1] = 2 ** -24
        # register_to_config recorded the arguments as given; record the aliases' meaning instead.
        self._internal_config = type(self.config)({**self.config, "algorithm_type": algorithm_type,
                                                   "solver_type": solver_type})
        self._freeze()

    def _spacing(self) -> str | None:
        return "lu" if self.config.use_lu_lambdas else sigma_spacing(self.config, "DPMSolverMultistepScheduler")

    def start(self, num_inference_steps: int | None = None, device=None,
              timesteps: Sequence[int] | None = None) -> DPMSolverRun:
        """A run of n spaced steps, or over given descending integer `timesteps`."""
        owner = "DPMSolverMultistepScheduler"
        config = self.config
        check_one_schedule(owner, num_inference_steps, timesteps=timesteps)
        spacing = self._spacing()
        if timesteps is not None and spacing is not None:
            key = "use_lu_lambdas" if spacing == "lu" else f"use_{spacing}_sigmas"
            raise ConfigError(f"{owner}: timesteps=[...] cannot be used with {key}=True; pass num_inference_steps")
        # Steps whose log-SNR is below lambda_min_clipped are never visited (for cosine schedules).
        alpha = self.alphas_cumprod.sqrt()
        lam = torch.log(alpha) - torch.log(torch.sqrt(1 - self.alphas_cumprod))
        clipped = int(torch.searchsorted(torch.flip(lam, [0]), config.lambda_min_clipped))
        final = "zero" if config.final_sigmas_type == "zero" else "training_min"
        steps, sigmas = solver_schedule(
            self.alphas_cumprod, config, num_inference_steps, owner, spacing=spacing, final=final,
            round_karras_timesteps=config.beta_schedule != "squaredcos_cap_v2",
            last_timestep=self.num_train_timesteps - clipped, timesteps=timesteps)
        return DPMSolverRun(self, torch.from_numpy(steps).to(device), torch.from_numpy(sigmas), config.solver_order)
