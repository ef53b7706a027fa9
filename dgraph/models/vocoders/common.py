"""What the vocoders share: the mel profile they expect, and the published noise schedules."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from ...audio.profile import MelProfile, get_profile


def resolve_profile(value: str | Mapping[str, Any] | MelProfile) -> MelProfile:
    """The profile a vocoder config names (`config["mel_profile"]`): a name, or a full dict for a custom front-end.

    Reading it from config.json alone lets a workflow check a mel against the vocoder before loading weights.
    """
    if isinstance(value, Mapping):
        return MelProfile.from_dict(value)
    return get_profile(value)


def leaky_relu(x: torch.Tensor, slope: float) -> torch.Tensor:
    return torch.nn.functional.leaky_relu(x, slope)
