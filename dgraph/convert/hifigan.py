"""Official HiFi-GAN generator checkpoint (`generator_v1`, `g_02500000`, ...) → `HiFiGANGenerator`.

The release saves `{"generator": <state dict>}` with weight norm on every convolution (folded here).
Strides and dilations are not visible in the tensors: pass the release's `config.json` (as a dict), a
preset name ("v1", "v2", "v3"), or neither to pick the published preset whose shapes fit.
"""
from __future__ import annotations

from typing import Any, Mapping

import torch

from ..errors import WeightsError
from ..models.vocoders.hifigan import HIFIGAN_CONFIGS, HiFiGANGenerator
from .checkpoint import tensors_only
from .fastdiff import load_exactly
from .weight_norm import fold_weight_norm

_GENERATOR_KEYS = ("resblock", "upsample_rates", "upsample_kernel_sizes", "upsample_initial_channel",
                   "resblock_kernel_sizes", "resblock_dilation_sizes", "num_mels")


def convert_hifigan(checkpoint: dict[str, Any], config: Mapping[str, Any] | None = None,
                    preset: str | None = None) -> tuple[HiFiGANGenerator, list[str]]:
    """Build the generator from an official checkpoint; returns it and the checkpoint keys left unused."""
    sd = fold_weight_norm(tensors_only(checkpoint["generator"] if isinstance(checkpoint.get("generator"), dict)
                                       else checkpoint))
    if config is not None:
        kwargs = {k: config[k] for k in _GENERATOR_KEYS if k in config}
        with torch.device("meta"):  # the checkpoint's tensors are assigned in, no random init
            model = HiFiGANGenerator(**kwargs)
        return model, load_exactly(model, sd)
    candidates = [preset] if preset else list(HIFIGAN_CONFIGS)
    for name in candidates:
        with torch.device("meta"):  # shapes only, nothing allocated
            shapes = {k: v.shape for k, v in HiFiGANGenerator.from_preset(name).state_dict().items()}
        if shapes.keys() <= sd.keys() and all(sd[k].shape == s for k, s in shapes.items()):
            with torch.device("meta"):  # the checkpoint's tensors are assigned in, no random init
                model = HiFiGANGenerator.from_preset(name)
            return model, load_exactly(model, sd)
    raise WeightsError(f"the generator's tensors fit none of the HiFi-GAN presets {candidates}; pass the "
                       f"checkpoint's own config.json (config=...) so strides and dilations are known")
