"""Denoisers and the sampling loop, usable with or without the graph.

A *denoiser* is any callable `(x, t) -> model output` (what the scheduler's `step` expects: epsilon,
x0 or v, possibly with learned-variance channels). Guidance is built by wrapping denoisers. The network
inside a `ModelDenoiser` (a UNet, a DiT or PixArt transformer, ...) declares the conditioning it takes.
"""
from .denoisers import (CONDITIONING_KINDS, ClassifierFreeGuidance, DynamicThresholding, ModelDenoiser,
                        VocoderDenoiser, network_conditioning)
from .inpainting import binary_mask, inpainting_condition, latent_mask, masked_image
from .loop import sample
from .sdxl_conditioning import text_time_conditions
from .super_resolution import ImageConditionedDenoiser, noise_augment

__all__ = ["CONDITIONING_KINDS", "ClassifierFreeGuidance", "DynamicThresholding", "ImageConditionedDenoiser", "binary_mask", "inpainting_condition", "latent_mask", "masked_image",
           "ModelDenoiser", "VocoderDenoiser", "network_conditioning", "noise_augment", "sample",
           "text_time_conditions"]
