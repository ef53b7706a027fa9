"""The blocks of the text-to-video UNet: 2D blocks with temporal convolutions and temporal attention.

Frames travel folded into the batch, (batch * frames, C, H, W); each temporal layer unfolds them.
Every resnet is followed by a TemporalConvLayer, and every spatial transformer by a temporal one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .resnet import Downsample2D, TemporalConvLayer, Upsample2D
from .transformer import Transformer2D, TransformerTemporal
from .unet_2d_blocks import ResnetOptions, skip_resnets

# Dropout of the temporal convolutions (a fixed value in the reference model, not a config key).
TEMPORAL_CONV_DROPOUT = 0.1


@dataclass(frozen=True)
class VideoAttentionOptions:
    """Heads of `head_dim` channels (here the config's `attention_head_dim` is the head width) and the text width."""

    head_dim: int
    cross_attention_dim: int

    def spatial(self, channels: int, groups: int) -> Transformer2D:
        return Transformer2D(channels // self.head_dim, self.head_dim, channels, 1, norm_num_groups=groups,
                             cross_attention_dim=self.cross_attention_dim, use_linear_projection=True)

    def temporal(self, channels: int, groups: int) -> TransformerTemporal:
        return TransformerTemporal(channels // self.head_dim, self.head_dim, channels, 1, norm_num_groups=groups,
                                   cross_attention_dim=self.cross_attention_dim)


def _temporal_conv(channels: int, resnet: ResnetOptions) -> TemporalConvLayer:
    return TemporalConvLayer(channels, channels, dropout=TEMPORAL_CONV_DROPOUT, norm_num_groups=resnet.groups)


class DownBlock3D(nn.Module):
    """(resnet, temporal conv) x num_layers, then (unless last) a stride-2 conv."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, resnet: ResnetOptions,
                 add_downsample: bool = True, downsample_padding: int = 1):
        super().__init__()
        self.resnets = nn.ModuleList([resnet.block(in_channels if i == 0 else out_channels, out_channels)
                                      for i in range(num_layers)])
        self.temp_convs = nn.ModuleList([_temporal_conv(out_channels, resnet) for _ in range(num_layers)])
        self.downsamplers = (nn.ModuleList([Downsample2D(out_channels, True, out_channels, downsample_padding)])
                             if add_downsample else None)

    def _layer(self, i: int, hidden: torch.Tensor, temb: torch.Tensor, num_frames: int,
               encoder_hidden_states: torch.Tensor | None) -> torch.Tensor:
        return self.temp_convs[i](self.resnets[i](hidden, temb), num_frames)

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, num_frames: int,
                encoder_hidden_states: torch.Tensor | None = None) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        skips = []
        for i in range(len(self.resnets)):
            hidden = self._layer(i, hidden, temb, num_frames, encoder_hidden_states)
            skips.append(hidden)
        if self.downsamplers is not None:
            hidden = self.downsamplers[0](hidden)
            skips.append(hidden)
        return hidden, tuple(skips)


class CrossAttnDownBlock3D(DownBlock3D):
    """DownBlock3D whose layers are resnet, temporal conv, spatial transformer, temporal transformer."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, resnet: ResnetOptions,
                 attention: VideoAttentionOptions, add_downsample: bool = True, downsample_padding: int = 1):
        super().__init__(in_channels, out_channels, num_layers, resnet, add_downsample, downsample_padding)
        self.attentions = nn.ModuleList([attention.spatial(out_channels, resnet.groups) for _ in range(num_layers)])
        self.temp_attentions = nn.ModuleList([attention.temporal(out_channels, resnet.groups)
                                              for _ in range(num_layers)])

    def _layer(self, i, hidden, temb, num_frames, encoder_hidden_states):
        hidden = super()._layer(i, hidden, temb, num_frames, encoder_hidden_states)
        hidden = self.attentions[i](hidden, encoder_hidden_states)
        return self.temp_attentions[i](hidden, num_frames)


class UpBlock3D(nn.Module):
    """(concatenate a skip, resnet, temporal conv) x num_layers, then (unless last) 2x up."""

    def __init__(self, in_channels: int, prev_output_channel: int, out_channels: int, num_layers: int,
                 resnet: ResnetOptions, add_upsample: bool = True):
        super().__init__()
        self.resnets = skip_resnets(resnet, in_channels, prev_output_channel, out_channels, num_layers)
        self.temp_convs = nn.ModuleList([_temporal_conv(out_channels, resnet) for _ in range(num_layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels, True, out_channels)]) if add_upsample else None

    def _layer(self, i: int, hidden: torch.Tensor, temb: torch.Tensor, num_frames: int,
               encoder_hidden_states: torch.Tensor | None) -> torch.Tensor:
        return self.temp_convs[i](self.resnets[i](hidden, temb), num_frames)

    def forward(self, hidden: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor, num_frames: int,
                encoder_hidden_states: torch.Tensor | None = None,
                upsample_size: tuple[int, int] | None = None) -> torch.Tensor:
        for i, skip in enumerate(reversed(skips)):
            hidden = self._layer(i, torch.cat([hidden, skip], dim=1), temb, num_frames, encoder_hidden_states)
        return self.upsamplers[0](hidden, upsample_size) if self.upsamplers is not None else hidden


class CrossAttnUpBlock3D(UpBlock3D):
    """UpBlock3D whose layers add a spatial and a temporal transformer."""

    def __init__(self, in_channels: int, prev_output_channel: int, out_channels: int, num_layers: int,
                 resnet: ResnetOptions, attention: VideoAttentionOptions, add_upsample: bool = True):
        super().__init__(in_channels, prev_output_channel, out_channels, num_layers, resnet, add_upsample)
        self.attentions = nn.ModuleList([attention.spatial(out_channels, resnet.groups) for _ in range(num_layers)])
        self.temp_attentions = nn.ModuleList([attention.temporal(out_channels, resnet.groups)
                                              for _ in range(num_layers)])

    def _layer(self, i, hidden, temb, num_frames, encoder_hidden_states):
        hidden = super()._layer(i, hidden, temb, num_frames, encoder_hidden_states)
        hidden = self.attentions[i](hidden, encoder_hidden_states)
        return self.temp_attentions[i](hidden, num_frames)


class UNetMidBlock3DCrossAttn(nn.Module):
    """resnet, temporal conv, then (spatial transformer, temporal transformer, resnet, temporal conv)."""

    def __init__(self, channels: int, resnet: ResnetOptions, attention: VideoAttentionOptions, num_layers: int = 1):
        super().__init__()
        self.resnets = nn.ModuleList([resnet.block(channels, channels) for _ in range(num_layers + 1)])
        self.temp_convs = nn.ModuleList([_temporal_conv(channels, resnet) for _ in range(num_layers + 1)])
        self.attentions = nn.ModuleList([attention.spatial(channels, resnet.groups) for _ in range(num_layers)])
        self.temp_attentions = nn.ModuleList([attention.temporal(channels, resnet.groups) for _ in range(num_layers)])

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, num_frames: int,
                encoder_hidden_states: torch.Tensor | None = None) -> torch.Tensor:
        hidden = self.temp_convs[0](self.resnets[0](hidden, temb), num_frames)
        for i in range(len(self.attentions)):
            hidden = self.attentions[i](hidden, encoder_hidden_states)
            hidden = self.temp_attentions[i](hidden, num_frames)
            hidden = self.temp_convs[i + 1](self.resnets[i + 1](hidden, temb), num_frames)
        return hidden
