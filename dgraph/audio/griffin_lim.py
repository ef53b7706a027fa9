"""Griffin-Lim: audio from a mel spectrogram with no trained weights (the always-available vocoder).

The mel is taken back to a linear magnitude spectrogram (undo the compression, then the least-squares
inverse of the filterbank), and a phase is found by the fast Griffin-Lim iteration (Perraudin et al.,
2013): alternate projections between consistent spectrograms and the target magnitude, with momentum.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import DgraphError
from .edit import pad_or_crop
from .mel import decompress, mel_filterbank, stft_magnitude
from .profile import MelProfile, get_profile


def mel_to_magnitude(mel: torch.Tensor, profile: MelProfile) -> torch.Tensor:
    """`[batch, n_mels, frames]` mel → `[batch, n_fft // 2 + 1, frames]` un-normalised STFT magnitude."""
    linear_mel = decompress(mel.double(), profile)
    fb = mel_filterbank(profile, torch.float64).to(mel.device)
    # The filterbank has fewer rows than frequencies: take the minimum-norm least-squares solution,
    # and clip the negative values it produces (a magnitude cannot be negative).
    solution = torch.linalg.pinv(fb) @ linear_mel
    magnitude = solution.clamp(min=0.0).pow(1.0 / profile.power)
    if profile.normalized:
        window = torch.hann_window(profile.win_length, dtype=torch.float64, device=mel.device)
        magnitude = magnitude * window.pow(2).sum().sqrt()
    return magnitude.float()


def griffin_lim(mel: torch.Tensor, profile: MelProfile | str, n_iter: int = 60, momentum: float = 0.99,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Audio `[batch, frames * hop_length]` whose mel (under `profile`) approximates `mel`.

    The starting phase is random, drawn from `generator` (a CPU generator gives the same audio on any device).
    """
    profile = get_profile(profile)
    if mel.dim() == 2:
        mel = mel.unsqueeze(0)
    if mel.dim() != 3 or mel.shape[1] != profile.n_mels:
        raise DgraphError(f"griffin_lim: expected a mel of shape [batch, {profile.n_mels}, frames] for profile "
                          f"{profile.name!r}, got {list(mel.shape)}")
    if not 0 <= momentum < 1:
        raise DgraphError(f"griffin_lim: momentum must be in [0, 1), got {momentum}")
    magnitude = mel_to_magnitude(mel, profile)
    batch, _, frames = magnitude.shape
    window = torch.hann_window(profile.win_length, device=mel.device)
    stft = dict(n_fft=profile.n_fft, hop_length=profile.hop_length, win_length=profile.win_length,
                window=window, center=True)
    # The iteration uses centred frames; frame k of the profile is centred `frame_offset` samples later.
    length = (frames - 1) * profile.hop_length + 1

    phase = torch.rand(magnitude.shape, generator=generator, dtype=torch.float32) * (2 * torch.pi)
    angles = torch.polar(torch.ones_like(magnitude), phase.to(mel.device))
    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        signal = torch.istft(magnitude * angles, length=length, **stft)
        rebuilt = torch.stft(signal, return_complex=True, pad_mode="reflect", **stft)
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    signal = torch.istft(magnitude * angles, length=length, **stft)
    signal = F.pad(signal, (profile.frame_offset, 0))
    return pad_or_crop(signal, frames * profile.hop_length)


def spectral_convergence(reference: torch.Tensor, estimate: torch.Tensor, profile: MelProfile | str) -> float:
    """`‖|S_ref| - |S_est|‖_F / ‖|S_ref|‖_F` over the profile's STFT magnitudes (0 is a perfect match).

    Both signals are `[batch, samples]` (or `[samples]`) and are compared over their common length.
    """
    profile = get_profile(profile)
    samples = min(reference.shape[-1], estimate.shape[-1])
    ref = stft_magnitude(reference[..., :samples].reshape(-1, samples).float(), profile)
    est = stft_magnitude(estimate[..., :samples].reshape(-1, samples).float(), profile)
    return float(torch.linalg.norm(ref - est) / torch.linalg.norm(ref))
