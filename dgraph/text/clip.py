"""CLIP's two towers as unCLIP and reranking use them: projected text embeddings with the text states, projected
image embeddings from pixels prepared as the checkpoint's `preprocessor_config.json` says, and their similarity.

The models are transformers' (`CLIPTextModelWithProjection`, `CLIPVisionModelWithProjection`); the image
preprocessing is dgraph's own, step for step what transformers' CLIPImageProcessor (PIL backend) does: resize
the shortest side with PIL, center-crop, rescale by 1/255, normalise with the file's mean and std.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ..configuration import read_json
from ..errors import ConfigError
from ..hub import Source, fetch_file
from .encoders import as_dtype, encode_clip, load_transformers_model
from .files import resolve_source
from .imports import TRANSFORMERS_LOCK
from .tokenizers import TokenBatch

# transformers' CLIP defaults (OPENAI_CLIP_MEAN / OPENAI_CLIP_STD), for files that leave them out.
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _edge_or_size(value: Any, key: str, where: str) -> tuple[int | None, tuple[int, int] | None]:
    """(shortest edge, None) or (None, (height, width)) from a size entry in either of its file forms."""
    if isinstance(value, int):
        return value, None
    if isinstance(value, dict) and isinstance(value.get("shortest_edge"), int):
        return value["shortest_edge"], None
    if isinstance(value, dict) and isinstance(value.get("height"), int) and isinstance(value.get("width"), int):
        return None, (value["height"], value["width"])
    raise ConfigError(f"{where}: {key}={value!r} is not a size; use an int, {{'shortest_edge': N}} or "
                      f"{{'height': H, 'width': W}}")


@dataclass(frozen=True)
class ImagePreprocessing:
    """The pixel preparation of a CLIP image encoder, from its `preprocessor_config.json`."""

    shortest_edge: int | None = 224
    size: tuple[int, int] | None = None  # (height, width) when the file resizes to a fixed size
    crop: tuple[int, int] | None = (224, 224)
    resample: int = 3  # PIL's BICUBIC
    rescale_factor: float | None = 1 / 255
    mean: tuple[float, ...] | None = _CLIP_MEAN
    std: tuple[float, ...] | None = _CLIP_STD
    resize: bool = True

    @classmethod
    def from_config(cls, config: dict[str, Any], where: str = "preprocessor_config.json") -> "ImagePreprocessing":
        edge, size = _edge_or_size(config.get("size", 224), "size", where)
        crop = None
        if config.get("do_center_crop", True):
            crop_edge, crop = _edge_or_size(config.get("crop_size", 224), "crop_size", where)
            crop = crop or (crop_edge, crop_edge)
        normalize = config.get("do_normalize", True)
        return cls(shortest_edge=edge, size=size, crop=crop, resample=int(config.get("resample", 3)),
                   rescale_factor=float(config.get("rescale_factor", 1 / 255)) if config.get("do_rescale", True) else None,
                   mean=tuple(config.get("image_mean", _CLIP_MEAN)) if normalize else None,
                   std=tuple(config.get("image_std", _CLIP_STD)) if normalize else None,
                   resize=bool(config.get("do_resize", True)))

    def _resized(self, picture) -> Any:
        if not self.resize:
            return picture
        if self.size is not None:
            height, width = self.size
        else:
            short, long = sorted((picture.width, picture.height))
            new_long = int(self.shortest_edge * long / short)
            height, width = ((new_long, self.shortest_edge) if picture.width <= picture.height
                             else (self.shortest_edge, new_long))
        return picture.resize((width, height), resample=self.resample)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, H, W) images in [0, 1] -> the encoder's (B, 3, crop height, crop width) pixel values."""
        from PIL import Image as PILImage

        rows = []
        for array in (images.detach().float().clamp(0, 1).cpu() * 255).round().to(torch.uint8).permute(0, 2, 3, 1):
            picture = self._resized(PILImage.fromarray(array.numpy()))
            pixels = np.asarray(picture).transpose(2, 0, 1)
            if self.crop is not None:
                height, width = self.crop
                top, left = (pixels.shape[1] - height) // 2, (pixels.shape[2] - width) // 2
                if top < 0 or left < 0:
                    raise ConfigError(f"CLIP preprocessing: the image is {pixels.shape[1]}x{pixels.shape[2]} after "
                                      f"resizing, smaller than the {height}x{width} crop; check size and crop_size")
                pixels = pixels[:, top:top + height, left:left + width]
            values = pixels.astype(np.float64)
            if self.rescale_factor is not None:
                values = values * self.rescale_factor
            values = values.astype(np.float32)
            if self.mean is not None:
                mean = np.asarray(self.mean, dtype=np.float32)[:, None, None]
                std = np.asarray(self.std, dtype=np.float32)[:, None, None]
                values = (values - mean) / std
            rows.append(torch.from_numpy(np.ascontiguousarray(values)))
        return torch.stack(rows)


def read_image_preprocessing(pretrained: str | os.PathLike | Source, subfolder: str | None = None,
                             revision: str | None = None) -> ImagePreprocessing:
    """The preprocessing of a folder's `preprocessor_config.json` (a CLIPImageProcessor / feature extractor)."""
    source = resolve_source(pretrained, subfolder, revision)
    return ImagePreprocessing.from_config(read_json(fetch_file(source, "preprocessor_config.json")),
                                          where=f"{source}/preprocessor_config.json")


def load_image_encoder(pretrained: str | os.PathLike | Source, subfolder: str | None = None,
                       revision: str | None = None, torch_dtype: torch.dtype | str | None = None,
                       device: torch.device | str | None = None, variant: str | None = None,
                       allow_pickle: bool = False) -> nn.Module:
    """transformers' CLIPVisionModelWithProjection from a folder, Hub repo or package folder, in eval mode."""
    source = resolve_source(pretrained, subfolder, revision)
    config = read_json(fetch_file(source, "config.json"))
    if config.get("model_type") not in ("clip_vision_model", "clip"):
        raise ConfigError(f"{source}: config.json has model_type={config.get('model_type')!r}; a CLIP image encoder "
                          f"(CLIPVisionModelWithProjection, model_type 'clip_vision_model') is expected")
    with TRANSFORMERS_LOCK:
        from transformers import CLIPVisionModelWithProjection
    return load_transformers_model(source, CLIPVisionModelWithProjection, as_dtype(torch_dtype), device, variant,
                                   allow_pickle)


@torch.no_grad()
def embed_images(image_encoder: nn.Module, pixel_values: torch.Tensor) -> torch.Tensor:
    """The projected image embeddings (B, projection_dim) of prepared pixels (not normalised to unit length)."""
    parameter = next(image_encoder.parameters())
    return image_encoder(pixel_values=pixel_values.to(parameter.device, parameter.dtype)).image_embeds


@torch.no_grad()
def encode_with_projection(text_encoder: nn.Module, tokens: TokenBatch) -> tuple[torch.Tensor, torch.Tensor,
                                                                                   torch.Tensor]:
    """(projected text embeddings (B, D), last hidden states (B, S, W), keep-mask (B, S)) of a CLIP text encoder
    with projection. CLIP reads the whole padded prompt (no mask), as unCLIP's models were trained with it."""
    if not hasattr(text_encoder, "text_projection"):
        raise ConfigError(f"{type(text_encoder).__name__} has no projection head; a CLIPTextModelWithProjection "
                          f"is needed for projected text embeddings")
    hidden, embeds = encode_clip(text_encoder, tokens)  # the last layer, through the final layer norm
    return embeds, hidden, tokens.attention_mask.to(hidden.device).bool()


def similarity(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """Cosine similarity (n_images, n_texts) between image and text embeddings of one CLIP model."""
    images = nn.functional.normalize(image_embeds.float(), dim=-1)
    texts = nn.functional.normalize(text_embeds.float().to(images.device), dim=-1)
    return images @ texts.T
