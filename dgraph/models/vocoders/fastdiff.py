"""FastDiff's noise predictor (Huang et al., 2022): a conditional diffusion vocoder.

Given noisy audio `x_t`, the mel and the (continuous) diffusion step `t`, it predicts the noise `ε`:

- the step is embedded (sinusoids → two swish-activated linear layers);
- the audio is downsampled by the hop in stages (`downsample`, one `DiffusionDBlock` per stage), keeping
  each stage's output for a skip connection;
- it is brought back up, stage by stage, by time-aware location-variable convolution blocks
  (`lvc_blocks`): a kernel predictor turns the mel (plus the step embedding) into one convolution kernel
  per mel frame, and each audio segment of one hop is convolved with its own frame's kernel.

Parameter names follow the official release (Rongjiehuang/FastDiff `FastDiff`), with weight norm
folded into plain weights, so its checkpoints convert with `dgraph.convert.fastdiff`.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ...audio.profile import MelProfile
from ...configuration import register_to_config
from ..modeling import ModelMixin
from .common import resolve_profile

def step_embedding(steps: torch.Tensor, dim: int) -> torch.Tensor:
    """`[batch]` (possibly fractional) steps → `[batch, dim]`: sines then cosines of `t · 10000^(-i/(dim/2 - 1))`."""
    half = dim // 2
    freqs = torch.exp(torch.arange(half, device=steps.device, dtype=torch.float32) * -(math.log(10000.0) / (half - 1)))
    angles = steps.float().reshape(-1, 1) * freqs
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def location_variable_convolution(x: torch.Tensor, kernels: torch.Tensor, bias: torch.Tensor, hop: int) -> torch.Tensor:
    """Convolve each `hop`-long segment of `x` with the kernel of its own frame.

    x: `[batch, in, frames * hop]`; kernels: `[batch, in, out, kernel_size, frames]`; bias: `[batch, out, frames]`.
    Returns `[batch, out, frames * hop]`.
    """
    batch, _, length = x.shape
    _, _, out_channels, kernel_size, frames = kernels.shape
    if length != frames * hop:
        raise ValueError(f"audio length {length} != {frames} frames x hop {hop}")
    pad = (kernel_size - 1) // 2
    segments = F.pad(x, (pad, pad)).unfold(2, hop + 2 * pad, hop)       # [b, in, frames, hop + 2 pad]
    windows = segments.unfold(3, kernel_size, 1)                          # [b, in, frames, hop, k]
    out = torch.einsum("bilsk,biokl->bols", windows, kernels) + bias.unsqueeze(-1)
    return out.reshape(batch, out_channels, frames * hop)


class KernelPredictor(nn.Module):
    """Mel (plus step embedding) → per-frame kernels and biases of every LVC layer of one block."""

    def __init__(self, cond_channels: int, conv_in_channels: int, conv_out_channels: int, conv_layers: int,
                 conv_kernel_size: int, hidden_channels: int, conv_size: int, dropout: float):
        super().__init__()
        self.shape = (conv_layers, conv_in_channels, conv_out_channels, conv_kernel_size)
        pad = (conv_size - 1) // 2
        self.input_conv = nn.Sequential(nn.Conv1d(cond_channels, hidden_channels, 5, padding=2), nn.LeakyReLU(0.1))

        def conv() -> nn.Conv1d:
            return nn.Conv1d(hidden_channels, hidden_channels, conv_size, padding=pad)

        # Three pairs of convolutions, each pair after a dropout; indices match the official state dict.
        self.residual_conv = nn.Sequential(
            nn.Dropout(dropout), conv(), nn.LeakyReLU(0.1), conv(), nn.LeakyReLU(0.1),
            nn.Dropout(dropout), conv(), nn.LeakyReLU(0.1), conv(), nn.LeakyReLU(0.1),
            nn.Dropout(dropout), conv(), nn.LeakyReLU(0.1), conv(), nn.LeakyReLU(0.1),
        )
        layers, cin, cout, k = self.shape
        self.kernel_conv = nn.Conv1d(hidden_channels, layers * cin * cout * k, conv_size, padding=pad)
        self.bias_conv = nn.Conv1d(hidden_channels, layers * cout, conv_size, padding=pad)

    def forward(self, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, frames = cond.shape
        layers, cin, cout, k = self.shape
        h = self.input_conv(cond)
        h = h + self.residual_conv(h)
        kernels = self.kernel_conv(h).reshape(batch, layers, cin, cout, k, frames)
        bias = self.bias_conv(h).reshape(batch, layers, cout, frames)
        return kernels, bias


class DiffusionDBlock(nn.Module):
    """Downsample audio features by `factor` (nearest), through three dilated convs plus a 1x1 residual."""

    def __init__(self, channels: int, factor: int):
        super().__init__()
        self.factor = factor
        self.residual_dense = nn.Conv1d(channels, channels, 1)
        self.conv = nn.ModuleList(nn.Conv1d(channels, channels, 3, dilation=d, padding=d) for d in (1, 2, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-1] // self.factor
        residual = F.interpolate(self.residual_dense(x), size=size)
        x = F.interpolate(x, size=size)
        for conv in self.conv:
            x = conv(F.leaky_relu(x, 0.2))
        return x + residual


class TimeAwareLVCBlock(nn.Module):
    """Upsample by `upsample_ratio`, then gated location-variable convolutions conditioned on mel and step."""

    def __init__(self, channels: int, cond_channels: int, upsample_ratio: int, conv_layers: int,
                 conv_kernel_size: int, cond_hop_length: int, kpnet_hidden_channels: int, kpnet_conv_size: int,
                 dropout: float, step_embed_dim: int):
        super().__init__()
        self.cond_hop_length = cond_hop_length  # audio samples per mel frame at this block's resolution
        self.upsample = nn.ConvTranspose1d(channels, channels, kernel_size=upsample_ratio * 2, stride=upsample_ratio,
                                           padding=upsample_ratio // 2 + upsample_ratio % 2,
                                           output_padding=upsample_ratio % 2)
        self.kernel_predictor = KernelPredictor(cond_channels, channels, 2 * channels, conv_layers, conv_kernel_size,
                                                kpnet_hidden_channels, kpnet_conv_size, dropout)
        self.fc_t = nn.Linear(step_embed_dim, cond_channels)
        self.convs = nn.ModuleList(
            nn.Conv1d(channels, channels, conv_kernel_size, dilation=3 ** i, padding=3 ** i * (conv_kernel_size - 1) // 2)
            for i in range(conv_layers))

    def forward(self, x: torch.Tensor, skip: torch.Tensor, mel: torch.Tensor, step_embed: torch.Tensor) -> torch.Tensor:
        channels = x.shape[1]
        kernels, bias = self.kernel_predictor(mel + self.fc_t(step_embed).unsqueeze(-1))
        x = self.upsample(F.leaky_relu(x, 0.2))
        for i, conv in enumerate(self.convs):
            x = x + skip
            y = F.leaky_relu(conv(F.leaky_relu(x, 0.2)), 0.2)
            y = location_variable_convolution(y, kernels[:, i], bias[:, i], self.cond_hop_length)
            x = x + torch.sigmoid(y[:, :channels]) * torch.tanh(y[:, channels:])
        return x


class FastDiffModel(ModelMixin):
    """FastDiff noise predictor: `(x_t [batch, 1, samples], mel [batch, cond_channels, frames], t [batch])` → ε.

    `samples` must be `frames * hop_length` (`hop_length = prod(upsample_ratios)`, 256 for the published model).
    """

    @register_to_config
    def __init__(self, audio_channels: int = 1, inner_channels: int = 32, cond_channels: int = 80,
                 upsample_ratios: Sequence[int] = (8, 8, 4), lvc_layers_each_block: int = 4,
                 lvc_kernel_size: int = 3, kpnet_hidden_channels: int = 64, kpnet_conv_size: int = 3,
                 dropout: float = 0.0, diffusion_step_embed_dim_in: int = 128,
                 diffusion_step_embed_dim_mid: int = 512, diffusion_step_embed_dim_out: int = 512,
                 mel_profile: str | Mapping[str, Any] = "fastdiff"):
        super().__init__()
        self.fc_t1 = nn.Linear(diffusion_step_embed_dim_in, diffusion_step_embed_dim_mid)
        self.fc_t2 = nn.Linear(diffusion_step_embed_dim_mid, diffusion_step_embed_dim_out)
        self.first_audio_conv = nn.Conv1d(1, inner_channels, 7, padding=3)
        self.lvc_blocks = nn.ModuleList()
        self.downsample = nn.ModuleList()
        hop = 1
        for i, ratio in enumerate(upsample_ratios):
            hop *= ratio
            self.lvc_blocks.append(TimeAwareLVCBlock(
                inner_channels, cond_channels, ratio, lvc_layers_each_block, lvc_kernel_size, hop,
                kpnet_hidden_channels, kpnet_conv_size, dropout, diffusion_step_embed_dim_out))
            # Downsampling mirrors upsampling: the first down block undoes the last up block's ratio.
            self.downsample.append(DiffusionDBlock(inner_channels, upsample_ratios[-1 - i]))
        self.final_conv = nn.Sequential(nn.Conv1d(inner_channels, audio_channels, 7, padding=3))

    @property
    def hop_length(self) -> int:
        """Audio samples per mel frame."""
        return math.prod(self.config.upsample_ratios)

    @property
    def mel_profile(self) -> MelProfile:
        """The mel front-end this model was trained on."""
        return resolve_profile(self.config.mel_profile)

    def forward(self, sample: torch.Tensor, mel: torch.Tensor, timestep: torch.Tensor | float) -> torch.Tensor:
        """Predict the noise in `sample` (`[batch, 1, samples]` or `[batch, samples]`); returns `[batch, 1, samples]`."""
        if sample.dim() == 2:
            sample = sample.unsqueeze(1)
        timestep = torch.as_tensor(timestep, device=sample.device).reshape(-1).expand(sample.shape[0])
        embed = step_embedding(timestep, self.config.diffusion_step_embed_dim_in).to(sample.dtype)
        embed = F.silu(self.fc_t2(F.silu(self.fc_t1(embed))))

        x = self.first_audio_conv(sample)
        skips = []
        for down in self.downsample:
            skips.append(x)
            x = down(x)
        for block, skip in zip(self.lvc_blocks, reversed(skips)):
            x = block(x, skip, mel, embed)
        return self.final_conv(x)
