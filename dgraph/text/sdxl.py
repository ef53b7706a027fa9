"""SDXL's text conditioning: two CLIP text encoders, their states joined, the pooled vector from the second.

Each encoder reads the prompt padded to its 77 tokens; the UNet cross-attends to the penultimate layer of
each (raw, without the final layer norm), joined along the width (768 + 1280 = 2048 for SDXL base), and its
time embedding takes the projected pooled vector of the second (CLIPTextModelWithProjection's
`text_embeds`). The refiner has only the second encoder. `clip_skip` goes that many layers further back.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from ..errors import ConfigError
from .encoders import encode_clip
from .tokenizers import tokenize


def encode_sdxl(encoders: Sequence[tuple[object, nn.Module]], texts: list[str] | Sequence[list[str]],
                clip_skip: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(hidden states (batch, 77, total width), pooled (batch, dim), attention mask (batch, 77)) of `texts`
    through each (tokenizer, CLIP text encoder) pair in turn; the pooled vector is the first a pair gives
    (the encoder with a projection). `texts` is one list for every encoder, or one list per encoder
    (diffusers' `prompt` and `prompt_2`)."""
    per_encoder = list(texts) if texts and isinstance(texts[0], (list, tuple)) else [texts] * len(encoders)
    if len(per_encoder) != len(encoders) or len({len(t) for t in per_encoder}) > 1:
        raise ConfigError(f"give one list of texts, or one per text encoder ({len(encoders)}) of the same length")
    states, pooled, mask = [], None, None
    for (tokenizer, text_encoder), encoder_texts in zip(encoders, per_encoder):
        tokens = tokenize(tokenizer, list(encoder_texts))
        hidden, projected = encode_clip(text_encoder, tokens, layers_back=clip_skip + 1, final_norm=False)
        states.append(hidden)
        if pooled is None:
            pooled = projected
        if mask is None:
            mask = tokens.attention_mask
    if pooled is None:
        raise ConfigError("SDXL's pooled text embedding comes from a CLIPTextModelWithProjection (its second "
                          "text encoder); none of the encoders given has a projection")
    lengths = {state.shape[1] for state in states}
    if len(lengths) > 1:
        raise ConfigError(f"the text encoders' states have different lengths {sorted(lengths)}; both tokenizers "
                          f"must pad to the same length (77 for SDXL)")
    return torch.cat(states, dim=-1), pooled, mask
