"""Vocoders: mel spectrogram → waveform (FastDiff and DiffWave by diffusion, HiFi-GAN in one pass)."""
from .diffwave import DIFFWAVE_FAST_SCHEDULE, DIFFWAVE_TRAINING_BETAS, DiffWaveModel
from .fastdiff import FASTDIFF_SCHEDULES, FASTDIFF_TRAINING_BETAS, FastDiffModel, fastdiff_schedule
from .common import resolve_profile
from .hifigan import HIFIGAN_CONFIGS, HiFiGANGenerator

__all__ = ["FastDiffModel", "DiffWaveModel", "HiFiGANGenerator", "HIFIGAN_CONFIGS", "FASTDIFF_SCHEDULES",
           "FASTDIFF_TRAINING_BETAS", "fastdiff_schedule", "DIFFWAVE_FAST_SCHEDULE", "DIFFWAVE_TRAINING_BETAS", "resolve_profile"]
