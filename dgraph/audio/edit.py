"""Small waveform edits: peak normalisation, trimming silence, padding or cropping to a length."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import DgraphError


def peak_normalize(waveform: torch.Tensor, peak: float = 0.95) -> torch.Tensor:
    """Scale so that the largest absolute sample is `peak` (silence is returned unchanged)."""
    if not 0 < peak <= 1:
        raise DgraphError(f"peak_normalize: peak must be in (0, 1], got {peak}")
    top = waveform.abs().amax()
    return waveform if top == 0 else waveform * (peak / top)


def trim_silence(waveform: torch.Tensor, sample_rate: int, threshold_db: float = -40.0,
                 frame_ms: float = 20.0) -> torch.Tensor:
    """Cut leading and trailing frames whose RMS is `threshold_db` below the loudest frame's.

    Works on `[channels, samples]`; the channels are trimmed together. All-silent audio is returned unchanged.
    """
    frame = max(1, int(sample_rate * frame_ms / 1000))
    samples = waveform.shape[-1]
    if samples < frame:
        return waveform
    mono = waveform.reshape(-1, samples).pow(2).mean(0)
    n_frames = samples // frame
    rms = mono[: n_frames * frame].reshape(n_frames, frame).mean(1).sqrt()
    if rms.max() == 0:
        return waveform
    loud = torch.nonzero(20 * torch.log10(rms / rms.max() + 1e-12) > threshold_db).flatten()
    start, stop = int(loud[0]) * frame, min(samples, (int(loud[-1]) + 1) * frame)
    return waveform[..., start:stop]


def pad_or_crop(waveform: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad at the end, or cut the end, so that there are exactly `length` samples."""
    if length <= 0:
        raise DgraphError(f"pad_or_crop: length must be positive, got {length}")
    samples = waveform.shape[-1]
    if samples >= length:
        return waveform[..., :length]
    return F.pad(waveform, (0, length - samples))


def pad_to_multiple(waveform: torch.Tensor, multiple: int) -> torch.Tensor:
    """Zero-pad at the end to a whole number of `multiple` samples (e.g. a vocoder's hop)."""
    remainder = waveform.shape[-1] % multiple
    return waveform if remainder == 0 else F.pad(waveform, (0, multiple - remainder))
