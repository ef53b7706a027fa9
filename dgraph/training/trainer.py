"""The training loop shared by both recipe kinds.

Reproducibility: the network is initialised from `seed`, and every random draw of optimiser step n
(batch, timesteps, noise, dropout) comes from a generator seeded with (seed, n). A run resumed from a
checkpoint therefore draws exactly what the uninterrupted run drew, and ends with the same weights.
"""
from __future__ import annotations

import contextlib
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..errors import ConfigError
from .checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from .ema import EMA
from .optim import make_optimizer, set_learning_rate
from .recipe import Optimization


def step_generator(seed: int, step: int) -> torch.Generator:
    """The CPU generator for optimiser step `step`: independent of everything that ran before it."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ConfigError(f"train.device: {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None


def autocast_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `mixed_precision`; "auto" takes bfloat16 on GPUs that support it, else full precision
    (on CPUs bfloat16 autocast is usually slower than float32)."""
    if setting == "no":
        return None
    if setting == "fp16":
        return torch.float16
    if setting == "bf16":
        return torch.bfloat16
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return None


@dataclass
class TrainResult:
    output: Path
    steps: int
    final_loss: float
    seconds: float
    losses: list[float] = field(default_factory=list)


class Interrupted(Exception):
    """A run stopped by a signal after checkpointing its last completed step."""


class _StopFlag:
    """SIGINT/SIGTERM set a flag: the loop finishes the step it is in, checkpoints, and stops."""

    def __init__(self) -> None:
        self.raised = False

    def __call__(self, signum, frame) -> None:
        if self.raised:  # a second signal: stop at once
            raise KeyboardInterrupt
        self.raised = True
        print("\nstopping: checkpointing the current step (again to abort now)", file=sys.stderr)


def run_loop(model: nn.Module, opt: Optimization, seed: int, checkpoints: Path, device: torch.device,
             loss_fn: Callable[[torch.Generator, int], tuple[torch.Tensor, dict[str, float]]],
             progress: bool = True, stop_after: int | None = None, label: str = "train"
             ) -> tuple[list[float], EMA | None, bool]:
    """Optimise `model` for `opt.steps` steps of `loss_fn(generator, step)`, resuming from `checkpoints`.

    `stop_after` ends the run after that many steps in total (as an interruption would), checkpointing first.
    Returns the loss of each step run in this call, the EMA (when enabled), and whether all steps are done.
    """
    optimizer = make_optimizer(model, opt.learning_rate, opt.weight_decay, opt.betas)
    ema = EMA(model, opt.ema_decay) if opt.ema_decay else None
    start = 0
    resume = latest_checkpoint(checkpoints)
    if resume is not None:
        start = load_checkpoint(resume, model, optimizer, ema)["step"]
        if start > opt.steps:
            raise ConfigError(f"{label}: the checkpoint {resume} is at step {start}, past this recipe's "
                              f"{opt.steps} steps; raise train.steps or give another checkpoint folder")
        print(f"{label}: resuming from {resume} (step {start} of {opt.steps})", file=sys.stderr)
    amp = autocast_dtype(opt.mixed_precision, device)
    scaler = torch.amp.GradScaler(device.type) if amp == torch.float16 else None
    end = opt.steps if stop_after is None else min(opt.steps, stop_after)
    flag = _StopFlag()
    previous = _install(flag)
    losses: list[float] = []
    bar = _Bar(label, opt.steps, start, enabled=progress, every=opt.log_every)
    step = start
    try:
        model.train()
        while step < end and not flag.raised:
            lr = set_learning_rate(optimizer, opt.learning_rate, step, opt.warmup_steps)
            generator = step_generator(seed, step)
            with torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext():
                loss, parts = loss_fn(generator, step)
            if not torch.isfinite(loss.detach()).all():  # saving on would write NaN weights and exit 0
                last = latest_checkpoint(checkpoints)
                kept = f"the checkpoint {last.name} is kept" if last is not None else "no checkpoint was written"
                raise ConfigError(f"{label}: the loss is {loss.item()} at step {step + 1}; lower train.learning_rate "
                                  f"or set train.grad_clip ({kept}; nothing is saved)")
            optimizer.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(optimizer)
            else:
                loss.backward()
            if opt.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), opt.grad_clip)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            if ema is not None:
                ema.update(model)
            step += 1
            losses.append(loss.item())
            bar.update(step, losses[-1], lr, parts)
            if step % opt.checkpoint_every == 0 and step < opt.steps:
                save_checkpoint(checkpoints, step, model, optimizer, ema, keep=opt.keep_checkpoints)
    finally:
        bar.close()
        _restore(previous)
    if step < opt.steps:
        save_checkpoint(checkpoints, step, model, optimizer, ema, keep=opt.keep_checkpoints)
        if flag.raised:
            raise Interrupted(f"{label}: stopped after step {step} of {opt.steps}; run the same command again to resume")
    return losses, ema, step == opt.steps


def _install(flag: _StopFlag) -> dict[int, Any]:
    previous: dict[int, Any] = {}
    try:
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, flag)
    except ValueError:  # not the main thread: no signal handling
        pass
    return previous


def _restore(previous: dict[int, Any]) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


class _Bar:
    """A rich progress bar on a terminal; otherwise a log line every `every` steps. Shows loss and steps/s."""

    def __init__(self, label: str, total: int, start: int, enabled: bool, every: int):
        self.label, self.total, self.start, self.enabled, self.every = label, total, start, enabled, every
        self.t0 = time.perf_counter()
        self.smoothed: float | None = None
        self.progress = self.task = None
        if enabled and sys.stderr.isatty():
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeRemainingColumn())
            self.progress.__enter__()
            self.task = self.progress.add_task(label, total=total, completed=start, info="")

    def update(self, step: int, loss: float, lr: float, parts: dict[str, float]) -> None:
        self.smoothed = loss if self.smoothed is None else 0.98 * self.smoothed + 0.02 * loss
        rate = (step - self.start) / max(time.perf_counter() - self.t0, 1e-9)
        extra = "".join(f" {k} {v:.4g}" for k, v in parts.items())
        info = f"loss {self.smoothed:.4f}{extra} lr {lr:.2e} {rate:.2f} steps/s"
        if self.progress is not None:
            self.progress.update(self.task, completed=step, info=info)
        elif self.enabled and (step % self.every == 0 or step == self.total):
            print(f"{self.label} step {step}/{self.total} {info}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.__exit__(None, None, None)
