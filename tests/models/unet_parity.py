"""Helpers shared by the UNet parity tests: build a diffusers model with a fixed seed, perturb every
weight (so zero-initialised layers are exercised too), save it, and compare outputs."""
from __future__ import annotations

import torch


def build_reference(diffusers_class, config: dict, seed: int = 0):
    """A diffusers model from `config` whose every parameter is seeded random noise, in eval mode."""
    torch.manual_seed(seed)
    model = diffusers_class(**config)
    generator = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator) * 0.2
            # Norm scales near 1 keep activations in a useful range through deep stacks.
            if parameter.ndim == 1 and parameter.shape[0] > 0:
                noise = noise * 0.5
            parameter.add_(noise)
    return model.eval()


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().max().item()
