"""GLIDE's noised CLIP (Nichol et al. 2022, §3.2): an image encoder that also reads the diffusion timestep,
and the text encoder it was trained against, for CLIP guidance.

Config keys are the official encoders' constructor arguments (`glide_text2im.clip.encoders`), defaults the
release's (`clip/config.yaml`). Both are pre-LayerNorm transformers of n_head · n_head_state channels
(eps 1e-5, exact GELU); the text encoder is causal and reads the output at the end token (position
text_len - 1); the image encoder cuts 0..255 pixels, normalised by CLIP's channel statistics, into
patches, puts a timestep embedding where CLIP has its class token, and reads that token's output.
"""
from __future__ import annotations

import torch
from torch import nn

from ...configuration import register_to_config
from ..layers.attention import Attention
from ..layers.transformer import FeedForward
from ..modeling import ModelMixin
from ..unet_2d import _batch_timesteps

# CLIP's pixel statistics on the 0..255 scale (the official ImageEmbedding's constants).
CLIP_CHANNEL_MEANS = (122.77093945, 116.74601272, 104.09373519)
CLIP_CHANNEL_STDS = (68.50053285, 66.63215831, 70.32316309)


class CLIPBlock(nn.Module):
    """x += attn(norm1 x); x += ff(norm2 x). The key projection has no bias in the release; its converted
    bias is zero."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(width, eps=1e-5)
        self.attn = Attention(width, heads=heads, dim_head=width // heads, bias=True)
        self.norm2 = nn.LayerNorm(width, eps=1e-5)
        self.ff = FeedForward(width, activation_fn="gelu")

    def forward(self, hidden: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        hidden = hidden + self.attn(self.norm1(hidden), attention_mask=mask)
        return hidden + self.ff(self.norm2(hidden))


class GlideCLIPTextEncoder(ModelMixin):
    """forward(text, text_len) -> (B, n_embd): CLIP text features of padded token ids (B, max_text_len)."""

    @register_to_config
    def __init__(self, n_bpe_vocab: int = 65536, max_text_len: int = 77, n_embd: int = 512, n_head: int = 8,
                 n_xf_blocks: int = 12, n_head_state: int = 64):
        super().__init__()
        width = n_head * n_head_state
        self.token_embedding = nn.Embedding(n_bpe_vocab, width)
        self.position_embedding = nn.Parameter(torch.empty(max_text_len, width))
        self.layers = nn.ModuleList([CLIPBlock(width, n_head) for _ in range(n_xf_blocks)])
        self.final_norm = nn.LayerNorm(width, eps=1e-5)
        self.projection = nn.Linear(width, n_embd, bias=False)

    def forward(self, text: torch.Tensor, text_len: torch.Tensor) -> torch.Tensor:
        """text: (B, max_text_len) ids (start token, prompt, end token, zeros); text_len: (B,) the count up to
        and including the end token."""
        hidden = self.token_embedding(text.long()) + self.position_embedding[None]
        length = hidden.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=hidden.device).tril()
        for layer in self.layers:
            hidden = layer(hidden, causal)
        index = (text_len.to(hidden.device).long() - 1)[:, None, None].expand(-1, 1, hidden.shape[-1])
        return self.projection(self.final_norm(torch.gather(hidden, 1, index)[:, 0]))


class GlideCLIPImageEncoder(ModelMixin):
    """forward(image, timesteps) -> (B, n_embd): noised-CLIP features of (B, 3, image_size, image_size)
    pixels on the 0..255 scale at diffusion timesteps (B,). `logit_scale` is the release's temperature
    (config.yaml), which CLIP guidance multiplies the similarity by."""

    @register_to_config
    def __init__(self, image_size: int = 64, patch_size: int = 4, n_embd: int = 512, n_head: int = 12,
                 n_xf_blocks: int = 12, n_head_state: int = 64, n_timestep: int = 1000, logit_scale: float = 100.0):
        super().__init__()
        width = n_head * n_head_state
        self.patch_embedding = nn.Conv2d(3, width, patch_size, stride=patch_size, bias=False)
        self.position_embedding = nn.Parameter(torch.empty(1 + (image_size // patch_size) ** 2, width))
        if n_timestep:
            self.timestep_embedding = nn.Embedding(n_timestep, width)
            self.class_embedding = None
        else:  # plain CLIP: a learned first token
            self.timestep_embedding = None
            self.class_embedding = nn.Parameter(torch.empty(width))
        self.pre_norm = nn.LayerNorm(width, eps=1e-5)
        self.layers = nn.ModuleList([CLIPBlock(width, n_head) for _ in range(n_xf_blocks)])
        self.final_norm = nn.LayerNorm(width, eps=1e-5)
        self.projection = nn.Linear(width, n_embd, bias=False)

    def forward(self, image: torch.Tensor, timesteps: torch.Tensor | int | None = None) -> torch.Tensor:
        size = self.config.image_size
        if image.ndim != 4 or image.shape[1] != 3 or tuple(image.shape[-2:]) != (size, size):
            raise ValueError(f"the CLIP image encoder takes (B, 3, {size}, {size}) images, got {tuple(image.shape)}")
        means = torch.tensor(CLIP_CHANNEL_MEANS, dtype=image.dtype, device=image.device)[None, :, None, None]
        stds = torch.tensor(CLIP_CHANNEL_STDS, dtype=image.dtype, device=image.device)[None, :, None, None]
        patches = self.patch_embedding(((image - means) / stds).to(self.dtype))
        patches = patches.flatten(2).transpose(1, 2)
        if self.timestep_embedding is not None:
            if timesteps is None:
                raise ValueError("the noised CLIP image encoder reads the diffusion timestep: pass timesteps")
            first = self.timestep_embedding(_batch_timesteps(timesteps, image).long())[:, None]
        else:
            first = self.class_embedding[None, None].expand(image.shape[0], -1, -1)
        hidden = self.pre_norm(torch.cat([first, patches], dim=1) + self.position_embedding[None])
        for layer in self.layers:
            hidden = layer(hidden)
        return self.projection(self.final_norm(hidden[:, 0]))
