"""Folding weight normalisation into plain weights.

The official vocoder checkpoints were saved with `torch.nn.utils.weight_norm` on their convolutions,
which stores each weight as a magnitude `weight_g` and a direction `weight_v` (newer torch:
`parametrizations.weight.original0` / `original1`). For inference the two are one tensor,
`w = g · v / ‖v‖`, the norm taken over every dimension but the first.
"""
from __future__ import annotations

from typing import Mapping

import torch

_PAIRS = (("weight_g", "weight_v"), ("parametrizations.weight.original0", "parametrizations.weight.original1"))


def _stem(key: str, suffix: str) -> str | None:
    """`"a.b."` for `"a.b.<suffix>"`, `""` for `suffix` itself, None when the key has another ending."""
    if key == suffix:
        return ""
    return key[: -len(suffix)] if key.endswith("." + suffix) else None


def fold_weight_norm(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A copy of `state_dict` with every weight-norm pair replaced by the `<module>.weight` it stands for."""
    out: dict[str, torch.Tensor] = {}
    for key, tensor in state_dict.items():
        for g_suffix, v_suffix in _PAIRS:
            stem = _stem(key, g_suffix)
            if stem is not None:
                direction = state_dict[stem + v_suffix].float()
                norm = direction.reshape(direction.shape[0], -1).norm(dim=1)
                norm = norm.reshape(-1, *([1] * (direction.dim() - 1)))
                weight = tensor.float() * direction / norm
                out[stem + "weight"] = weight.to(state_dict[stem + v_suffix].dtype)
                break
            if _stem(key, v_suffix) is not None:
                break
        else:
            out[key] = tensor
    return out
