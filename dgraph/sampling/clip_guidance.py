"""CLIP guidance (GLIDE, Nichol et al. 2022, §3.2): the gradient of the similarity between a noised-CLIP
embedding of x_t and the prompt's CLIP text embedding, which `GradientGuidance` hands to the sampler.

`NoisedCLIP` holds GLIDE's pair of encoders (the image encoder reads the timestep, as it was trained on
noised images) with the text encoder's tokenizer, loaded from two converted folders.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..errors import DgraphError


def unit(features: torch.Tensor) -> torch.Tensor:
    """Features divided by their L2 norm (GLIDE's CLIP adds 1e-12 to the norm)."""
    return features / (torch.linalg.norm(features, dim=-1, keepdim=True) + 1e-12)


class CLIPGradient:
    """∇_x of the temperature-scaled cosine similarity between a noised-CLIP image embedding of x_t (at t) and
    fixed text features: GLIDE's CLIP guidance, summed over the batch as the release sums it.

    image_encoder: `(pixels 0..255, timesteps) -> features` (GlideCLIPImageEncoder); text_features: (B or 1, D);
    temperature: the multiplier of the similarity (the release's exp(logit_scale) = 100).
    """

    def __init__(self, image_encoder: torch.nn.Module, text_features: torch.Tensor, temperature: float = 100.0):
        self.image_encoder, self.temperature = image_encoder, temperature
        self.text = unit(text_features.detach())

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        parameter = next(self.image_encoder.parameters())
        timesteps = torch.as_tensor(t, device=parameter.device).reshape(-1).long().expand(x.shape[0])
        with torch.enable_grad():
            sample = x.detach().to(parameter.device, parameter.dtype).requires_grad_(True)
            image = unit(self.image_encoder((sample + 1) * 127.5, timesteps))
            loss = self.temperature * (self.text.to(image) * image).sum()
            gradient, = torch.autograd.grad(loss, sample)
        return gradient.to(x.device, x.dtype)


@dataclass
class NoisedCLIP:
    """GLIDE's noised CLIP: image encoder, text encoder and the text encoder's tokenizer."""

    image_encoder: torch.nn.Module
    text_encoder: torch.nn.Module
    tokenizer: object

    @property
    def temperature(self) -> float:
        """What the similarity is multiplied by: exp(logit_scale) of the release, 100."""
        return float(self.image_encoder.config.logit_scale)

    @torch.no_grad()
    def text_features(self, prompts: list[str]) -> torch.Tensor:
        """The text encoder's features of `prompts`, (len(prompts), n_embd)."""
        from ..text import tokenize

        batch = tokenize(self.tokenizer, list(prompts), max_length=int(self.text_encoder.config.max_text_len))
        parameter = next(self.text_encoder.parameters())
        return self.text_encoder(batch.input_ids.to(parameter.device), batch.attention_mask.sum(dim=1))

    def gradient(self, prompts: list[str], image_size: int | None = None) -> CLIPGradient:
        """The guidance gradient towards `prompts` (a sample of `image_size` pixels is checked against the
        image encoder's size, which CLIP guidance cannot change)."""
        size = int(self.image_encoder.config.image_size)
        if image_size is not None and image_size != size:
            raise DgraphError(f"the noised CLIP image encoder reads {size}x{size} images, but the samples are "
                              f"{image_size} pixels: guide the {size}-pixel stage (GLIDE's base model) with it")
        return CLIPGradient(self.image_encoder, self.text_features(prompts), self.temperature)


def load_noised_clip(image_encoder: str | os.PathLike, text_encoder: str | os.PathLike, **kwargs) -> NoisedCLIP:
    """Both encoders from their converted folders (`dgraph convert glide clip_image_enc.pt` / `clip_text_enc.pt`);
    the tokenizer comes from the text encoder's folder. kwargs go to `load_model` (torch_dtype, device)."""
    from ..models.auto import load_model
    from ..text import load_tokenizer

    image = load_model(image_encoder, expect=("GlideCLIPImageEncoder",), **kwargs).eval().requires_grad_(False)
    text = load_model(text_encoder, expect=("GlideCLIPTextEncoder",), **kwargs).eval().requires_grad_(False)
    return NoisedCLIP(image, text, load_tokenizer(text_encoder))
