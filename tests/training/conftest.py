"""Training tests run many tiny steps: one intra-op thread keeps them fast on a shared, busy CPU (thread
hand-offs cost more than these small kernels gain), and it is restored after each test."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
