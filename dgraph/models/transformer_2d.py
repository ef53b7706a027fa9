"""diffusers' generic `Transformer2DModel` configs, as the DiT and PixArt-α repos on the Hub ship them.

diffusers now maps such a config onto the family class its norm_type names (dgraph.models.auto does the
same). The generic class has keys the family classes do not; at their neutral values they mean nothing and
are dropped quietly, and any other value is refused by name rather than silently ignored.
"""
from __future__ import annotations

from typing import Any, ClassVar, Mapping

from ..errors import ConfigError

LEGACY_CLASS = "Transformer2DModel"
# Keys of Transformer2DModel that neither DiT nor PixArt-α takes, with the value that switches them off.
NEUTRAL = {"num_vector_embeds": None, "only_cross_attention": False, "double_self_attention": False,
           "use_linear_projection": False}


def check_legacy_config(owner: str, config: Mapping[str, Any], extra_neutral: Mapping[str, Any]) -> bool:
    """Whether `config` is a Transformer2DModel config (after refusing keys `owner` cannot honour)."""
    if config.get("_class_name") != LEGACY_CLASS:
        return False
    for key, neutral in {**NEUTRAL, **extra_neutral}.items():
        if key in config and config[key] != neutral:
            raise ConfigError(f"{owner}: this {LEGACY_CLASS} config sets {key}={config[key]!r}, which {owner} does "
                              f"not implement (only {neutral!r})")
    return True


class ReadsTransformer2DConfig:
    """Mixin of the DiT and PixArt-α classes: `from_config` also reads a Transformer2DModel config, its extra
    keys at their neutral values (`NEUTRAL` and the class's own `_legacy_neutral`)."""

    _legacy_neutral: ClassVar[dict] = {}  # Transformer2DModel keys this class has no use for, and their neutral values

    @classmethod
    def from_config(cls, config=None, warn_unknown=None, **overrides):
        if check_legacy_config(cls.__name__, dict(config or {}, **overrides), cls._legacy_neutral):
            warn_unknown = False
        return super().from_config(config, warn_unknown, **overrides)
