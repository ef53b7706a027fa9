"""LDM-BERT, the text encoder of latent diffusion text-to-image (CompVis/ldm-text2im-large-256, `bert/`).

A pre-norm transformer encoder over BERT word pieces (bert-base-uncased tokenizer), learned absolute
positions, 77 tokens. Its folder is in transformers' layout (`config.json` with `model_type: "ldmbert"`,
`model.safetensors`), so that is what this class reads and writes; keys:

    model.embed_tokens, model.embed_positions, model.layers.{i}.self_attn.{q,k,v,out}_proj,
    model.layers.{i}.{self_attn_layer_norm,fc1,fc2,final_layer_norm}, model.layer_norm, to_logits
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..configuration import register_to_config
from ..errors import ConfigError
from .modeling import ModelMixin
from .outputs import ModelOutput, model_output
from .transformers_layout import ACTIVATIONS, TransformersLayout


class LDMBertAttention(nn.Module):
    """Multi-head self-attention; q/k/v without bias, `out_proj` with."""

    def __init__(self, embed_dim: int, num_heads: int, head_dim: int, dropout: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim
        self.dropout = dropout
        inner = num_heads * head_dim
        self.k_proj = nn.Linear(embed_dim, inner, bias=False)
        self.v_proj = nn.Linear(embed_dim, inner, bias=False)
        self.q_proj = nn.Linear(embed_dim, inner, bias=False)
        self.out_proj = nn.Linear(inner, embed_dim)

    def forward(self, hidden: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length, _ = hidden.shape
        query, key, value = (proj(hidden).view(batch, length, self.num_heads, self.head_dim).transpose(1, 2)
                             for proj in (self.q_proj, self.k_proj, self.v_proj))
        mask = key_padding_mask[:, None, None, :].bool() if key_padding_mask is not None else None
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return self.out_proj(out.transpose(1, 2).reshape(batch, length, -1))


class LDMBertEncoderLayer(nn.Module):
    """x + attn(norm(x)), then x + fc2(act(fc1(norm(x))))."""

    def __init__(self, d_model: int, heads: int, head_dim: int, ffn_dim: int, activation: str, dropout: float,
                 attention_dropout: float, activation_dropout: float):
        super().__init__()
        self.self_attn = LDMBertAttention(d_model, heads, head_dim, attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(d_model)
        self.fc1 = nn.Linear(d_model, ffn_dim)
        self.fc2 = nn.Linear(ffn_dim, d_model)
        self.final_layer_norm = nn.LayerNorm(d_model)
        self.activation = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)
        self.activation_dropout = nn.Dropout(activation_dropout)

    def forward(self, hidden: torch.Tensor, key_padding_mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = hidden + self.dropout(self.self_attn(self.self_attn_layer_norm(hidden), key_padding_mask))
        ffn = self.fc2(self.activation_dropout(self.activation(self.fc1(self.final_layer_norm(hidden)))))
        return hidden + self.dropout(ffn)


class LDMBertEncoder(nn.Module):
    def __init__(self, vocab_size: int, max_position_embeddings: int, d_model: int, layers: list[LDMBertEncoderLayer],
                 dropout: float):
        super().__init__()
        self.embed_tokens = nn.Embedding(vocab_size, d_model)
        self.embed_positions = nn.Embedding(max_position_embeddings, d_model)
        self.layers = nn.ModuleList(layers)
        self.layer_norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        hidden = self.dropout(self.embed_tokens(input_ids) + self.embed_positions(positions)[None])
        for layer in self.layers:
            hidden = layer(hidden, attention_mask)
        return self.layer_norm(hidden)


class LDMBertModel(TransformersLayout, ModelMixin):
    """LDM-BERT with the config keys of its transformers config (`d_model`, `encoder_layers`, ...).

    `forward(input_ids)` returns the last hidden state (B, L, d_model). LDM text2img feeds it prompts
    padded to 77 tokens without an attention mask; `attention_mask` (1 = token, 0 = padding) is optional.
    `to_logits` is a language-model head kept for the checkpoint; the diffusion model does not use it.
    """

    model_type: ClassVar[str] = "ldmbert"  # its name in transformers' configs
    architecture: ClassVar[str] = "LDMBertModel"

    @register_to_config
    def __init__(self, vocab_size: int = 30522, max_position_embeddings: int = 77, encoder_layers: int = 32,
                 encoder_ffn_dim: int = 5120, encoder_attention_heads: int = 8, head_dim: int = 64,
                 encoder_layerdrop: float = 0.0, activation_function: str = "gelu", d_model: int = 1280,
                 dropout: float = 0.1, attention_dropout: float = 0.0, activation_dropout: float = 0.0,
                 init_std: float = 0.02, classifier_dropout: float = 0.0, scale_embedding: bool = False,
                 use_cache: bool = True, pad_token_id: int = 0):
        super().__init__()
        if activation_function not in ACTIVATIONS:
            raise ConfigError(f"LDMBertModel: activation_function {activation_function!r} is not one of "
                              f"{', '.join(ACTIVATIONS)}")
        layers = [LDMBertEncoderLayer(d_model, encoder_attention_heads, head_dim, encoder_ffn_dim, activation_function,
                                      dropout, attention_dropout, activation_dropout) for _ in range(encoder_layers)]
        self.model = LDMBertEncoder(vocab_size, max_position_embeddings, d_model, layers, dropout)
        self.to_logits = nn.Linear(d_model, vocab_size)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                return_dict: bool = True) -> ModelOutput | tuple:
        """The encoder's hidden states (B, L, d_model) as `.last_hidden_state` (a 1-tuple with return_dict=False)."""
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ConfigError(f"LDMBertModel: {input_ids.shape[1]} tokens, but the model has only "
                              f"{self.config.max_position_embeddings} positions; tokenize with "
                              f"max_length={self.config.max_position_embeddings}")
        return model_output(return_dict, last_hidden_state=self.model(input_ids, attention_mask))
