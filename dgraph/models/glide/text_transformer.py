"""GLIDE's text encoder: the transformer that lives inside its UNet (Nichol et al. 2022, §4).

Token and position embeddings, positions past the prompt replaced by a learned padding embedding
(`xf_padding`), `xf_layers` pre-LayerNorm blocks of width `xf_width` attending to every position (no
causal mask), and an optional final LayerNorm. The UNet reads two things from it: every position's
output as extra keys and values of its attention blocks, and the last position's, projected, added to
the timestep embedding.
"""
from __future__ import annotations

import torch
from torch import nn

from ..layers.attention import Attention
from ..layers.transformer import FeedForward


class GlideTextBlock(nn.Module):
    """x += attn(ln_1 x); x += mlp(ln_2 x), with GELU in the 4x MLP (CLIP's layer)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = Attention(width, heads=heads, dim_head=width // heads, bias=True)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = FeedForward(width, activation_fn="gelu")

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        hidden = hidden + self.attn(self.ln_1(hidden))
        return hidden + self.mlp(self.ln_2(hidden))


class GlideTextTransformer(nn.Module):
    """tokens (B, text_ctx) and their keep-mask -> hidden states (B, text_ctx, width)."""

    def __init__(self, n_vocab: int, text_ctx: int, width: int, layers: int, heads: int, final_ln: bool,
                 padding: bool):
        super().__init__()
        self.token_embedding = nn.Embedding(n_vocab, width)
        self.positional_embedding = nn.Parameter(torch.empty(text_ctx, width))
        self.padding_embedding = nn.Parameter(torch.empty(text_ctx, width)) if padding else None
        self.resblocks = nn.ModuleList([GlideTextBlock(width, heads) for _ in range(layers)])
        self.final_ln = nn.LayerNorm(width) if final_ln else None

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        hidden = self.token_embedding(tokens.long()) + self.positional_embedding[None]
        if self.padding_embedding is not None:
            if mask is None:
                raise ValueError("this GLIDE model pads its prompt (xf_padding): pass the tokens' mask")
            hidden = torch.where(mask.bool()[..., None], hidden, self.padding_embedding[None])
        hidden = hidden.to(dtype)
        for block in self.resblocks:
            hidden = block(hidden)
        if self.final_ln is not None:
            hidden = self.final_ln(hidden)
        return hidden
