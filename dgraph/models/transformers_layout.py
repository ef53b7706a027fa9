"""Models kept in transformers' folder layout (`config.json` with `model_type`, `model.safetensors`).

dgraph reads and writes these folders itself, so that loading a text encoder does not pay for importing
transformers; the files stay exactly what transformers writes and reads.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import torch
from torch.nn import functional as F

from ..configuration import write_text_atomic

# Activation names as transformers' configs spell them (`hidden_act`, `activation_function`).
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu, "relu": F.relu, "silu": F.silu, "swish": F.silu,
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
}
# Keys transformers writes into every config.json; they say nothing about the module.
_TRANSFORMERS_KEYS = {"architectures", "model_type", "transformers_version", "torch_dtype", "dtype",
                      "keys_to_ignore_at_inference", "attribute_map"}


class TransformersLayout:
    """Mixed into a ModelMixin subclass whose folder is in transformers' layout.

    `model_type` is the family's name in transformers' configs; `architecture` the class name written
    into `architectures`.
    """

    model_type: ClassVar[str]
    architecture: ClassVar[str]
    weights_name: ClassVar[str] = "model.safetensors"
    pickle_weights_name: ClassVar[str] = "pytorch_model.bin"

    @classmethod
    def split_config(cls, config: Mapping[str, Any], warn_unknown: bool = True, source: str = "config") -> dict:
        # A transformers config.json also carries the generic PretrainedConfig fields (bos_token_id,
        # output_hidden_states, ...); they do not describe this module, so they are dropped quietly.
        accepted = cls.init_parameters()
        known = {key: value for key, value in config.items() if key not in _TRANSFORMERS_KEYS and key in accepted}
        return super().split_config(known, warn_unknown, source)

    def save_config(self, save_directory: str | os.PathLike) -> Path:
        """Write config.json as transformers does, so transformers (and diffusers) read it back."""
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        data = {"architectures": [self.architecture], "model_type": self.model_type, **self.config}
        path = folder / self.config_name
        write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
        return path
