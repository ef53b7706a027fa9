"""PixArtTransformer2DModel: the text-conditioned latent transformer of PixArt-α (Chen et al. 2023).

Patches of the latent run through adaLN-single blocks (one shared timestep modulation plus a table per
block) that cross-attend to the caption: T5 hidden states projected to the model width. The 1024-pixel
multi-aspect models also embed the image resolution and aspect ratio ("added conditions"). Config and
state-dict keys are diffusers'; a `Transformer2DModel` config with norm_type "ada_norm_single" (as the
PixArt-alpha repos ship) loads as this.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..configuration import register_to_config
from ..errors import ConfigError
from .layers.adaptive_norm import AdaLayerNormSingle, PixArtAlphaTextProjection, modulate
from .layers.adaptive_transformer import AdaLNSingleBlock
from .layers.patch_embed import PatchEmbed, unpatchify
from .modeling import ModelMixin
from .outputs import ModelOutput, model_output
from .transformer_2d import ReadsTransformer2DConfig
from .unet_2d import _batch_timesteps
from .unet_2d_condition import attention_bias_from_mask

# The sample size of the 1024-pixel models, which (unless the config says otherwise) take added conditions.
_MULTI_ASPECT_SAMPLE_SIZE = 128
ADDED_CONDITIONS = ("resolution", "aspect_ratio")


class PixArtTransformer2DModel(ReadsTransformer2DConfig, ModelMixin):
    """Predicts noise (and the variance, with out_channels = 2 · in_channels) for (B, C, H, W) latents.

    forward(hidden_states, encoder_hidden_states, timestep, added_cond_kwargs, encoder_attention_mask)
    -> (B, out_channels, H, W). `encoder_attention_mask` is a (B, S) keep-mask of the caption tokens;
    `added_cond_kwargs` holds "resolution" (B, 2) and "aspect_ratio" (B, 1) when the model uses them.
    """

    conditioning: ClassVar[dict[str, str]] = {"context": "encoder_hidden_states",
                                              "context_mask": "encoder_attention_mask",
                                              "added": "added_cond_kwargs"}
    compatible_class_names = ("Transformer2DModel",)

    @register_to_config
    def __init__(self, num_attention_heads: int = 16, attention_head_dim: int = 72, in_channels: int = 4,
                 out_channels: int | None = 8, num_layers: int = 28, dropout: float = 0.0, norm_num_groups: int = 32,
                 cross_attention_dim: int | None = 1152, attention_bias: bool = True, sample_size: int = 128,
                 patch_size: int = 2, activation_fn: str = "gelu-approximate",
                 num_embeds_ada_norm: int | None = 1000, upcast_attention: bool = False,
                 norm_type: str = "ada_norm_single", norm_elementwise_affine: bool = False, norm_eps: float = 1e-6,
                 interpolation_scale: int | None = None, use_additional_conditions: bool | None = None,
                 caption_channels: int | None = None, attention_type: str | None = "default"):
        super().__init__()
        name = type(self).__name__
        if norm_type != "ada_norm_single":
            raise ConfigError(f"{name}: norm_type={norm_type!r} is not PixArt's; only 'ada_norm_single' "
                              f"('ada_norm_zero' is DiTTransformer2DModel)")
        if attention_type not in (None, "default"):
            raise ConfigError(f"{name}: attention_type={attention_type!r} is not supported (only 'default')")
        inner_dim = num_attention_heads * attention_head_dim
        if use_additional_conditions is None:
            use_additional_conditions = sample_size == _MULTI_ASPECT_SAMPLE_SIZE
        if use_additional_conditions and inner_dim % 3:
            raise ConfigError(f"{name}: with additional conditions the width {inner_dim} must be a multiple of 3")
        self.use_additional_conditions = use_additional_conditions
        self.out_channels = in_channels if out_channels is None else out_channels
        self.patch_size = patch_size
        scale = interpolation_scale if interpolation_scale is not None else max(sample_size // 64, 1)
        self.pos_embed = PatchEmbed(sample_size, sample_size, patch_size, in_channels, inner_dim, scale)
        self.transformer_blocks = nn.ModuleList([
            AdaLNSingleBlock(inner_dim, num_attention_heads, attention_head_dim, cross_attention_dim, dropout,
                             activation_fn, attention_bias, norm_elementwise_affine, norm_eps)
            for _ in range(num_layers)])
        self.norm_out = nn.LayerNorm(inner_dim, elementwise_affine=False, eps=1e-6)
        self.scale_shift_table = nn.Parameter(torch.randn(2, inner_dim) / inner_dim ** 0.5)
        self.proj_out = nn.Linear(inner_dim, patch_size * patch_size * self.out_channels)
        self.adaln_single = AdaLayerNormSingle(inner_dim, use_additional_conditions)
        self.caption_projection = (PixArtAlphaTextProjection(caption_channels, inner_dim)
                                   if caption_channels is not None else None)
        # This configuration's conditioning: the size conditions only when the model embeds them.
        self.conditioning = {kind: keyword for kind, keyword in type(self).conditioning.items()
                             if kind != "added" or use_additional_conditions}

    def forward(self, hidden_states: torch.Tensor, encoder_hidden_states: torch.Tensor | None = None,
                timestep: torch.Tensor | float | int | None = None,
                added_cond_kwargs: dict[str, torch.Tensor] | None = None,
                encoder_attention_mask: torch.Tensor | None = None, return_dict: bool = True) -> ModelOutput | tuple:
        """hidden_states: (B, C, H, W); encoder_hidden_states: (B, S, caption_channels); timestep: a number or
        (B,) tensor; encoder_attention_mask: (B, S) with 1 for tokens to attend to (or an additive bias)."""
        if timestep is None:
            raise ValueError("PixArtTransformer2DModel needs a timestep")
        added = added_cond_kwargs or {}
        if self.use_additional_conditions and any(added.get(k) is None for k in ADDED_CONDITIONS):
            raise ValueError("this PixArt model embeds the image size: pass added_cond_kwargs with "
                             "'resolution' (B, 2) and 'aspect_ratio' (B, 1)")
        if encoder_attention_mask is not None and encoder_attention_mask.ndim == 2:
            encoder_attention_mask = attention_bias_from_mask(encoder_attention_mask, hidden_states.dtype)
        batch = hidden_states.shape[0]
        rows, columns = hidden_states.shape[-2] // self.patch_size, hidden_states.shape[-1] // self.patch_size
        tokens = self.pos_embed(hidden_states)
        timesteps = _batch_timesteps(timestep, hidden_states)
        modulation, embedded = self.adaln_single(timesteps, added.get("resolution"), added.get("aspect_ratio"),
                                                 tokens.dtype)
        if self.caption_projection is not None:
            encoder_hidden_states = self.caption_projection(encoder_hidden_states).reshape(batch, -1, tokens.shape[-1])
        for block in self.transformer_blocks:
            tokens = block(tokens, modulation, encoder_hidden_states, encoder_attention_mask)
        shift, scale = (self.scale_shift_table[None] + embedded[:, None]).chunk(2, dim=1)
        tokens = self.proj_out(modulate(self.norm_out(tokens), shift, scale))
        output = unpatchify(tokens, rows, columns, self.patch_size, self.out_channels)
        return model_output(return_dict, sample=output)
