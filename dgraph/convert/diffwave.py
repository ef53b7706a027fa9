"""Official DiffWave checkpoint (`weights-*.pt`) → `DiffWaveModel` weights and config.

The learner saves `{"step", "model": <state dict>, "optimizer", "params": AttrDict, ...}`; the params
give `dilation_cycle_length`, the rest is read from the tensor shapes.
"""
from __future__ import annotations

import re
from typing import Any

import torch

from ..errors import WeightsError
from ..models.vocoders.diffwave import DiffWaveModel
from .checkpoint import tensors_only
from .fastdiff import load_exactly

# Older releases saved the fixed sinusoid table as a buffer; it is recomputed, never loaded.
_DROPPED = {"diffusion_embedding.embedding"}


def convert_diffwave(checkpoint: dict[str, Any], **overrides) -> tuple[DiffWaveModel, list[str]]:
    """Build the model from an official checkpoint; returns it and the checkpoint keys left unused."""
    sd = tensors_only(checkpoint["model"] if isinstance(checkpoint.get("model"), dict) else checkpoint)
    sd = {k: v for k, v in sd.items() if k not in _DROPPED}
    params = checkpoint.get("params") or {}
    try:
        layers = len({m.group(1) for k in sd if (m := re.match(r"residual_layers\.(\d+)\.", k))})
        config = dict(
            n_mels=sd["residual_layers.0.conditioner_projection.weight"].shape[1]
            if "residual_layers.0.conditioner_projection.weight" in sd else params.get("n_mels", 80),
            residual_layers=layers,
            residual_channels=sd["input_projection.weight"].shape[0],
            dilation_cycle_length=int(params.get("dilation_cycle_length", 10)),
            unconditional="spectrogram_upsampler.conv1.weight" not in sd,
        )
    except KeyError as error:
        raise WeightsError(f"not a DiffWave checkpoint: it has no tensor {error.args[0]!r}") from None
    with torch.device("meta"):  # the checkpoint's tensors are assigned in, no random init
        model = DiffWaveModel(**{**config, **overrides})
    return model, load_exactly(model, sd)
