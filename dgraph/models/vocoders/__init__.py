"""Vocoders: mel spectrogram → waveform (FastDiff and DiffWave by diffusion, HiFi-GAN and SpeechT5's HiFi-GAN in
one pass)."""
from .diffwave import DiffWaveModel
from .fastdiff import FastDiffModel
from .common import resolve_profile
from .hifigan import HIFIGAN_CONFIGS, HiFiGANGenerator
from .speecht5_hifigan import SpeechT5HiFiGANVocoder, load_speecht5_hifigan

__all__ = ["FastDiffModel", "DiffWaveModel", "HiFiGANGenerator", "HIFIGAN_CONFIGS", "resolve_profile",
           "SpeechT5HiFiGANVocoder", "load_speecht5_hifigan"]
