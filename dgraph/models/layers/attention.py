"""Multi-head attention through torch's scaled_dot_product_attention, with diffusers' parameter names.

One module serves three uses: the self-attention block of pixel UNets (`group_norm`, a residual and an
output rescale, over (B, C, H, W) input), and the self- and cross-attention of transformer blocks
(over (B, L, C) tokens, keys and values from `encoder_hidden_states`).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Attention(nn.Module):
    """to_q / to_k / to_v projections, `heads` heads of `dim_head` channels, then to_out.0.

    upcast_attention / upcast_softmax are accepted for the configs that set them (Stable Diffusion 2.x) and
    have no effect: scaled_dot_product_attention already accumulates the softmax of half-precision inputs
    in float32, which is what the flags asked for in code that computed the scores explicitly.
    """

    def __init__(self, query_dim: int, cross_attention_dim: int | None = None, heads: int = 8, dim_head: int = 64,
                 dropout: float = 0.0, bias: bool = False, out_bias: bool = True, upcast_attention: bool = False,
                 upcast_softmax: bool = False, norm_num_groups: int | None = None, eps: float = 1e-5,
                 residual_connection: bool = False, rescale_output_factor: float = 1.0, out_dim: int | None = None):
        super().__init__()
        inner_dim = heads * dim_head
        self.heads = heads
        self.residual_connection = residual_connection
        self.rescale_output_factor = rescale_output_factor
        self.group_norm = (nn.GroupNorm(norm_num_groups, query_dim, eps=eps, affine=True)
                           if norm_num_groups is not None else None)
        kv_dim = cross_attention_dim if cross_attention_dim is not None else query_dim
        self.to_q = nn.Linear(query_dim, inner_dim, bias=bias)
        self.to_k = nn.Linear(kv_dim, inner_dim, bias=bias)
        self.to_v = nn.Linear(kv_dim, inner_dim, bias=bias)
        self.to_out = nn.ModuleList([nn.Linear(inner_dim, out_dim or query_dim, bias=out_bias), nn.Dropout(dropout)])

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """hidden_states: (B, L, C) or (B, C, H, W). attention_mask: an additive bias broadcastable to
        (B, heads, L, S) — e.g. (B, 1, S) with 0 for kept and -10000 for dropped keys — or a boolean mask."""
        residual = hidden_states
        image_shape = None
        if hidden_states.ndim == 4:
            image_shape = hidden_states.shape
            batch, channels, height, width = image_shape
            hidden_states = hidden_states.reshape(batch, channels, height * width).transpose(1, 2)
        if self.group_norm is not None:
            hidden_states = self.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        query, key, value = self.to_q(hidden_states), self.to_k(context), self.to_v(context)
        batch = query.shape[0]
        query, key, value = (t.reshape(batch, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2)
                             for t in (query, key, value))
        if attention_mask is not None and attention_mask.ndim == 3:
            attention_mask = attention_mask[:, None]  # one mask for every head
        if attention_mask is not None and attention_mask.is_floating_point():
            attention_mask = attention_mask.to(query.dtype)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        out = out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[-1])
        out = self.to_out[1](self.to_out[0](out))
        if image_shape is not None:
            out = out.transpose(1, 2).reshape(image_shape)
        if self.residual_connection:
            out = out + residual
        return out / self.rescale_output_factor


# Attention parameter names of checkpoints written before diffusers renamed them.
_LEGACY_ATTENTION_NAMES = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def rename_legacy_attention_keys(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map `...attentions.0.query.weight` style keys (checkpoints saved before diffusers 0.14) to today's names."""
    renamed = {}
    for key, tensor in state_dict.items():
        parts = key.split(".")
        if "attentions" in parts and len(parts) >= 2 and parts[-2] in _LEGACY_ATTENTION_NAMES:
            key = ".".join(parts[:-2] + [_LEGACY_ATTENTION_NAMES[parts[-2]], parts[-1]])
        renamed[key] = tensor
    return renamed
