"""Pausing Python's cyclic garbage collector while the engine does its own bookkeeping.

Validating, planning and keying a large graph allocates many small containers that all stay alive; the
collector responds with full collections that scan the whole heap (after `import torch`, about a million
objects), so a 10,000-node graph paid several times more per node than a 1,000-node one. The engine's
structures hold no reference cycles worth collecting mid-way, so the collector is paused for that work
and restored as it was; node functions always run with the collector as the caller had it.
"""
from __future__ import annotations

import gc
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def collector_paused() -> Iterator[bool]:
    """Disable the cyclic collector inside the block; yields whether it was enabled before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield was_enabled
    finally:
        if was_enabled:
            gc.enable()


@contextmanager
def collector_as(enabled: bool) -> Iterator[None]:
    """Inside a paused block: run user code (a node) with the collector as the caller had it."""
    if not enabled:
        yield
        return
    gc.enable()
    try:
        yield
    finally:
        gc.disable()
