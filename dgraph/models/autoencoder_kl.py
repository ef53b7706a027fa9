"""The KL-regularised autoencoder of latent diffusion and Stable Diffusion (diffusers' AutoencoderKL).

    image (B, 3, H, W) in [-1, 1] --encode--> DiagonalGaussianDistribution over (B, 4, H/8, W/8)
    latent (B, 4, H/8, W/8)       --decode--> image

A diffusion model works on `latent * scaling_factor` (the config's `scaling_factor`, 0.18215 for
Stable Diffusion 1.x), so that its latents have roughly unit variance; decode undoes it first.
"""
from __future__ import annotations

import torch
from torch import nn

from ..configuration import register_to_config
from .modeling import ModelMixin
from .outputs import ModelOutput, model_output
from .layers.attention import rename_legacy_attention_keys
from .vae_blocks import Decoder, DiagonalGaussianDistribution, Encoder, check_block_types


class AutoencoderKL(ModelMixin):
    """Encoder -> quant_conv -> Gaussian posterior; latent -> post_quant_conv -> decoder.

    Config keys and state-dict keys are diffusers'; `shift_factor`, `latents_mean`, `latents_std` and
    `force_upcast` are kept in the config for the code that scales latents, and are not used here.
    """

    @register_to_config
    def __init__(self, in_channels: int = 3, out_channels: int = 3,
                 down_block_types: tuple[str, ...] = ("DownEncoderBlock2D",),
                 up_block_types: tuple[str, ...] = ("UpDecoderBlock2D",),
                 block_out_channels: tuple[int, ...] = (64,), layers_per_block: int = 1, act_fn: str = "silu",
                 latent_channels: int = 4, norm_num_groups: int = 32, sample_size: int = 32,
                 scaling_factor: float = 0.18215, shift_factor: float | None = None,
                 latents_mean: tuple[float, ...] | None = None, latents_std: tuple[float, ...] | None = None,
                 force_upcast: bool = True, use_quant_conv: bool = True, use_post_quant_conv: bool = True,
                 mid_block_add_attention: bool = True):
        super().__init__()
        check_block_types(down_block_types, up_block_types, block_out_channels, type(self).__name__)
        self.encoder = Encoder(in_channels, latent_channels, tuple(block_out_channels), layers_per_block,
                               norm_num_groups, act_fn, double_z=True, mid_block_add_attention=mid_block_add_attention)
        self.decoder = Decoder(latent_channels, out_channels, tuple(block_out_channels), layers_per_block,
                               norm_num_groups, act_fn, mid_block_add_attention=mid_block_add_attention)
        self.quant_conv = nn.Conv2d(2 * latent_channels, 2 * latent_channels, 1) if use_quant_conv else None
        self.post_quant_conv = nn.Conv2d(latent_channels, latent_channels, 1) if use_post_quant_conv else None

    def encode(self, sample: torch.Tensor, return_dict: bool = True) -> ModelOutput | tuple:
        """The posterior over latents of images `sample` (B, in_channels, H, W) as `.latent_dist`;
        take its `.mode()` or `.sample(g)`."""
        moments = self.encoder(sample)
        if self.quant_conv is not None:
            moments = self.quant_conv(moments)
        return model_output(return_dict, latent_dist=DiagonalGaussianDistribution(moments))

    def decode(self, latent: torch.Tensor, return_dict: bool = True) -> ModelOutput | tuple:
        """Images (B, out_channels, H, W) as `.sample`, from unscaled latents (divide a diffusion model's
        latents by scaling_factor)."""
        if self.post_quant_conv is not None:
            latent = self.post_quant_conv(latent)
        return model_output(return_dict, sample=self.decoder(latent))

    def forward(self, sample: torch.Tensor, sample_posterior: bool = False,
                generator: torch.Generator | None = None, return_dict: bool = True) -> ModelOutput | tuple:
        """Reconstruct `sample` (as `.sample`): decode the posterior's mode, or a draw from it with `sample_posterior`."""
        posterior = self.encode(sample).latent_dist
        latent = posterior.sample(generator) if sample_posterior else posterior.mode()
        return self.decode(latent, return_dict=return_dict)

    @classmethod
    def convert_legacy_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return rename_legacy_attention_keys(state_dict)
