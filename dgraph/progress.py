"""Progress display for the CLI: a rich progress bar on a terminal, plain lines otherwise (a line per node,
and a line every few seconds inside a long loop, so a log never sits silent)."""
from __future__ import annotations

import sys
import time

from .engine.events import Event


class ProgressPrinter:
    """Receives executor events (it is the `on_event` callback) and shows them."""

    def __init__(self, enabled: bool = True, stream=None, every: float = 5.0):
        self.enabled = enabled
        self.every = every  # seconds between plain step lines
        self._step_started = self._last_line = 0.0
        self.stream = stream or sys.stderr
        self.rich = enabled and self.stream.isatty()
        self._progress = None
        self._nodes_task = self._steps_task = None
        self._done = 0
        self._total = 0

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
            if self._progress is not None:
                self._progress.update(self._nodes_task, completed=self._done)
                if self._steps_task is not None:
                    self._progress.remove_task(self._steps_task)
                    self._steps_task = None
            else:
                how = "cached" if event.kind == "node-cached" else f"{event.seconds:.2f}s"
                print(f"[{self._done}/{self._total}] {event.node} ({event.device}) {how}", file=self.stream)
        elif event.kind == "node-start" and self._progress is not None:
            self._progress.update(self._nodes_task, description=f"{event.node}")
        elif event.kind == "step" and self._progress is not None:
            if self._steps_task is None:
                self._steps_task = self._progress.add_task(f"  {event.node} steps", total=event.total)
            self._progress.update(self._steps_task, completed=event.step)
        elif event.kind == "step":
            self._plain_step(event)

    def _plain_step(self, event: Event) -> None:
        now = time.monotonic()
        if event.step <= 1:
            self._step_started = self._last_line = now
            return
        if now - self._last_line < self.every and event.step < event.total:
            return
        self._last_line = now
        rate = (event.step - 1) / max(now - self._step_started, 1e-9)
        left = (event.total - event.step) / rate if rate > 0 else float("inf")
        print(f"    {event.node}: step {event.step}/{event.total}, {rate:.2f} steps/s, {left:.0f}s left",
              file=self.stream)


def _rate_column():
    """A column showing a task's steps per second."""
    from rich.progress import ProgressColumn
    from rich.text import Text

    class Rate(ProgressColumn):
        def render(self, task) -> Text:
            return Text(f"{task.speed:.2f}/s" if task.speed else "-/s")

    return Rate()
