"""Training progress: rich's live bar on a terminal, a plain line every interval otherwise, and a
report to whoever observes it (the defaults builder writes it into the model's marker).

A live bar redraws one line in place; with the output redirected (nohup, a container log, CI) it
shows nothing until the end, so there each trainer prints a line every ``--progress-interval-s``
seconds instead: step, its metrics (loss first), tokens per second and the time left at the
rate measured so far.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from export.console import console
from export.requests import DEFAULT_PROGRESS_INTERVAL_S

OBSERVE_EVERY_S = 1.0
"""Observers hear of progress at most this often (and of the last step always)."""


@dataclass(frozen=True)
class ProgressReport:
    """Where one training run stands: ``step`` of ``steps`` done after ``elapsed_s``."""

    title: str
    step: int
    steps: int
    elapsed_s: float
    tokens: int = 0
    """Tokens trained on so far (0: the trainer does not count them)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """The latest value of each metric, in the trainer's order."""

    @property
    def tokens_per_s(self) -> float | None:
        return self.tokens / self.elapsed_s if self.tokens and self.elapsed_s > 0 else None

    @property
    def remaining_s(self) -> float | None:
        """At the mean rate of the steps so far; None before the first."""
        if self.step <= 0:
            return None
        return self.elapsed_s / self.step * max(0, self.steps - self.step)

    def line(self) -> str:
        parts = [f"{self.title}: step {self.step} of {self.steps}"]
        parts += [f"{name} {value:.3f}" for name, value in self.metrics.items()]
        if (rate := self.tokens_per_s) is not None:
            parts.append(f"{rate:,.0f} tokens/s")
        parts.append(f"{_clock(self.elapsed_s)} elapsed")
        if self.step >= self.steps:
            parts.append("done")
        elif (left := self.remaining_s) is not None:
            parts.append(f"about {_clock(left)} left")
        return ", ".join(parts)


ProgressObserver = Callable[[ProgressReport], None]
_observers: ContextVar[tuple[ProgressObserver, ...]] = ContextVar("observers", default=())


@contextmanager
def observing(observer: ProgressObserver) -> Iterator[None]:
    """Every training run inside the block also reports to ``observer``: the trainers need not
    know who listens (the defaults builder, to keep its marker current)."""
    token = _observers.set((*_observers.get(), observer))
    try:
        yield
    finally:
        _observers.reset(token)


class TrainingProgress:
    """Advance one step at a time with that step's metrics (and tokens trained on): the bar,
    the lines and the observers each take what they show from it."""

    def __init__(
        self,
        title: str,
        steps: int,
        metrics: Sequence[str],
        bar: tuple[Progress, TaskID] | None = None,
        lines: Console | None = None,
        interval_s: float = DEFAULT_PROGRESS_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.title = title
        self.steps = steps
        self._metrics = list(metrics)
        self._bar = bar
        self._lines = lines
        self._interval_s = interval_s
        self._clock = clock
        self._observers = _observers.get()
        self._started = clock()
        self._last_line = self._last_observed = self._started
        self.step = 0
        self.tokens = 0
        self.last: dict[str, float] = {}

    def advance(self, tokens: int = 0, **metrics: float) -> None:
        self.step += 1
        self.tokens += tokens
        self.last.update(metrics)
        if self._bar is not None:
            progress, task = self._bar
            shown = "  ".join(f"{name} {value:.3f}" for name, value in self._shown().items())
            progress.update(task, advance=1, metrics=shown)
        now = self._clock()
        last = self.step >= self.steps
        if self._lines is not None and not last and now - self._last_line >= self._interval_s:
            self._last_line = now
            self._print(self.report(now).line())
        if self._observers and (last or now - self._last_observed >= OBSERVE_EVERY_S):
            self._last_observed = now
            report = self.report(now)
            for observer in self._observers:
                observer(report)

    def begin(self) -> None:
        if self._lines is not None:
            self._print(
                f"{self.title}: {self.steps} steps; a progress line every "
                f"{self._interval_s:g} s (the time left is measured from the rate so far)"
            )

    def end(self) -> None:
        if self._lines is not None:
            self._print(self.report(self._clock()).line())

    def report(self, now: float | None = None) -> ProgressReport:
        elapsed = (self._clock() if now is None else now) - self._started
        return ProgressReport(
            self.title, self.step, self.steps, elapsed, self.tokens, self._shown()
        )

    def _shown(self) -> dict[str, float]:
        return {name: self.last[name] for name in self._metrics if name in self.last}

    def _print(self, line: str) -> None:
        assert self._lines is not None
        self._lines.print(line, markup=False, highlight=False, soft_wrap=True)


@contextmanager
def training_progress(
    title: str,
    total: int,
    metrics: Sequence[str],
    enabled: bool = True,
    interval_s: float = DEFAULT_PROGRESS_INTERVAL_S,
    out: Console = console,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[TrainingProgress]:
    """Progress of ``total`` steps: a live bar (steps, metrics, elapsed and remaining time) when
    ``out`` is a terminal, else a line every ``interval_s``; neither unless ``enabled``.
    Observers (``observing``) hear of it either way."""
    if not enabled:
        yield TrainingProgress(title, total, metrics, clock=clock)
        return
    if not out.is_terminal:
        progress = TrainingProgress(
            title, total, metrics, lines=out, interval_s=interval_s, clock=clock
        )
        progress.begin()
        yield progress
        progress.end()
        return
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[metrics]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=out,
    ) as bar:
        task = bar.add_task(title, total=total, metrics="")
        yield TrainingProgress(title, total, metrics, bar=(bar, task), clock=clock)


def _clock(seconds: float) -> str:
    """``h:mm:ss`` or ``m:ss``."""
    whole = int(seconds + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"
