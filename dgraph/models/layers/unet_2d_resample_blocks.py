"""UNet blocks that resample with a resnet and attend through added key/value projections.

The pixel-space UNets of DeepFloyd IF (and unCLIP's decoder) halve and double their maps with a resnet
block that pools or repeats inside itself (`ResnetBlock2D(down=True)` / `up=True`) rather than with a
strided or upsampling conv, and condition on text with `AddedKVAttention`: the image's self-attention
whose keys and values also hold the projected text. Names, config keys and parameter names are diffusers'.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .attention import AddedKVAttention
from .unet_2d_blocks import ResnetOptions, skip_resnets


@dataclass(frozen=True)
class AddedKVOptions:
    """Settings of the added key/value attentions of a UNet block."""

    head_dim: int
    cross_attention_dim: int
    only_cross_attention: bool = False
    cross_attention_norm: str | None = None

    def attention(self, channels: int, groups: int) -> AddedKVAttention:
        return AddedKVAttention(channels, self.cross_attention_dim, heads=channels // self.head_dim,
                                dim_head=self.head_dim, norm_num_groups=groups,
                                only_cross_attention=self.only_cross_attention,
                                cross_attention_norm=self.cross_attention_norm)


def _resampler(resnet: ResnetOptions, channels: int, **direction: bool) -> nn.ModuleList:
    return nn.ModuleList([resnet.block(channels, channels, **direction)])


def _context_mask(encoder_hidden_states, encoder_attention_mask):
    # A mask applies only where there is a context to mask.
    return None if encoder_hidden_states is None else encoder_attention_mask


class ResnetDownsampleBlock2D(nn.Module):
    """`num_layers` resnets, then (unless last) a resnet that average-pools to half size."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, resnet: ResnetOptions,
                 add_downsample: bool = True):
        super().__init__()
        self.resnets = nn.ModuleList([resnet.block(in_channels if i == 0 else out_channels, out_channels)
                                      for i in range(num_layers)])
        self.downsamplers = _resampler(resnet, out_channels, down=True) if add_downsample else None

    def _down(self, hidden: torch.Tensor, temb: torch.Tensor, skips: list[torch.Tensor]):
        if self.downsamplers is not None:
            hidden = self.downsamplers[0](hidden, temb)
            skips.append(hidden)
        return hidden, tuple(skips)

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, **_) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        skips = []
        for resnet in self.resnets:
            hidden = resnet(hidden, temb)
            skips.append(hidden)
        return self._down(hidden, temb, skips)


class SimpleCrossAttnDownBlock2D(ResnetDownsampleBlock2D):
    """ResnetDownsampleBlock2D with an added key/value attention to the context after each resnet."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, resnet: ResnetOptions,
                 attention: AddedKVOptions, add_downsample: bool = True):
        super().__init__(in_channels, out_channels, num_layers, resnet, add_downsample)
        self.attentions = nn.ModuleList([attention.attention(out_channels, resnet.groups) for _ in range(num_layers)])

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                encoder_attention_mask: torch.Tensor | None = None, **_) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        mask = _context_mask(encoder_hidden_states, encoder_attention_mask)
        skips = []
        for resnet, attention in zip(self.resnets, self.attentions):
            hidden = attention(resnet(hidden, temb), encoder_hidden_states, mask)
            skips.append(hidden)
        return self._down(hidden, temb, skips)


class ResnetUpsampleBlock2D(nn.Module):
    """`num_layers` resnets, each fed the running state concatenated with one skip, then (unless last)
    a resnet that doubles the size. Channel arguments as in `UpBlock2D`."""

    def __init__(self, in_channels: int, prev_output_channel: int, out_channels: int, num_layers: int,
                 resnet: ResnetOptions, add_upsample: bool = True):
        super().__init__()
        self.resnets = skip_resnets(resnet, in_channels, prev_output_channel, out_channels, num_layers)
        self.upsamplers = _resampler(resnet, out_channels, up=True) if add_upsample else None

    def _up(self, hidden: torch.Tensor, temb: torch.Tensor) -> torch.Tensor:
        # A resnet upsampler always doubles: sizes that do not halve evenly are not restored (as in diffusers).
        return self.upsamplers[0](hidden, temb) if self.upsamplers is not None else hidden

    def forward(self, hidden: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor, **_) -> torch.Tensor:
        for resnet, skip in zip(self.resnets, reversed(skips)):
            hidden = resnet(torch.cat([hidden, skip], dim=1), temb)
        return self._up(hidden, temb)


class SimpleCrossAttnUpBlock2D(ResnetUpsampleBlock2D):
    """ResnetUpsampleBlock2D with an added key/value attention after each resnet."""

    def __init__(self, in_channels: int, prev_output_channel: int, out_channels: int, num_layers: int,
                 resnet: ResnetOptions, attention: AddedKVOptions, add_upsample: bool = True):
        super().__init__(in_channels, prev_output_channel, out_channels, num_layers, resnet, add_upsample)
        self.attentions = nn.ModuleList([attention.attention(out_channels, resnet.groups) for _ in range(num_layers)])

    def forward(self, hidden: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor,
                encoder_hidden_states: torch.Tensor | None = None,
                encoder_attention_mask: torch.Tensor | None = None, **_) -> torch.Tensor:
        mask = _context_mask(encoder_hidden_states, encoder_attention_mask)
        for resnet, attention, skip in zip(self.resnets, self.attentions, reversed(skips)):
            hidden = attention(resnet(torch.cat([hidden, skip], dim=1), temb), encoder_hidden_states, mask)
        return self._up(hidden, temb)


class UNetMidBlock2DSimpleCrossAttn(nn.Module):
    """resnet, then (added key/value attention, resnet) `num_layers` times."""

    def __init__(self, channels: int, resnet: ResnetOptions, attention: AddedKVOptions, num_layers: int = 1):
        super().__init__()
        self.resnets = nn.ModuleList([resnet.block(channels, channels) for _ in range(num_layers + 1)])
        self.attentions = nn.ModuleList([attention.attention(channels, resnet.groups) for _ in range(num_layers)])

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                encoder_attention_mask: torch.Tensor | None = None, **_) -> torch.Tensor:
        mask = _context_mask(encoder_hidden_states, encoder_attention_mask)
        hidden = self.resnets[0](hidden, temb)
        for attention, resnet in zip(self.attentions, self.resnets[1:]):
            hidden = resnet(attention(hidden, encoder_hidden_states, mask), temb)
        return hidden
