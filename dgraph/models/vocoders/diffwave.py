"""DiffWave (Kong et al., 2021): a WaveNet-like conditional diffusion vocoder.

A stack of residual layers with dilations cycling through 1, 2, 4, ... 2^(cycle-1); each adds the
embedded diffusion step and the upsampled mel, gates with tanh·sigmoid, and returns a residual and a
skip; the sum of the skips, projected, is the predicted noise. The mel is upsampled by 256 (the hop)
with two transposed 2-D convolutions (16x each along time).

Parameter names follow the official release (lmnt-com/diffwave `DiffWave`), so its `weights.pt`
checkpoints convert with `dgraph.convert.diffwave`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from ...audio.profile import MelProfile
from ...configuration import register_to_config
from ..modeling import ModelMixin
from .common import resolve_profile

# The upsampler is two transposed convs of stride 16 along time: 256 samples per mel frame.
HOP_LENGTH = 256


def step_embedding(steps: torch.Tensor) -> torch.Tensor:
    """`[batch]` steps → `[batch, 128]`: `sin`, `cos` of `t · 10^(4i/63)`, i < 64.

    Fractional steps (used by fast sampling) interpolate linearly between the embeddings of the
    neighbouring integer steps, as the published model was trained with a table of integer steps.
    """
    scales = 10.0 ** (torch.arange(64, device=steps.device, dtype=torch.float32) * 4.0 / 63.0)

    def table(t: torch.Tensor) -> torch.Tensor:
        angles = t.float().reshape(-1, 1) * scales
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)

    if not steps.is_floating_point():
        return table(steps)
    low, high = torch.floor(steps), torch.ceil(steps)
    return table(low) + (table(high) - table(low)) * (steps - low).float().reshape(-1, 1)


class DiffusionEmbedding(nn.Module):
    def __init__(self):
        super().__init__()
        self.projection1 = nn.Linear(128, 512)
        self.projection2 = nn.Linear(512, 512)

    def forward(self, steps: torch.Tensor) -> torch.Tensor:
        return F.silu(self.projection2(F.silu(self.projection1(step_embedding(steps)))))


class SpectrogramUpsampler(nn.Module):
    """`[batch, n_mels, frames]` → `[batch, n_mels, frames * 256]`."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.ConvTranspose2d(1, 1, [3, 32], stride=[1, 16], padding=[1, 8])
        self.conv2 = nn.ConvTranspose2d(1, 1, [3, 32], stride=[1, 16], padding=[1, 8])

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.conv1(mel.unsqueeze(1)), 0.4)
        x = F.leaky_relu(self.conv2(x), 0.4)
        return x.squeeze(1)


class ResidualBlock(nn.Module):
    def __init__(self, n_mels: int, channels: int, dilation: int, unconditional: bool):
        super().__init__()
        self.dilated_conv = nn.Conv1d(channels, 2 * channels, 3, padding=dilation, dilation=dilation)
        self.diffusion_projection = nn.Linear(512, channels)
        self.conditioner_projection = None if unconditional else nn.Conv1d(n_mels, 2 * channels, 1)
        self.output_projection = nn.Conv1d(channels, 2 * channels, 1)

    def forward(self, x: torch.Tensor, step: torch.Tensor, cond: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.dilated_conv(x + self.diffusion_projection(step).unsqueeze(-1))
        if self.conditioner_projection is not None:
            y = y + self.conditioner_projection(cond)
        gate, filt = y.chunk(2, dim=1)
        y = self.output_projection(torch.sigmoid(gate) * torch.tanh(filt))
        residual, skip = y.chunk(2, dim=1)
        return (x + residual) / math.sqrt(2.0), skip


class DiffWaveModel(ModelMixin):
    """DiffWave noise predictor: `(x_t [batch, samples], t [batch], mel [batch, n_mels, frames])` → ε `[batch, 1, samples]`.

    `samples` must be `frames * 256`. An unconditional model (`unconditional=True`) takes no mel.
    """

    @register_to_config
    def __init__(self, n_mels: int = 80, residual_layers: int = 30, residual_channels: int = 64,
                 dilation_cycle_length: int = 10, unconditional: bool = False,
                 mel_profile: str | Mapping[str, Any] = "diffwave"):
        super().__init__()
        self.input_projection = nn.Conv1d(1, residual_channels, 1)
        self.diffusion_embedding = DiffusionEmbedding()
        self.spectrogram_upsampler = None if unconditional else SpectrogramUpsampler()
        self.residual_layers = nn.ModuleList(
            ResidualBlock(n_mels, residual_channels, 2 ** (i % dilation_cycle_length), unconditional)
            for i in range(residual_layers))
        self.skip_projection = nn.Conv1d(residual_channels, residual_channels, 1)
        self.output_projection = nn.Conv1d(residual_channels, 1, 1)

    @property
    def hop_length(self) -> int:
        """Audio samples per mel frame."""
        return HOP_LENGTH

    @property
    def mel_profile(self) -> MelProfile:
        """The mel front-end this model was trained on."""
        return resolve_profile(self.config.mel_profile)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float, mel: torch.Tensor | None = None) -> torch.Tensor:
        if sample.dim() == 3:
            sample = sample.squeeze(1)
        if (mel is None) != (self.spectrogram_upsampler is None):
            raise ValueError("a conditional DiffWave needs a mel, an unconditional one takes none")
        timestep = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
        x = F.relu(self.input_projection(sample.unsqueeze(1)))
        step = self.diffusion_embedding(timestep).to(x.dtype)
        cond = self.spectrogram_upsampler(mel) if mel is not None else None
        skips = 0
        for layer in self.residual_layers:
            x, skip = layer(x, step, cond)
            skips = skips + skip
        x = F.relu(self.skip_projection(skips / math.sqrt(len(self.residual_layers))))
        return self.output_projection(x)
