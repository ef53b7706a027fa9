"""A cache of node results keyed by content.

A node's key is a digest of its type, version, device, literal inputs, the keys of the nodes feeding it
and the values of the graph inputs it reads — plus the graph seed when the node draws random numbers.
So executing a loaded graph again with only the seed changed finds every model and text embedding in
the cache, and re-runs only the noise and what follows it.
"""
from __future__ import annotations

import hashlib
import json
import sys
import threading
from typing import Any, Callable


def value_digest(value: Any) -> str:
    """A stable digest of a value given to a node (literal or graph input)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return f"{type(value).__name__}:{value!r}"  # cheap and exact for the common scalars
    torch = sys.modules.get("torch")  # a tensor exists only once torch is imported; validation never imports it
    if torch is not None and isinstance(value, torch.Tensor):
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
    bounded by one run's results while a re-run with a new seed reuses everything upstream of the noise.

    Safe under concurrent use: runs going on at the same time each record what they use (`begin_run`
    gives a run its token), an entry is dropped only when no run still going uses it, and `claim` lets one
    caller compute a key while others asking for the same key wait for its result instead of computing it
    again.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, dict[str, Any]] = {}
        self._runs: dict[int, set[str]] = {}  # run token -> keys that run used
        self._pending: set[str] = set()  # keys being computed; `_changed` tells waiters when one ends
        self._changed = threading.Condition(self._lock)
        self._next_run = 0
        self.hits = 0
        self.misses = 0

    def _use(self, key: str, run: int | None) -> None:
        if run is None:  # a caller without a token: every run going on uses it
            for used in self._runs.values():
                used.add(key)
        elif run in self._runs:
            self._runs[run].add(key)

    def get(self, key: str, run: int | None = None) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._use(key, run)
                self.hits += 1
            else:
                self.misses += 1
            return entry

    def claim(self, key: str, run: int | None = None, waiting: Callable[[], None] | None = None
              ) -> dict[str, Any] | None:
        """The outputs under `key`, or None: then the caller owns computing them and must `put` them or
        `release` the key. While another caller computes the same key this waits for it, calling `waiting`
        now and then (it may raise, e.g. to stop on cancellation)."""
        with self._changed:
            while True:
                entry = self._entries.get(key)
                if entry is not None:
                    self._use(key, run)
                    self.hits += 1
                    return entry
                if key not in self._pending:
                    self._pending.add(key)
                    self._use(key, run)
                    self.misses += 1
                    return None
                if not self._changed.wait(0.05) and waiting is not None:
                    waiting()

    def put(self, key: str, outputs: dict[str, Any], run: int | None = None) -> None:
        with self._changed:
            self._entries[key] = outputs
            self._use(key, run)
            if key in self._pending:
                self._pending.discard(key)
                self._changed.notify_all()

    def release(self, key: str) -> None:
        """Give up a claimed key without a result (the node failed); a waiting caller then claims it."""
        with self._changed:
            if key in self._pending:
                self._pending.discard(key)
                self._changed.notify_all()

    def begin_run(self) -> int:
        """Start recording what a run uses; returns the run's token for `get`, `put` and `end_run`."""
        with self._lock:
            self._next_run += 1
            self._runs[self._next_run] = set()
            self.hits = self.misses = 0
            return self._next_run

    def end_run(self, run: int | None = None) -> None:
        """Drop what the run did not use, unless a run still going uses it (default: the latest run)."""
        with self._lock:
            if run is None:
                run = self._next_run
            used = self._runs.pop(run, set())
            keep = used.union(*self._runs.values(), self._pending)
            for key in [k for k in self._entries if k not in keep]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            for used in self._runs.values():
                used.clear()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries
