"""Transformer blocks over image tokens: self-attention, cross-attention to a text encoding, GEGLU MLP.

`Transformer2D` wraps them for (B, C, H, W) feature maps (the "spatial transformer" of latent diffusion);
`TransformerTemporal` runs them along the frame axis of a video batch.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import ConfigError
from .attention import Attention


class GEGLU(nn.Module):
    """A linear layer to twice the width, split in value and gate: value * gelu(gate)."""

    def __init__(self, dim_in: int, dim_out: int, bias: bool = True):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2, bias=bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(hidden).chunk(2, dim=-1)
        return value * F.gelu(gate)


class GELUProjection(nn.Module):
    """A linear layer then gelu (exact or tanh-approximated)."""

    def __init__(self, dim_in: int, dim_out: int, approximate: str = "none", bias: bool = True):
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out, bias=bias)
        self.approximate = approximate

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.proj(hidden), approximate=self.approximate)


class FeedForward(nn.Module):
    """net.0: activation projection to `mult * dim`, net.1: dropout, net.2: linear back to `dim_out`."""

    def __init__(self, dim: int, dim_out: int | None = None, mult: int = 4, dropout: float = 0.0,
                 activation_fn: str = "geglu", inner_dim: int | None = None, bias: bool = True):
        super().__init__()
        inner_dim = inner_dim or int(dim * mult)
        if activation_fn == "geglu":
            act = GEGLU(dim, inner_dim, bias=bias)
        elif activation_fn in ("gelu", "gelu-approximate"):
            act = GELUProjection(dim, inner_dim, "tanh" if activation_fn == "gelu-approximate" else "none", bias=bias)
        else:
            raise ConfigError(f"activation_fn {activation_fn!r} is not supported; use 'geglu', 'gelu' or "
                              f"'gelu-approximate'")
        self.net = nn.ModuleList([act, nn.Dropout(dropout), nn.Linear(inner_dim, dim_out or dim, bias=bias)])

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for layer in self.net:
            hidden = layer(hidden)
        return hidden


class BasicTransformerBlock(nn.Module):
    """Pre-LayerNorm block: x += attn1(norm1 x); x += attn2(norm2 x, context); x += ff(norm3 x).

    attn1 is self-attention (cross-attention when only_cross_attention); attn2 attends to the context,
    or to x itself with double_self_attention (temporal blocks); it is absent without either.
    """

    def __init__(self, dim: int, num_attention_heads: int, attention_head_dim: int, dropout: float = 0.0,
                 cross_attention_dim: int | None = None, activation_fn: str = "geglu", attention_bias: bool = False,
                 only_cross_attention: bool = False, double_self_attention: bool = False,
                 upcast_attention: bool = False, norm_elementwise_affine: bool = True, norm_eps: float = 1e-5):
        super().__init__()
        self.only_cross_attention = only_cross_attention
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
        self.attn1 = Attention(dim, cross_attention_dim if only_cross_attention else None, num_attention_heads,
                               attention_head_dim, dropout, bias=attention_bias, upcast_attention=upcast_attention)
        if cross_attention_dim is not None or double_self_attention:
            self.norm2 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
            self.attn2 = Attention(dim, None if double_self_attention else cross_attention_dim, num_attention_heads,
                                   attention_head_dim, dropout, bias=attention_bias, upcast_attention=upcast_attention)
        else:
            self.norm2 = self.attn2 = None
        self.norm3 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
        self.ff = FeedForward(dim, dropout=dropout, activation_fn=activation_fn)

    def forward(self, hidden: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                encoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        # In only-cross mode attn1 reads the context but, as in diffusers, still takes `attention_mask`.
        hidden = hidden + self.attn1(self.norm1(hidden),
                                     encoder_hidden_states if self.only_cross_attention else None, attention_mask)
        if self.attn2 is not None:
            hidden = hidden + self.attn2(self.norm2(hidden), encoder_hidden_states, encoder_attention_mask)
        return hidden + self.ff(self.norm3(hidden))


class Transformer2D(nn.Module):
    """GroupNorm -> proj_in -> transformer blocks over the H*W tokens -> proj_out, plus the input.

    proj_in / proj_out are 1x1 convolutions, or linear layers with use_linear_projection (SD 2.x).
    """

    def __init__(self, num_attention_heads: int, attention_head_dim: int, in_channels: int, num_layers: int = 1,
                 dropout: float = 0.0, norm_num_groups: int = 32, cross_attention_dim: int | None = None,
                 use_linear_projection: bool = False, only_cross_attention: bool = False,
                 upcast_attention: bool = False, attention_bias: bool = False, activation_fn: str = "geglu"):
        super().__init__()
        inner_dim = num_attention_heads * attention_head_dim
        self.use_linear_projection = use_linear_projection
        self.norm = nn.GroupNorm(norm_num_groups, in_channels, eps=1e-6, affine=True)
        if use_linear_projection:
            self.proj_in = nn.Linear(in_channels, inner_dim)
            self.proj_out = nn.Linear(inner_dim, in_channels)
        else:
            self.proj_in = nn.Conv2d(in_channels, inner_dim, kernel_size=1)
            self.proj_out = nn.Conv2d(inner_dim, in_channels, kernel_size=1)
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(inner_dim, num_attention_heads, attention_head_dim, dropout,
                                  cross_attention_dim, activation_fn, attention_bias, only_cross_attention,
                                  upcast_attention=upcast_attention)
            for _ in range(num_layers)])

    def forward(self, hidden: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None,
                encoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, _, height, width = hidden.shape
        residual = hidden
        hidden = self.norm(hidden)
        if not self.use_linear_projection:
            hidden = self.proj_in(hidden)
        tokens = hidden.permute(0, 2, 3, 1).reshape(batch, height * width, hidden.shape[1])
        if self.use_linear_projection:
            tokens = self.proj_in(tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens, encoder_hidden_states, attention_mask, encoder_attention_mask)
        if self.use_linear_projection:
            tokens = self.proj_out(tokens)
        hidden = tokens.reshape(batch, height, width, tokens.shape[-1]).permute(0, 3, 1, 2).contiguous()
        if not self.use_linear_projection:
            hidden = self.proj_out(hidden)
        return hidden + residual


class TransformerTemporal(nn.Module):
    """Transformer blocks along the frame axis: each pixel's sequence of frames is one token sequence.

    Input and output are (batch * frames, C, H, W). Both attentions of a block are self-attention over
    frames (double_self_attention), so text conditioning does not enter here.
    """

    def __init__(self, num_attention_heads: int, attention_head_dim: int, in_channels: int, num_layers: int = 1,
                 dropout: float = 0.0, norm_num_groups: int = 32, cross_attention_dim: int | None = None,
                 attention_bias: bool = False, activation_fn: str = "geglu"):
        super().__init__()
        inner_dim = num_attention_heads * attention_head_dim
        self.norm = nn.GroupNorm(norm_num_groups, in_channels, eps=1e-6, affine=True)
        self.proj_in = nn.Linear(in_channels, inner_dim)
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(inner_dim, num_attention_heads, attention_head_dim, dropout, cross_attention_dim,
                                  activation_fn, attention_bias, double_self_attention=True)
            for _ in range(num_layers)])
        self.proj_out = nn.Linear(inner_dim, in_channels)

    def forward(self, hidden: torch.Tensor, num_frames: int = 1) -> torch.Tensor:
        frames_batch, channels, height, width = hidden.shape
        batch = frames_batch // num_frames
        residual = hidden
        # Normalise each video as a whole (groups over channels x frames x pixels).
        video = hidden.reshape(batch, num_frames, channels, height, width).permute(0, 2, 1, 3, 4)
        video = self.norm(video)
        tokens = video.permute(0, 3, 4, 2, 1).reshape(batch * height * width, num_frames, channels)
        tokens = self.proj_in(tokens)
        for block in self.transformer_blocks:
            tokens = block(tokens)
        tokens = self.proj_out(tokens)
        out = tokens.reshape(batch, height, width, num_frames, channels).permute(0, 3, 4, 1, 2)
        return out.reshape(frames_batch, channels, height, width) + residual
