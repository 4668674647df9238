"""A ``rich`` progress bar for training loops that also shows the latest metrics."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class TrainingProgress:
    """Advance one step at a time and show named metrics (e.g. loss, perplexities)."""

    def __init__(
        self, progress: Progress | None, task: TaskID | None, metrics: Sequence[str]
    ) -> None:
        self._progress = progress
        self._task = task
        self._metrics = list(metrics)
        self.last: dict[str, float] = {}

    def advance(self, **metrics: float) -> None:
        self.last.update(metrics)
        if self._progress is not None and self._task is not None:
            shown = "  ".join(
                f"{name} {self.last[name]:.3f}" for name in self._metrics if name in self.last
            )
            self._progress.update(self._task, advance=1, metrics=shown)


@contextmanager
def training_progress(
    title: str, total: int, metrics: Sequence[str], enabled: bool = True
) -> Iterator[TrainingProgress]:
    """A progress bar with steps, elapsed and remaining time and the latest metric values."""
    if not enabled:
        yield TrainingProgress(None, None, metrics)
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ) as progress:
        task = progress.add_task(title, total=total, metrics="")
        yield TrainingProgress(progress, task, metrics)
