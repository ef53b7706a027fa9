"""Timestep embeddings: the sinusoidal features of a diffusion step, then a small MLP."""
from __future__ import annotations

import math

import torch
from torch import nn

from .activations import activation


def timestep_embedding(timesteps: torch.Tensor, dim: int, flip_sin_to_cos: bool = False,
                       downscale_freq_shift: float = 1.0, scale: float = 1.0, max_period: int = 10000) -> torch.Tensor:
    """Sinusoidal features of shape (len(timesteps), dim), as in "Attention is all you need" / DDPM.

    Frequencies are max_period ** (-i / (half - downscale_freq_shift)) for i < half = dim // 2; the output
    is [sin | cos] (or [cos | sin] with flip_sin_to_cos), zero-padded by one column when dim is odd.
    Always computed in float32: the phases of large timesteps do not survive half precision.
    """
    if timesteps.ndim != 1:
        raise ValueError(f"timesteps must be a 1-D tensor, got shape {tuple(timesteps.shape)}")
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=timesteps.device)
    frequencies = torch.exp(exponent / (half - downscale_freq_shift))
    phases = scale * (timesteps[:, None].float() * frequencies[None, :])
    sin, cos = torch.sin(phases), torch.cos(phases)
    emb = torch.cat([cos, sin] if flip_sin_to_cos else [sin, cos], dim=-1)
    if dim % 2 == 1:
        emb = nn.functional.pad(emb, (0, 1))
    return emb


class Timesteps(nn.Module):
    """`timestep_embedding` as a module (it has no weights)."""

    def __init__(self, num_channels: int, flip_sin_to_cos: bool, downscale_freq_shift: float, scale: float = 1.0):
        super().__init__()
        self.num_channels = num_channels
        self.flip_sin_to_cos = flip_sin_to_cos
        self.downscale_freq_shift = downscale_freq_shift
        self.scale = scale

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        return timestep_embedding(timesteps, self.num_channels, self.flip_sin_to_cos,
                                  self.downscale_freq_shift, self.scale)


class TimestepEmbedding(nn.Module):
    """linear_1 -> activation -> linear_2 over the sinusoidal features; `cond_proj` adds an optional condition."""

    def __init__(self, in_channels: int, time_embed_dim: int, act_fn: str = "silu", out_dim: int | None = None,
                 post_act_fn: str | None = None, cond_proj_dim: int | None = None):
        super().__init__()
        self.linear_1 = nn.Linear(in_channels, time_embed_dim)
        self.cond_proj = nn.Linear(cond_proj_dim, in_channels, bias=False) if cond_proj_dim is not None else None
        self.act = activation(act_fn)
        self.linear_2 = nn.Linear(time_embed_dim, out_dim or time_embed_dim)
        self.post_act = activation(post_act_fn) if post_act_fn is not None else None

    def forward(self, sample: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if condition is not None:
            sample = sample + self.cond_proj(condition)
        sample = self.linear_2(self.act(self.linear_1(sample)))
        return self.post_act(sample) if self.post_act is not None else sample


class AttentionPooling(nn.Module):
    """One query — the mean token plus a learned position — attending over [that token, tokens]: (B, D).

    The pooling of DeepFloyd IF's text embedding; scores are scaled by dim_head ** -1/4 on each side.
    """

    def __init__(self, num_heads: int, embed_dim: int):
        super().__init__()
        self.positional_embedding = nn.Parameter(torch.randn(1, embed_dim) / embed_dim ** 0.5)
        self.k_proj = nn.Linear(embed_dim, embed_dim)
        self.q_proj = nn.Linear(embed_dim, embed_dim)
        self.v_proj = nn.Linear(embed_dim, embed_dim)
        self.num_heads = num_heads

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, _, width = tokens.shape
        head_dim = width // self.num_heads
        pooled = tokens.mean(dim=1, keepdim=True) + self.positional_embedding.to(tokens.dtype)
        tokens = torch.cat([pooled, tokens], dim=1)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, -1, self.num_heads, head_dim).transpose(1, 2)

        scale = head_dim ** -0.25  # on both sides: steadier in float16 than dividing the product
        query, key, value = heads(self.q_proj(pooled)) * scale, heads(self.k_proj(tokens)) * scale, \
            heads(self.v_proj(tokens))
        weights = torch.softmax((query @ key.transpose(-1, -2)).float(), dim=-1).to(query.dtype)
        return (weights @ value).reshape(batch, width)


class TextTimeEmbedding(nn.Module):
    """The text encoding pooled into the time embedding (addition_embed_type "text"):
    norm1 -> attention pooling -> proj -> norm2."""

    def __init__(self, encoder_dim: int, time_embed_dim: int, num_heads: int = 64):
        super().__init__()
        self.norm1 = nn.LayerNorm(encoder_dim)
        self.pool = AttentionPooling(num_heads, encoder_dim)
        self.proj = nn.Linear(encoder_dim, time_embed_dim)
        self.norm2 = nn.LayerNorm(time_embed_dim)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.norm2(self.proj(self.pool(self.norm1(hidden_states))))
