"""The blocks of 2D UNets, one class per block type named in diffusers' configs.

A down block returns its output and every intermediate state (the skip connections); an up block
consumes as many skips as it has resnets, concatenating one before each resnet. `ResnetOptions` carries
the resnet settings every block of a UNet shares.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ...errors import ConfigError
from .attention import Attention
from .resnet import Downsample2D, ResnetBlock2D, Upsample2D
from .transformer import Transformer2D


@dataclass(frozen=True)
class ResnetOptions:
    """Settings shared by the resnet blocks of one UNet (from its config)."""

    temb_channels: int
    eps: float = 1e-6
    groups: int = 32
    dropout: float = 0.0
    act_fn: str = "silu"
    time_scale_shift: str = "default"
    output_scale_factor: float = 1.0
    skip_time_act: bool = False

    def block(self, in_channels: int, out_channels: int, up: bool = False, down: bool = False) -> ResnetBlock2D:
        return ResnetBlock2D(in_channels=in_channels, out_channels=out_channels, temb_channels=self.temb_channels,
                             groups=self.groups, eps=self.eps, dropout=self.dropout, non_linearity=self.act_fn,
                             time_embedding_norm=self.time_scale_shift, output_scale_factor=self.output_scale_factor,
                             skip_time_act=self.skip_time_act, up=up, down=down)


@dataclass(frozen=True)
class CrossAttentionOptions:
    """Settings of the spatial transformers of a conditioned UNet block."""

    num_heads: int
    cross_attention_dim: int
    transformer_layers: int = 1
    use_linear_projection: bool = False
    only_cross_attention: bool = False
    upcast_attention: bool = False

    def transformer(self, channels: int, groups: int, dropout: float = 0.0) -> Transformer2D:
        # diffusers' 2D UNets read `attention_head_dim` as the number of heads; the head width follows.
        return Transformer2D(self.num_heads, channels // self.num_heads, channels, self.transformer_layers,
                             dropout=dropout, norm_num_groups=groups, cross_attention_dim=self.cross_attention_dim,
                             use_linear_projection=self.use_linear_projection,
                             only_cross_attention=self.only_cross_attention, upcast_attention=self.upcast_attention)


def pixel_attention(channels: int, head_dim: int | None, resnet: ResnetOptions, groups: int | None) -> Attention:
    """The self-attention of pixel-space UNets: GroupNorm, heads of `head_dim`, residual, rescale."""
    head_dim = head_dim or channels
    return Attention(channels, heads=channels // head_dim, dim_head=head_dim, bias=True, upcast_softmax=True,
                     norm_num_groups=groups, eps=resnet.eps, residual_connection=True,
                     rescale_output_factor=resnet.output_scale_factor)


class DownBlock2D(nn.Module):
    """`num_layers` resnets, then (unless last) a stride-2 conv."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, resnet: ResnetOptions,
                 add_downsample: bool = True, downsample_padding: int = 1):
        super().__init__()
        self.resnets = nn.ModuleList([resnet.block(in_channels if i == 0 else out_channels, out_channels)
                                      for i in range(num_layers)])
        self.downsamplers = (nn.ModuleList([Downsample2D(out_channels, True, out_channels, downsample_padding)])
                             if add_downsample else None)

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, **_) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        skips = []
        for resnet in self.resnets:
            hidden = resnet(hidden, temb)
            skips.append(hidden)
        if self.downsamplers is not None:
            hidden = self.downsamplers[0](hidden)
            skips.append(hidden)
        return hidden, tuple(skips)


class AttnDownBlock2D(DownBlock2D):
    """DownBlock2D with a pixel self-attention after each resnet."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, resnet: ResnetOptions,
                 add_downsample: bool = True, downsample_padding: int = 1, attention_head_dim: int | None = None):
        super().__init__(in_channels, out_channels, num_layers, resnet, add_downsample, downsample_padding)
        self.attentions = nn.ModuleList([pixel_attention(out_channels, attention_head_dim, resnet, resnet.groups)
                                         for _ in range(num_layers)])

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, **_) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        skips = []
        for resnet, attention in zip(self.resnets, self.attentions):
            hidden = attention(resnet(hidden, temb))
            skips.append(hidden)
        if self.downsamplers is not None:
            hidden = self.downsamplers[0](hidden)
            skips.append(hidden)
        return hidden, tuple(skips)


class CrossAttnDownBlock2D(DownBlock2D):
    """DownBlock2D with a spatial transformer (cross-attention to the context) after each resnet."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, resnet: ResnetOptions,
                 cross: CrossAttentionOptions, add_downsample: bool = True, downsample_padding: int = 1):
        super().__init__(in_channels, out_channels, num_layers, resnet, add_downsample, downsample_padding)
        self.attentions = nn.ModuleList([cross.transformer(out_channels, resnet.groups) for _ in range(num_layers)])

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                encoder_attention_mask: torch.Tensor | None = None, **_) -> tuple[torch.Tensor, tuple[torch.Tensor, ...]]:
        skips = []
        for resnet, transformer in zip(self.resnets, self.attentions):
            hidden = resnet(hidden, temb)
            hidden = transformer(hidden, encoder_hidden_states, encoder_attention_mask=encoder_attention_mask)
            skips.append(hidden)
        if self.downsamplers is not None:
            hidden = self.downsamplers[0](hidden)
            skips.append(hidden)
        return hidden, tuple(skips)


def skip_resnets(resnet: ResnetOptions, in_channels: int, prev_output_channel: int, out_channels: int,
                 num_layers: int) -> nn.ModuleList:
    """An up block's resnets: the i-th reads the running state (the block below's output first) concatenated
    with one skip (the last, the down block's input at this level)."""
    return nn.ModuleList([
        resnet.block((prev_output_channel if i == 0 else out_channels)
                     + (in_channels if i == num_layers - 1 else out_channels), out_channels)
        for i in range(num_layers)])


class UpBlock2D(nn.Module):
    """`num_layers` resnets, each fed the running state concatenated with one skip, then (unless last) 2x up.

    in_channels: channels of the down block's input at this level (the deepest skip of this block);
    prev_output_channel: channels coming from the block below.
    """

    def __init__(self, in_channels: int, prev_output_channel: int, out_channels: int, num_layers: int,
                 resnet: ResnetOptions, add_upsample: bool = True):
        super().__init__()
        self.resnets = skip_resnets(resnet, in_channels, prev_output_channel, out_channels, num_layers)
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels, True, out_channels)]) if add_upsample else None

    def _upsample(self, hidden: torch.Tensor, upsample_size: tuple[int, int] | None) -> torch.Tensor:
        return self.upsamplers[0](hidden, upsample_size) if self.upsamplers is not None else hidden

    def forward(self, hidden: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor,
                upsample_size: tuple[int, int] | None = None, **_) -> torch.Tensor:
        for resnet, skip in zip(self.resnets, reversed(skips)):
            hidden = resnet(torch.cat([hidden, skip], dim=1), temb)
        return self._upsample(hidden, upsample_size)


class AttnUpBlock2D(UpBlock2D):
    """UpBlock2D with a pixel self-attention after each resnet."""

    def __init__(self, in_channels: int, prev_output_channel: int, out_channels: int, num_layers: int,
                 resnet: ResnetOptions, add_upsample: bool = True, attention_head_dim: int | None = None):
        super().__init__(in_channels, prev_output_channel, out_channels, num_layers, resnet, add_upsample)
        # Up-path attention keeps its output scale at 1 whatever the resnets use (diffusers' layout).
        plain = ResnetOptions(resnet.temb_channels, resnet.eps, resnet.groups)
        self.attentions = nn.ModuleList([pixel_attention(out_channels, attention_head_dim, plain, resnet.groups)
                                         for _ in range(num_layers)])

    def forward(self, hidden: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor,
                upsample_size: tuple[int, int] | None = None, **_) -> torch.Tensor:
        for resnet, attention, skip in zip(self.resnets, self.attentions, reversed(skips)):
            hidden = attention(resnet(torch.cat([hidden, skip], dim=1), temb))
        return self._upsample(hidden, upsample_size)


class CrossAttnUpBlock2D(UpBlock2D):
    """UpBlock2D with a spatial transformer after each resnet."""

    def __init__(self, in_channels: int, prev_output_channel: int, out_channels: int, num_layers: int,
                 resnet: ResnetOptions, cross: CrossAttentionOptions, add_upsample: bool = True):
        super().__init__(in_channels, prev_output_channel, out_channels, num_layers, resnet, add_upsample)
        self.attentions = nn.ModuleList([cross.transformer(out_channels, resnet.groups) for _ in range(num_layers)])

    def forward(self, hidden: torch.Tensor, skips: tuple[torch.Tensor, ...], temb: torch.Tensor,
                encoder_hidden_states: torch.Tensor | None = None, upsample_size: tuple[int, int] | None = None,
                encoder_attention_mask: torch.Tensor | None = None, **_) -> torch.Tensor:
        for resnet, transformer, skip in zip(self.resnets, self.attentions, reversed(skips)):
            hidden = resnet(torch.cat([hidden, skip], dim=1), temb)
            hidden = transformer(hidden, encoder_hidden_states, encoder_attention_mask=encoder_attention_mask)
        return self._upsample(hidden, upsample_size)


class UNetMidBlock2D(nn.Module):
    """resnet, then (attention, resnet) `num_layers` times; attention may be left out (add_attention=False)."""

    def __init__(self, channels: int, resnet: ResnetOptions, num_layers: int = 1, add_attention: bool = True,
                 attention_head_dim: int | None = None, attn_groups: int | None = None):
        super().__init__()
        self.resnets = nn.ModuleList([resnet.block(channels, channels) for _ in range(num_layers + 1)])
        if attn_groups is None and resnet.time_scale_shift == "default":
            attn_groups = resnet.groups
        self.attentions = nn.ModuleList([pixel_attention(channels, attention_head_dim, resnet, attn_groups)
                                         for _ in range(num_layers)]) if add_attention else None

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, **_) -> torch.Tensor:
        hidden = self.resnets[0](hidden, temb)
        for i, resnet in enumerate(self.resnets[1:]):
            if self.attentions is not None:
                hidden = self.attentions[i](hidden)
            hidden = resnet(hidden, temb)
        return hidden


class UNetMidBlock2DCrossAttn(nn.Module):
    """resnet, then (spatial transformer, resnet) `num_layers` times."""

    def __init__(self, channels: int, resnet: ResnetOptions, cross: CrossAttentionOptions, num_layers: int = 1):
        super().__init__()
        self.resnets = nn.ModuleList([resnet.block(channels, channels) for _ in range(num_layers + 1)])
        self.attentions = nn.ModuleList([cross.transformer(channels, resnet.groups) for _ in range(num_layers)])

    def forward(self, hidden: torch.Tensor, temb: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                encoder_attention_mask: torch.Tensor | None = None, **_) -> torch.Tensor:
        hidden = self.resnets[0](hidden, temb)
        for transformer, resnet in zip(self.attentions, self.resnets[1:]):
            hidden = transformer(hidden, encoder_hidden_states, encoder_attention_mask=encoder_attention_mask)
            hidden = resnet(hidden, temb)
        return hidden


def check_block_types(owner: str, kind: str, types: list[str] | tuple[str, ...], supported: tuple[str, ...]) -> None:
    """A ConfigError naming every block type of `types` this UNet does not implement."""
    unknown = [t for t in types if t not in supported]
    if unknown:
        raise ConfigError(f"{owner}: {kind} {', '.join(map(repr, unknown))} not supported; "
                          f"supported: {', '.join(supported)}")
