"""Training checkpoints: everything needed to continue a run as if it had never stopped.

A checkpoint is a folder `step-NNNNNNN/` with the model, EMA and optimiser tensors as safetensors and the
counters as JSON. It is written under a temporary name and renamed into place, then the `latest` file is
replaced atomically to point at it, so an interruption at any moment leaves the previous checkpoint whole.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..configuration import write_text_atomic
from ..errors import WeightsError


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    groups = [{k: v for k, v in group.items()} for group in state["param_groups"]]
    return tensors, {"scalars": scalars, "param_groups": groups}


def _load_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    groups = [{**g, "betas": tuple(g["betas"])} if "betas" in g else g for g in meta["param_groups"]]
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_checkpoint(folder: str | os.PathLike, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    ema=None, extra: dict[str, Any] | None = None, keep: int = 2) -> Path:
    """Write the state after `step` completed optimiser steps; keep the newest `keep` checkpoints."""
    root = Path(folder)
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{step:07d}"
    final, temporary = root / name, root / f"{name}.tmp"
    shutil.rmtree(temporary, ignore_errors=True)
    temporary.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, temporary / "model.safetensors")
    tensors, meta = _optimizer_tensors(optimizer)
    save_file(tensors, temporary / "optimizer.safetensors")
    if ema is not None:
        save_file({k: v.cpu().contiguous() for k, v in ema.state_dict().items()}, temporary / "ema.safetensors")
    info = {"step": step, "optimizer": meta, "ema_updates": ema.updates if ema is not None else None, **(extra or {})}
    (temporary / "state.json").write_text(json.dumps(info, indent=1), encoding="utf-8")
    shutil.rmtree(final, ignore_errors=True)
    os.replace(temporary, final)
    write_text_atomic(root / "latest", name + "\n")
    older = sorted(p for p in root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp") and p.name != name)
    for stale in older[: max(0, len(older) - (keep - 1))]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def latest_checkpoint(folder: str | os.PathLike) -> Path | None:
    """The checkpoint the `latest` file names, or None when there is none yet."""
    pointer = Path(folder) / "latest"
    if not pointer.exists():
        return None
    path = Path(folder) / pointer.read_text(encoding="utf-8").strip()
    if not (path / "state.json").exists():
        raise WeightsError(f"{pointer} names {path.name}, which is missing or incomplete; delete {folder} "
                           f"to start the run over")
    return path


def load_checkpoint(path: str | os.PathLike, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    ema=None) -> dict[str, Any]:
    """Restore model, optimiser and EMA from a checkpoint folder; returns its state.json (with `step`)."""
    path = Path(path)
    try:
        info = json.loads((path / "state.json").read_text(encoding="utf-8"))
        device = next(model.parameters()).device
        model.load_state_dict(load_file(path / "model.safetensors", device=str(device)))
        _load_optimizer(optimizer, load_file(path / "optimizer.safetensors", device=str(device)), info["optimizer"])
        if ema is not None:
            ema.load_state_dict(load_file(path / "ema.safetensors"), info["ema_updates"])
        if not isinstance(info.get("step"), int) or info["step"] < 0:
            raise ValueError(f"step {info.get('step')!r} is not a step count")
    except (OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError, SafetensorError) as error:
        # A damaged or foreign checkpoint is the user's file: say which, and how to go on.
        raise WeightsError(f"{path}: cannot resume from this checkpoint ({type(error).__name__}: "
                           f"{str(error)[:300]}); delete it to resume from an older one, or delete "
                           f"{path.parent} to start over") from None
    return info
