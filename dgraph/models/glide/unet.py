"""GlideText2ImUNet: GLIDE's text-conditional pixel UNet and its super-resolution and inpainting variants.

The config keys are the official release's model options (`glide_text2im.model_creation`: image_size,
num_channels, channel_mult as a string, attention_resolutions as a string of resolutions, xf_*, inpaint,
super_res, ...), so a converted folder's config.json reads like the options that built the checkpoint.
The network is the ADM UNet (Dhariwal & Nichol 2021) built from dgraph's layers: scale-shift residual
blocks that also resample (`resblock_updown`), and attention blocks whose keys and values start with the
projected text (`AddedKVAttention`). `forward(x, timesteps, tokens=, mask=, low_res=, inpaint_image=,
inpaint_mask=)` takes the official model's arguments and returns its output: epsilon, then the variance
interpolation (6 channels).

`use_fp16` and `cache_text_emb` are accepted as the options the release records; precision is chosen at
load (`torch_dtype=`), and the text encoding is computed per call (a sampling loop batches both guidance
branches into one call anyway).
"""
from __future__ import annotations

from typing import ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from ...configuration import register_to_config
from ...errors import ConfigError
from ..layers.attention import AddedKVAttention, Attention
from ..layers.embeddings import TimestepEmbedding, timestep_embedding
from ..layers.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from ..modeling import ModelMixin
from ..unet_2d import _batch_timesteps
from .text_transformer import GlideTextTransformer

# GPT-2's byte-level BPE, which GLIDE's UNet reads its prompt with.
GLIDE_VOCAB_SIZE = 50257
# The channel multipliers the official code picks for each image size when channel_mult is "".
DEFAULT_CHANNEL_MULT = {256: (1, 1, 2, 2, 4, 4), 128: (1, 1, 2, 3, 4), 64: (1, 2, 3, 4)}


def channel_multipliers(image_size: int, channel_mult: str, owner: str) -> tuple[int, ...]:
    """The per-level channel multipliers of a GLIDE UNet, as `create_model` reads the option."""
    if channel_mult == "":
        if image_size not in DEFAULT_CHANNEL_MULT:
            raise ConfigError(f"{owner}: channel_mult is empty and image_size {image_size} has no default; "
                              f"give channel_mult (e.g. \"1,2,3,4\") or use image_size 64, 128 or 256")
        return DEFAULT_CHANNEL_MULT[image_size]
    try:
        multipliers = tuple(int(part) for part in str(channel_mult).split(","))
    except ValueError:
        raise ConfigError(f"{owner}: channel_mult {channel_mult!r} is not a comma-separated list of integers") from None
    if 2 ** (len(multipliers) + 2) != image_size:
        raise ConfigError(f"{owner}: channel_mult {channel_mult!r} has {len(multipliers)} levels, which the "
                          f"official code allows only for image_size {2 ** (len(multipliers) + 2)}, not {image_size}")
    return multipliers


def input_channels(inpaint: bool, super_res: bool) -> int:
    """Channels of the first convolution: the sample, then the masked image and mask, then the low-res image."""
    return 3 + (4 if inpaint else 0) + (3 if super_res else 0)


class GlideBlock(nn.ModuleList):
    """One entry of the UNet's input / middle / output lists: its layers in order, each given what it reads
    (a residual block the time embedding, an attention block the text)."""

    def forward(self, hidden: torch.Tensor, emb: torch.Tensor, text: torch.Tensor | None) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResnetBlock2D):
                hidden = layer(hidden, emb)
            elif isinstance(layer, AddedKVAttention):
                hidden = layer(hidden, text)
            else:
                hidden = layer(hidden)
        return hidden


class GlideText2ImUNet(ModelMixin):
    """GLIDE's UNet with its own text transformer (see the module docstring)."""

    # What a sampling loop's denoiser may pass (conditioning kind -> forward keyword).
    conditioning: ClassVar[dict[str, str]] = {"tokens": "tokens", "tokens_mask": "mask", "low_res": "low_res",
                                              "inpaint_image": "inpaint_image", "inpaint_mask": "inpaint_mask"}
    # The official forward's name for the timestep argument.
    timestep_argument: ClassVar[str] = "timesteps"
    # The sample's channels (the first convolution also reads the images a variant is conditioned on).
    sample_channels: ClassVar[int] = 3

    @register_to_config
    def __init__(self, image_size: int = 64, num_channels: int = 192, num_res_blocks: int = 3,
                 channel_mult: str = "", num_heads: int = 1, num_head_channels: int = 64,
                 num_heads_upsample: int = -1, attention_resolutions: str = "32,16,8", dropout: float = 0.1,
                 text_ctx: int = 128, xf_width: int = 512, xf_layers: int = 16, xf_heads: int = 8,
                 xf_final_ln: bool = True, xf_padding: bool = True, use_scale_shift_norm: bool = True,
                 resblock_updown: bool = True, use_fp16: bool = False, cache_text_emb: bool = False,
                 inpaint: bool = False, super_res: bool = False, n_vocab: int = GLIDE_VOCAB_SIZE):
        super().__init__()
        name = type(self).__name__
        multipliers = channel_multipliers(image_size, channel_mult, name)
        try:
            attention_ds = {image_size // int(res) for res in str(attention_resolutions).split(",")}
        except (ValueError, ZeroDivisionError):
            raise ConfigError(f"{name}: attention_resolutions {attention_resolutions!r} is not a comma-separated "
                              f"list of resolutions") from None
        if xf_width and xf_width % xf_heads:
            raise ConfigError(f"{name}: xf_width {xf_width} is not divisible by xf_heads {xf_heads}")
        self.in_channels = input_channels(inpaint, super_res)
        self.out_channels = 6
        emb_dim = 4 * num_channels
        heads_up = num_heads if num_heads_upsample == -1 else num_heads_upsample

        def resblock(channels_in: int, channels_out: int | None = None, up: bool = False,
                     down: bool = False) -> ResnetBlock2D:
            return ResnetBlock2D(in_channels=channels_in, out_channels=channels_out or channels_in,
                                 temb_channels=emb_dim, eps=1e-5, dropout=dropout, up=up, down=down,
                                 time_embedding_norm="scale_shift" if use_scale_shift_norm else "default")

        def attention(channels: int, heads: int) -> nn.Module:
            if num_head_channels != -1:
                if channels % num_head_channels:
                    raise ConfigError(f"{name}: {channels} attention channels are not divisible by "
                                      f"num_head_channels {num_head_channels}")
                heads = channels // num_head_channels
            if xf_width:
                return AddedKVAttention(channels, xf_width, heads=heads, dim_head=channels // heads,
                                        norm_num_groups=32, eps=1e-5)
            return Attention(channels, heads=heads, dim_head=channels // heads, bias=True, norm_num_groups=32,
                             eps=1e-5, residual_connection=True)

        self.time_embedding = TimestepEmbedding(num_channels, emb_dim, "silu")
        if xf_width:
            self.transformer = GlideTextTransformer(n_vocab, text_ctx, xf_width, xf_layers, xf_heads, xf_final_ln,
                                                    xf_padding)
            self.transformer_proj = nn.Linear(xf_width, emb_dim)
        else:
            self.transformer = self.transformer_proj = None

        channels = first = int(multipliers[0] * num_channels)
        self.input_blocks = nn.ModuleList([GlideBlock([nn.Conv2d(self.in_channels, channels, 3, padding=1)])])
        skip_channels = [channels]
        ds = 1
        for level, mult in enumerate(multipliers):
            for _ in range(num_res_blocks):
                layers = [resblock(channels, int(mult * num_channels))]
                channels = int(mult * num_channels)
                if ds in attention_ds:
                    layers.append(attention(channels, num_heads))
                self.input_blocks.append(GlideBlock(layers))
                skip_channels.append(channels)
            if level != len(multipliers) - 1:
                down = resblock(channels, down=True) if resblock_updown else Downsample2D(channels, use_conv=True)
                self.input_blocks.append(GlideBlock([down]))
                skip_channels.append(channels)
                ds *= 2
        self.middle_block = GlideBlock([resblock(channels), attention(channels, num_heads), resblock(channels)])
        self.output_blocks = nn.ModuleList()
        for level, mult in list(enumerate(multipliers))[::-1]:
            for i in range(num_res_blocks + 1):
                layers = [resblock(channels + skip_channels.pop(), int(mult * num_channels))]
                channels = int(mult * num_channels)
                if ds in attention_ds:
                    layers.append(attention(channels, heads_up))
                if level and i == num_res_blocks:
                    layers.append(resblock(channels, up=True) if resblock_updown
                                  else Upsample2D(channels, use_conv=True))
                    ds //= 2
                self.output_blocks.append(GlideBlock(layers))
        self.norm_out = nn.GroupNorm(32, channels, eps=1e-5)
        self.conv_out = nn.Conv2d(first, self.out_channels, 3, padding=1)

    def encode_text(self, tokens: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """The text transformer's hidden states (B, text_ctx, xf_width) and the projection of the last one,
        which joins the time embedding."""
        hidden = self.transformer(tokens, mask, self.dtype)
        return hidden, self.transformer_proj(hidden[:, -1])

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor | float | int, tokens: torch.Tensor | None = None,
                mask: torch.Tensor | None = None, low_res: torch.Tensor | None = None,
                inpaint_image: torch.Tensor | None = None, inpaint_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, 3, H, W) noisy images; timesteps: (B,) training timesteps; tokens / mask: (B, text_ctx) prompt
        ids and keep-mask; low_res: (B, 3, h, w) image to upsample (super_res); inpaint_image / inpaint_mask:
        the known image and its (B, 1, H, W) mask, 1 where known (inpaint; zeros when not given).
        Returns (B, 6, H, W): epsilon, then the variance interpolation in [-1, 1]."""
        config = self.config
        parts = [x]
        if config.inpaint:
            if inpaint_image is None:
                inpaint_image = torch.zeros_like(x)
            if inpaint_mask is None:
                inpaint_mask = torch.zeros_like(x[:, :1])
            parts += [inpaint_image * inpaint_mask, inpaint_mask]
        if config.super_res:
            if low_res is None:
                raise ValueError("this GLIDE model upsamples: pass low_res, the (B, 3, h, w) image to upsample")
            parts.append(F.interpolate(low_res, x.shape[-2:], mode="bilinear", align_corners=False))
        hidden = torch.cat(parts, dim=1) if len(parts) > 1 else x
        timesteps = _batch_timesteps(timesteps, x)
        emb = self.time_embedding(timestep_embedding(timesteps, config.num_channels, flip_sin_to_cos=True,
                                                     downscale_freq_shift=0).to(self.dtype))
        text = None
        if self.transformer is not None:
            if tokens is None:
                raise ValueError("this GLIDE model reads a prompt: pass tokens (and mask)")
            text, pooled = self.encode_text(tokens, mask)
            emb = emb + pooled.to(emb.dtype)
        hidden = hidden.to(self.dtype)
        skips = []
        for block in self.input_blocks:
            hidden = block(hidden, emb, text)
            skips.append(hidden)
        hidden = self.middle_block(hidden, emb, text)
        for block in self.output_blocks:
            hidden = block(torch.cat([hidden, skips.pop()], dim=1), emb, text)
        hidden = self.conv_out(F.silu(self.norm_out(hidden)))
        return hidden.to(x.dtype)
