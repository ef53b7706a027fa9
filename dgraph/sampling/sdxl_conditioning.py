"""SDXL's micro-conditioning (Podell et al. 2023, §2.2): the size and crop a training image had, and the size
asked for, as ids the UNet embeds beside the pooled text (`addition_embed_type="text_time"`).

The base model reads six ids: original (height, width), crop (top, left), target (height, width). The refiner
reads five: original size, crop, and an aesthetic score in place of the target size. Which one a UNet reads
follows from its config: `projection_class_embeddings_input_dim` = ids × `addition_time_embed_dim` + the
pooled text's width.
"""
from __future__ import annotations

from typing import Mapping

import torch

from ..errors import ConfigError

SIZE_IDS, AESTHETIC_IDS = 6, 5


def time_id_count(config: Mapping, pooled_width: int) -> int:
    """How many ids a text_time UNet reads after a pooled text of `pooled_width`: 6 (sizes) or 5 (aesthetic)."""
    if config.get("addition_embed_type") != "text_time":
        raise ConfigError(f"this network has addition_embed_type={config.get('addition_embed_type')!r}; size and "
                          f"crop conditioning is for SDXL's UNets ('text_time')")
    width = config["projection_class_embeddings_input_dim"] - pooled_width
    per_id = config["addition_time_embed_dim"]
    if width % per_id or width // per_id not in (SIZE_IDS, AESTHETIC_IDS):
        raise ConfigError(f"the UNet's added embedding takes {config['projection_class_embeddings_input_dim']} "
                          f"features: with a pooled text of {pooled_width} that leaves {width}, which is neither "
                          f"6 nor 5 ids of {per_id}; is the text encoder the one made for this UNet?")
    return width // per_id


def time_ids(count: int, original_size: tuple[int, int], crop: tuple[int, int], target_size: tuple[int, int],
             aesthetic_score: float) -> torch.Tensor:
    """The (1, count) ids: original size, crop top-left, then the target size (6) or the aesthetic score (5)."""
    tail = tuple(target_size) if count == SIZE_IDS else (aesthetic_score,)
    return torch.tensor([[*map(float, original_size), *map(float, crop), *map(float, tail)]])


def text_time_conditions(config: Mapping, pooled: torch.Tensor, original_size: tuple[int, int],
                         crop: tuple[int, int], target_size: tuple[int, int],
                         aesthetic_score: float = 6.0) -> dict[str, torch.Tensor]:
    """The UNet's `added_cond_kwargs` for one branch: {"text_embeds": pooled, "time_ids": (1, count)}."""
    count = time_id_count(config, pooled.shape[-1])
    return {"text_embeds": pooled, "time_ids": time_ids(count, original_size, crop, target_size, aesthetic_score)}
