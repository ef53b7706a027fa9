"""Inpainting by replacing the known part of the predicted x0 (GLIDE's inpainting notebook, `denoised_fn`).

At each step the sampler's predicted x0 is set to the known image where the mask is 1, before it is
clipped; the step then goes on from that x0. An inpainting model also reads the image and mask itself
(`inpaint_image=`, `inpaint_mask=`); this keeps the known part exact. Any sampler that takes the
`x0_transform` hook (DDPM, DDIM) works.
"""
from __future__ import annotations

import torch

from .denoisers import DenoiserFn
from .gradient_guidance import GuidanceWrapper


class KnownRegion(GuidanceWrapper):
    """`denoiser` with x0 forced to `image` where `mask` is 1 (image (B or 1, C, H, W) in [-1, 1], mask
    (B or 1, 1, H, W))."""

    def __init__(self, denoiser: DenoiserFn, image: torch.Tensor, mask: torch.Tensor):
        super().__init__(denoiser)
        self.image, self.mask = image, mask

    def x0_transform(self, x0: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x0 = super().x0_transform(x0, t)
        mask = self.mask.to(x0.device, x0.dtype)
        return x0 * (1 - mask) + self.image.to(x0.device, x0.dtype) * mask


def known_mask(mask: torch.Tensor, size: tuple[int, int] | None = None, invert: bool = False) -> torch.Tensor:
    """A (B, 1, H, W) 0/1 mask, 1 where the image is known, from mask pixels in [0, 1] (B, C, h, w): the first
    channel, resized to `size` by nearest neighbour (as GLIDE's notebook enlarges its 64-pixel mask for the
    upsampler) and rounded. `invert` for masks drawn white where the image is to be painted."""
    mask = mask[:, :1].float()
    if size is not None and tuple(mask.shape[-2:]) != tuple(size):
        mask = torch.nn.functional.interpolate(mask, size, mode="nearest")
    mask = (mask > 0.5).to(mask.dtype)
    return 1 - mask if invert else mask
