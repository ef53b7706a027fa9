"""Warm-up schedule and EMA arithmetic, pinned by hand-computed numbers."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dgraph.training import EMA, warmup_factor
from dgraph.training.optim import make_optimizer, set_learning_rate


def test_warmup_values():
    assert [warmup_factor(s, 4) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


def test_learning_rate_follows_warmup_and_norms_are_not_decayed():
    model = nn.Sequential(nn.Linear(2, 3), nn.LayerNorm(3))
    optimizer = make_optimizer(model, 0.1, 0.01, (0.9, 0.999))
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.01, 0.0]
    assert [len(g["params"]) for g in optimizer.param_groups] == [1, 3]  # linear weight | bias, norm weight, bias
    assert [set_learning_rate(optimizer, 0.1, s, 10) for s in (0, 4, 9, 10)] == pytest.approx([0.01, 0.05, 0.1, 0.1])
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.1)


def test_ema_math():
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    ema = EMA(model, decay=0.9)
    decays = []
    for value in (3.0, 5.0):
        with torch.no_grad():
            model.weight.fill_(value)
        decays.append(ema.current_decay())
        ema.update(model)
    # d0 = min(0.9, 1/10) = 0.1: 0.1·1 + 0.9·3 = 2.8; d1 = min(0.9, 2/11): (2/11)·2.8 + (9/11)·5 = 4.6
    assert decays == pytest.approx([0.1, 2 / 11])
    assert ema.shadow["weight"].item() == pytest.approx(4.6)
    for _ in range(100):
        ema.update(model)
    assert ema.current_decay() == 0.9  # the warm-up reached the configured decay
    target = nn.Linear(1, 1, bias=False)
    ema.copy_to(target)
    assert target.weight.item() == pytest.approx(5.0, abs=1e-4)
