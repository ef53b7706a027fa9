"""Denoisers and the sampling loop, usable with or without the graph.

A *denoiser* is any callable `(x, t) -> model output` (what the scheduler's `step` expects: epsilon,
x0 or v, possibly with learned-variance channels). Guidance is built by wrapping denoisers. The network
inside a `ModelDenoiser` (a UNet, a DiT or PixArt transformer, ...) declares the conditioning it takes.
"""
from .denoisers import (CONDITIONING_KINDS, ClassifierFreeGuidance, DynamicThresholding, ModelDenoiser,
                        VocoderDenoiser, network_conditioning)
from .clip_guidance import CLIPGradient, NoisedCLIP, load_noised_clip
from .gradient_guidance import ClassifierGradient, GradientGuidance, GuidanceWrapper, guidance_hooks
from .inpainting import KnownRegion, binary_mask, inpainting_condition, latent_mask, masked_image
from .loop import sample
from .sdxl_conditioning import text_time_conditions
from .super_resolution import ImageConditionedDenoiser, noise_augment
from .unclip import DecoderDenoiser, decoder_conditioning, upscale

__all__ = ["binary_mask", "ClassifierFreeGuidance", "ClassifierGradient", "CLIPGradient",
           "CONDITIONING_KINDS", "decoder_conditioning", "DecoderDenoiser", "DynamicThresholding",
           "GradientGuidance", "guidance_hooks", "GuidanceWrapper", "ImageConditionedDenoiser",
           "inpainting_condition", "KnownRegion", "latent_mask", "load_noised_clip", "masked_image",
           "ModelDenoiser", "network_conditioning", "noise_augment", "NoisedCLIP", "sample",
           "text_time_conditions", "upscale", "VocoderDenoiser"]
