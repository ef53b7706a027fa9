"""unCLIP's decoder conditioning (Ramesh et al. 2022, §2.1) and the image its super-resolution stage reads.

The decoder sees a CLIP image embedding twice: projected into its time embedding (with the text embedding),
where the UNet's `class_embed_type="identity"` adds it, and as extra context tokens in front of the projected
text states, which its added key/value attention reads under the text's keep-mask. Guidance's unconditional
branch replaces the image embedding by the text projection's learned one and the text by the empty prompt.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .denoisers import ModelDenoiser


@torch.no_grad()
def decoder_conditioning(text_proj: nn.Module, image_embeds: torch.Tensor | None, text_embeds: torch.Tensor,
                         hidden_states: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                                                     torch.Tensor]:
    """(context (B, extra + S, cross_attention_dim), its keep-mask (B, extra + S), time embedding (B, D)).

    image_embeds: (B, clip dim), or None for guidance's unconditional branch (the learned embedding); the text
    inputs are those of the branch (B rows each).
    """
    parameter = next(text_proj.parameters())
    rows = text_embeds.shape[0]
    if image_embeds is None:
        image_embeds = text_proj.unconditional_embeddings(rows)
    elif image_embeds.shape[0] != rows:
        image_embeds = image_embeds.repeat_interleave(rows // image_embeds.shape[0], dim=0)

    def place(tensor: torch.Tensor) -> torch.Tensor:
        return tensor.to(parameter.device, parameter.dtype)

    context, time_embedding = text_proj(image_embeddings=place(image_embeds), prompt_embeds=place(text_embeds),
                                        text_encoder_hidden_states=place(hidden_states),
                                        do_classifier_free_guidance=False)
    # The extra tokens are always attended to.
    context_mask = F.pad(mask.bool().to(context.device), (text_proj.clip_extra_context_tokens, 0), value=True)
    return context, context_mask, time_embedding


class DecoderDenoiser(ModelDenoiser):
    """unCLIP's decoder UNet with one branch's conditioning: the context and its mask, and the time embedding
    as class labels. Unlike text-to-image UNets, this one attends under the mask (as unCLIP's pipelines pass it)."""

    def __init__(self, model: nn.Module, context: torch.Tensor, context_mask: torch.Tensor,
                 time_embedding: torch.Tensor):
        super().__init__(model, context, class_labels=time_embedding)
        self.takes = {**self.takes, "context_mask": "encoder_attention_mask"}
        self.conditioning["context_mask"] = context_mask


def upscale(image: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The decoder's image at the super-resolution UNet's size: bicubic with antialiasing, as unCLIP upsamples."""
    return F.interpolate(image, size=list(size), mode="bicubic", align_corners=False, antialias=True)
