"""Progress bars for training loops (rich): epochs, batches or iterations, throughput, ETA, latest metrics."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from tensorlite.training import parallel


class RateColumn(ProgressColumn):
    """Items per second of a task, in the task's ``unit`` field (samples/s, epochs/s, it/s)."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "it")
        return Text(f"{speed:,.1f} {unit}/s" if speed else f"- {unit}/s", style="cyan")


def format_metrics(record: dict) -> str:
    """``loss 0.1234 acc 97.50% val_loss ...`` from an epoch record (None, a non-finite value, shows as nan)."""
    parts = []
    for key, value in record.items():
        value = math.nan if value is None else value
        if key.endswith("loss"):
            parts.append(f"{key} {value:.4f}")
        elif key.endswith("accuracy"):
            parts.append(f"{key.replace('accuracy', 'acc')} {value:.2%}")
    return "  ".join(parts)


def metrics_progress(console: Console, enabled: bool) -> Progress:
    """Bars showing done/total, rate (in each task's ``unit``), elapsed, ETA and a ``metrics`` text."""
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(),
        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[metrics]}"),
        console=console, disable=not enabled, transient=False,
    )


class _Bars:
    """A ``metrics_progress`` on stderr, shown while the ``with`` block runs; ``note`` prints above it."""

    def __init__(self, enabled: bool, console: Console | None) -> None:
        main = parallel.is_main()  # of several ranks, only rank 0 shows progress and notes
        self.progress = metrics_progress(console or Console(stderr=True, quiet=not main), enabled and main)

    def __enter__(self) -> _Bars:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def note(self, text: str) -> None:
        self.progress.console.print(text)


class TrainingProgress(_Bars):
    """An epoch bar with the latest metrics, plus a batch bar (samples/s) while an epoch runs."""

    def __init__(self, epochs: int, start_epoch: int, samples_per_epoch: int, enabled: bool = True,
                 console: Console | None = None) -> None:
        super().__init__(enabled, console)
        self.samples_per_epoch = samples_per_epoch
        self.epoch_task = self.progress.add_task("epoch", total=epochs, completed=start_epoch, metrics="",
                                                unit="epochs")
        self.batch_task = None

    def batch_done(self, n: int) -> None:
        if self.batch_task is None:
            self.batch_task = self.progress.add_task("  batch", total=self.samples_per_epoch, metrics="",
                                                    unit="samples")
        self.progress.advance(self.batch_task, n)

    def epoch_done(self, record: dict) -> None:
        if self.batch_task is not None:
            self.progress.reset(self.batch_task)
        self.progress.update(self.epoch_task, advance=1, metrics=format_metrics(record))


class IterationProgress(_Bars):
    """One bar over training iterations: iteration, the latest estimated losses, iterations/s, elapsed time and
    ETA. A step's loss is not shown: reading it would make every step wait for the device."""

    def __init__(self, max_iters: int, start_iter: int, enabled: bool = True, console: Console | None = None) -> None:
        super().__init__(enabled, console)
        self.task = self.progress.add_task("iter", total=max_iters, completed=start_iter, metrics="", unit="it")

    def step(self) -> None:
        self.progress.advance(self.task)

    def evaluated(self, record: dict) -> None:
        """Show the losses of an evaluation on the bar, and print them above it."""
        self.progress.update(self.task, metrics=format_metrics(record))
        self.note(f"iter {record['iter']}: {format_metrics(record)}")
