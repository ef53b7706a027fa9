"""The transformer blocks of DiT (adaLN-Zero) and PixArt-α (adaLN-single, with cross-attention to text).

Both are pre-norm blocks over (B, tokens, dim) whose norms are modulated by the conditioning and whose
residual branches are gated: x += gate · attn(modulate(norm x)); x += gate · mlp(modulate(norm x)).
Parameter names are diffusers' (norm1, attn1, attn2, norm2, norm3, ff, scale_shift_table).
"""
from __future__ import annotations

import torch
from torch import nn

from .adaptive_norm import AdaLayerNormZero, modulate
from .attention import Attention
from .transformer import FeedForward


class AdaLNZeroBlock(nn.Module):
    """DiT's block: norm1 is an AdaLayerNormZero with its own timestep + class embedding."""

    def __init__(self, dim: int, num_attention_heads: int, attention_head_dim: int, num_embeds_ada_norm: int,
                 dropout: float = 0.0, activation_fn: str = "gelu-approximate", attention_bias: bool = True,
                 norm_elementwise_affine: bool = False, norm_eps: float = 1e-5):
        super().__init__()
        self.norm1 = AdaLayerNormZero(dim, num_embeds_ada_norm)
        self.attn1 = Attention(dim, None, num_attention_heads, attention_head_dim, dropout, bias=attention_bias)
        self.norm3 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
        self.ff = FeedForward(dim, dropout=dropout, activation_fn=activation_fn)

    def forward(self, hidden: torch.Tensor, timestep: torch.Tensor, class_labels: torch.Tensor) -> torch.Tensor:
        normed, gate_msa, shift_mlp, scale_mlp, gate_mlp = self.norm1(hidden, timestep, class_labels)
        hidden = hidden + gate_msa[:, None] * self.attn1(normed)
        normed = modulate(self.norm3(hidden), shift_mlp[:, None], scale_mlp[:, None])
        return hidden + gate_mlp[:, None] * self.ff(normed)


class AdaLNSingleBlock(nn.Module):
    """PixArt-α's block: the shared modulation `timestep` ((B, 6·dim), from AdaLayerNormSingle) plus this
    block's scale_shift_table; cross-attention (attn2) to the caption is not normed or modulated."""

    def __init__(self, dim: int, num_attention_heads: int, attention_head_dim: int,
                 cross_attention_dim: int | None = None, dropout: float = 0.0,
                 activation_fn: str = "gelu-approximate", attention_bias: bool = True,
                 norm_elementwise_affine: bool = False, norm_eps: float = 1e-6):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
        self.attn1 = Attention(dim, None, num_attention_heads, attention_head_dim, dropout, bias=attention_bias)
        self.norm2 = nn.LayerNorm(dim, eps=norm_eps, elementwise_affine=norm_elementwise_affine)
        self.attn2 = (Attention(dim, cross_attention_dim, num_attention_heads, attention_head_dim, dropout,
                                bias=attention_bias) if cross_attention_dim is not None else None)
        self.ff = FeedForward(dim, dropout=dropout, activation_fn=activation_fn)
        self.scale_shift_table = nn.Parameter(torch.randn(6, dim) / dim ** 0.5)

    def forward(self, hidden: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                encoder_attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch = hidden.shape[0]
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (
            self.scale_shift_table[None] + timestep.reshape(batch, 6, -1)).chunk(6, dim=1)
        hidden = hidden + gate_msa * self.attn1(modulate(self.norm1(hidden), shift_msa, scale_msa))
        if self.attn2 is not None:
            hidden = hidden + self.attn2(hidden, encoder_hidden_states, encoder_attention_mask)
        return hidden + gate_mlp * self.ff(modulate(self.norm2(hidden), shift_mlp, scale_mlp))
