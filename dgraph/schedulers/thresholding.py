"""Imagen's dynamic thresholding of the predicted clean sample."""
from __future__ import annotations

import torch


def dynamic_threshold(x0: torch.Tensor, ratio: float, max_value: float) -> torch.Tensor:
    """Clamp each sample of `x0` to [-s, s] and divide by s (Saharia et al. 2022, §2.3).

    s is the `ratio` quantile of |x0| over each sample, kept within [1, max_value]; with s = 1 this is
    plain clipping to [-1, 1]. Quantiles are taken in float32 (half is not supported by quantile).
    """
    dtype = x0.dtype
    batch = x0.shape[0]
    flat = x0.reshape(batch, -1)
    if flat.dtype not in (torch.float32, torch.float64):
        flat = flat.float()
    s = torch.quantile(flat.abs(), ratio, dim=1).clamp(min=1, max=max_value).unsqueeze(1)
    return (torch.clamp(flat, -s, s) / s).reshape(x0.shape).to(dtype)
