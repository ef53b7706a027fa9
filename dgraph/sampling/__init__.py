"""Denoisers and the sampling loop, usable with or without the graph.

A *denoiser* is any callable `(x, t) -> model output` (what the scheduler's `step` expects: epsilon,
x0 or v, possibly with learned-variance channels). Guidance is built by wrapping denoisers. The network
inside a `ModelDenoiser` (a UNet, a DiT or PixArt transformer, ...) declares the conditioning it takes.
"""
from .denoisers import (CONDITIONING_KINDS, ClassifierFreeGuidance, DynamicThresholding, ModelDenoiser,
                        VocoderDenoiser, network_conditioning)
from .clip_guidance import CLIPGradient, NoisedCLIP, load_noised_clip
from .gradient_guidance import ClassifierGradient, GradientGuidance, GuidanceWrapper, guidance_hooks
from .inpainting import KnownRegion
from .loop import sample
from .super_resolution import ImageConditionedDenoiser, noise_augment

__all__ = ["CONDITIONING_KINDS", "CLIPGradient", "ClassifierFreeGuidance", "ClassifierGradient", "DynamicThresholding",
           "GradientGuidance", "GuidanceWrapper", "ImageConditionedDenoiser", "KnownRegion", "ModelDenoiser",
           "NoisedCLIP", "VocoderDenoiser", "guidance_hooks", "load_noised_clip", "network_conditioning",
           "noise_augment", "sample"]
