"""Official FastDiff checkpoint (`model_ckpt_steps_*.ckpt`) → `FastDiffModel` weights and config.

The trainer saves `{"state_dict": {"model": <FastDiff state dict>}, ...}` (older runs: flat
`"model.<key>"` entries); its convolutions carry weight norm, which is folded here. Every architecture
setting is read back from the tensor shapes.
"""
from __future__ import annotations

import re
from typing import Any

import torch

from ..errors import WeightsError
from ..models.vocoders.fastdiff import FastDiffModel
from .checkpoint import tensors_only
from .weight_norm import fold_weight_norm


def extract_state_dict(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The FastDiff network's tensors, wherever the checkpoint layout keeps them."""
    data = checkpoint.get("state_dict", checkpoint)
    if isinstance(data.get("model"), dict):
        return tensors_only(data["model"])
    if any(k.startswith("model.") for k in data):
        return {k[len("model."):]: v for k, v in data.items() if k.startswith("model.") and isinstance(v, torch.Tensor)}
    return tensors_only(data)


def infer_config(sd: dict[str, torch.Tensor]) -> dict[str, Any]:
    """FastDiffModel's constructor arguments, read from the (folded) tensor shapes."""
    try:
        blocks = sorted({int(m.group(1)) for k in sd if (m := re.match(r"lvc_blocks\.(\d+)\.", k))})
        layers = len({k for k in sd if re.match(r"lvc_blocks\.0\.convs\.\d+\.weight$", k)})
        return dict(
            audio_channels=sd["final_conv.0.weight"].shape[0],
            inner_channels=sd["first_audio_conv.weight"].shape[0],
            cond_channels=sd["lvc_blocks.0.fc_t.weight"].shape[0],
            upsample_ratios=[sd[f"lvc_blocks.{i}.upsample.weight"].shape[-1] // 2 for i in blocks],
            lvc_layers_each_block=layers,
            lvc_kernel_size=sd["lvc_blocks.0.convs.0.weight"].shape[-1],
            kpnet_hidden_channels=sd["lvc_blocks.0.kernel_predictor.input_conv.0.weight"].shape[0],
            kpnet_conv_size=sd["lvc_blocks.0.kernel_predictor.kernel_conv.weight"].shape[-1],
            diffusion_step_embed_dim_in=sd["fc_t1.weight"].shape[1],
            diffusion_step_embed_dim_mid=sd["fc_t1.weight"].shape[0],
            diffusion_step_embed_dim_out=sd["fc_t2.weight"].shape[0],
        )
    except KeyError as error:
        raise WeightsError(f"not a FastDiff checkpoint: it has no tensor {error.args[0]!r}") from None


def convert_fastdiff(checkpoint: dict[str, Any], **overrides) -> tuple[FastDiffModel, list[str]]:
    """Build the model from an official checkpoint; returns it and the checkpoint keys left unused."""
    sd = fold_weight_norm(extract_state_dict(checkpoint))
    with torch.device("meta"):  # the checkpoint's tensors are assigned in, no random init
        model = FastDiffModel(**{**infer_config(sd), **overrides})
    return model, load_exactly(model, sd)


def load_exactly(model: torch.nn.Module, sd: dict[str, torch.Tensor]) -> list[str]:
    """Load `sd` into `model`; a missing key or wrong shape is an error, unused keys are returned."""
    expected = model.state_dict()
    missing = sorted(expected.keys() - sd.keys())
    wrong = [f"{k}: {tuple(sd[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
             if k in sd and sd[k].shape != v.shape]
    if missing or wrong:
        raise WeightsError(f"checkpoint does not fit {type(model).__name__}: missing {missing[:10]}"
                           f"{' ...' if len(missing) > 10 else ''}; shape mismatches {wrong[:10]}")
    model.load_state_dict({k: sd[k].contiguous() for k in expected}, strict=True, assign=True)
    return sorted(sd.keys() - expected.keys())
