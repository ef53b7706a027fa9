"""Mel profiles: every setting of a mel front-end, so that a vocoder gets the mel it was trained on.

Each vocoder family computes its mel spectrogram differently (filterbank range, padding, log base,
clamp, scaling). A mel made with one profile and fed to a vocoder trained on another does not fail:
it silently gives noise. The profile therefore travels with the tensor and is compared before use.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Literal, Mapping

from ..errors import ConfigError

LogKind = Literal["log10", "ln", "db"]


@dataclass(frozen=True)
class MelProfile:
    """Every setting of a mel front-end (STFT, filterbank, compression, scaling).

    The mel of a waveform `x` is computed as:

    1. pad `x` by `padding` samples on each side with `pad_mode` (HiFi-GAN's explicit padding);
    2. STFT with `n_fft`, `hop_length`, `win_length`, `window`; frames centred when `center`
       (padding `n_fft // 2` on each side with `pad_mode`); `normalized` divides by the window's norm;
    3. magnitude `sqrt(re² + im² + magnitude_eps) ** power`;
    4. filterbank of `n_mels` triangles between `fmin` and `fmax` on `mel_scale`, area-normalised
       when `mel_norm == "slaney"`;
    5. compression: `log10(max(m, clamp))`, `ln(max(m, clamp))` or `20·log10(max(m, clamp)) - ref_db`;
    6. normalisation `"db_unit"`: `clip((db - min_db) / -min_db, 0, 1)` (DiffWave); `None`: none.
    """

    name: str
    sample_rate: int
    n_fft: int
    hop_length: int
    win_length: int
    window: Literal["hann"] = "hann"
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None  # None: Nyquist
    center: bool = True
    pad_mode: Literal["constant", "reflect"] = "reflect"
    padding: int = 0
    normalized: bool = False
    power: float = 1.0
    magnitude_eps: float = 0.0
    mel_scale: Literal["slaney", "htk"] = "slaney"
    mel_norm: Literal["slaney"] | None = "slaney"
    log: LogKind = "ln"
    clamp: float = 1e-5
    normalization: Literal["db_unit"] | None = None
    ref_db: float = 0.0
    min_db: float = -100.0

    def __post_init__(self) -> None:
        problems = []
        if self.sample_rate <= 0 or self.n_fft <= 0 or self.hop_length <= 0 or self.n_mels <= 0:
            problems.append("sample_rate, n_fft, hop_length and n_mels must be positive")
        if not 0 < self.win_length <= self.n_fft:
            problems.append(f"win_length must be in (0, n_fft={self.n_fft}], got {self.win_length}")
        if self.window != "hann":
            problems.append(f"window must be 'hann', got {self.window!r}")
        if self.pad_mode not in ("constant", "reflect"):
            problems.append(f"pad_mode must be 'constant' or 'reflect', got {self.pad_mode!r}")
        if self.log not in ("log10", "ln", "db"):
            problems.append(f"log must be 'log10', 'ln' or 'db', got {self.log!r}")
        if self.normalization not in (None, "db_unit"):
            problems.append(f"normalization must be None or 'db_unit', got {self.normalization!r}")
        if self.normalization == "db_unit" and self.log != "db":
            problems.append("normalization 'db_unit' needs log 'db'")
        if self.mel_scale not in ("slaney", "htk") or self.mel_norm not in ("slaney", None):
            problems.append("mel_scale must be 'slaney' or 'htk' and mel_norm 'slaney' or None")
        if self.clamp <= 0:
            problems.append(f"clamp must be positive (it guards the log), got {self.clamp}")
        if self.fmax is not None and not self.fmin < self.fmax <= self.sample_rate / 2:
            problems.append(f"need fmin < fmax <= sample_rate / 2, got fmin={self.fmin}, fmax={self.fmax}")
        if problems:
            raise ConfigError(f"mel profile {self.name!r}: " + "; ".join(problems))

    @property
    def f_max(self) -> float:
        """The filterbank's upper edge in Hz (Nyquist when `fmax` is None)."""
        return float(self.fmax) if self.fmax is not None else self.sample_rate / 2

    @property
    def frame_offset(self) -> int:
        """Where frame 0's window is centred, in samples of the unpadded signal."""
        return 0 if self.center else self.n_fft // 2 - self.padding

    def num_frames(self, num_samples: int) -> int:
        """How many mel frames a signal of `num_samples` samples gives."""
        if self.center:
            return 1 + num_samples // self.hop_length
        return 1 + (num_samples + 2 * self.padding - self.n_fft) // self.hop_length

    def differences(self, other: "MelProfile") -> list[str]:
        """The settings (all but the name) on which two profiles disagree, as `field: a != b`."""
        out = []
        for field in dataclasses.fields(self):
            if field.name == "name":
                continue
            mine, theirs = getattr(self, field.name), getattr(other, field.name)
            if mine != theirs:
                out.append(f"{field.name}: {mine!r} != {theirs!r}")
        return out

    def compatible_with(self, other: "MelProfile") -> bool:
        """True when a mel made with `other` is what a consumer expecting `self` needs.

        The name is a label only: two profiles with equal settings are compatible whatever they are called.
        """
        return not self.differences(other)

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain JSON-able data (stored in vocoder configs and workflow files)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "MelProfile":
        """Build a profile from `to_dict`'s output; unknown keys are an error that names them."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"mel profile: unknown keys {unknown}; known keys are {sorted(known)}")
        try:
            return cls(**data)
        except TypeError as error:
            raise ConfigError(f"mel profile: {error}") from None


FASTDIFF = MelProfile(
    # FastDiff's data preparation: librosa STFT (centred, zero padding), magnitude, slaney filterbank
    # 80-7600 Hz, log10 clamped at 1e-6.
    name="fastdiff", sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80,
    fmin=80.0, fmax=7600.0, center=True, pad_mode="constant", log="log10", clamp=1e-6,
)

HIFIGAN = MelProfile(
    # HiFi-GAN's meldataset.mel_spectrogram: reflect-pad (n_fft - hop) / 2, uncentred STFT,
    # sqrt(|X|² + 1e-9), slaney filterbank 0-8000 Hz, natural log clamped at 1e-5.
    name="hifigan", sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80,
    fmin=0.0, fmax=8000.0, center=False, pad_mode="reflect", padding=(1024 - 256) // 2,
    magnitude_eps=1e-9, log="ln", clamp=1e-5,
)

DIFFWAVE = MelProfile(
    # DiffWave's preprocess.py: torchaudio MelSpectrogram (centred, reflect, window-normalised STFT,
    # win 1024 = 4 hops, HTK filterbank 20 Hz-Nyquist without area norm), then
    # 20·log10(max(m, 1e-5)) - 20 dB scaled from [-100, 0] dB into [0, 1].
    name="diffwave", sample_rate=22050, n_fft=1024, hop_length=256, win_length=1024, n_mels=80,
    fmin=20.0, fmax=None, center=True, pad_mode="reflect", normalized=True,
    mel_scale="htk", mel_norm=None, log="db", clamp=1e-5, normalization="db_unit", ref_db=20.0, min_db=-100.0,
)

AUDIOLDM = MelProfile(
    # AudioLDM's TacotronSTFT (audioldm/audio/stft.py): 16 kHz, reflect-padded centred STFT by a Fourier
    # conv1d, |X| without epsilon, 64-band slaney filterbank 0-8000 Hz, natural log clamped at 1e-5.
    # Its VAE makes and its SpeechT5 HiFi-GAN reads these mels.
    name="audioldm", sample_rate=16000, n_fft=1024, hop_length=160, win_length=1024, n_mels=64,
    fmin=0.0, fmax=8000.0, center=True, pad_mode="reflect", log="ln", clamp=1e-5,
)

PROFILES: dict[str, MelProfile] = {p.name: p for p in (FASTDIFF, HIFIGAN, DIFFWAVE, AUDIOLDM)}


def get_profile(name: str | MelProfile) -> MelProfile:
    """A named profile (or the profile itself), with an error listing the known names."""
    if isinstance(name, MelProfile):
        return name
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown mel profile {name!r}; known profiles: {', '.join(sorted(PROFILES))}") from None
