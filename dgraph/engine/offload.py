"""Offloading: a model's weights stay in CPU memory and are copied to the device for each use.

`offload(module, device)` keeps the CPU copy of every parameter and buffer. Each submodule that owns
tensors gets a pair of hooks: just before its forward pass its own tensors (and the call's tensor
arguments) are copied to `device`; just after it the device copies are let go. Hooking every owner, not
only the top module, makes this work whatever method a node calls (`vae.decode`, a text encoder's
forward...), and the device holds one layer's weights at a time. It trades time (a copy of the weights
at every use, measured by benchmarks/executor_scaling.py) for memory.
"""
from __future__ import annotations

from typing import Any

import torch

from ..types import move_to_device


def offload(module: torch.nn.Module, device: torch.device | str) -> torch.nn.Module:
    """Make `module` (on the CPU) compute on `device` layer by layer, its weights kept on the CPU."""
    device = torch.device(device)
    if getattr(module, "_dgraph_offload", None) is not None:
        return module
    pinned = device.type == "cuda"  # pinned host memory lets the copies run without blocking the host
    for owner in module.modules():
        own = [(table, name, tensor) for table in (owner._parameters, owner._buffers)
               for name, tensor in table.items() if tensor is not None]
        if not own:
            continue
        if pinned:
            for table, name, tensor in own:
                tensor.data = tensor.data.pin_memory()

        def before(mod, args, kwargs, own=own):
            for table, name, tensor in own:  # a device copy stands in for the CPU tensor during the call
                copy = tensor.detach().to(device, non_blocking=pinned)
                table[name] = torch.nn.Parameter(copy, tensor.requires_grad) if isinstance(
                    tensor, torch.nn.Parameter) else copy
            return move_to_device(args, device), {k: move_to_device(v, device) for k, v in kwargs.items()}

        def after(mod, args, kwargs, output, own=own) -> Any:
            for table, name, tensor in own:
                table[name] = tensor
            return output

        owner.register_forward_pre_hook(before, with_kwargs=True)
        owner.register_forward_hook(after, with_kwargs=True)
    module._dgraph_offload = device
    return module
