"""Convolutional building blocks: the time-conditioned residual block and 2x down/up sampling."""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import ConfigError
from .activations import activation


class ResnetBlock2D(nn.Module):
    """GroupNorm -> act -> conv, plus the time embedding, GroupNorm -> act -> dropout -> conv, plus the input.

    time_embedding_norm "default" adds the projected embedding before norm2; "scale_shift" applies it as
    norm2(h) * (1 + scale) + shift. A 1x1 `conv_shortcut` matches the channels when they change.
    With temb_channels=None the block takes no time embedding (as in autoencoders).
    `up` / `down` resample the block (nearest 2x / 2x2 average pooling, no weights) after the first
    activation, on the residual path and the shortcut alike: the resampling blocks of IF and unCLIP UNets.
    """

    def __init__(self, *, in_channels: int, out_channels: int | None = None, temb_channels: int | None = 512,
                 groups: int = 32, groups_out: int | None = None, eps: float = 1e-6, dropout: float = 0.0,
                 non_linearity: str = "swish", time_embedding_norm: str = "default",
                 output_scale_factor: float = 1.0, use_in_shortcut: bool | None = None,
                 conv_shortcut_bias: bool = True, skip_time_act: bool = False, up: bool = False,
                 down: bool = False):
        super().__init__()
        if time_embedding_norm not in ("default", "scale_shift"):
            raise ConfigError(f"resnet_time_scale_shift {time_embedding_norm!r} is not supported; "
                              f"use 'default' or 'scale_shift'")
        out_channels = out_channels or in_channels
        self.time_embedding_norm = time_embedding_norm
        self.output_scale_factor = output_scale_factor
        self.skip_time_act = skip_time_act
        self.norm1 = nn.GroupNorm(groups, in_channels, eps=eps, affine=True)
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1)
        if temb_channels is None:
            self.time_emb_proj = None
        else:
            factor = 2 if time_embedding_norm == "scale_shift" else 1
            self.time_emb_proj = nn.Linear(temb_channels, factor * out_channels)
        self.norm2 = nn.GroupNorm(groups_out or groups, out_channels, eps=eps, affine=True)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_channels, out_channels, kernel_size=3, padding=1)
        self.nonlinearity = activation(non_linearity)
        self.upsample = Upsample2D(in_channels) if up else None
        self.downsample = Downsample2D(in_channels) if down and not up else None
        if use_in_shortcut is None:
            use_in_shortcut = in_channels != out_channels
        self.conv_shortcut = (nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=conv_shortcut_bias)
                              if use_in_shortcut else None)

    def forward(self, input_tensor: torch.Tensor, temb: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.nonlinearity(self.norm1(input_tensor))
        for resample in (self.upsample, self.downsample):
            if resample is not None:
                input_tensor, hidden = resample(input_tensor), resample(hidden)
        hidden = self.conv1(hidden)
        if self.time_emb_proj is not None and temb is not None:
            if not self.skip_time_act:
                temb = self.nonlinearity(temb)
            temb = self.time_emb_proj(temb)[:, :, None, None]
        else:
            temb = None
        if self.time_embedding_norm == "scale_shift":
            if temb is None:
                raise ValueError("a scale_shift resnet block needs a time embedding")
            scale, shift = temb.chunk(2, dim=1)
            hidden = self.norm2(hidden) * (1 + scale) + shift
        else:
            hidden = self.norm2(hidden + temb if temb is not None else hidden)
        hidden = self.conv2(self.dropout(self.nonlinearity(hidden)))
        shortcut = self.conv_shortcut(input_tensor) if self.conv_shortcut is not None else input_tensor
        return (shortcut + hidden) / self.output_scale_factor


class Downsample2D(nn.Module):
    """Halve height and width: a stride-2 3x3 conv (`use_conv`), or 2x2 average pooling.

    padding=0 pads one pixel on the right and bottom only, as the original LDM code does.
    """

    def __init__(self, channels: int, use_conv: bool = False, out_channels: int | None = None, padding: int = 1):
        super().__init__()
        self.channels = channels
        self.padding = padding
        self.use_conv = use_conv
        out_channels = out_channels or channels
        if use_conv:
            self.conv = nn.Conv2d(channels, out_channels, kernel_size=3, stride=2, padding=padding)
        else:
            if out_channels != channels:
                raise ConfigError("average-pool downsampling cannot change the number of channels")
            self.conv = nn.AvgPool2d(kernel_size=2, stride=2)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.use_conv and self.padding == 0:
            hidden = F.pad(hidden, (0, 1, 0, 1))
        return self.conv(hidden)


class Upsample2D(nn.Module):
    """Double height and width (or reach `output_size`) by nearest-neighbour repetition, then a 3x3 conv."""

    def __init__(self, channels: int, use_conv: bool = False, out_channels: int | None = None):
        super().__init__()
        self.channels = channels
        self.conv = nn.Conv2d(channels, out_channels or channels, kernel_size=3, padding=1) if use_conv else None

    def forward(self, hidden: torch.Tensor, output_size: tuple[int, int] | None = None) -> torch.Tensor:
        dtype = hidden.dtype
        # nearest upsampling of bfloat16 is missing on some backends; float32 is exact for it.
        if dtype == torch.bfloat16:
            hidden = hidden.float()
        if output_size is None:
            hidden = F.interpolate(hidden, scale_factor=2.0, mode="nearest")
        else:
            hidden = F.interpolate(hidden, size=output_size, mode="nearest")
        hidden = hidden.to(dtype)
        return self.conv(hidden) if self.conv is not None else hidden


class TemporalConvLayer(nn.Module):
    """Four (GroupNorm, SiLU, [Dropout], Conv3d over time only) stages with a residual, for video UNets.

    Input and output are (batch * frames, channels, height, width); the convolution runs along frames.
    """

    def __init__(self, in_dim: int, out_dim: int | None = None, dropout: float = 0.0, norm_num_groups: int = 32):
        super().__init__()
        out_dim = out_dim or in_dim

        def stage(channels_in: int, channels_out: int, with_dropout: bool) -> nn.Sequential:
            layers = [nn.GroupNorm(norm_num_groups, channels_in), nn.SiLU()]
            if with_dropout:
                layers.append(nn.Dropout(dropout))
            layers.append(nn.Conv3d(channels_in, channels_out, (3, 1, 1), padding=(1, 0, 0)))
            return nn.Sequential(*layers)

        self.conv1 = stage(in_dim, out_dim, with_dropout=False)
        self.conv2 = stage(out_dim, in_dim, with_dropout=True)
        self.conv3 = stage(out_dim, in_dim, with_dropout=True)
        self.conv4 = stage(out_dim, in_dim, with_dropout=True)
        # A fresh layer starts as the identity, so it can be added to a trained image model.
        nn.init.zeros_(self.conv4[-1].weight)
        nn.init.zeros_(self.conv4[-1].bias)

    def forward(self, hidden: torch.Tensor, num_frames: int = 1) -> torch.Tensor:
        frames_batch, channels, height, width = hidden.shape
        video = hidden.reshape(frames_batch // num_frames, num_frames, channels, height, width).permute(0, 2, 1, 3, 4)
        out = video + self.conv4(self.conv3(self.conv2(self.conv1(video))))
        return out.permute(0, 2, 1, 3, 4).reshape(frames_batch, channels, height, width)
