"""Conditioning by modulation: the timestep (and class or image-size) embeddings of DiT and PixArt-α, and
the adaptive layer norms that turn them into per-channel shift, scale and gate.

adaLN-Zero (DiT, Peebles & Xie 2023, §3.2): every block regresses its own six modulation vectors from
timestep + class embedding. adaLN-single (PixArt-α, Chen et al. 2023, §2.3): one shared projection of the
timestep embedding, to which each block adds a learned table of its own.
"""
from __future__ import annotations

import torch
from torch import nn

from .embeddings import TimestepEmbedding, Timesteps

# Both families embed timesteps (and sizes) through 256 sinusoidal features.
_FREQUENCY_CHANNELS = 256


class LabelEmbedding(nn.Module):
    """embedding_table: one row per class, plus the "null" class (index num_classes) that classifier-free
    guidance uses as its unconditional branch when the model was trained with label dropout."""

    def __init__(self, num_classes: int, hidden_size: int, dropout_prob: float):
        super().__init__()
        self.num_classes = num_classes
        self.embedding_table = nn.Embedding(num_classes + int(dropout_prob > 0), hidden_size)

    def forward(self, labels: torch.Tensor) -> torch.Tensor:
        return self.embedding_table(labels)


class CombinedTimestepLabelEmbeddings(nn.Module):
    """timestep_embedder(sinusoid(t)) + class_embedder(label), (B, dim)."""

    def __init__(self, num_classes: int, embedding_dim: int, class_dropout_prob: float = 0.1):
        super().__init__()
        self.time_proj = Timesteps(_FREQUENCY_CHANNELS, flip_sin_to_cos=True, downscale_freq_shift=1)
        self.timestep_embedder = TimestepEmbedding(_FREQUENCY_CHANNELS, embedding_dim)
        self.class_embedder = LabelEmbedding(num_classes, embedding_dim, class_dropout_prob)

    def forward(self, timestep: torch.Tensor, class_labels: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return self.timestep_embedder(self.time_proj(timestep).to(dtype)) + self.class_embedder(class_labels)


class AdaLayerNormZero(nn.Module):
    """emb -> silu -> linear to six vectors (shift, scale, gate for attention; the same for the MLP);
    returns the modulated LayerNorm of x and the other five."""

    def __init__(self, embedding_dim: int, num_embeddings: int):
        super().__init__()
        self.emb = CombinedTimestepLabelEmbeddings(num_embeddings, embedding_dim)
        self.silu = nn.SiLU()
        self.linear = nn.Linear(embedding_dim, 6 * embedding_dim)
        self.norm = nn.LayerNorm(embedding_dim, elementwise_affine=False, eps=1e-6)

    def forward(self, x: torch.Tensor, timestep: torch.Tensor, class_labels: torch.Tensor):
        emb = self.linear(self.silu(self.emb(timestep, class_labels, x.dtype)))
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = emb.chunk(6, dim=1)
        x = modulate(self.norm(x), shift_msa[:, None], scale_msa[:, None])
        return x, gate_msa, shift_mlp, scale_mlp, gate_mlp


class PixArtAlphaCombinedTimestepSizeEmbeddings(nn.Module):
    """The timestep embedding, plus (with additional conditions) embeddings of the image resolution
    (height, width) and aspect ratio, each dim/3 wide, concatenated: PixArt-α's multi-aspect models."""

    def __init__(self, embedding_dim: int, size_emb_dim: int, use_additional_conditions: bool = False):
        super().__init__()
        self.time_proj = Timesteps(_FREQUENCY_CHANNELS, flip_sin_to_cos=True, downscale_freq_shift=0)
        self.timestep_embedder = TimestepEmbedding(_FREQUENCY_CHANNELS, embedding_dim)
        self.use_additional_conditions = use_additional_conditions
        if use_additional_conditions:
            self.additional_condition_proj = Timesteps(_FREQUENCY_CHANNELS, flip_sin_to_cos=True,
                                                       downscale_freq_shift=0)
            self.resolution_embedder = TimestepEmbedding(_FREQUENCY_CHANNELS, size_emb_dim)
            self.aspect_ratio_embedder = TimestepEmbedding(_FREQUENCY_CHANNELS, size_emb_dim)

    def forward(self, timestep: torch.Tensor, resolution: torch.Tensor | None, aspect_ratio: torch.Tensor | None,
                dtype: torch.dtype) -> torch.Tensor:
        emb = self.timestep_embedder(self.time_proj(timestep).to(dtype))
        if not self.use_additional_conditions:
            return emb
        batch = emb.shape[0]
        size = self.resolution_embedder(self.additional_condition_proj(resolution.flatten()).to(dtype))
        ratio = self.aspect_ratio_embedder(self.additional_condition_proj(aspect_ratio.flatten()).to(dtype))
        return emb + torch.cat([size.reshape(batch, -1), ratio.reshape(batch, -1)], dim=1)


class AdaLayerNormSingle(nn.Module):
    """The shared modulation of adaLN-single: (linear(silu(emb)) with six vectors per sample, emb)."""

    def __init__(self, embedding_dim: int, use_additional_conditions: bool = False):
        super().__init__()
        self.emb = PixArtAlphaCombinedTimestepSizeEmbeddings(embedding_dim, embedding_dim // 3,
                                                             use_additional_conditions)
        self.silu = nn.SiLU()
        self.linear = nn.Linear(embedding_dim, 6 * embedding_dim)

    def forward(self, timestep: torch.Tensor, resolution: torch.Tensor | None, aspect_ratio: torch.Tensor | None,
                dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        embedded = self.emb(timestep, resolution, aspect_ratio, dtype)
        return self.linear(self.silu(embedded)), embedded


class PixArtAlphaTextProjection(nn.Module):
    """The caption projection: linear_1 -> tanh-gelu -> linear_2, from the text encoder's width to the model's."""

    def __init__(self, in_features: int, hidden_size: int):
        super().__init__()
        self.linear_1 = nn.Linear(in_features, hidden_size)
        self.act_1 = nn.GELU(approximate="tanh")
        self.linear_2 = nn.Linear(hidden_size, hidden_size)

    def forward(self, caption: torch.Tensor) -> torch.Tensor:
        return self.linear_2(self.act_1(self.linear_1(caption)))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """x · (1 + scale) + shift, the modulation every adaptive norm applies."""
    return x * (1 + scale) + shift


__all__ = ["AdaLayerNormSingle", "AdaLayerNormZero", "CombinedTimestepLabelEmbeddings", "LabelEmbedding",
           "PixArtAlphaCombinedTimestepSizeEmbeddings", "PixArtAlphaTextProjection", "modulate"]
