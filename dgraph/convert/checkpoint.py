"""Reading an official checkpoint: the one place where dgraph reads a pickle.

Pickles can run code when loaded, so they are read with `torch.load(weights_only=True)`, which accepts
tensors and plain containers only. A safetensors file is read as is.
"""
from __future__ import annotations

import os
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from ..errors import WeightsError


# DiffWave pickles its hyper-parameters as `diffwave.params.AttrDict`, a dict subclass. Reading that
# name as a plain OrderedDict (a type the weights-only reader already trusts) keeps its items and runs
# no code from the diffwave package, which need not be installed.
_READ_AS = [(OrderedDict, "diffwave.params.AttrDict")]


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint at `path` as a dict (a safetensors file, or a pickle read with weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file
        return dict(load_file(str(path)))
    try:
        with torch.serialization.safe_globals(_READ_AS):
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as error:
        first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise WeightsError(f"{path}: cannot read it as a weights-only checkpoint ({first_line}); it may hold "
                           f"objects other than tensors, or not be a torch checkpoint at all") from None
    if not isinstance(data, dict):
        raise WeightsError(f"{path}: expected a dict of tensors or of state dicts, got {type(data).__name__}")
    return data


def tensors_only(data: dict[str, Any]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
