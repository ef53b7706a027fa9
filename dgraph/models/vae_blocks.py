"""The pieces of LDM's autoencoders: encoder, decoder, diagonal Gaussian posterior, vector quantizer.

Module and parameter names follow diffusers' so that its checkpoints load unchanged:

    encoder.conv_in, encoder.down_blocks.{i}.resnets.{j}, encoder.down_blocks.{i}.downsamplers.0.conv,
    encoder.mid_block.resnets.{0,1}, encoder.mid_block.attentions.0.{group_norm,to_q,to_k,to_v,to_out.0},
    encoder.conv_norm_out, encoder.conv_out, and the mirror image under decoder.* (up_blocks, upsamplers).
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from ..errors import ConfigError
from .layers.resnet import Downsample2D, ResnetBlock2D, Upsample2D
from .layers.unet_2d_blocks import ResnetOptions, UNetMidBlock2D

# Every convolutional norm of the original LDM autoencoders uses this epsilon.
_EPS = 1e-6
DOWN_BLOCK_TYPES = ("DownEncoderBlock2D",)
UP_BLOCK_TYPES = ("UpDecoderBlock2D",)

def check_block_types(down_block_types, up_block_types, block_out_channels, owner: str) -> None:
    """Config errors for block lists this implementation does not build, said before any module exists."""
    for name, given, known in (("down_block_types", down_block_types, DOWN_BLOCK_TYPES),
                               ("up_block_types", up_block_types, UP_BLOCK_TYPES)):
        unknown = [block for block in given if block not in known]
        if unknown:
            raise ConfigError(f"{owner}: {name} {unknown} not supported; use {', '.join(known)}")
        if len(given) != len(block_out_channels):
            raise ConfigError(f"{owner}: {name} has {len(given)} entries but block_out_channels has "
                              f"{len(block_out_channels)}; give one block type per resolution")


def _options(groups: int, act_fn: str) -> ResnetOptions:
    # Autoencoder resnets take no time embedding.
    return ResnetOptions(temb_channels=None, eps=_EPS, groups=groups, act_fn=act_fn)


def _vae_resnet(in_channels: int, out_channels: int, groups: int, act_fn: str) -> ResnetBlock2D:
    return _options(groups, act_fn).block(in_channels, out_channels)


def _mid_block(channels: int, groups: int, act_fn: str, add_attention: bool) -> UNetMidBlock2D:
    """resnet -> single-head self-attention over all pixels -> resnet."""
    return UNetMidBlock2D(channels, _options(groups, act_fn), add_attention=add_attention, attention_head_dim=channels)


class DownEncoderBlock2D(nn.Module):
    """`num_layers` resnets, then (except at the lowest resolution) a stride-2 conv padded right/bottom."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, groups: int, act_fn: str,
                 add_downsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([_vae_resnet(in_channels if i == 0 else out_channels, out_channels, groups, act_fn)
                                      for i in range(num_layers)])
        self.downsamplers = (nn.ModuleList([Downsample2D(out_channels, use_conv=True, padding=0)])
                             if add_downsample else None)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            hidden = resnet(hidden)
        if self.downsamplers is not None:
            hidden = self.downsamplers[0](hidden)
        return hidden


class UpDecoderBlock2D(nn.Module):
    """`num_layers` resnets, then (except at full resolution) nearest 2x upsampling and a 3x3 conv."""

    def __init__(self, in_channels: int, out_channels: int, num_layers: int, groups: int, act_fn: str,
                 add_upsample: bool):
        super().__init__()
        self.resnets = nn.ModuleList([_vae_resnet(in_channels if i == 0 else out_channels, out_channels, groups, act_fn)
                                      for i in range(num_layers)])
        self.upsamplers = nn.ModuleList([Upsample2D(out_channels, use_conv=True)]) if add_upsample else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        for resnet in self.resnets:
            hidden = resnet(hidden)
        if self.upsamplers is not None:
            hidden = self.upsamplers[0](hidden)
        return hidden


class Encoder(nn.Module):
    """Image (B, in_channels, H, W) -> (B, out_channels or 2*out_channels, H / 2**(n-1), W / 2**(n-1))."""

    def __init__(self, in_channels: int, out_channels: int, block_out_channels: tuple[int, ...], layers_per_block: int,
                 norm_num_groups: int, act_fn: str, double_z: bool, mid_block_add_attention: bool = True):
        super().__init__()
        self.conv_in = nn.Conv2d(in_channels, block_out_channels[0], kernel_size=3, padding=1)
        self.down_blocks = nn.ModuleList()
        channels = block_out_channels[0]
        for i, out in enumerate(block_out_channels):
            last = i == len(block_out_channels) - 1
            self.down_blocks.append(DownEncoderBlock2D(channels, out, layers_per_block, norm_num_groups, act_fn,
                                                       add_downsample=not last))
            channels = out
        self.mid_block = _mid_block(channels, norm_num_groups, act_fn, mid_block_add_attention)
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, channels, eps=_EPS)
        self.conv_act = nn.SiLU()
        # A KL autoencoder predicts mean and log-variance, hence twice the latent channels.
        self.conv_out = nn.Conv2d(channels, 2 * out_channels if double_z else out_channels, kernel_size=3, padding=1)

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        hidden = self.conv_in(sample)
        for block in self.down_blocks:
            hidden = block(hidden)
        hidden = self.mid_block(hidden, None)
        return self.conv_out(self.conv_act(self.conv_norm_out(hidden)))


class Decoder(nn.Module):
    """Latent (B, in_channels, h, w) -> image (B, out_channels, h * 2**(n-1), w * 2**(n-1))."""

    def __init__(self, in_channels: int, out_channels: int, block_out_channels: tuple[int, ...], layers_per_block: int,
                 norm_num_groups: int, act_fn: str, mid_block_add_attention: bool = True):
        super().__init__()
        channels = block_out_channels[-1]
        self.conv_in = nn.Conv2d(in_channels, channels, kernel_size=3, padding=1)
        self.mid_block = _mid_block(channels, norm_num_groups, act_fn, mid_block_add_attention)
        self.up_blocks = nn.ModuleList()
        reversed_channels = list(reversed(block_out_channels))
        for i, out in enumerate(reversed_channels):
            last = i == len(reversed_channels) - 1
            # The decoder has one resnet more per block than the encoder, as in the original LDM code.
            self.up_blocks.append(UpDecoderBlock2D(channels, out, layers_per_block + 1, norm_num_groups, act_fn,
                                                   add_upsample=not last))
            channels = out
        self.conv_norm_out = nn.GroupNorm(norm_num_groups, channels, eps=_EPS)
        self.conv_act = nn.SiLU()
        self.conv_out = nn.Conv2d(channels, out_channels, kernel_size=3, padding=1)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        hidden = self.mid_block(self.conv_in(latent), None)
        for block in self.up_blocks:
            hidden = block(hidden)
        return self.conv_out(self.conv_act(self.conv_norm_out(hidden)))


class DiagonalGaussianDistribution:
    """The KL autoencoder's posterior: a Gaussian per latent element, from (B, 2*C, h, w) moments."""

    def __init__(self, parameters: torch.Tensor, deterministic: bool = False):
        self.parameters = parameters
        self.mean, logvar = parameters.chunk(2, dim=1)
        # The clamp of the original code keeps exp() finite for untrained or extreme inputs.
        self.logvar = logvar.clamp(-30.0, 20.0)
        self.deterministic = deterministic
        if deterministic:
            self.std = self.var = torch.zeros_like(self.mean)
        else:
            self.std = torch.exp(0.5 * self.logvar)
            self.var = torch.exp(self.logvar)

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """mean + std * noise; the noise is drawn on the generator's device, then moved (seeds agree across devices)."""
        noise_device = generator.device if generator is not None else self.mean.device
        noise = torch.randn(self.mean.shape, generator=generator, device=noise_device, dtype=self.mean.dtype)
        return self.mean + self.std * noise.to(self.mean.device)

    def mode(self) -> torch.Tensor:
        return self.mean

    def kl(self) -> torch.Tensor:
        """KL divergence to the standard normal, summed over (C, h, w): one value per batch element."""
        if self.deterministic:
            return torch.zeros(self.mean.shape[0], device=self.mean.device)
        return 0.5 * torch.sum(self.mean.pow(2) + self.var - 1.0 - self.logvar, dim=[1, 2, 3])


class VectorQuantizer(nn.Module):
    """Snap each latent vector to its nearest codebook entry (`embedding`, n_e x vq_embed_dim)."""

    def __init__(self, n_e: int, vq_embed_dim: int, beta: float = 0.25):
        super().__init__()
        self.n_e = n_e
        self.vq_embed_dim = vq_embed_dim
        self.beta = beta
        self.embedding = nn.Embedding(n_e, vq_embed_dim)

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(quantized latent (B, D, h, w), commitment loss, codebook indices (B, h, w)).

        The quantized latent passes gradients straight through to `latent`.
        """
        channels_last = latent.permute(0, 2, 3, 1).contiguous()
        flat = channels_last.reshape(-1, self.vq_embed_dim)
        codebook = self.embedding.weight
        # Distances in float32: cdist has no half-precision kernels on CPU, and near-ties must not flip.
        indices = torch.cdist(flat.float(), codebook.float()).argmin(dim=1)
        quantized = self.embedding(indices).view(channels_last.shape)
        loss = (F.mse_loss(quantized.detach(), channels_last)
                + self.beta * F.mse_loss(quantized, channels_last.detach()))
        quantized = channels_last + (quantized - channels_last).detach()
        batch, height, width, _ = channels_last.shape
        return quantized.permute(0, 3, 1, 2).contiguous(), loss, indices.view(batch, height, width)

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Codebook vectors for indices (B, h, w) as a latent (B, D, h, w)."""
        return self.embedding(indices).permute(0, 3, 1, 2).contiguous()
