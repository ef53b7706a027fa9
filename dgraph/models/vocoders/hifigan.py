"""The HiFi-GAN generator (Kong et al., 2020): mel → waveform in one pass, no diffusion.

Transposed convolutions upsample the mel by `prod(upsample_rates)` (the hop, 256); after each, a
multi-receptive-field fusion averages residual blocks of several kernel sizes and dilations.
Parameter names follow the official release (jik876/hifi-gan `Generator`), with weight norm folded
into plain weights, so its `generator` checkpoints convert with `dgraph.convert.hifigan`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
from torch import nn

from ...audio.profile import MelProfile
from ...configuration import register_to_config
from ...errors import ConfigError
from ..modeling import ModelMixin
from .common import leaky_relu, resolve_profile

# Slope of every LeakyReLU inside the generator; the last one, before conv_post, uses torch's default 0.01.
SLOPE = 0.1

# The three published generator configurations (config_v1.json, config_v2.json, config_v3.json).
HIFIGAN_CONFIGS: dict[str, dict[str, Any]] = {
    "v1": dict(resblock="1", upsample_rates=[8, 8, 2, 2], upsample_kernel_sizes=[16, 16, 4, 4],
               upsample_initial_channel=512, resblock_kernel_sizes=[3, 7, 11],
               resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]]),
    "v2": dict(resblock="1", upsample_rates=[8, 8, 2, 2], upsample_kernel_sizes=[16, 16, 4, 4],
               upsample_initial_channel=128, resblock_kernel_sizes=[3, 7, 11],
               resblock_dilation_sizes=[[1, 3, 5], [1, 3, 5], [1, 3, 5]]),
    "v3": dict(resblock="2", upsample_rates=[8, 8, 4], upsample_kernel_sizes=[16, 16, 8],
               upsample_initial_channel=256, resblock_kernel_sizes=[3, 5, 7],
               resblock_dilation_sizes=[[1, 2], [2, 6], [3, 12]]),
}


def _same_padding(kernel_size: int, dilation: int) -> int:
    return (kernel_size * dilation - dilation) // 2


class ResBlock1(nn.Module):
    """Per dilation: LeakyReLU → dilated conv → LeakyReLU → conv, added back to the input."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.convs1 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d))
            for d in dilations)
        self.convs2 = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, padding=_same_padding(kernel_size, 1))
            for _ in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for dilated, plain in zip(self.convs1, self.convs2):
            x = x + plain(leaky_relu(dilated(leaky_relu(x, SLOPE)), SLOPE))
        return x


class ResBlock2(nn.Module):
    """Per dilation: LeakyReLU → dilated conv, added back to the input (the lighter V3 block)."""

    def __init__(self, channels: int, kernel_size: int, dilations: Sequence[int]):
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, kernel_size, dilation=d, padding=_same_padding(kernel_size, d))
            for d in dilations)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for conv in self.convs:
            x = x + conv(leaky_relu(x, SLOPE))
        return x


class HiFiGANGenerator(ModelMixin):
    """HiFi-GAN generator: `[batch, num_mels, frames]` log-mel → `[batch, 1, frames * hop_length]` audio in [-1, 1].

    Build a published configuration with `HiFiGANGenerator.from_preset("v1")` (or "v2", "v3").
    """

    @register_to_config
    def __init__(self, resblock: str = "1", upsample_rates: Sequence[int] = (8, 8, 2, 2),
                 upsample_kernel_sizes: Sequence[int] = (16, 16, 4, 4), upsample_initial_channel: int = 512,
                 resblock_kernel_sizes: Sequence[int] = (3, 7, 11),
                 resblock_dilation_sizes: Sequence[Sequence[int]] = ((1, 3, 5), (1, 3, 5), (1, 3, 5)),
                 num_mels: int = 80, mel_profile: str | Mapping[str, Any] = "hifigan"):
        super().__init__()
        if resblock not in ("1", "2"):
            raise ConfigError(f"HiFiGANGenerator: resblock must be '1' or '2', got {resblock!r}")
        if len(upsample_rates) != len(upsample_kernel_sizes):
            raise ConfigError("HiFiGANGenerator: upsample_rates and upsample_kernel_sizes must have the same length")
        if len(resblock_kernel_sizes) != len(resblock_dilation_sizes):
            raise ConfigError("HiFiGANGenerator: resblock_kernel_sizes and resblock_dilation_sizes must have the same length")
        self.num_kernels = len(resblock_kernel_sizes)
        block = ResBlock1 if resblock == "1" else ResBlock2
        self.conv_pre = nn.Conv1d(num_mels, upsample_initial_channel, 7, padding=3)
        self.ups = nn.ModuleList()
        self.resblocks = nn.ModuleList()
        channels = upsample_initial_channel
        for rate, kernel in zip(upsample_rates, upsample_kernel_sizes):
            self.ups.append(nn.ConvTranspose1d(channels, channels // 2, kernel, rate, padding=(kernel - rate) // 2))
            channels //= 2
            for k, dilations in zip(resblock_kernel_sizes, resblock_dilation_sizes):
                self.resblocks.append(block(channels, k, dilations))
        self.conv_post = nn.Conv1d(channels, 1, 7, padding=3)

    @classmethod
    def from_preset(cls, name: str, **overrides) -> "HiFiGANGenerator":
        """A generator of a published configuration ("v1", "v2", "v3"), randomly initialised."""
        try:
            config = HIFIGAN_CONFIGS[name.lower()]
        except KeyError:
            raise ConfigError(f"unknown HiFi-GAN configuration {name!r}; choose one of {', '.join(HIFIGAN_CONFIGS)}") from None
        return cls(**{**config, **overrides})

    @property
    def hop_length(self) -> int:
        """Audio samples per mel frame."""
        return math.prod(self.config.upsample_rates)

    @property
    def mel_profile(self) -> MelProfile:
        """The mel front-end this generator was trained on."""
        return resolve_profile(self.config.mel_profile)

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        x = self.conv_pre(mel)
        for i, up in enumerate(self.ups):
            x = up(leaky_relu(x, SLOPE))
            blocks = self.resblocks[i * self.num_kernels:(i + 1) * self.num_kernels]
            x = sum(block(x) for block in blocks) / self.num_kernels
        x = self.conv_post(leaky_relu(x, 0.01))
        return torch.tanh(x)
