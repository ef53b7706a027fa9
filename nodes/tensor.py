"""Tensor nodes: seeded noise and simple arithmetic on tensors."""
from __future__ import annotations

import math
from typing import Annotated, Literal

import torch
from pydantic import Field

from dgraph.node import Context, node

MAX_NOISE_ELEMENTS = 1 << 30  # 4 GiB of float32
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16, "float64": torch.float64}


@node("tensor.noise", random=True, description="Standard normal noise of a given shape, seeded from the graph seed.",
      output="tensor")
def noise(ctx: Context, shape: Annotated[list[Annotated[int, Field(ge=1)]], Field(min_length=1, max_length=6)],
          dtype: Literal["float32", "float16", "bfloat16", "float64"] = "float32") -> torch.Tensor:
    """Noise drawn on the CPU from the node's own generator, then moved to its device: the same seed gives
    the same numbers on every device.

    shape: the tensor's shape, e.g. [1, 4, 32, 32]
    """
    if math.prod(shape) > MAX_NOISE_ELEMENTS:  # refuse before allocating
        raise ValueError(f"shape {shape} holds {math.prod(shape):,} numbers, over the limit of {MAX_NOISE_ELEMENTS:,}")
    sample = torch.randn(shape, generator=ctx.generator(), dtype=torch.float32)
    return sample.to(device=ctx.device, dtype=DTYPES[dtype])


@node("tensor.scale", description="Multiply a tensor by a number.", output="tensor")
def scale(tensor: torch.Tensor, factor: float = 1.0) -> torch.Tensor:
    return tensor * factor


@node("tensor.add", description="Add two tensors (broadcasting).", output="tensor")
def add(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a + b


@node("tensor.sum", description="Sum of all elements, as a number.", output="value")
def total(tensor: torch.Tensor) -> float:
    return float(tensor.sum())
