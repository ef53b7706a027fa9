"""DiTTransformer2DModel: the class-conditional latent transformer of DiT (Peebles & Xie 2023).

Latents are cut into patches (tokens with sin-cos positions), run through adaLN-Zero blocks conditioned on
timestep + class label, and put back together; with learned sigma the output has twice the input channels
(noise, then the variance interpolation). Config keys and state-dict keys are diffusers'; a
`Transformer2DModel` config with norm_type "ada_norm_zero" (as facebook/DiT-XL-2-256 ships) loads as this.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ..configuration import register_to_config
from ..errors import ConfigError
from .layers.adaptive_norm import modulate
from .layers.adaptive_transformer import AdaLNZeroBlock
from .layers.patch_embed import PatchEmbed, unpatchify
from .modeling import ModelMixin
from .outputs import ModelOutput, model_output
from .transformer_2d import ReadsTransformer2DConfig
from .unet_2d import _batch_timesteps


class DiTTransformer2DModel(ReadsTransformer2DConfig, ModelMixin):
    """Predicts noise (and, with out_channels = 2 · in_channels, the variance) for (B, C, H, W) latents.

    forward(hidden_states, timestep, class_labels) -> (B, out_channels, H, W). Class `num_embeds_ada_norm`
    (1000 for ImageNet) is the null class, the unconditional branch of classifier-free guidance.
    """

    # What a sampling loop's denoiser may pass (conditioning kind -> forward keyword).
    conditioning: ClassVar[dict[str, str]] = {"class_labels": "class_labels"}
    compatible_class_names = ("Transformer2DModel",)

    # Transformer2DModel keys this class has no use for, and their neutral values.
    _legacy_neutral: ClassVar[dict] = {"cross_attention_dim": None, "caption_channels": None,
                                       "use_additional_conditions": None, "interpolation_scale": None,
                                       "attention_type": "default"}

    @register_to_config
    def __init__(self, num_attention_heads: int = 16, attention_head_dim: int = 72, in_channels: int = 4,
                 out_channels: int | None = None, num_layers: int = 28, dropout: float = 0.0,
                 norm_num_groups: int = 32, attention_bias: bool = True, sample_size: int = 32, patch_size: int = 2,
                 activation_fn: str = "gelu-approximate", num_embeds_ada_norm: int | None = 1000,
                 upcast_attention: bool = False, norm_type: str = "ada_norm_zero",
                 norm_elementwise_affine: bool = False, norm_eps: float = 1e-5):
        super().__init__()
        name = type(self).__name__
        if norm_type != "ada_norm_zero":
            raise ConfigError(f"{name}: norm_type={norm_type!r} is not DiT's; only 'ada_norm_zero' "
                              f"('ada_norm_single' is PixArtTransformer2DModel)")
        if num_embeds_ada_norm is None:
            raise ConfigError(f"{name}: num_embeds_ada_norm (the number of classes) must be set")
        if patch_size is None:
            raise ConfigError(f"{name}: patch_size must be set")
        inner_dim = num_attention_heads * attention_head_dim
        self.out_channels = in_channels if out_channels is None else out_channels
        self.patch_size = patch_size
        self.pos_embed = PatchEmbed(sample_size, sample_size, patch_size, in_channels, inner_dim)
        self.transformer_blocks = nn.ModuleList([
            AdaLNZeroBlock(inner_dim, num_attention_heads, attention_head_dim, num_embeds_ada_norm, dropout,
                           activation_fn, attention_bias, norm_elementwise_affine, norm_eps)
            for _ in range(num_layers)])
        self.norm_out = nn.LayerNorm(inner_dim, elementwise_affine=False, eps=1e-6)
        self.proj_out_1 = nn.Linear(inner_dim, 2 * inner_dim)
        self.proj_out_2 = nn.Linear(inner_dim, patch_size * patch_size * self.out_channels)

    @property
    def null_class_label(self) -> int:
        """The label of the "no class" embedding (classifier-free guidance's unconditional branch)."""
        return int(self.config.num_embeds_ada_norm)

    def forward(self, hidden_states: torch.Tensor, timestep: torch.Tensor | float | int,
                class_labels: torch.Tensor, return_dict: bool = True) -> ModelOutput | tuple:
        """hidden_states: (B, C, H, W) latents; timestep: a number or (B,) tensor; class_labels: (B,) ints."""
        rows, columns = hidden_states.shape[-2] // self.patch_size, hidden_states.shape[-1] // self.patch_size
        timesteps = _batch_timesteps(timestep, hidden_states)
        class_labels = class_labels.to(hidden_states.device).reshape(-1)
        tokens = self.pos_embed(hidden_states)
        for block in self.transformer_blocks:
            tokens = block(tokens, timesteps, class_labels)
        # The final modulation reuses the first block's timestep + class embedding (as DiT does).
        conditioning = self.transformer_blocks[0].norm1.emb(timesteps, class_labels, tokens.dtype)
        shift, scale = self.proj_out_1(F.silu(conditioning)).chunk(2, dim=1)
        tokens = modulate(self.norm_out(tokens), shift[:, None], scale[:, None])
        tokens = self.proj_out_2(tokens)
        output = unpatchify(tokens, rows, columns, self.patch_size, self.out_channels)
        return model_output(return_dict, sample=output)
