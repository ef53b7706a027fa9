"""UNet2DConditionModel: the text-conditioned UNet of latent diffusion (LDM text2im), Stable Diffusion 1.x/2.x
and DeepFloyd IF's pixel-space stages.

Every resolution has resnets and, in its "CrossAttn" blocks, spatial transformers whose cross-attention
reads `encoder_hidden_states` (the text encoding); IF's "SimpleCrossAttn" blocks instead put the projected
text into the keys and values of the image's self-attention, resample with resnets, and add the pooled
text to the time embedding (`addition_embed_type="text"`). SDXL adds its pooled text and size/crop ids
(`addition_embed_type="text_time"`, through `added_cond_kwargs`). Config keys and state-dict keys are diffusers'.
Config keys of features this class does not implement are accepted at their neutral values (so configs
round-trip unchanged) and refused with a ConfigError otherwise.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..configuration import register_to_config
from ..errors import ConfigError
from .layers.activations import activation
from .layers.embeddings import TextTimeEmbedding, TimestepEmbedding, Timesteps
from .layers.unet_2d_blocks import (CrossAttentionOptions, CrossAttnDownBlock2D, CrossAttnUpBlock2D, DownBlock2D,
                                    ResnetOptions, UNetMidBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D,
                                    check_block_types)
from .layers.unet_2d_resample_blocks import (AddedKVOptions, ResnetDownsampleBlock2D, ResnetUpsampleBlock2D,
                                             SimpleCrossAttnDownBlock2D, SimpleCrossAttnUpBlock2D,
                                             UNetMidBlock2DSimpleCrossAttn)
from .modeling import ModelMixin
from .outputs import ModelOutput, model_output
from .unet_2d import _batch_timesteps

_DOWN_TYPES = ("CrossAttnDownBlock2D", "DownBlock2D", "SimpleCrossAttnDownBlock2D", "ResnetDownsampleBlock2D")
_UP_TYPES = ("CrossAttnUpBlock2D", "UpBlock2D", "SimpleCrossAttnUpBlock2D", "ResnetUpsampleBlock2D")
_MID_TYPES = ("UNetMidBlock2DCrossAttn", "UNetMidBlock2D", "UNetMidBlock2DSimpleCrossAttn", None)


def per_block(name: str, value, count: int, owner: str) -> list:
    """A per-resolution setting given as one value or as a list of `count` values."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ConfigError(f"{owner}: {name} lists {len(value)} values for {count} down blocks")
        return list(value)
    return [value] * count


def attention_bias_from_mask(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """A (B, S) keep-mask of 1/0 as an additive attention bias (B, 1, S): 0 where kept, -10000 where dropped."""
    if mask is None:
        return None
    return ((1 - mask.to(dtype)) * -10000.0).unsqueeze(1)


class UNet2DConditionModel(ModelMixin):
    """Predicts noise for (B, in_channels, H, W) latents at a timestep, conditioned on (B, S, D) text states.

    forward(sample, timestep, encoder_hidden_states, ...) -> (B, out_channels, H, W).
    """

    # What a sampling loop's denoiser may pass. No context mask: the LDM and Stable Diffusion UNets were
    # trained on all tokens of the padded prompt, and diffusers' pipelines pass none either.
    # SDXL's UNets (addition_embed_type "text_time") also take "added": text_embeds and time_ids.
    conditioning: ClassVar[dict[str, str]] = {"context": "encoder_hidden_states", "class_labels": "class_labels",
                                              "added": "added_cond_kwargs"}

    @register_to_config
    def __init__(self, sample_size: int | tuple[int, int] | None = None, in_channels: int = 4, out_channels: int = 4,
                 center_input_sample: bool = False, flip_sin_to_cos: bool = True, freq_shift: int = 0,
                 down_block_types: tuple[str, ...] = ("CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                                      "CrossAttnDownBlock2D", "DownBlock2D"),
                 mid_block_type: str | None = "UNetMidBlock2DCrossAttn",
                 up_block_types: tuple[str, ...] = ("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                                    "CrossAttnUpBlock2D"),
                 only_cross_attention: bool | tuple[bool, ...] = False,
                 block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280),
                 layers_per_block: int | tuple[int, ...] = 2, downsample_padding: int = 1,
                 mid_block_scale_factor: float = 1, dropout: float = 0.0, act_fn: str = "silu",
                 norm_num_groups: int | None = 32, norm_eps: float = 1e-5,
                 cross_attention_dim: int | tuple[int, ...] = 1280,
                 transformer_layers_per_block: int | tuple[int, ...] = 1,
                 reverse_transformer_layers_per_block: tuple[tuple[int, ...], ...] | None = None,
                 encoder_hid_dim: int | None = None, encoder_hid_dim_type: str | None = None,
                 attention_head_dim: int | tuple[int, ...] = 8, num_attention_heads: int | tuple[int, ...] | None = None,
                 dual_cross_attention: bool = False, use_linear_projection: bool = False,
                 class_embed_type: str | None = None, addition_embed_type: str | None = None,
                 addition_time_embed_dim: int | None = None, num_class_embeds: int | None = None,
                 upcast_attention: bool = False, resnet_time_scale_shift: str = "default",
                 resnet_skip_time_act: bool = False, resnet_out_scale_factor: float = 1.0,
                 time_embedding_type: str = "positional", time_embedding_dim: int | None = None,
                 time_embedding_act_fn: str | None = None, timestep_post_act: str | None = None,
                 time_cond_proj_dim: int | None = None, conv_in_kernel: int = 3, conv_out_kernel: int = 3,
                 projection_class_embeddings_input_dim: int | None = None, attention_type: str = "default",
                 class_embeddings_concat: bool = False, mid_block_only_cross_attention: bool | None = None,
                 cross_attention_norm: str | None = None, addition_embed_type_num_heads: int = 64):
        super().__init__()
        name = type(self).__name__
        count = len(down_block_types)
        check_block_types(name, "down_block_types", down_block_types, _DOWN_TYPES)
        check_block_types(name, "up_block_types", up_block_types, _UP_TYPES)
        if mid_block_type not in _MID_TYPES:
            raise ConfigError(f"{name}: mid_block_type {mid_block_type!r} not supported; "
                              f"use 'UNetMidBlock2DCrossAttn', 'UNetMidBlock2DSimpleCrossAttn', 'UNetMidBlock2D' "
                              f"or null")
        if len(up_block_types) != count or len(block_out_channels) != count:
            raise ConfigError(f"{name}: down_block_types, up_block_types and block_out_channels need the same "
                              f"length, got {count}, {len(up_block_types)}, {len(block_out_channels)}")
        unsupported = {"num_attention_heads": (num_attention_heads, None),
                       "dual_cross_attention": (dual_cross_attention, False),
                       "attention_type": (attention_type, "default"),
                       "time_embedding_type": (time_embedding_type, "positional"),
                       "reverse_transformer_layers_per_block": (reverse_transformer_layers_per_block, None)}
        for key, (value, neutral) in unsupported.items():
            if value != neutral:
                raise ConfigError(f"{name}: {key}={value!r} is not supported (only {neutral!r})")
        if addition_embed_type not in (None, "text", "text_time"):
            raise ConfigError(f"{name}: addition_embed_type={addition_embed_type!r} is not supported "
                              f"(only null, 'text' or 'text_time')")
        if addition_embed_type == "text_time" and (addition_time_embed_dim is None
                                                   or projection_class_embeddings_input_dim is None):
            raise ConfigError(f"{name}: addition_embed_type 'text_time' needs addition_time_embed_dim and "
                              f"projection_class_embeddings_input_dim")
        if cross_attention_norm not in (None, "group_norm", "layer_norm"):
            raise ConfigError(f"{name}: cross_attention_norm={cross_attention_norm!r} is not supported; "
                              f"use null, 'group_norm' or 'layer_norm'")
        if encoder_hid_dim_type not in (None, "text_proj"):
            raise ConfigError(f"{name}: encoder_hid_dim_type={encoder_hid_dim_type!r} is not supported "
                              f"(only null or 'text_proj')")
        if encoder_hid_dim_type == "text_proj" and encoder_hid_dim is None:
            raise ConfigError(f"{name}: encoder_hid_dim_type 'text_proj' needs encoder_hid_dim")
        if norm_num_groups is None:
            raise ConfigError(f"{name}: norm_num_groups must be set (group-norm-free UNets are not supported)")
        if class_embed_type not in (None, "timestep", "identity", "projection", "simple_projection"):
            raise ConfigError(f"{name}: class_embed_type {class_embed_type!r} not supported")

        channels = list(block_out_channels)
        only_cross = per_block("only_cross_attention", only_cross_attention, count, name)
        heads = per_block("attention_head_dim", attention_head_dim, count, name)
        cross_dims = per_block("cross_attention_dim", cross_attention_dim, count, name)
        layers = per_block("layers_per_block", layers_per_block, count, name)
        transformer_layers = per_block("transformer_layers_per_block", transformer_layers_per_block, count, name)
        if any(not isinstance(n, int) for n in transformer_layers):
            raise ConfigError(f"{name}: transformer_layers_per_block must be an int per block")

        self.conv_in = nn.Conv2d(in_channels, channels[0], conv_in_kernel, padding=(conv_in_kernel - 1) // 2)
        time_embed_dim = time_embedding_dim or channels[0] * 4
        self.time_proj = Timesteps(channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(channels[0], time_embed_dim, act_fn=act_fn,
                                                post_act_fn=timestep_post_act, cond_proj_dim=time_cond_proj_dim)
        self.encoder_hid_proj = nn.Linear(encoder_hid_dim, cross_dims[0]) if encoder_hid_dim is not None else None
        # The pooled text joins the time embedding; it reads the text before encoder_hid_proj.
        self.add_embedding = (TextTimeEmbedding(encoder_hid_dim or cross_dims[0], time_embed_dim,
                                                addition_embed_type_num_heads)
                              if addition_embed_type == "text" else None)
        if addition_embed_type == "text_time":
            # SDXL: each size/crop id gets sinusoidal features; with the pooled text they join the time embedding.
            self.add_time_proj = Timesteps(addition_time_embed_dim, flip_sin_to_cos, freq_shift)
            self.add_embedding = TimestepEmbedding(projection_class_embeddings_input_dim, time_embed_dim)
        else:
            self.conditioning = {k: v for k, v in type(self).conditioning.items() if k != "added"}
        self.class_embedding = self._class_embedding(class_embed_type, num_class_embeds, act_fn, channels[0],
                                                     time_embed_dim, projection_class_embeddings_input_dim)
        self.time_embed_act = activation(time_embedding_act_fn) if time_embedding_act_fn is not None else None
        blocks_temb = time_embed_dim * 2 if class_embeddings_concat else time_embed_dim

        resnet = ResnetOptions(blocks_temb, norm_eps, norm_num_groups, dropout, act_fn, resnet_time_scale_shift)
        # The resnet-resampling blocks (IF, unCLIP) also read resnet_out_scale_factor and resnet_skip_time_act.
        resample_resnet = ResnetOptions(blocks_temb, norm_eps, norm_num_groups, dropout, act_fn,
                                        resnet_time_scale_shift, resnet_out_scale_factor, resnet_skip_time_act)
        if mid_block_only_cross_attention is None:
            mid_block_only_cross_attention = only_cross_attention if isinstance(only_cross_attention, bool) else False

        def cross(i: int, only: bool) -> CrossAttentionOptions:
            return CrossAttentionOptions(heads[i], cross_dims[i], transformer_layers[i], use_linear_projection,
                                         only, upcast_attention)

        def added_kv(i: int, only: bool, channels: int, head: int | None = None) -> AddedKVOptions:
            # Here attention_head_dim is the width of a head (diffusers reads it so for these blocks).
            head = heads[i] if head is None else heads[head]
            return AddedKVOptions(head or channels, cross_dims[i], only, cross_attention_norm)

        self.down_blocks = nn.ModuleList()
        out_ch = channels[0]
        for i, block_type in enumerate(down_block_types):
            in_ch, out_ch = out_ch, channels[i]
            add_down = i < count - 1
            if block_type == "CrossAttnDownBlock2D":
                block = CrossAttnDownBlock2D(in_ch, out_ch, layers[i], resnet, cross(i, only_cross[i]), add_down,
                                             downsample_padding)
            elif block_type == "SimpleCrossAttnDownBlock2D":
                block = SimpleCrossAttnDownBlock2D(in_ch, out_ch, layers[i], resample_resnet,
                                                   added_kv(i, only_cross[i], out_ch), add_down)
            elif block_type == "ResnetDownsampleBlock2D":
                block = ResnetDownsampleBlock2D(in_ch, out_ch, layers[i], resample_resnet, add_down)
            else:
                block = DownBlock2D(in_ch, out_ch, layers[i], resnet, add_down, downsample_padding)
            self.down_blocks.append(block)

        mid_resnet = ResnetOptions(blocks_temb, norm_eps, norm_num_groups, dropout, act_fn, resnet_time_scale_shift,
                                   mid_block_scale_factor)
        if mid_block_type == "UNetMidBlock2DCrossAttn":
            self.mid_block = UNetMidBlock2DCrossAttn(channels[-1], mid_resnet, cross(count - 1, False))
        elif mid_block_type == "UNetMidBlock2DSimpleCrossAttn":
            mid_resnet = ResnetOptions(blocks_temb, norm_eps, norm_num_groups, dropout, act_fn, resnet_time_scale_shift,
                                       mid_block_scale_factor, resnet_skip_time_act)
            self.mid_block = UNetMidBlock2DSimpleCrossAttn(
                channels[-1], mid_resnet, added_kv(count - 1, mid_block_only_cross_attention, channels[-1]))
        elif mid_block_type == "UNetMidBlock2D":
            self.mid_block = UNetMidBlock2D(channels[-1], mid_resnet, num_layers=0, add_attention=False)
        else:
            self.mid_block = None

        self.up_blocks = nn.ModuleList()
        rev = list(range(count))[::-1]  # the down-block index each up block mirrors
        out_ch = channels[-1]
        for i, block_type in enumerate(up_block_types):
            prev_ch, out_ch = out_ch, channels[rev[i]]
            skip_ch = channels[rev[min(i + 1, count - 1)]]
            add_up = i < count - 1
            j = rev[i]
            if block_type == "CrossAttnUpBlock2D":
                block = CrossAttnUpBlock2D(skip_ch, prev_ch, out_ch, layers[j] + 1, resnet, cross(j, only_cross[j]),
                                           add_up)
            elif block_type == "SimpleCrossAttnUpBlock2D":
                block = SimpleCrossAttnUpBlock2D(skip_ch, prev_ch, out_ch, layers[j] + 1, resample_resnet,
                                                 # diffusers takes the up path's head width unreversed
                                                 added_kv(j, only_cross[j], out_ch, head=i), add_up)
            elif block_type == "ResnetUpsampleBlock2D":
                block = ResnetUpsampleBlock2D(skip_ch, prev_ch, out_ch, layers[j] + 1, resample_resnet, add_up)
            else:
                block = UpBlock2D(skip_ch, prev_ch, out_ch, layers[j] + 1, resnet, add_up)
            self.up_blocks.append(block)
        self.num_upsamplers = count - 1

        self.conv_norm_out = nn.GroupNorm(norm_num_groups, channels[0], eps=norm_eps)
        self.conv_act = activation(act_fn)
        self.conv_out = nn.Conv2d(channels[0], out_channels, conv_out_kernel, padding=(conv_out_kernel - 1) // 2)

    def _text_time_embedding(self, added: dict[str, torch.Tensor] | None, dtype: torch.dtype) -> torch.Tensor:
        if not added or "text_embeds" not in added or "time_ids" not in added:
            raise ValueError("this UNet (addition_embed_type 'text_time', SDXL) needs added_cond_kwargs with "
                             "'text_embeds' and 'time_ids'")
        text_embeds, time_ids = added["text_embeds"], added["time_ids"]
        time_embeds = self.add_time_proj(time_ids.flatten()).reshape(text_embeds.shape[0], -1)
        return self.add_embedding(torch.cat([text_embeds, time_embeds], dim=-1).to(dtype))

    @staticmethod
    def _class_embedding(kind: str | None, num_class_embeds: int | None, act_fn: str, timestep_dim: int,
                         time_embed_dim: int, projection_dim: int | None) -> nn.Module | None:
        if kind is None:
            return nn.Embedding(num_class_embeds, time_embed_dim) if num_class_embeds is not None else None
        if kind == "timestep":
            return TimestepEmbedding(timestep_dim, time_embed_dim, act_fn=act_fn)
        if kind == "identity":
            return nn.Identity()
        if projection_dim is None:
            raise ConfigError(f"class_embed_type {kind!r} needs projection_class_embeddings_input_dim")
        if kind == "projection":
            return TimestepEmbedding(projection_dim, time_embed_dim)
        return nn.Linear(projection_dim, time_embed_dim)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float | int,
                encoder_hidden_states: torch.Tensor | None = None, class_labels: torch.Tensor | None = None,
                timestep_cond: torch.Tensor | None = None,
                encoder_attention_mask: torch.Tensor | None = None,
                added_cond_kwargs: dict[str, torch.Tensor] | None = None, return_dict: bool = True) -> ModelOutput | tuple:
        """sample: (B, C, H, W) latents; timestep: a number, scalar or (B,) tensor; encoder_hidden_states:
        (B, S, cross_attention_dim), or None where the attention blocks attend to the image alone (AudioLDM,
        conditioned through class_labels); encoder_attention_mask: optional (B, S) with 1 for tokens to attend to;
        added_cond_kwargs: for addition_embed_type "text_time" (SDXL), "text_embeds" (B, D) pooled text and
        "time_ids" (B, N) size/crop ids.
        Returns the (B, out_channels, H, W) prediction as `.sample` (a 1-tuple with return_dict=False)."""
        # Sizes that do not halve evenly are restored exactly on the way up.
        factor = 2 ** self.num_upsamplers
        forward_sizes = any(size % factor != 0 for size in sample.shape[-2:])
        encoder_attention_mask = attention_bias_from_mask(encoder_attention_mask, sample.dtype)
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0

        timesteps = _batch_timesteps(timestep, sample)
        emb = self.time_embedding(self.time_proj(timesteps).to(sample.dtype), timestep_cond)
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("this UNet is class-conditioned: pass class_labels")
            if self.config.class_embed_type == "timestep":
                class_labels = self.time_proj(class_labels).to(sample.dtype)
            class_emb = self.class_embedding(class_labels).to(sample.dtype)
            emb = torch.cat([emb, class_emb], dim=-1) if self.config.class_embeddings_concat else emb + class_emb
        if self.config.addition_embed_type == "text_time":
            emb = emb + self._text_time_embedding(added_cond_kwargs, emb.dtype)
        elif self.add_embedding is not None:
            emb = emb + self.add_embedding(encoder_hidden_states)
        if self.time_embed_act is not None:
            emb = self.time_embed_act(emb)
        if self.encoder_hid_proj is not None:
            encoder_hidden_states = self.encoder_hid_proj(encoder_hidden_states)
        context = dict(encoder_hidden_states=encoder_hidden_states, encoder_attention_mask=encoder_attention_mask)

        hidden = self.conv_in(sample)
        skips: list[torch.Tensor] = [hidden]
        for block in self.down_blocks:
            hidden, block_skips = block(hidden, emb, **context)
            skips.extend(block_skips)
        if self.mid_block is not None:
            hidden = self.mid_block(hidden, emb, **context)
        for i, block in enumerate(self.up_blocks):
            count = len(block.resnets)
            block_skips, skips = tuple(skips[-count:]), skips[:-count]
            upsample_size = tuple(skips[-1].shape[2:]) if forward_sizes and i < len(self.up_blocks) - 1 else None
            hidden = block(hidden, block_skips, emb, upsample_size=upsample_size, **context)
        return model_output(return_dict, sample=self.conv_out(self.conv_act(self.conv_norm_out(hidden))))
