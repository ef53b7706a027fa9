"""BERT, the encoder of the BERT family (bert-base, MiniLM, ...), in transformers' folder layout and keys.

Post-norm transformer encoder: word + position + token-type embeddings, then per layer
`LayerNorm(x + attention(x))` and `LayerNorm(x + output(act(intermediate(x))))`. Keys as transformers'
`BertModel` writes them:

    embeddings.{word,position,token_type}_embeddings, embeddings.LayerNorm,
    encoder.layer.{i}.attention.self.{query,key,value}, encoder.layer.{i}.attention.output.{dense,LayerNorm},
    encoder.layer.{i}.intermediate.dense, encoder.layer.{i}.output.{dense,LayerNorm}

The pooler (tanh of a dense layer over the first token, a classification head) is not part of it:
diffusion models are conditioned on the per-token states, and checkpoints with a language-model head
have no pooler at all; its weights are skipped on loading.

dgraph has its own so that encoding a prompt with a small BERT does not cost an import of transformers
(several seconds, several times the work itself).
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


class BertEmbeddings(nn.Module):
    def __init__(self, vocab_size: int, hidden_size: int, max_positions: int, type_vocab_size: int,
                 pad_token_id: int, eps: float, dropout: float):
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_token_id)
        self.position_embeddings = nn.Embedding(max_positions, hidden_size)
        self.token_type_embeddings = nn.Embedding(type_vocab_size, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, input_ids: torch.Tensor, token_type_ids: torch.Tensor | None) -> torch.Tensor:
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        # No token types given: every token is of sentence A (type 0), as transformers assumes.
        types = self.token_type_embeddings.weight[0] if token_type_ids is None else self.token_type_embeddings(token_type_ids)
        hidden = self.word_embeddings(input_ids) + types + self.position_embeddings(positions)[None]
        return self.dropout(self.LayerNorm(hidden))


class BertSelfAttention(nn.Module):
    def __init__(self, hidden_size: int, heads: int, dropout: float):
        super().__init__()
        self.heads = heads
        self.dropout = dropout
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.value = nn.Linear(hidden_size, hidden_size)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = hidden.shape
        query, key, value = (proj(hidden).view(batch, length, self.heads, width // self.heads).transpose(1, 2)
                             for proj in (self.query, self.key, self.value))
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=mask,
                                             dropout_p=self.dropout if self.training else 0.0)
        return out.transpose(1, 2).reshape(batch, length, width)


class BertResidualOutput(nn.Module):
    """dense -> dropout -> LayerNorm(· + residual); transformers' BertSelfOutput and BertOutput."""

    def __init__(self, in_features: int, hidden_size: int, eps: float, dropout: float):
        super().__init__()
        self.dense = nn.Linear(in_features, hidden_size)
        self.LayerNorm = nn.LayerNorm(hidden_size, eps=eps)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden)) + residual)


class BertAttention(nn.Module):
    def __init__(self, hidden_size: int, heads: int, eps: float, dropout: float, attention_dropout: float):
        super().__init__()
        self.self = BertSelfAttention(hidden_size, heads, attention_dropout)
        self.output = BertResidualOutput(hidden_size, hidden_size, eps, dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        return self.output(self.self(hidden, mask), hidden)


class BertIntermediate(nn.Module):
    def __init__(self, hidden_size: int, intermediate_size: int, activation: str):
        super().__init__()
        self.dense = nn.Linear(hidden_size, intermediate_size)
        self.activation = ACTIVATIONS[activation]

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.activation(self.dense(hidden))


class BertLayer(nn.Module):
    def __init__(self, hidden_size: int, heads: int, intermediate_size: int, activation: str, eps: float,
                 dropout: float, attention_dropout: float):
        super().__init__()
        self.attention = BertAttention(hidden_size, heads, eps, dropout, attention_dropout)
        self.intermediate = BertIntermediate(hidden_size, intermediate_size, activation)
        self.output = BertResidualOutput(intermediate_size, hidden_size, eps, dropout)

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        hidden = self.attention(hidden, mask)
        return self.output(self.intermediate(hidden), hidden)


class BertEncoder(nn.Module):
    def __init__(self, layers: list[BertLayer]):
        super().__init__()
        self.layer = nn.ModuleList(layers)


class BertModel(TransformersLayout, ModelMixin):
    """BERT with the config keys of transformers' BertConfig (`hidden_size`, `num_hidden_layers`, ...).

    `forward(input_ids, attention_mask)` returns the last hidden state (B, L, hidden_size); the mask is
    1 for a token and 0 for padding, which no token attends to.
    """

    model_type: ClassVar[str] = "bert"
    architecture: ClassVar[str] = "BertModel"

    @register_to_config
    def __init__(self, vocab_size: int = 30522, hidden_size: int = 768, num_hidden_layers: int = 12,
                 num_attention_heads: int = 12, intermediate_size: int = 3072, hidden_act: str = "gelu",
                 hidden_dropout_prob: float = 0.1, attention_probs_dropout_prob: float = 0.1,
                 max_position_embeddings: int = 512, type_vocab_size: int = 2, initializer_range: float = 0.02,
                 layer_norm_eps: float = 1e-12, pad_token_id: int = 0, position_embedding_type: str = "absolute",
                 use_cache: bool = True, classifier_dropout: float | None = None,
                 gradient_checkpointing: bool = False):
        super().__init__()
        if hidden_act not in ACTIVATIONS:
            raise ConfigError(f"BertModel: hidden_act {hidden_act!r} is not one of {', '.join(ACTIVATIONS)}")
        if position_embedding_type != "absolute":
            raise ConfigError(f"BertModel: position_embedding_type {position_embedding_type!r} is not supported "
                              f"(only 'absolute'); load this encoder with transformers instead")
        if hidden_size % num_attention_heads:
            raise ConfigError(f"BertModel: hidden_size {hidden_size} is not a multiple of "
                              f"num_attention_heads {num_attention_heads}")
        self.embeddings = BertEmbeddings(vocab_size, hidden_size, max_position_embeddings, type_vocab_size,
                                         pad_token_id, layer_norm_eps, hidden_dropout_prob)
        self.encoder = BertEncoder([
            BertLayer(hidden_size, num_attention_heads, intermediate_size, hidden_act, layer_norm_eps,
                      hidden_dropout_prob, attention_probs_dropout_prob) for _ in range(num_hidden_layers)])

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, return_dict: bool = True) -> ModelOutput | tuple:
        """The encoder's hidden states (B, L, hidden) as `.last_hidden_state` (a 1-tuple with return_dict=False)."""
        if input_ids.shape[1] > self.config.max_position_embeddings:
            raise ConfigError(f"BertModel: {input_ids.shape[1]} tokens, but the model has only "
                              f"{self.config.max_position_embeddings} positions; tokenize with "
                              f"max_length={self.config.max_position_embeddings}")
        hidden = self.embeddings(input_ids, token_type_ids)
        mask = None if attention_mask is None else attention_mask[:, None, None, :].bool()
        for layer in self.encoder.layer:
            hidden = layer(hidden, mask)
        return model_output(return_dict, last_hidden_state=hidden)

    @classmethod
    def convert_legacy_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        # Older transformers saved the position ids buffer; checkpoints of BertFor* heads prefix the
        # encoder with "bert." and add heads ("cls.") that are not part of the encoder, nor is the pooler.
        converted = {}
        for key, tensor in state_dict.items():
            if key.startswith(("cls.", "pooler.", "bert.pooler.")):
                continue
            key = key.removeprefix("bert.")
            if key not in ("embeddings.position_ids", "embeddings.token_type_ids"):
                converted[key] = tensor
        return converted
