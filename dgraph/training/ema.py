"""Exponential moving average of a model's weights."""
from __future__ import annotations

import torch
from torch import nn


class EMA:
    """shadow ← d·shadow + (1 − d)·weights after each step, with d = min(decay, (1 + n) / (10 + n)).

    The warm-up of d (n = updates so far) keeps the average from being dominated by the random
    initial weights in short runs. Buffers (if any) are copied, not averaged.
    """

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.updates = 0
        self.shadow = {k: v.detach().clone().float() for k, v in model.state_dict().items()}

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        d = self.current_decay()
        params = dict(model.named_parameters())
        for key, value in model.state_dict().items():
            if key in params and value.is_floating_point():
                self.shadow[key].mul_(d).add_(value.detach().float(), alpha=1 - d)
            else:
                self.shadow[key].copy_(value)
        self.updates += 1

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into `model` (in its dtype)."""
        model.load_state_dict({k: v.to(model.state_dict()[k].dtype) for k, v in self.shadow.items()})

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self.shadow)

    def load_state_dict(self, state: dict[str, torch.Tensor], updates: int) -> None:
        for key, value in state.items():
            self.shadow[key].copy_(value)
        self.updates = updates
