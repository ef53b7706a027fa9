"""What the vocoders share: the mel profile they expect, and the published noise schedules."""
from __future__ import annotations

from typing import Any, Mapping

import torch

from ...audio.profile import MelProfile, get_profile


def resolve_profile(value: str | Mapping[str, Any] | MelProfile) -> MelProfile:
    """A vocoder config stores its mel profile by name, or in full as a dict for a custom front-end."""
    if isinstance(value, Mapping):
        return MelProfile.from_dict(value)
    return get_profile(value)


def leaky_relu(x: torch.Tensor, slope: float) -> torch.Tensor:
    return torch.nn.functional.leaky_relu(x, slope)
