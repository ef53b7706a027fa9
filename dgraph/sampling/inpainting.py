"""Inpainting: the two ways a sampling run keeps part of an image.

- Stable Diffusion's (diffusers' inpainting pipelines): a mask says where to paint (1) and where to keep the
  image (0). An inpainting UNet (9 input channels: Stable Diffusion's and SDXL's inpainting checkpoints)
  reads, beside the latents, the mask at the latents' size and the latents of the image with the painted
  area blacked out; an ordinary UNet is kept to the image instead by blending, after every step, the image
  noised to that step into the unmasked area (`sample(..., mask=)`). `binary_mask`, `masked_image`,
  `latent_mask`, `inpainting_condition`.
- GLIDE's (its inpainting notebook, `denoised_fn`): the mask is 1 where the image is *known*; at each step
  the sampler's predicted x0 is set to the known image there, before it is clipped, and the step goes on
  from that x0 (`KnownRegion`, through the `x0_transform` hook DDPM and DDIM take; `known_mask`). GLIDE's
  inpainting models also read the image and mask themselves (`inpaint_image=`, `inpaint_mask=`).

Each follows its reference's mask convention and thresholds, so the same pictures give the same masks.
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

from .denoisers import DenoiserFn
from .gradient_guidance import GuidanceWrapper

# ITU-R 601-2 luma, the weights of PIL's convert("L") that diffusers' mask processor applies.
_LUMA = (0.299, 0.587, 0.114)


def binary_mask(pixels: torch.Tensor) -> torch.Tensor:
    """A (B, 1, H, W) mask of 0 and 1 from (B, C, H, W) values in [0, 1]: grey at or above 0.5 is 1 (paint)."""
    if pixels.shape[1] == 3:
        weights = torch.tensor(_LUMA, dtype=pixels.dtype, device=pixels.device).view(1, 3, 1, 1)
        pixels = (pixels * weights).sum(dim=1, keepdim=True)
    elif pixels.shape[1] != 1:
        pixels = pixels.mean(dim=1, keepdim=True)
    return (pixels >= 0.5).to(pixels.dtype)


def masked_image(image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The image (values in [-1, 1]) with the area to paint set to 0 (mid grey), where the mask is 1."""
    return image * (mask < 0.5)


def latent_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The mask at the latents' size (nearest neighbour, as diffusers resizes it)."""
    return F.interpolate(mask, size=tuple(size))


def inpainting_condition(mask: torch.Tensor, masked_latents: torch.Tensor) -> torch.Tensor:
    """What a 9-channel inpainting UNet reads after the latents: the latent-size mask, then the masked latents."""
    return torch.cat([latent_mask(mask, masked_latents.shape[-2:]).to(masked_latents.dtype), masked_latents], dim=1)



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
        mask = F.interpolate(mask, size, mode="nearest")
    mask = (mask > 0.5).to(mask.dtype)
    return 1 - mask if invert else mask
