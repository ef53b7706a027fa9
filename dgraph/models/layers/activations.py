"""Activation functions by the names diffusers' configs use (`act_fn: "silu"`)."""
from __future__ import annotations

from torch import nn

from ...errors import ConfigError

_ACTIVATIONS = {"silu": nn.SiLU, "swish": nn.SiLU, "mish": nn.Mish, "gelu": nn.GELU, "relu": nn.ReLU}


def activation(name: str) -> nn.Module:
    """A fresh activation module for a config name ("silu", "swish", "mish", "gelu", "relu")."""
    try:
        return _ACTIVATIONS[name.lower()]()
    except (KeyError, AttributeError):
        raise ConfigError(f"unknown activation {name!r}; expected one of {', '.join(_ACTIVATIONS)}") from None
