"""One ``submit`` call's bookkeeping in the batcher: its entries in the queue, its results as
they arrive, where its time went, and a batch's outcome measured on the executor thread."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from service.batching.selection import QueuedItem

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass(frozen=True, slots=True)
class BatchTiming:
    """Where one ``submit`` call's time went.

    ``queue_s``: the longest time any of its items waited between being queued and its batch
    starting. ``execute_s``: the longest execution time among the batches that carried its items
    (the maximum, not the sum: batches may run concurrently, and time spent waiting for an earlier
    batch of the same call already shows in ``queue_s``).
    """

    queue_s: float
    execute_s: float


@dataclass(eq=False, slots=True)
class Call(Generic[ItemT, ResultT]):
    """One ``submit`` call: where its results go and how far along it is."""

    future: asyncio.Future[None]
    results: list[ResultT | None]
    enqueued_at: float
    deadline: float | None
    entries: list[Entry[ItemT, ResultT]] = field(default_factory=list)
    unscheduled: int = 0
    """Items not yet put in a batch."""
    unfinished: int = 0
    """Items without a result yet."""
    finished: bool = False
    """Resolved, failed or abandoned: nothing more will be delivered."""
    queue_s: float = 0.0
    execute_s: float = 0.0

    @property
    def timing(self) -> BatchTiming:
        return BatchTiming(self.queue_s, self.execute_s)

    def scheduled(self, waited_s: float) -> None:
        """One of its items was put in a batch after waiting ``waited_s``."""
        self.unscheduled -= 1
        self.queue_s = max(self.queue_s, waited_s)

    def deliver(self, index: int, result: ResultT, seconds: float) -> None:
        """Stores one item's result; resolves the call when it was the last one missing."""
        if self.finished:
            return
        self.results[index] = result
        self.execute_s = max(self.execute_s, seconds)
        self.unfinished -= 1
        if self.unfinished == 0:
            self.finished = True
            if not self.future.done():
                self.future.set_result(None)


@dataclass(eq=False, slots=True, kw_only=True)
class Entry(QueuedItem, Generic[ItemT, ResultT]):
    """One queued item and the slot its result goes to."""

    call: Call[ItemT, ResultT]
    index: int
    item: ItemT


@dataclass(frozen=True, slots=True)
class Outcome(Generic[ResultT]):
    """What one execution of a batch produced, measured on the executor thread."""

    results: Sequence[ResultT] | None
    error: Exception | None
    seconds: float


def execute_timed(
    execute: Callable[[Sequence[ItemT]], Sequence[ResultT]], items: Sequence[ItemT]
) -> Outcome[ResultT]:
    """Runs ``execute`` (on the executor thread), capturing its results or error and duration."""
    started = time.perf_counter()
    try:
        results = execute(items)
    except Exception as error:  # noqa: BLE001 - delivered to every caller of the batch
        return Outcome(None, error, time.perf_counter() - started)
    return Outcome(results, None, time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class Running(Generic[ItemT, ResultT]):
    """A batch being executed: its entries, and what the cost table predicted for it."""

    entries: list[Entry[ItemT, ResultT]]
    prediction: tuple[int, int, float] | None
    """(size, padded length, predicted seconds) with a cost model."""
