"""Progress display for the CLI: rich progress bars on a terminal, plain lines otherwise (a line per node,
and a line every few seconds inside a long loop, so a log never sits silent).

Under the parallel executor several nodes run at once: each running node has its own bar (and its own
step timing in plain lines), named with its item when a graph runs over several items."""
from __future__ import annotations

import sys
import time
from typing import Any

from .engine.events import Event


class ProgressPrinter:
    """Receives executor events (it is the `on_event` callback) and shows them."""

    def __init__(self, enabled: bool = True, stream=None, every: float = 5.0):
        self.enabled = enabled
        self.every = every  # seconds between plain step lines
        self._step_started: dict[tuple, float] = {}  # per running node: when its loop started
        self._last_line: dict[tuple, float] = {}
        self.stream = stream or sys.stderr
        self.rich = enabled and self.stream.isatty()
        self._progress = None
        self._nodes_task = None
        self._steps_tasks: dict[tuple, Any] = {}  # running node -> its bar
        self._done = 0
        self._total = 0
        self._running: dict[tuple, str] = {}  # nodes started and not yet ended, in start order

    def __enter__(self) -> "ProgressPrinter":
        if self.rich:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                       TimeRemainingColumn)

            self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                      _rate_column(), TimeElapsedColumn(), TextColumn("eta"),
                                      TimeRemainingColumn(), console=Console(file=self.stream), transient=True)
            self._progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        if not self.enabled:
            return
        if event.kind == "plan":
            self._total = event.total
            if self._progress is not None:
                self._nodes_task = self._progress.add_task("nodes", total=event.total)
        elif event.kind in ("node-end", "node-cached"):
            self._done += 1
            key = _key(event)
            self._running.pop(key, None)
            if self._progress is not None:
                self._progress.update(self._nodes_task, completed=self._done, description=self._description())
                task = self._steps_tasks.pop(key, None)
                if task is not None:
                    self._progress.remove_task(task)
            else:
                how = "cached" if event.kind == "node-cached" else f"{event.seconds:.2f}s"
                print(f"[{self._done}/{self._total}] {_label(event)} ({event.device}) {how}", file=self.stream)
        elif event.kind == "node-start":
            self._running[_key(event)] = _label(event)
            if self._progress is not None:
                self._progress.update(self._nodes_task, description=self._description())
        elif event.kind == "step" and self._progress is not None:
            key = _key(event)
            if key not in self._steps_tasks:
                self._steps_tasks[key] = self._progress.add_task(f"  {_label(event)} steps", total=event.total)
            self._progress.update(self._steps_tasks[key], completed=event.step)
        elif event.kind == "step":
            self._plain_step(event)

    def _description(self) -> str:
        """The nodes running now, as the nodes bar's title."""
        return ", ".join(self._running.values()) or "nodes"

    def _plain_step(self, event: Event) -> None:
        now = time.monotonic()
        key = _key(event)
        if event.step <= 1:
            self._step_started[key] = self._last_line[key] = now
            return
        if now - self._last_line.get(key, 0.0) < self.every and event.step < event.total:
            return
        self._last_line[key] = now
        rate = (event.step - 1) / max(now - self._step_started.get(key, now), 1e-9)
        left = (event.total - event.step) / rate if rate > 0 else float("inf")
        print(f"    {_label(event)}: step {event.step}/{event.total}, {rate:.2f} steps/s, {left:.0f}s left",
              file=self.stream)


def _key(event: Event) -> tuple:
    return (event.run, event.item, event.node)


def _label(event: Event) -> str:
    return f"{event.node}[{event.item}]" if event.item >= 0 else event.node


def _rate_column():
    """A column showing a task's steps per second."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.2f}/s" if task.speed else "-/s")

    return Rate()
