"""Mel spectrograms of waveforms, computed through torchaudio as a `MelProfile` prescribes."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchaudio.functional as AF

from ..errors import DgraphError
from .profile import MelProfile, get_profile


def mel_filterbank(profile: MelProfile, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The profile's filterbank as a `[n_mels, n_fft // 2 + 1]` matrix (mel = fb @ magnitude)."""
    fb = AF.melscale_fbanks(
        n_freqs=profile.n_fft // 2 + 1, f_min=float(profile.fmin), f_max=profile.f_max, n_mels=profile.n_mels,
        sample_rate=profile.sample_rate, norm=profile.mel_norm, mel_scale=profile.mel_scale,
    )
    return fb.T.contiguous().to(dtype)


def stft_magnitude(waveform: torch.Tensor, profile: MelProfile) -> torch.Tensor:
    """`sqrt(|STFT|² + magnitude_eps) ** power` of `[batch, samples]` audio: `[batch, n_fft // 2 + 1, frames]`."""
    x = waveform
    if profile.padding:
        x = F.pad(x.unsqueeze(1), (profile.padding, profile.padding), mode=profile.pad_mode).squeeze(1)
    window = torch.hann_window(profile.win_length, dtype=x.dtype, device=x.device)
    power_spec = AF.spectrogram(
        x, pad=0, window=window, n_fft=profile.n_fft, hop_length=profile.hop_length,
        win_length=profile.win_length, power=2.0, normalized=profile.normalized, center=profile.center,
        pad_mode=profile.pad_mode, onesided=True,
    )
    magnitude = torch.sqrt(power_spec + profile.magnitude_eps)
    return magnitude if profile.power == 1.0 else magnitude.pow(profile.power)


def compress(mel: torch.Tensor, profile: MelProfile) -> torch.Tensor:
    """Linear mel → the profile's log (and scaled) domain."""
    clamped = mel.clamp(min=profile.clamp)
    if profile.log == "log10":
        return torch.log10(clamped)
    if profile.log == "ln":
        return torch.log(clamped)
    db = 20.0 * torch.log10(clamped) - profile.ref_db
    if profile.normalization == "db_unit":
        return ((db - profile.min_db) / -profile.min_db).clamp(0.0, 1.0)
    return db


def decompress(mel: torch.Tensor, profile: MelProfile) -> torch.Tensor:
    """The profile's log domain → linear mel (inverse of `compress` wherever the clamps did not bite)."""
    if profile.log == "log10":
        return torch.pow(10.0, mel)
    if profile.log == "ln":
        return torch.exp(mel)
    db = mel * -profile.min_db + profile.min_db if profile.normalization == "db_unit" else mel
    return torch.pow(10.0, (db + profile.ref_db) / 20.0)


def mel_spectrogram(waveform: torch.Tensor, profile: MelProfile | str) -> torch.Tensor:
    """The mel of `[batch, samples]` (or `[samples]`) audio as `[batch, n_mels, frames]`.

    The waveform must already be at `profile.sample_rate` (resample with `dgraph.audio.resample`);
    `frames == profile.num_frames(samples)`.
    """
    profile = get_profile(profile)
    if waveform.dim() == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.dim() != 2:
        raise DgraphError(f"mel_spectrogram: expected audio of shape [batch, samples], got {list(waveform.shape)}")
    samples = waveform.shape[-1]
    # Reflect padding needs more samples than it pads; an uncentred STFT needs one whole window.
    reflected = max(profile.padding, profile.n_fft // 2 if profile.center else 0) if profile.pad_mode == "reflect" else 0
    if samples <= reflected or (not profile.center and samples + 2 * profile.padding < profile.n_fft):
        raise DgraphError(f"mel_spectrogram: {samples} samples is too short for profile {profile.name!r} "
                          f"(n_fft {profile.n_fft}); pad the audio first (dgraph.audio.pad_or_crop)")
    waveform = waveform.float() if not waveform.is_floating_point() else waveform
    magnitude = stft_magnitude(waveform, profile)
    mel = torch.matmul(mel_filterbank(profile, magnitude.dtype).to(magnitude.device), magnitude)
    return compress(mel, profile)


def mel_frequencies(profile: MelProfile) -> torch.Tensor:
    """The centre frequency in Hz of each of the profile's mel bands, `[n_mels]`."""
    if profile.mel_scale == "htk":
        to_mel = lambda hz: 2595.0 * math.log10(1.0 + hz / 700.0)
        lo, hi = to_mel(profile.fmin), to_mel(profile.f_max)
        mels = torch.linspace(lo, hi, profile.n_mels + 2, dtype=torch.float64)[1:-1]
        return 700.0 * (10.0 ** (mels / 2595.0) - 1.0)
    # Slaney: linear below 1 kHz (200/3 Hz per mel), logarithmic above.
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, math.log(6.4) / 27.0

    def to_mel(hz: float) -> float:
        return hz / f_sp if hz < min_log_hz else min_log_mel + math.log(hz / min_log_hz) / logstep

    mels = torch.linspace(to_mel(profile.fmin), to_mel(profile.f_max), profile.n_mels + 2, dtype=torch.float64)[1:-1]
    return torch.where(mels < min_log_mel, mels * f_sp, min_log_hz * torch.exp(logstep * (mels - min_log_mel)))
