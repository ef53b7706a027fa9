"""Helpers shared by the audio tests: deterministic weights and signals."""
from __future__ import annotations

import math

import torch


def fill_weights(module: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every parameter fixed values (seeded normal, scaled by 1/sqrt(fan-in)) so outputs can be pinned."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in module.named_parameters():
            fan_in = param[0].numel() if param.dim() > 1 else param.numel()
            param.copy_(torch.randn(param.shape, generator=generator) / math.sqrt(fan_in))
    return module.eval()


def chirp(seconds: float = 1.0, sample_rate: int = 22050) -> torch.Tensor:
    """A 200 Hz → 800 Hz chirp plus a 1.5 kHz tone: a known signal with energy moving across bins."""
    t = torch.arange(int(seconds * sample_rate), dtype=torch.float64) / sample_rate
    x = 0.5 * torch.sin(2 * math.pi * (200 * t + 300 * t**2)) + 0.2 * torch.sin(2 * math.pi * 1500 * t)
    return x.float()


