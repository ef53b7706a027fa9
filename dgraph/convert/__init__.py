"""Converting officially released checkpoints (vocoders, GLIDE) into dgraph model folders.

`convert(family, checkpoint, output_dir)` reads the official file (a pickle is read only here, with
`torch.load(weights_only=True)`), builds the matching dgraph model, and writes `config.json` +
`diffusion_pytorch_model.safetensors`, which `<Model>.from_pretrained(output_dir)` loads. A family may
write more beside them (`FOLDER_EXTRAS`): GLIDE's folders also hold the tokenizer and the scheduler config.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch

from ..errors import DgraphError
from .checkpoint import read_checkpoint
from .diffwave import convert_diffwave
from .fastdiff import convert_fastdiff
from .glide import convert_glide, write_glide_extras
from .hifigan import convert_hifigan
from .weight_norm import fold_weight_norm

logger = logging.getLogger("dgraph")

CONVERTERS: dict[str, Callable[..., tuple[torch.nn.Module, list[str]]]] = {
    "fastdiff": convert_fastdiff,
    "diffwave": convert_diffwave,
    "hifigan": convert_hifigan,
    "glide": convert_glide,
}
# What a family writes into the folder beside the model: (model, folder, **the converter's options) -> None.
FOLDER_EXTRAS: dict[str, Callable[..., None]] = {"glide": write_glide_extras}


def convert(family: str, checkpoint: str | os.PathLike, output_dir: str | os.PathLike, **options: Any) -> Path:
    """Convert an official `family` checkpoint file into a model folder; returns the folder.

    options go to the family's converter (HiFi-GAN: `config=` the release's config.json as a dict, or
    `preset="v1"`; GLIDE: `preset="base"` ... or `options=` the create_model_and_diffusion options). Checkpoint entries the model does not use (optimizer state, discriminators) are
    logged and dropped.
    """
    try:
        converter = CONVERTERS[family]
    except KeyError:
        raise DgraphError(f"cannot convert {family!r} checkpoints; known families: {', '.join(CONVERTERS)}") from None
    model, unused = converter(read_checkpoint(checkpoint), **options)
    if unused:
        logger.warning("%s: %d checkpoint tensors not used by %s: %s", checkpoint, len(unused),
                       type(model).__name__, ", ".join(unused[:10]))
    model.save_pretrained(output_dir)
    if family in FOLDER_EXTRAS:
        FOLDER_EXTRAS[family](model, Path(output_dir), **options)
    return Path(output_dir)


__all__ = ["convert", "CONVERTERS", "read_checkpoint", "fold_weight_norm",
           "convert_fastdiff", "convert_diffwave", "convert_hifigan",
           "convert_glide"]
