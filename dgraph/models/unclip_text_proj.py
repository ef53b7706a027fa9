"""UnCLIPTextProjModel: how unCLIP's decoder reads the CLIP embeddings (Ramesh et al. 2022, §2.1).

The image embedding (and the text embedding) are projected into the decoder's time embedding, and the image
embedding also becomes `clip_extra_context_tokens` extra tokens in front of the projected text states the
decoder cross-attends to. The unconditional branch of guidance replaces the image embedding by a learned one.
Config keys and state-dict keys are diffusers'.
"""
from __future__ import annotations

import torch
from torch import nn

from ..configuration import register_to_config
from .modeling import ModelMixin


class UnCLIPTextProjModel(ModelMixin):
    """forward(image_embeddings, prompt_embeds, text_encoder_hidden_states, do_classifier_free_guidance)
    -> (decoder context (B, extra + S, cross_attention_dim), additive time embedding (B, time_embed_dim))."""

    @register_to_config
    def __init__(self, *, clip_extra_context_tokens: int = 4, clip_embeddings_dim: int = 768, time_embed_dim: int,
                 cross_attention_dim: int):
        super().__init__()
        self.learned_classifier_free_guidance_embeddings = nn.Parameter(torch.zeros(clip_embeddings_dim))
        self.embedding_proj = nn.Linear(clip_embeddings_dim, time_embed_dim)
        self.clip_image_embeddings_project_to_time_embeddings = nn.Linear(clip_embeddings_dim, time_embed_dim)
        self.clip_extra_context_tokens = clip_extra_context_tokens
        self.clip_extra_context_tokens_proj = nn.Linear(clip_embeddings_dim,
                                                        clip_extra_context_tokens * cross_attention_dim)
        self.encoder_hidden_states_proj = nn.Linear(clip_embeddings_dim, cross_attention_dim)
        self.text_encoder_hidden_states_norm = nn.LayerNorm(cross_attention_dim)

    def unconditional_embeddings(self, batch: int) -> torch.Tensor:
        """The learned image embedding of guidance's unconditional branch, one row per sample."""
        return self.learned_classifier_free_guidance_embeddings[None].expand(batch, -1)

    def forward(self, *, image_embeddings: torch.Tensor, prompt_embeds: torch.Tensor,
                text_encoder_hidden_states: torch.Tensor,
                do_classifier_free_guidance: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """With do_classifier_free_guidance the batch of text inputs is [unconditional; conditional] and the
        image embeddings are the conditional half only (the learned embedding is put in front)."""
        if do_classifier_free_guidance:
            image_embeddings = torch.cat([self.unconditional_embeddings(image_embeddings.shape[0]), image_embeddings])
        if image_embeddings.shape[0] != prompt_embeds.shape[0]:
            raise ValueError(f"{image_embeddings.shape[0]} image embeddings for {prompt_embeds.shape[0]} prompts")
        batch = prompt_embeds.shape[0]
        time_embeddings = (self.clip_image_embeddings_project_to_time_embeddings(image_embeddings)
                           + self.embedding_proj(prompt_embeds))
        # The projection is read as (B, width, tokens) and then turned to (B, tokens, width), as trained.
        extra = self.clip_extra_context_tokens_proj(image_embeddings)
        extra = extra.reshape(batch, -1, self.clip_extra_context_tokens).permute(0, 2, 1)
        text = self.text_encoder_hidden_states_norm(self.encoder_hidden_states_proj(text_encoder_hidden_states))
        return torch.cat([extra, text], dim=1), time_embeddings
