"""Guidance that acts inside the sampler's step: a guidance gradient, and a transform of the predicted x0.

Classifier guidance (Dhariwal & Nichol 2021) and CLIP guidance (GLIDE, Nichol et al. 2022, §3.2) are
one idea: a function g(x_t, t) = ∇ log p(y | x_t), scaled; the sampler moves its step with it — DDPM
shifts the posterior mean by its variance times g (`condition_mean`), DDIM shifts the noise by
-sqrt(1 - alpha_bar) · g (`condition_score`). Inpainting by replacement sets the known part of the
predicted x0 before it is clipped (`denoised_fn`). A denoiser wrapper offers these as its `gradient(x, t)`
and `x0_transform(x0, t)` methods; the sampling loop collects them (`guidance_hooks`) at every step and
hands them to the scheduler's step. Wrappers pass the hooks of what they wrap through, so they stack.
"""
from __future__ import annotations

from typing import Callable

import torch

from .denoisers import DenoiserFn

GradientFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class GuidanceWrapper:
    """A denoiser wrapper whose output is the wrapped denoiser's and whose hooks it passes through."""

    def __init__(self, denoiser: DenoiserFn):
        self.denoiser = denoiser

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.denoiser(x, t)

    def gradient(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor | None:
        inner = getattr(self.denoiser, "gradient", None)
        return inner(x, t) if callable(inner) else None

    def x0_transform(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        inner = getattr(self.denoiser, "x0_transform", None)
        return inner(x0, t) if callable(inner) else x0


class GradientGuidance(GuidanceWrapper):
    """`denoiser`'s output, plus `scale · gradient_fn(x, t)` as this step's guidance gradient (added to any
    gradient the wrapped denoiser gives)."""

    def __init__(self, denoiser: DenoiserFn, gradient_fn: GradientFn, scale: float = 1.0):
        super().__init__(denoiser)
        self.gradient_fn, self.scale = gradient_fn, scale

    def gradient(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        own = self.scale * self.gradient_fn(x, t).to(x.dtype)
        inner = super().gradient(x, t)
        return own if inner is None else inner + own


def guidance_hooks(denoiser: DenoiserFn, x: torch.Tensor, t: torch.Tensor) -> dict:
    """The step options a denoiser's guidance hooks give at (x, t): `gradient`, `x0_transform` (none for a
    denoiser without them)."""
    hooks = {}
    gradient = getattr(denoiser, "gradient", None)
    if callable(gradient):
        value = gradient(x, t)
        if value is not None:
            hooks["gradient"] = value
    transform = getattr(denoiser, "x0_transform", None)
    if callable(transform):
        hooks["x0_transform"] = lambda x0: transform(x0, t)
    return hooks


class ClassifierGradient:
    """∇_x log p(y | x_t, t) of a noisy classifier `classifier(x, t) -> logits` at the labels `labels` (one per
    sample): classifier guidance (Dhariwal & Nichol 2021, Alg. 1) as a `GradientGuidance` gradient."""

    def __init__(self, classifier: torch.nn.Module, labels: torch.Tensor):
        self.classifier, self.labels = classifier, labels

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        timesteps = torch.as_tensor(t, device=x.device).reshape(-1).expand(x.shape[0])
        with torch.enable_grad():
            sample = x.detach().requires_grad_(True)
            log_probs = torch.log_softmax(self.classifier(sample, timesteps).float(), dim=-1)
            chosen = log_probs[torch.arange(x.shape[0]), self.labels.to(x.device).reshape(-1)]
            gradient, = torch.autograd.grad(chosen.sum(), sample)
        return gradient
