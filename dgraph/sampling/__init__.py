"""Denoisers and the sampling loop, usable with or without the graph.

A *denoiser* is any callable `(x, t) -> model output` (what the scheduler's `step` expects: epsilon,
x0 or v, possibly with learned-variance channels). Guidance is built by wrapping denoisers.
"""
from .denoisers import ClassifierFreeGuidance, DynamicThresholding, ModelDenoiser, VocoderDenoiser
from .loop import sample
from .super_resolution import ImageConditionedDenoiser, noise_augment

__all__ = ["ClassifierFreeGuidance", "DynamicThresholding", "ImageConditionedDenoiser", "ModelDenoiser",
           "VocoderDenoiser", "noise_augment", "sample"]
