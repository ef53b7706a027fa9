"""The conditioning of super-resolution stages: the low-resolution image, noise-augmented, beside the sample.

A cascade's later stage (Imagen / DeepFloyd IF stage II, the Stable Diffusion x4 upscaler) sees the
previous stage's image resized to its own size and noised to a chosen *noise level* with a noising
schedule of its own (noise conditioning augmentation, Ho et al. 2021 "Cascaded diffusion models"); the
network gets that image concatenated with the sample along channels and the level as class labels, so
it learns to ignore the previous stage's artefacts.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..models.outputs import first_output
from ..schedulers.base import gaussian_noise
from .denoisers import ModelDenoiser, _fit


def noise_augment(image: torch.Tensor, scheduler, noise_level: int, generator: torch.Generator | None = None,
                  size: tuple[int, int] | None = None) -> torch.Tensor:
    """`image` (B, C, h, w) in [-1, 1], resized to `size` (bilinear, corners aligned, as IF does; None keeps
    it), then taken to timestep `noise_level` of `scheduler`'s forward process with fresh noise."""
    if size is not None and tuple(image.shape[-2:]) != tuple(size):
        image = F.interpolate(image, size, mode="bilinear", align_corners=True)
    noise = gaussian_noise(image, generator)
    levels = torch.full((image.shape[0],), int(noise_level), dtype=torch.long)
    return scheduler.add_noise(image, noise, levels)


class ImageConditionedDenoiser(ModelDenoiser):
    """A model denoiser whose network reads the sample with `image` concatenated along channels.

    The output is the network's for the sample alone (e.g. epsilon and learned variance of its channels),
    so guidance and the scheduler see the sample's channel count. `class_labels` carry the noise level.
    """

    def __init__(self, model: nn.Module, image: torch.Tensor, context: torch.Tensor | None = None,
                 context_mask: torch.Tensor | None = None, class_labels: torch.Tensor | None = None,
                 compile: str | None = None, *, added: dict[str, torch.Tensor] | None = None):
        super().__init__(model, context, context_mask, class_labels, compile=compile, added=added)
        self.image = image

    def with_image(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, _fit(self.image, x.shape[0]).to(x.device, x.dtype)], dim=1)

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return super().__call__(self.with_image(x), t)

    def batched_with(self, other: ModelDenoiser, x: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        other_input = other.with_image(x) if isinstance(other, ImageConditionedDenoiser) else x
        both = torch.cat([self.with_image(x), other_input]).to(self.device, self.dtype)
        out = first_output(self._forward(both, t, self._kwargs(both.shape[0], [self, other]))).to(x.dtype)
        return out[: x.shape[0]], out[x.shape[0]:]


def quantize_8bit(image: torch.Tensor) -> torch.Tensor:
    """An image in [-1, 1] rounded to the 256 levels of an 8-bit picture, as GLIDE's notebooks hand the base
    model's samples to the upsampler (the upsampler was trained on saved images)."""
    return ((image + 1) * 127.5).round() / 127.5 - 1
