"""PriorTransformer: unCLIP's diffusion prior (Ramesh et al. 2022, §2.2), a causal transformer that predicts a
CLIP image embedding from the CLIP text embedding.

The sequence it reads is [text states | text embedding | timestep | noisy image embedding | "prd" query]; the
query's output token is the prediction. Unlike the UNets it samples vectors, (B, embedding_dim), not images.
Config keys and state-dict keys are diffusers'.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..configuration import register_to_config
from ..errors import ConfigError
from .layers.embeddings import TimestepEmbedding, Timesteps
from .layers.transformer import BasicTransformerBlock
from .modeling import ModelMixin
from .outputs import ModelOutput, model_output


def _optional_layer_norm(owner: str, key: str, kind: str | None, dim: int) -> nn.LayerNorm | None:
    if kind is None:
        return None
    if kind != "layer":
        raise ConfigError(f"{owner}: {key}={kind!r} is not supported; use null or 'layer'")
    return nn.LayerNorm(dim)


class PriorTransformer(ModelMixin):
    """Predicts the clean image embedding (B, clip_embed_dim) from a noisy one at a timestep.

    forward(hidden_states, timestep, proj_embedding, encoder_hidden_states, attention_mask)
    -> `.predicted_image_embedding`; `post_process_latents` undoes the training normalisation.
    """

    # What a sampling loop's denoiser may pass: the text states, their keep-mask and the projected text embedding.
    conditioning: ClassVar[dict[str, str]] = {"context": "encoder_hidden_states", "context_mask": "attention_mask",
                                              "pooled": "proj_embedding"}

    @register_to_config
    def __init__(self, num_attention_heads: int = 32, attention_head_dim: int = 64, num_layers: int = 20,
                 embedding_dim: int = 768, num_embeddings: int = 77, additional_embeddings: int = 4,
                 dropout: float = 0.0, time_embed_act_fn: str = "silu", norm_in_type: str | None = None,
                 embedding_proj_norm_type: str | None = None, encoder_hid_proj_type: str | None = "linear",
                 added_emb_type: str | None = "prd", time_embed_dim: int | None = None,
                 embedding_proj_dim: int | None = None, clip_embed_dim: int | None = None):
        super().__init__()
        name = type(self).__name__
        inner = num_attention_heads * attention_head_dim
        embedding_proj_dim = embedding_proj_dim or embedding_dim
        clip_embed_dim = clip_embed_dim or embedding_dim
        if encoder_hid_proj_type not in (None, "linear"):
            raise ConfigError(f"{name}: encoder_hid_proj_type={encoder_hid_proj_type!r} is not supported; "
                              f"use null or 'linear'")
        if added_emb_type not in (None, "prd"):
            raise ConfigError(f"{name}: added_emb_type={added_emb_type!r} is not supported; use null or 'prd'")

        self.time_proj = Timesteps(inner, True, 0)
        self.time_embedding = TimestepEmbedding(inner, time_embed_dim or inner, out_dim=inner, act_fn=time_embed_act_fn)
        self.proj_in = nn.Linear(embedding_dim, inner)
        self.embedding_proj_norm = _optional_layer_norm(name, "embedding_proj_norm_type", embedding_proj_norm_type,
                                                        embedding_proj_dim)
        self.embedding_proj = nn.Linear(embedding_proj_dim, inner)
        self.encoder_hidden_states_proj = nn.Linear(embedding_dim, inner) if encoder_hid_proj_type else None
        self.positional_embedding = nn.Parameter(torch.zeros(1, num_embeddings + additional_embeddings, inner))
        self.prd_embedding = nn.Parameter(torch.zeros(1, 1, inner)) if added_emb_type == "prd" else None
        self.transformer_blocks = nn.ModuleList([
            BasicTransformerBlock(inner, num_attention_heads, attention_head_dim, dropout=dropout,
                                  activation_fn="gelu", attention_bias=True) for _ in range(num_layers)])
        self.norm_in = _optional_layer_norm(name, "norm_in_type", norm_in_type, inner)
        self.norm_out = nn.LayerNorm(inner)
        self.proj_to_clip_embeddings = nn.Linear(inner, clip_embed_dim)
        # Each token sees itself and the ones before it (-10000 above the diagonal).
        length = num_embeddings + additional_embeddings
        self.register_buffer("causal_attention_mask", torch.full((length, length), -10000.0).triu_(1)[None],
                             persistent=False)
        # The statistics the training embeddings were normalised with (see post_process_latents).
        self.clip_mean = nn.Parameter(torch.zeros(1, clip_embed_dim))
        self.clip_std = nn.Parameter(torch.zeros(1, clip_embed_dim))

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor | float | int,
                proj_embedding: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, return_dict: bool = True) -> ModelOutput | tuple:
        """hidden_states: the noisy image embeddings (B, embedding_dim); proj_embedding: the CLIP text embeddings
        (B, embedding_proj_dim); encoder_hidden_states: the CLIP text states (B, S, embedding_dim); attention_mask:
        their (B, S) keep-mask. Returns (B, clip_embed_dim) as `.predicted_image_embedding`."""
        batch = hidden_states.shape[0]
        timesteps = timestep if torch.is_tensor(timestep) else torch.tensor([timestep], dtype=torch.long)
        timesteps = timesteps.reshape(-1).to(hidden_states.device).expand(batch)
        time_embeddings = self.time_embedding(self.time_proj(timesteps).to(self.dtype))

        if self.embedding_proj_norm is not None:
            proj_embedding = self.embedding_proj_norm(proj_embedding)
        tokens = []
        if self.encoder_hidden_states_proj is not None:
            if encoder_hidden_states is None:
                raise ValueError("this prior projects text states: pass encoder_hidden_states")
            encoder_hidden_states = self.encoder_hidden_states_proj(encoder_hidden_states)
        if encoder_hidden_states is not None:
            tokens.append(encoder_hidden_states)
        conditioning_length = (0 if encoder_hidden_states is None else encoder_hidden_states.shape[1]) + 2
        tokens += [self.embedding_proj(proj_embedding)[:, None], time_embeddings[:, None],
                   self.proj_in(hidden_states)[:, None]]
        if self.prd_embedding is not None:
            tokens.append(self.prd_embedding.to(hidden_states.dtype).expand(batch, -1, -1))
        hidden = torch.cat(tokens, dim=1)

        positions = self.positional_embedding.to(hidden.dtype)
        if positions.shape[1] < hidden.shape[1]:
            # A table shorter than the sequence (diffusers' rule): zero positions before it and for the query.
            positions = F.pad(positions, (0, 0, conditioning_length, 1 if self.prd_embedding is not None else 0))
        hidden = hidden + positions

        if attention_mask is not None:
            bias = (1 - attention_mask.to(hidden.dtype)) * -10000.0
            bias = F.pad(bias, (0, self.config.additional_embeddings), value=0.0)
            attention_mask = (bias[:, None, :] + self.causal_attention_mask).to(hidden.dtype)[:, None]
        if self.norm_in is not None:
            hidden = self.norm_in(hidden)
        for block in self.transformer_blocks:
            hidden = block(hidden, attention_mask=attention_mask)
        hidden = self.norm_out(hidden)
        # The "prd" query's token is the answer; without it, the tokens after the conditioning (as diffusers).
        hidden = hidden[:, -1] if self.prd_embedding is not None else hidden[:, conditioning_length:]
        return model_output(return_dict, predicted_image_embedding=self.proj_to_clip_embeddings(hidden))

    def post_process_latents(self, prior_latents: torch.Tensor) -> torch.Tensor:
        """A sampled embedding in CLIP's own scale: prior_latents * clip_std + clip_mean."""
        return prior_latents * self.clip_std.to(prior_latents.device) + self.clip_mean.to(prior_latents.device)
