"""What a batcher reports, and to whom: the observer hooks, a batcher's key, and the fan-out.

Metrics, tests and the benchmark watch batches through ``BatchObserver``. A server asks an
``ObserverFactory`` for each batcher's observer by the batcher's ``BatcherKey``, a value (model,
version, operation), so nothing builds a name to parse it back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BatcherKey:
    """Which batcher: one operation (``embed``, ``fill_mask``) of one model version."""

    model: str
    version: int
    operation: str

    @property
    def label(self) -> str:
        """``name/version``, as logs and thread names write a model version."""
        return f"{self.model}/{self.version}"

    def __str__(self) -> str:
        return f"{self.label} {self.operation}"


class BatchObserver(Protocol):
    """Optional hooks for metrics. Called on the event loop; must be quick."""

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        """A batch was dispatched; ``queue_wait_s`` holds each item's time in the queue."""

    def on_dropped(self, reason: str, count: int) -> None:
        """``count`` queued items will never run.

        ``reason`` is ``"deadline"``, ``"cancelled"`` (the caller went away), ``"failed"`` (another
        batch of the same call failed) or ``"shutdown"`` (the batcher stopped before running them).
        """

    def on_executed(self, seconds: float) -> None:
        """A batch finished executing (successfully or not) after ``seconds``."""


@runtime_checkable
class CostObserver(Protocol):
    """An optional extra hook of a ``BatchObserver``, called when the batcher has a cost model."""

    def on_cost(
        self, batch_size: int, padded_length: int, predicted_s: float, executed_s: float
    ) -> None:
        """A batch finished: the cost table's prediction for its shape next to its real time."""


ObserverFactory = Callable[[BatcherKey], BatchObserver | None]
"""Given a batcher's key, the observer its batches are reported to (None: nobody)."""


class TeeObserver:
    """Forwards every event to each of several observers (none, one, or metrics and a recorder),
    skipping those without the hook (``on_cost`` is optional) and logging, never propagating, an
    observer's error, so that batching goes on whatever an observer does."""

    def __init__(self, observers: Sequence[BatchObserver]) -> None:
        self._observers = tuple(observers)

    def _forward(self, hook: str, *arguments: object) -> None:
        for observer in self._observers:
            method = getattr(observer, hook, None)
            if method is None:
                continue
            try:
                method(*arguments)
            except Exception:
                logger.exception("batch observer failed in %s", hook)

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        self._forward("on_batch", batch_size, padded_tokens, real_tokens, queue_wait_s)

    def on_dropped(self, reason: str, count: int) -> None:
        self._forward("on_dropped", reason, count)

    def on_executed(self, seconds: float) -> None:
        self._forward("on_executed", seconds)

    def on_cost(
        self, batch_size: int, padded_length: int, predicted_s: float, executed_s: float
    ) -> None:
        self._forward("on_cost", batch_size, padded_length, predicted_s, executed_s)


def combined(*factories: ObserverFactory | None) -> ObserverFactory | None:
    """One factory giving every batcher the observers of all ``factories`` together."""
    given = [factory for factory in factories if factory is not None]
    if len(given) <= 1:
        return given[0] if given else None

    def both(key: BatcherKey) -> BatchObserver | None:
        found = [observer for factory in given if (observer := factory(key)) is not None]
        return found[0] if len(found) == 1 else TeeObserver(found) if found else None

    return both
