"""Inpainting: a mask says where to paint (1) and where to keep the image (0).

An inpainting UNet (9 input channels: Stable Diffusion's and SDXL's inpainting checkpoints) reads, beside the
latents, the mask at the latents' size and the latents of the image with the painted area blacked out; an
ordinary UNet is kept to the image instead by blending, after every step, the image noised to that step
into the unmasked area (as diffusers' inpainting pipelines do).
"""
from __future__ import annotations

import torch
from torch.nn import functional as F

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
