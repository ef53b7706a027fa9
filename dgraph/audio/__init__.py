"""Audio: mel front-ends and their profiles, audio files, Griffin-Lim, waveform edits.

Functions work on plain tensors: audio is `[batch or channels, samples]` with a sample rate beside it,
a mel is `[batch, n_mels, frames]` with the `MelProfile` that made it.
"""
from .duration import latent_frames
from .edit import pad_or_crop, pad_to_multiple, peak_normalize, trim_silence
from .griffin_lim import griffin_lim, mel_to_magnitude, spectral_convergence
from .io import encode_audio, load_audio, resample, save_audio, to_mono
from .mel import compress, decompress, mel_filterbank, mel_frequencies, mel_spectrogram, stft_magnitude
from .profile import AUDIOLDM, DIFFWAVE, FASTDIFF, HIFIGAN, PROFILES, MelProfile, get_profile

__all__ = [
    "MelProfile", "PROFILES", "FASTDIFF", "HIFIGAN", "DIFFWAVE", "AUDIOLDM", "get_profile",
    "mel_spectrogram", "mel_filterbank", "mel_frequencies", "stft_magnitude", "compress", "decompress",
    "griffin_lim", "mel_to_magnitude", "spectral_convergence",
    "load_audio", "save_audio", "encode_audio", "resample", "to_mono",
    "peak_normalize", "trim_silence", "pad_or_crop", "pad_to_multiple", "latent_frames",
]
