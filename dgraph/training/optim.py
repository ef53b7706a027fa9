"""AdamW with a linear learning-rate warm-up."""
from __future__ import annotations

import torch
from torch import nn


def warmup_factor(step: int, warmup_steps: int) -> float:
    """The share of the learning rate used at optimiser step `step` (0-based): (step + 1) / warmup_steps
    during warm-up, then 1."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return (step + 1) / warmup_steps


def make_optimizer(model: nn.Module, learning_rate: float, weight_decay: float,
                   betas: tuple[float, float]) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; norms and biases are not decayed (decay would shrink them for nothing)."""
    decay, no_decay = [], []
    for name, parameter in model.named_parameters():
        if parameter.requires_grad:
            (no_decay if parameter.ndim <= 1 else decay).append(parameter)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=learning_rate, betas=betas)


def set_learning_rate(optimizer: torch.optim.Optimizer, base: float, step: int, warmup_steps: int) -> float:
    lr = base * warmup_factor(step, warmup_steps)
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr
