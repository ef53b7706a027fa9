"""A cache of node results keyed by content.

A node's key is a digest of its type, version, device, literal inputs, the keys of the nodes feeding it
and the values of the graph inputs it reads — plus the graph seed when the node draws random numbers.
So executing a loaded graph again with only the seed changed finds every model and text embedding in
the cache, and re-runs only the noise and what follows it.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import torch


def value_digest(value: Any) -> str:
    """A stable digest of a value given to a node (literal or graph input)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return f"{type(value).__name__}:{value!r}"  # cheap and exact for the common scalars
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu().contiguous()
        data = tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b""
        head = f"tensor:{tensor.dtype}:{tuple(tensor.shape)}:".encode()
        return hashlib.sha256(head + data).hexdigest()
    try:
        text = json.dumps(value, sort_keys=True, default=_fallback)
    except (TypeError, ValueError):
        text = f"object:{type(value).__qualname__}:{id(value)}"
    return hashlib.sha256(text.encode()).hexdigest()


def _fallback(value: Any) -> str:
    if isinstance(value, (set, frozenset)):
        return json.dumps(sorted(map(str, value)))
    # Objects given through the Python API are cached by identity: the same object, the same key.
    return f"object:{type(value).__qualname__}:{id(value)}"


def node_key(static: str, device: str, parts: list[str], seed: int | None) -> str:
    """`static` digests what never changes between runs (type, version, literals); `parts` the rest."""
    payload = "\x1f".join([static, device, str(seed), *sorted(parts)])
    return hashlib.sha256(payload.encode()).hexdigest()


def static_key(type_name: str, version: int, literals: list[tuple[str, str]]) -> str:
    return hashlib.sha256(json.dumps([type_name, version, sorted(literals)]).encode()).hexdigest()


class ResultCache:
    """Node outputs by key. After each run, entries that run did not use are dropped, so memory stays
    bounded by one run's results while a re-run with a new seed reuses everything upstream of the noise."""

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Any]] = {}
        self._used: set[str] = set()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> dict[str, Any] | None:
        entry = self._entries.get(key)
        if entry is not None:
            self._used.add(key)
            self.hits += 1
        else:
            self.misses += 1
        return entry

    def put(self, key: str, outputs: dict[str, Any]) -> None:
        self._entries[key] = outputs
        self._used.add(key)

    def begin_run(self) -> None:
        self._used = set()
        self.hits = self.misses = 0

    def end_run(self) -> None:
        for key in [k for k in self._entries if k not in self._used]:
            del self._entries[key]

    def clear(self) -> None:
        self._entries.clear()
        self._used.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries
