"""Vocoders: mel spectrogram → waveform (FastDiff and DiffWave by diffusion, HiFi-GAN in one pass)."""
from .diffwave import DiffWaveModel
from .fastdiff import FastDiffModel
from .common import resolve_profile
from .hifigan import HIFIGAN_CONFIGS, HiFiGANGenerator

__all__ = ["FastDiffModel", "DiffWaveModel", "HiFiGANGenerator", "HIFIGAN_CONFIGS", "resolve_profile"]
