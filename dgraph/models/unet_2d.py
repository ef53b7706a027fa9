"""UNet2DModel: the unconditional pixel/latent UNet of DDPM (google/ddpm-*) and the unconditional LDMs.

Config keys and state-dict keys are diffusers' UNet2DModel's, so its folders load here and ours load there.
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn

from ..configuration import register_to_config
from ..errors import ConfigError
from .layers.activations import activation
from .layers.embeddings import TimestepEmbedding, Timesteps
from .layers.unet_2d_blocks import (AttnDownBlock2D, AttnUpBlock2D, DownBlock2D, ResnetOptions, UNetMidBlock2D,
                                    UpBlock2D, check_block_types)
from .layers.attention import rename_legacy_attention_keys
from .layers.unet_2d_resample_blocks import ResnetDownsampleBlock2D, ResnetUpsampleBlock2D
from .modeling import ModelMixin
from .outputs import ModelOutput, model_output

# The resnet-resampling blocks are those of unCLIP's super-resolution UNets.
_DOWN_TYPES = ("DownBlock2D", "AttnDownBlock2D", "ResnetDownsampleBlock2D")
_UP_TYPES = ("UpBlock2D", "AttnUpBlock2D", "ResnetUpsampleBlock2D")


class UNet2DModel(ModelMixin):
    """Predicts the noise (or sample) of a (B, in_channels, H, W) input at a timestep.

    forward(sample, timestep, class_labels=None) -> (B, out_channels, H, W).
    """

    # What a sampling loop's denoiser may pass (conditioning kind -> forward keyword); class labels only
    # reach a class-conditioned configuration (forward refuses them otherwise).
    conditioning: ClassVar[dict[str, str]] = {"class_labels": "class_labels"}

    @register_to_config
    def __init__(self, sample_size: int | tuple[int, int] | None = None, in_channels: int = 3, out_channels: int = 3,
                 center_input_sample: bool = False, time_embedding_type: str = "positional",
                 time_embedding_dim: int | None = None, freq_shift: int = 0, flip_sin_to_cos: bool = True,
                 down_block_types: tuple[str, ...] = ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D",
                                                      "AttnDownBlock2D"),
                 mid_block_type: str | None = "UNetMidBlock2D",
                 up_block_types: tuple[str, ...] = ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
                 block_out_channels: tuple[int, ...] = (224, 448, 672, 896), layers_per_block: int = 2,
                 mid_block_scale_factor: float = 1, downsample_padding: int = 1, downsample_type: str = "conv",
                 upsample_type: str = "conv", dropout: float = 0.0, act_fn: str = "silu",
                 attention_head_dim: int | None = 8, norm_num_groups: int = 32,
                 attn_norm_num_groups: int | None = None, norm_eps: float = 1e-5,
                 resnet_time_scale_shift: str = "default", add_attention: bool = True,
                 class_embed_type: str | None = None, num_class_embeds: int | None = None,
                 num_train_timesteps: int | None = None):
        super().__init__()
        name = type(self).__name__
        check_block_types(name, "down_block_types", down_block_types, _DOWN_TYPES)
        check_block_types(name, "up_block_types", up_block_types, _UP_TYPES)
        if len(down_block_types) != len(up_block_types) or len(block_out_channels) != len(down_block_types):
            raise ConfigError(f"{name}: down_block_types, up_block_types and block_out_channels need the same "
                              f"length, got {len(down_block_types)}, {len(up_block_types)}, {len(block_out_channels)}")
        if mid_block_type not in ("UNetMidBlock2D", None):
            raise ConfigError(f"{name}: mid_block_type {mid_block_type!r} not supported; use 'UNetMidBlock2D' or null")
        if downsample_type != "conv" or upsample_type != "conv":
            raise ConfigError(f"{name}: only downsample_type/upsample_type 'conv' are supported")
        if time_embedding_type != "positional":
            raise ConfigError(f"{name}: time_embedding_type {time_embedding_type!r} not supported; use 'positional'")
        if class_embed_type not in (None, "timestep", "identity"):
            raise ConfigError(f"{name}: class_embed_type {class_embed_type!r} not supported")

        channels = list(block_out_channels)
        time_embed_dim = time_embedding_dim or channels[0] * 4
        self.conv_in = nn.Conv2d(in_channels, channels[0], kernel_size=3, padding=1)
        self.time_proj = Timesteps(channels[0], flip_sin_to_cos, freq_shift)
        self.time_embedding = TimestepEmbedding(channels[0], time_embed_dim)
        if class_embed_type is None and num_class_embeds is not None:
            self.class_embedding = nn.Embedding(num_class_embeds, time_embed_dim)
        elif class_embed_type == "timestep":
            self.class_embedding = TimestepEmbedding(channels[0], time_embed_dim)
        elif class_embed_type == "identity":
            self.class_embedding = nn.Identity()
        else:
            self.class_embedding = None

        resnet = ResnetOptions(time_embed_dim, norm_eps, norm_num_groups, dropout, act_fn, resnet_time_scale_shift)
        self.down_blocks = nn.ModuleList()
        out_ch = channels[0]
        for i, block_type in enumerate(down_block_types):
            in_ch, out_ch = out_ch, channels[i]
            last = i == len(channels) - 1
            if block_type == "DownBlock2D":
                block = DownBlock2D(in_ch, out_ch, layers_per_block, resnet, not last, downsample_padding)
            elif block_type == "ResnetDownsampleBlock2D":
                block = ResnetDownsampleBlock2D(in_ch, out_ch, layers_per_block, resnet, not last)
            else:
                block = AttnDownBlock2D(in_ch, out_ch, layers_per_block, resnet, not last, downsample_padding,
                                        attention_head_dim)
            self.down_blocks.append(block)

        self.mid_block = None
        if mid_block_type is not None:
            mid_resnet = ResnetOptions(time_embed_dim, norm_eps, norm_num_groups, dropout, act_fn,
                                       resnet_time_scale_shift, mid_block_scale_factor)
            self.mid_block = UNetMidBlock2D(channels[-1], mid_resnet, add_attention=add_attention,
                                            attention_head_dim=attention_head_dim, attn_groups=attn_norm_num_groups)

        self.up_blocks = nn.ModuleList()
        reversed_channels = channels[::-1]
        out_ch = reversed_channels[0]
        for i, block_type in enumerate(up_block_types):
            prev_ch, out_ch = out_ch, reversed_channels[i]
            skip_ch = reversed_channels[min(i + 1, len(channels) - 1)]
            last = i == len(channels) - 1
            if block_type == "UpBlock2D":
                block = UpBlock2D(skip_ch, prev_ch, out_ch, layers_per_block + 1, resnet, not last)
            elif block_type == "ResnetUpsampleBlock2D":
                block = ResnetUpsampleBlock2D(skip_ch, prev_ch, out_ch, layers_per_block + 1, resnet, not last)
            else:
                block = AttnUpBlock2D(skip_ch, prev_ch, out_ch, layers_per_block + 1, resnet, not last,
                                      attention_head_dim)
            self.up_blocks.append(block)

        self.conv_norm_out = nn.GroupNorm(norm_num_groups, channels[0], eps=norm_eps)
        self.conv_act = activation("silu")
        self.conv_out = nn.Conv2d(channels[0], out_channels, kernel_size=3, padding=1)

    @classmethod
    def convert_legacy_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return rename_legacy_attention_keys(state_dict)

    def forward(self, sample: torch.Tensor, timestep: torch.Tensor | float | int,
                class_labels: torch.Tensor | None = None, return_dict: bool = True) -> ModelOutput | tuple:
        """sample: (B, C, H, W); timestep: a number or a (B,) / scalar tensor; class_labels: (B,) when the
        model is class-conditioned. Returns the (B, out_channels, H, W) prediction as `.sample`
        (or as a 1-tuple with return_dict=False)."""
        if self.config.center_input_sample:
            sample = 2 * sample - 1.0
        timesteps = _batch_timesteps(timestep, sample)
        emb = self.time_embedding(self.time_proj(timesteps).to(self.dtype))
        if self.class_embedding is not None:
            if class_labels is None:
                raise ValueError("this UNet is class-conditioned: pass class_labels")
            if self.config.class_embed_type == "timestep":
                class_labels = self.time_proj(class_labels).to(self.dtype)
            emb = emb + self.class_embedding(class_labels).to(self.dtype)
        elif class_labels is not None:
            raise ValueError("class_labels were given, but this UNet has no class embedding")

        hidden = self.conv_in(sample)
        skips: list[torch.Tensor] = [hidden]
        for block in self.down_blocks:
            hidden, block_skips = block(hidden, emb)
            skips.extend(block_skips)
        if self.mid_block is not None:
            hidden = self.mid_block(hidden, emb)
        for block in self.up_blocks:
            count = len(block.resnets)
            block_skips, skips = tuple(skips[-count:]), skips[:-count]
            hidden = block(hidden, block_skips, emb)
        return model_output(return_dict, sample=self.conv_out(self.conv_act(self.conv_norm_out(hidden))))


def _batch_timesteps(timestep: torch.Tensor | float | int, sample: torch.Tensor) -> torch.Tensor:
    """The timestep as a (batch,) tensor on the sample's device."""
    if not torch.is_tensor(timestep):
        dtype = torch.float32 if isinstance(timestep, float) else torch.long
        timestep = torch.tensor([timestep], dtype=dtype, device=sample.device)
    elif timestep.ndim == 0:
        timestep = timestep[None].to(sample.device)
    return timestep.to(sample.device).expand(sample.shape[0])
