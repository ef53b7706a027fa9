"""Multi-head attention through torch's scaled_dot_product_attention, with diffusers' parameter names.

One module serves three uses: the self-attention block of pixel UNets (`group_norm`, a residual and an
output rescale, over (B, C, H, W) input), and the self- and cross-attention of transformer blocks
(over (B, L, C) tokens, keys and values from `encoder_hidden_states`). `AddedKVAttention` is the
pixel self-attention whose keys and values also hold a projected text encoding (IF, unCLIP).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ...errors import ConfigError


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


class AddedKVAttention(Attention):
    """Self-attention over a (B, C, H, W) map whose keys and values also hold the projected context.

    The context (B, S, added_kv_proj_dim) is optionally normalised (`cross_attention_norm`: "group_norm"
    over its channels, or "layer_norm"), projected by add_k_proj / add_v_proj and put before the image's
    own keys and values (none with only_cross_attention). GroupNorm in, residual out. This is the
    attention of IF's and unCLIP's "SimpleCrossAttn" UNet blocks (diffusers' AttnAddedKVProcessor).
    """

    def __init__(self, query_dim: int, added_kv_proj_dim: int, heads: int, dim_head: int, norm_num_groups: int,
                 only_cross_attention: bool = False, cross_attention_norm: str | None = None,
                 cross_attention_norm_num_groups: int = 32, eps: float = 1e-5):
        super().__init__(query_dim, heads=heads, dim_head=dim_head, bias=True, upcast_softmax=True,
                         norm_num_groups=norm_num_groups, eps=eps, residual_connection=True)
        self.only_cross_attention = only_cross_attention
        inner_dim = heads * dim_head
        if only_cross_attention:
            self.to_k = self.to_v = None
        if cross_attention_norm is None:
            self.norm_cross = None
        elif cross_attention_norm == "group_norm":
            self.norm_cross = nn.GroupNorm(cross_attention_norm_num_groups, added_kv_proj_dim, eps=1e-5, affine=True)
        elif cross_attention_norm == "layer_norm":
            # diffusers sizes this norm by the query width: it only works where the two widths agree.
            self.norm_cross = nn.LayerNorm(query_dim)
        else:
            raise ConfigError(f"cross_attention_norm {cross_attention_norm!r} is not supported; "
                              f"use null, 'group_norm' or 'layer_norm'")
        self.add_k_proj = nn.Linear(added_kv_proj_dim, inner_dim)
        self.add_v_proj = nn.Linear(added_kv_proj_dim, inner_dim)

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """hidden_states: (B, C, H, W); encoder_hidden_states: (B, S, added_kv_proj_dim), or None to attend
        to the image alone through the added projections; attention_mask: an additive (B, 1, S) bias over
        the context tokens (the image's own keys are always kept)."""
        residual = hidden_states
        batch, channels, height, width = hidden_states.shape
        tokens = hidden_states.reshape(batch, channels, height * width).transpose(1, 2)
        context = tokens if encoder_hidden_states is None else encoder_hidden_states
        if encoder_hidden_states is not None and self.norm_cross is not None:
            if isinstance(self.norm_cross, nn.GroupNorm):
                context = self.norm_cross(context.transpose(1, 2)).transpose(1, 2)
            else:
                context = self.norm_cross(context)
        tokens = self.group_norm(tokens.transpose(1, 2)).transpose(1, 2)

        def heads(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(batch, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2)

        query = heads(self.to_q(tokens))
        key, value = heads(self.add_k_proj(context)), heads(self.add_v_proj(context))
        if not self.only_cross_attention:
            key = torch.cat([key, heads(self.to_k(tokens))], dim=2)
            value = torch.cat([value, heads(self.to_v(tokens))], dim=2)
        if attention_mask is not None:
            if not attention_mask.is_floating_point():  # a keep-mask: as a bias, so it can be padded
                attention_mask = torch.zeros(attention_mask.shape, dtype=query.dtype,
                                             device=query.device).masked_fill(~attention_mask.bool(), float("-inf"))
            attention_mask = attention_mask.to(query.dtype)
            own = key.shape[2] - attention_mask.shape[-1]
            if own:  # the image's own keys: never masked
                attention_mask = nn.functional.pad(attention_mask, (0, own), value=0.0)
            if attention_mask.ndim == 3:
                attention_mask = attention_mask[:, None]
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        out = out.transpose(1, 2).reshape(batch, -1, out.shape[1] * out.shape[-1])
        out = self.to_out[1](self.to_out[0](out))
        return out.transpose(1, 2).reshape(residual.shape) + residual
