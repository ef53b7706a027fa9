"""The vector-quantised autoencoder of the unconditional LDMs (diffusers' VQModel, e.g. CompVis/ldm-celebahq-256).

    image (B, 3, H, W) --encode--> latent (B, latent_channels, h, w), before quantisation
    latent             --decode--> quantise to the codebook, then decode to an image

A diffusion model samples in the unquantised space; decode snaps its output to the codebook first,
as the original pipeline does.
"""
from __future__ import annotations

import torch
from torch import nn

from ..configuration import register_to_config
from ..errors import ConfigError
from .modeling import ModelMixin
from .outputs import ModelOutput, model_output
from .layers.attention import rename_legacy_attention_keys
from .vae_blocks import Decoder, Encoder, VectorQuantizer, check_block_types


class VQModel(ModelMixin):
    """Encoder -> quant_conv; quantize (codebook of `num_vq_embeddings`) -> post_quant_conv -> decoder."""

    @register_to_config
    def __init__(self, in_channels: int = 3, out_channels: int = 3,
                 down_block_types: tuple[str, ...] = ("DownEncoderBlock2D",),
                 up_block_types: tuple[str, ...] = ("UpDecoderBlock2D",),
                 block_out_channels: tuple[int, ...] = (64,), layers_per_block: int = 1, act_fn: str = "silu",
                 latent_channels: int = 3, sample_size: int = 32, num_vq_embeddings: int = 256,
                 norm_num_groups: int = 32, vq_embed_dim: int | None = None, scaling_factor: float = 0.18215,
                 norm_type: str = "group", mid_block_add_attention: bool = True, lookup_from_codebook: bool = False,
                 force_upcast: bool = False):
        super().__init__()
        if norm_type != "group":
            # "spatial" is MoVQ's latent-conditioned norm (Kandinsky), a different decoder.
            raise ConfigError(f"VQModel: norm_type {norm_type!r} is not supported; only 'group' (the LDM VQ-VAEs)")
        check_block_types(down_block_types, up_block_types, block_out_channels, type(self).__name__)
        vq_embed_dim = vq_embed_dim or latent_channels
        self.encoder = Encoder(in_channels, latent_channels, tuple(block_out_channels), layers_per_block,
                               norm_num_groups, act_fn, double_z=False, mid_block_add_attention=mid_block_add_attention)
        self.quant_conv = nn.Conv2d(latent_channels, vq_embed_dim, 1)
        self.quantize = VectorQuantizer(num_vq_embeddings, vq_embed_dim, beta=0.25)
        self.post_quant_conv = nn.Conv2d(vq_embed_dim, latent_channels, 1)
        self.decoder = Decoder(latent_channels, out_channels, tuple(block_out_channels), layers_per_block,
                               norm_num_groups, act_fn, mid_block_add_attention=mid_block_add_attention)

    def encode(self, sample: torch.Tensor, return_dict: bool = True) -> ModelOutput | tuple:
        """Unquantised latents (B, vq_embed_dim, h, w) of images `sample`, as `.latents`."""
        return model_output(return_dict, latents=self.quant_conv(self.encoder(sample)))

    def decode(self, latent: torch.Tensor, force_not_quantize: bool = False,
               return_dict: bool = True) -> ModelOutput | tuple:
        """Images (`.sample`) from latents (B, vq_embed_dim, h, w), snapped to the codebook unless
        `force_not_quantize`; `.commit_loss` is the codebook commitment loss (zeros when not quantised).

        With `lookup_from_codebook` in the config and `force_not_quantize`, `latent` holds codebook
        indices (B, h, w) instead.
        """
        commit_loss = torch.zeros(latent.shape[0], device=latent.device, dtype=latent.dtype)
        if not force_not_quantize:
            latent, commit_loss, _ = self.quantize(latent)
        elif self.config.lookup_from_codebook:
            latent = self.quantize.lookup(latent)
        return model_output(return_dict, sample=self.decoder(self.post_quant_conv(latent)), commit_loss=commit_loss)

    def forward(self, sample: torch.Tensor, return_dict: bool = True) -> ModelOutput | tuple:
        """Reconstruct `sample` through the codebook (`.sample`, `.commit_loss`)."""
        return self.decode(self.encode(sample).latents, return_dict=return_dict)

    @classmethod
    def convert_legacy_state_dict(cls, state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return rename_legacy_attention_keys(state_dict)
