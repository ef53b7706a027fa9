"""Reading and writing audio files (soundfile) and resampling (torchaudio).

Audio is a float32 tensor `[channels, samples]` in [-1, 1] with its sample rate beside it.
"""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from ..configuration import write_bytes_atomic
from ..errors import DgraphError

# File extension → soundfile container; the formats a user can choose to write.
WRITABLE_FORMATS = {".wav": "WAV", ".flac": "FLAC"}
# Sample encodings a user can choose, by the names used in node parameters.
SUBTYPES = {"pcm16": "PCM_16", "pcm24": "PCM_24", "float": "FLOAT"}


def load_audio(path: str | os.PathLike, sample_rate: int | None = None, mono: bool = False) -> tuple[torch.Tensor, int]:
    """Read a wav / flac / ogg file as `([channels, samples] float32, sample_rate)`.

    `sample_rate` resamples to that rate; `mono` averages the channels into one.
    """
    path = Path(path)
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as error:
        if not path.exists():
            raise DgraphError(f"{path}: no such audio file") from None
        raise DgraphError(f"{path}: cannot read audio ({error}); supported: wav, flac, ogg") from None
    waveform = torch.from_numpy(np.ascontiguousarray(data.T))
    if mono:
        waveform = to_mono(waveform)
    if sample_rate is not None and sample_rate != rate:
        waveform = resample(waveform, rate, sample_rate)
        rate = sample_rate
    return waveform, int(rate)


def save_audio(path: str | os.PathLike, waveform: torch.Tensor, sample_rate: int, subtype: str = "pcm16") -> Path:
    """Write `[channels, samples]` (or `[samples]`) audio as wav or flac, atomically.

    `subtype` is `"pcm16"`, `"pcm24"` or `"float"` (wav only). Samples outside [-1, 1] are clipped for
    PCM. Returns the path written.
    """
    path = Path(path)
    data = encode_audio(waveform, sample_rate, path.suffix, subtype, name=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)
    return path


def encode_audio(waveform: torch.Tensor, sample_rate: int, suffix: str, subtype: str = "pcm16",
                 name: str = "audio") -> bytes:
    """The bytes of a wav or flac file (`suffix` `.wav` or `.flac`) holding the audio; see `save_audio`."""
    container = WRITABLE_FORMATS.get(suffix.lower())
    if container is None:
        raise DgraphError(f"{name}: cannot write {suffix or 'files without an extension'!r}; "
                          f"use one of {', '.join(WRITABLE_FORMATS)}")
    if subtype not in SUBTYPES:
        raise DgraphError(f"{name}: unknown sample format {subtype!r}; use one of {', '.join(SUBTYPES)}")
    if container == "FLAC" and subtype == "float":
        raise DgraphError(f"{name}: flac stores integer samples only; use subtype 'pcm16' or 'pcm24', or a .wav file")
    if waveform.dim() == 1:
        waveform = waveform.unsqueeze(0)
    if waveform.dim() != 2:
        raise DgraphError(f"{name}: expected audio of shape [channels, samples], got {list(waveform.shape)}")
    data = waveform.detach().to("cpu", torch.float32).numpy().T
    if subtype != "float":
        data = np.clip(data, -1.0, 1.0)
    buffer = io.BytesIO()
    sf.write(buffer, data, int(sample_rate), format=container, subtype=SUBTYPES[subtype])
    return buffer.getvalue()


def resample(waveform: torch.Tensor, orig_rate: int, new_rate: int) -> torch.Tensor:
    """Band-limited resampling along the last axis (torchaudio's windowed-sinc)."""
    if orig_rate <= 0 or new_rate <= 0:
        raise DgraphError(f"resample: sample rates must be positive, got {orig_rate} -> {new_rate}")
    if orig_rate == new_rate:
        return waveform
    return AF.resample(waveform, int(orig_rate), int(new_rate))


def to_mono(waveform: torch.Tensor) -> torch.Tensor:
    """Average `[channels, samples]` into `[1, samples]`."""
    return waveform.mean(dim=0, keepdim=True)
