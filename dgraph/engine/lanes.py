"""Where the parallel executor's tasks run: a lane per CUDA device (one worker thread, its own stream) and
a small pool of CPU workers that share the CPU threads.

How a value crosses devices: the producing lane records a CUDA event on its stream when its node ends.
A consumer on another CUDA device makes its own stream wait for that event (the host does not wait) and
copies the value with `non_blocking=True` on its stream; a consumer on the same device but another
stream only waits for the event, and the tensors are marked as used by its stream so the caching
allocator does not hand their memory out early. A CPU consumer waits for the event on the host before
reading, since a device-to-host copy must be complete before Python sees the numbers.

CPU threads: torch's intra-op thread count is process-wide in torch's API, but with the OpenMP backend
(the one in torch's Linux and Windows builds) `torch.set_num_threads` sets the calling thread's OpenMP
count once that thread has started its own pool. So each CPU worker sets its share in its own thread;
other builds (a native thread pool) share one count, and the workers then take it as it is.
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Any, Iterator

import torch

from ..types import move_to_device


def threads_per_worker_supported() -> bool:
    """Whether torch's intra-op thread count can differ between threads (the OpenMP backend)."""
    return "ATen parallel backend: OpenMP" in torch.__config__.parallel_info()


def use_cpu_threads(count: int) -> None:
    """Run this thread's torch operations on `count` threads (see the module docstring)."""
    torch.get_num_threads()  # starts this thread's own OpenMP state, so the count set next stays its own
    if torch.get_num_threads() != count:
        torch.set_num_threads(count)


class Lane:
    """A device's place of work. `stream` is the lane's CUDA stream (None on the CPU)."""

    def __init__(self, device: torch.device):
        if device.type == "cuda" and device.index is None:  # "cuda": the current one, by its number
            device = torch.device("cuda", torch.cuda.current_device())
        self.device = device
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None

    @contextlib.contextmanager
    def active(self) -> Iterator[None]:
        """Make this lane's device and stream current for the calling (worker) thread."""
        if self.stream is None:
            yield
            return
        torch.cuda.set_device(self.device)
        with torch.cuda.stream(self.stream):
            yield

    def finished(self) -> "torch.cuda.Event | None":
        """An event marking the end of the work queued so far on this lane (None on the CPU)."""
        if self.stream is None:
            return None
        event = torch.cuda.Event()
        event.record(self.stream)
        return event

    def synchronize(self) -> None:
        if self.stream is not None:
            self.stream.synchronize()


def carry(value: Any, source: Lane | None, done: "torch.cuda.Event | None", target: Lane) -> Any:
    """`value`, produced on `source` (its end marked by `done`), made ready for a node on `target`."""
    if source is None or done is None or source is target:
        return move_to_device(value, target.device)  # one stream, or nothing on CUDA: plain order suffices
    if target.stream is None:
        done.synchronize()  # the host reads it next
        return move_to_device(value, target.device)
    target.stream.wait_event(done)
    moved = move_to_device(value, target.device, non_blocking=True)
    for tensor in _tensors(moved):
        if tensor.device == target.device and tensor.is_cuda:
            tensor.record_stream(target.stream)
    return moved


def _tensors(value: Any) -> Iterator[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        yield value
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):  # Latent, Image, Audio...
        for field in dataclasses.fields(value):
            yield from _tensors(getattr(value, field.name))
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _tensors(item)
