"""UNet3DConditionModel: the text-to-video UNet (ModelScope text-to-video, damo-vilab/text-to-video-ms-1.7b).

A 2D conditioned UNet run on every frame, with temporal convolutions after each resnet, temporal
attention after each spatial transformer, and one temporal transformer (`transformer_in`) at the input.
Input and output are (batch, channels, frames, height, width). Config and state-dict keys are diffusers'.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..configuration import register_to_config
from ..errors import ConfigError
from .layers.activations import activation
from .layers.embeddings import TimestepEmbedding, Timesteps
from .layers.transformer import TransformerTemporal
from .layers.unet_2d_blocks import ResnetOptions, check_block_types
from .layers.unet_3d_blocks import (CrossAttnDownBlock3D, CrossAttnUpBlock3D, DownBlock3D, UNetMidBlock3DCrossAttn,
                                    UpBlock3D, VideoAttentionOptions)
from .modeling import ModelMixin
from .outputs import ModelOutput, model_output
from .unet_2d import _batch_timesteps
from .unet_2d_condition import per_block

# The input temporal transformer has a fixed head count in the reference model (not a config key).
_TRANSFORMER_IN_HEADS = 8


class UNet3DConditionModel(ModelMixin):
    """Predicts noise for (B, in_channels, F, H, W) video latents, conditioned on (B, S, D) text states.

    forward(sample, timestep, encoder_hidden_states, timestep_cond=None) -> (B, out_channels, F, H, W).
    """

    conditioning: ClassVar[dict[str, str]] = {"context": "encoder_hidden_states"}

    @register_to_config
    def __init__(self, sample_size: int | None = None, in_channels: int = 4, out_channels: int = 4,
                 down_block_types: tuple[str, ...] = ("CrossAttnDownBlock3D", "CrossAttnDownBlock3D",
                                                      "CrossAttnDownBlock3D", "DownBlock3D"),
                 up_block_types: tuple[str, ...] = ("UpBlock3D", "CrossAttnUpBlock3D", "CrossAttnUpBlock3D",
                                                    "CrossAttnUpBlock3D"),
                 block_out_channels: tuple[int, ...] = (320, 640, 1280, 1280), layers_per_block: int = 2,
                 downsample_padding: int = 1, mid_block_scale_factor: float = 1, act_fn: str = "silu",
                 norm_num_groups: int | None = 32, norm_eps: float = 1e-5, cross_attention_dim: int = 1024,
                 attention_head_dim: int | tuple[int, ...] = 64, num_attention_heads: int | tuple[int, ...] | None = None,
                 time_cond_proj_dim: int | None = None):
        super().__init__()
        name = type(self).__name__
        count = len(down_block_types)
        check_block_types(name, "down_block_types", down_block_types, ("CrossAttnDownBlock3D", "DownBlock3D"))
        check_block_types(name, "up_block_types", up_block_types, ("CrossAttnUpBlock3D", "UpBlock3D"))
        if len(up_block_types) != count or len(block_out_channels) != count:
            raise ConfigError(f"{name}: down_block_types, up_block_types and block_out_channels need the same "
                              f"length, got {count}, {len(up_block_types)}, {len(block_out_channels)}")
        if num_attention_heads is not None:
            raise ConfigError(f"{name}: num_attention_heads is not supported; set attention_head_dim")
        if norm_num_groups is None:
            raise ConfigError(f"{name}: norm_num_groups must be set")
        if not isinstance(attention_head_dim, int):
            raise ConfigError(f"{name}: attention_head_dim must be one int (the input temporal transformer uses it)")
        head_dims = per_block("attention_head_dim", attention_head_dim, count, name)

        channels = list(block_out_channels)
        time_embed_dim = channels[0] * 4
        self.conv_in = nn.Conv2d(in_channels, channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(channels[0], True, 0)
        self.time_embedding = TimestepEmbedding(channels[0], time_embed_dim, act_fn=act_fn,
                                                cond_proj_dim=time_cond_proj_dim)
        self.transformer_in = TransformerTemporal(_TRANSFORMER_IN_HEADS, attention_head_dim, channels[0], 1,
                                                  norm_num_groups=norm_num_groups)

        resnet = ResnetOptions(time_embed_dim, norm_eps, norm_num_groups, 0.0, act_fn)
        self.down_blocks = nn.ModuleList()
        out_ch = channels[0]
        for i, block_type in enumerate(down_block_types):
            in_ch, out_ch = out_ch, channels[i]
            add_down = i < count - 1
            if block_type == "CrossAttnDownBlock3D":
                attention = VideoAttentionOptions(head_dims[i], cross_attention_dim)
                block = CrossAttnDownBlock3D(in_ch, out_ch, layers_per_block, resnet, attention, add_down,
                                             downsample_padding)
            else:
                block = DownBlock3D(in_ch, out_ch, layers_per_block, resnet, add_down, downsample_padding)
            self.down_blocks.append(block)

        mid_resnet = ResnetOptions(time_embed_dim, norm_eps, norm_num_groups, 0.0, act_fn,
                                   output_scale_factor=mid_block_scale_factor)
        self.mid_block = UNetMidBlock3DCrossAttn(channels[-1], mid_resnet,
                                                 VideoAttentionOptions(head_dims[-1], cross_attention_dim))

        self.up_blocks = nn.ModuleList()
        out_ch = channels[-1]
        for i, block_type in enumerate(up_block_types):
            j = count - 1 - i  # the down block this up block mirrors
            prev_ch, out_ch = out_ch, channels[j]
            skip_ch = channels[max(j - 1, 0)]
            add_up = i < count - 1
            if block_type == "CrossAttnUpBlock3D":
                attention = VideoAttentionOptions(head_dims[j], cross_attention_dim)
                block = CrossAttnUpBlock3D(skip_ch, prev_ch, out_ch, layers_per_block + 1, resnet, attention, add_up)
            else:
                block = UpBlock3D(skip_ch, prev_ch, out_ch, layers_per_block + 1, resnet, add_up)
            self.up_blocks.append(block)
        self.num_upsamplers = count - 1

        self.conv_norm_out = nn.GroupNorm(norm_num_groups, channels[0], eps=norm_eps)
        self.conv_act = activation("silu")
        self.conv_out = nn.Conv2d(channels[0], out_channels, kernel_size=3, padding=1)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float | int, encoder_hidden_states: torch.Tensor,
                timestep_cond: torch.Tensor | None = None, return_dict: bool = True) -> ModelOutput | tuple:
        """sample: (B, C, F, H, W); timestep: a number, scalar or (B,) tensor; encoder_hidden_states:
        (B, S, cross_attention_dim), shared by all frames of a video. Returns (B, out_channels, F, H, W)
        as `.sample` (a 1-tuple with return_dict=False)."""
        batch, _, num_frames = sample.shape[:3]
        factor = 2 ** self.num_upsamplers
        forward_sizes = any(size % factor != 0 for size in sample.shape[-2:])

        timesteps = _batch_timesteps(timestep, sample)
        emb = self.time_embedding(self.time_proj(timesteps).to(self.dtype), timestep_cond)
        # Frames are folded into the batch: every frame gets its video's embedding and text.
        emb = emb.repeat_interleave(num_frames, dim=0)
        context = encoder_hidden_states.repeat_interleave(num_frames, dim=0)
        hidden = sample.permute(0, 2, 1, 3, 4).reshape(batch * num_frames, -1, *sample.shape[3:])

        hidden = self.transformer_in(self.conv_in(hidden), num_frames)
        skips: list[torch.Tensor] = [hidden]
        for block in self.down_blocks:
            hidden, block_skips = block(hidden, emb, num_frames, context)
            skips.extend(block_skips)
        hidden = self.mid_block(hidden, emb, num_frames, context)
        for i, block in enumerate(self.up_blocks):
            count = len(block.resnets)
            block_skips, skips = tuple(skips[-count:]), skips[:-count]
            upsample_size = tuple(skips[-1].shape[2:]) if forward_sizes and i < len(self.up_blocks) - 1 else None
            hidden = block(hidden, block_skips, emb, num_frames, context, upsample_size)
        hidden = self.conv_out(self.conv_act(self.conv_norm_out(hidden)))
        return model_output(return_dict, sample=hidden.reshape(batch, num_frames, *hidden.shape[1:]).permute(0, 2, 1, 3, 4))
