"""Dynamic batching of per-item work for one model.

Callers on the event loop submit items (one tokenized text each) and await one result per item.
A single background task owns the queue: it forms batches (see ``selection``) and hands each one
to the synchronous ``execute`` function on an executor thread, so the event loop stays free while
the model runs. At most ``max_concurrent_batches`` batches run at once; whatever arrives meanwhile
queues up and forms the next batch, which is what makes the batching dynamic.

A batch is dispatched as soon as a slot is free and either a limit fills it (size or padded
tokens) or its oldest item has waited ``max_queue_delay_ms`` (or the batcher is stopping). While
every slot is busy the queue just grows; the next batch is formed the moment a slot frees, from
everything that arrived meanwhile (forming it earlier would only shut out later arrivals).
Everything runs on one event loop, so the queue needs no locks.

With a cost table (``BatchingConfig.cost_model``, see ``cost`` and ``shaping``) the shape of each
batch is chosen by its predicted cost instead: the batch is the prefix of the selection with the
best predicted gain over running its texts one at a time, and an idle batcher dispatches it at
once unless a fuller batch is both expected in time and predicted to pay. It waits at most
``max_queue_delay_ms``, and at most half of a queued item's time to its deadline less the batch's
predicted run, so the batch can still finish in time. The size and token limits stay.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Generic, Protocol, TypeVar, cast, runtime_checkable

from service.batching.cost import CostTable
from service.batching.selection import LengthBucketQueue, QueuedItem, Selection
from service.batching.shaping import CostShaper
from service.errors import DeadlineExceeded, InvalidArgument, Overloaded, Unavailable

logger = logging.getLogger(__name__)

_DEADLINE_SHARE = 0.5
"""With a cost model, the share of an item's time to its deadline it may wait for company."""

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass(frozen=True)
class BatchingConfig:
    """Limits of one model's batcher."""

    max_batch_size: int = 32
    """Sequences per batch."""
    max_batch_tokens: int = 8192
    """Padded tokens per batch: ``len(batch) * max(item length)`` stays within it."""
    max_queue_delay_ms: float = 5.0
    """How long the oldest queued item may wait for others to join its batch."""
    max_queue_size: int = 4096
    """Items waiting in the queue; beyond it ``submit`` raises ``Overloaded`` at once."""
    max_concurrent_batches: int = 1
    """Batches in flight at once (1: the next batch queues up while one runs)."""
    cost_model: CostTable | None = None
    """Measured seconds per batch shape; when given, batch shapes and waits are chosen from the
    predicted cost, within the limits above, instead of filling batches to ``max_batch_size``."""

    def __post_init__(self) -> None:
        for name in (
            "max_batch_size",
            "max_batch_tokens",
            "max_queue_size",
            "max_concurrent_batches",
        ):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"BatchingConfig.{name} must be at least 1, got {getattr(self, name)}"
                )
        if self.max_queue_delay_ms < 0:
            raise ValueError(
                f"BatchingConfig.max_queue_delay_ms must be >= 0, got {self.max_queue_delay_ms}"
            )


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


class BatchObserver(Protocol):
    """Optional hooks for metrics. Called on the event loop; must be quick and must not raise."""

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


class TeeObserver:
    """Forwards every event to several observers (metrics and a benchmark's recorder, say)."""

    def __init__(self, observers: Sequence[BatchObserver]) -> None:
        self._observers = tuple(observers)

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        """Forwards ``on_batch``."""
        for observer in self._observers:
            observer.on_batch(batch_size, padded_tokens, real_tokens, queue_wait_s)

    def on_dropped(self, reason: str, count: int) -> None:
        """Forwards ``on_dropped``."""
        for observer in self._observers:
            observer.on_dropped(reason, count)

    def on_executed(self, seconds: float) -> None:
        """Forwards ``on_executed``."""
        for observer in self._observers:
            observer.on_executed(seconds)

    def on_cost(
        self, batch_size: int, padded_length: int, predicted_s: float, executed_s: float
    ) -> None:
        """Forwards ``on_cost`` to the observers that have it."""
        for observer in self._observers:
            if isinstance(observer, CostObserver):
                observer.on_cost(batch_size, padded_length, predicted_s, executed_s)


class _NullObserver:
    """Observer that ignores everything."""

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        """Ignored."""

    def on_dropped(self, reason: str, count: int) -> None:
        """Ignored."""

    def on_executed(self, seconds: float) -> None:
        """Ignored."""

    def on_cost(
        self, batch_size: int, padded_length: int, predicted_s: float, executed_s: float
    ) -> None:
        """Ignored."""


class _GuardedObserver:
    """Forwards to an observer, logging (not propagating) its errors so batching goes on."""

    def __init__(self, inner: BatchObserver) -> None:
        self._inner = inner

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        """Forwards ``on_batch``."""
        try:
            self._inner.on_batch(batch_size, padded_tokens, real_tokens, queue_wait_s)
        except Exception:
            logger.exception("batch observer failed in on_batch")

    def on_dropped(self, reason: str, count: int) -> None:
        """Forwards ``on_dropped``."""
        try:
            self._inner.on_dropped(reason, count)
        except Exception:
            logger.exception("batch observer failed in on_dropped")

    def on_executed(self, seconds: float) -> None:
        """Forwards ``on_executed``."""
        try:
            self._inner.on_executed(seconds)
        except Exception:
            logger.exception("batch observer failed in on_executed")

    def on_cost(
        self, batch_size: int, padded_length: int, predicted_s: float, executed_s: float
    ) -> None:
        """Forwards ``on_cost`` when the observer has it."""
        if not isinstance(self._inner, CostObserver):
            return
        try:
            self._inner.on_cost(batch_size, padded_length, predicted_s, executed_s)
        except Exception:
            logger.exception("batch observer failed in on_cost")


@dataclass(eq=False, slots=True)
class _Call(Generic[ItemT, ResultT]):
    """One ``submit`` call: where its results go and how far along it is."""

    future: asyncio.Future[None]
    results: list[ResultT | None]
    enqueued_at: float
    deadline: float | None
    entries: list[_Entry[ItemT, ResultT]] = field(default_factory=list)
    unscheduled: int = 0
    """Items not yet put in a batch."""
    unfinished: int = 0
    """Items without a result yet."""
    finished: bool = False
    """Resolved, failed or abandoned: nothing more will be delivered."""
    queue_s: float = 0.0
    execute_s: float = 0.0


@dataclass(eq=False, slots=True)
class _Entry(QueuedItem, Generic[ItemT, ResultT]):
    """One queued item and the slot its result goes to."""

    call: _Call[ItemT, ResultT]
    index: int
    item: ItemT


@dataclass(frozen=True, slots=True)
class _Outcome(Generic[ResultT]):
    """What one execution of a batch produced, measured on the executor thread."""

    results: Sequence[ResultT] | None
    error: Exception | None
    seconds: float


def _execute_timed(
    execute: Callable[[Sequence[ItemT]], Sequence[ResultT]], items: Sequence[ItemT]
) -> _Outcome[ResultT]:
    """Runs ``execute`` (on the executor thread), capturing its results or error and duration."""
    started = time.perf_counter()
    try:
        results = execute(items)
    except Exception as error:  # noqa: BLE001 - delivered to every caller of the batch
        return _Outcome(None, error, time.perf_counter() - started)
    return _Outcome(results, None, time.perf_counter() - started)


class DynamicBatcher(Generic[ItemT, ResultT]):
    """Batches items from concurrent callers for one model; see the module docstring.

    ``execute`` maps a batch of items to one result per item, in order; it runs on ``executor``
    (default: an own pool of ``max_concurrent_batches`` threads named after ``name``, shut down by
    ``stop``). ``length_of`` gives an item's token length.
    """

    def __init__(
        self,
        name: str,
        execute: Callable[[Sequence[ItemT]], Sequence[ResultT]],
        length_of: Callable[[ItemT], int],
        config: BatchingConfig,
        executor: concurrent.futures.Executor | None = None,
        observer: BatchObserver | None = None,
    ) -> None:
        self._name = name
        self._execute = execute
        self._length_of = length_of
        self._config = config
        self._max_delay_s = config.max_queue_delay_ms / 1000.0
        self._owns_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=config.max_concurrent_batches, thread_name_prefix=f"batcher-{name}"
        )
        self._observer: _GuardedObserver | _NullObserver = (
            _GuardedObserver(observer) if observer else _NullObserver()
        )
        self._shaper = (
            CostShaper(config.cost_model, config.max_batch_size, config.max_batch_tokens)
            if config.cost_model is not None
            else None
        )
        self._predictions: dict[asyncio.Future[_Outcome[ResultT]], tuple[int, int, float]] = {}
        """Per running batch with a cost model: its size, padded length and predicted seconds."""
        self._queue: LengthBucketQueue[_Entry[ItemT, ResultT]] = LengthBucketQueue()
        self._running: dict[asyncio.Future[_Outcome[ResultT]], list[_Entry[ItemT, ResultT]]] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def name(self) -> str:
        """The model this batcher serves."""
        return self._name

    @property
    def queue_size(self) -> int:
        """Items waiting to be put in a batch."""
        return len(self._queue)

    @property
    def config(self) -> BatchingConfig:
        """The limits this batcher works within (with the cost table, if it has one)."""
        return self._config

    def use_cost_model(self, table: CostTable | None) -> None:
        """Choose batch shapes by ``table`` (``None``: fill to the limits, as without one).

        Only before ``start``: the table is measured at warm-up, once the engine is loaded.
        """
        if self._task is not None:
            raise RuntimeError(f"batcher {self._name!r} is running; set its cost model first")
        self._config = replace(self._config, cost_model=table)
        self._shaper = (
            CostShaper(table, self._config.max_batch_size, self._config.max_batch_tokens)
            if table is not None
            else None
        )

    async def start(self) -> None:
        """Starts the background task that forms and dispatches batches."""
        if self._task is not None:
            raise RuntimeError(f"batcher {self._name!r} was already started")
        self._task = asyncio.create_task(self._run(), name=f"batcher-{self._name}")

    async def submit(self, items: Sequence[ItemT], deadline: float | None = None) -> list[ResultT]:
        """Runs ``items`` through batches and returns their results in order.

        See ``submit_timed``, which this calls, for the errors it raises.
        """
        results, _ = await self.submit_timed(items, deadline)
        return results

    async def submit_timed(
        self, items: Sequence[ItemT], deadline: float | None = None
    ) -> tuple[list[ResultT], BatchTiming]:
        """Like ``submit``, and also says how long the call's items queued and executed.

        ``deadline`` is an absolute ``time.monotonic()`` value. The items are admitted all or none:
        ``Overloaded`` if the queue cannot take them all, ``InvalidArgument`` if it never could,
        ``Unavailable`` when not running. ``DeadlineExceeded`` if the deadline passes while some
        item has not been put in a batch yet (those are never executed). If ``execute`` fails for
        a batch carrying one of the items, that error is raised. If the awaiting task is
        cancelled, its items still queued are dropped.
        """
        if not items:
            return [], BatchTiming(0.0, 0.0)
        self._check_admission(len(items), deadline)
        call = self._enqueue(items, deadline)
        timer = self._arm_deadline(call)
        try:
            await call.future
        except asyncio.CancelledError:
            self._abandon(call, "cancelled", None)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        return cast(list[ResultT], call.results), BatchTiming(call.queue_s, call.execute_s)

    async def stop(self, grace: float | None = None) -> None:
        """Stops accepting work, finishes what is queued and running, then stops the task.

        Queued items are dispatched without waiting for ``max_queue_delay_ms``.
        With ``grace`` (seconds), whatever is still queued or running after it fails with
        ``Unavailable`` (a running ``execute`` call cannot be interrupted; its results are
        discarded). Shuts down the executor if the batcher created it.
        """
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            _, pending = await asyncio.wait({self._task}, timeout=grace)
            if pending:
                self._fail_everything(Unavailable(self._shutdown_message()))
                await self._task
        if self._owns_executor:
            self._executor.shutdown(wait=False, cancel_futures=True)

    # -- submit path ------------------------------------------------------------------------

    def _check_admission(self, count: int, deadline: float | None) -> None:
        """Raises unless ``count`` new items can be queued now."""
        if self._closing or self._task is None or self._task.done():
            raise Unavailable(self._shutdown_message())
        limit = self._config.max_queue_size
        if count > limit:
            raise InvalidArgument(
                f"The request has {count} items but the '{self._name}' batching queue holds at "
                f"most {limit}; split it into smaller requests."
            )
        if len(self._queue) + count > limit:
            raise Overloaded(
                f"The '{self._name}' batching queue is full ({len(self._queue)} of {limit} items "
                f"queued, {count} more requested); retry with exponential backoff."
            )
        if deadline is not None and deadline <= time.monotonic():
            self._observer.on_dropped("deadline", count)
            raise DeadlineExceeded(
                f"The deadline had already passed when the request reached the '{self._name}' "
                "batching queue; nothing was run."
            )

    def _enqueue(self, items: Sequence[ItemT], deadline: float | None) -> _Call[ItemT, ResultT]:
        """Queues ``items`` as one call and wakes the batcher if it could dispatch now."""
        now = time.monotonic()
        loop = asyncio.get_running_loop()
        call: _Call[ItemT, ResultT] = _Call(
            loop.create_future(), [None] * len(items), now, deadline
        )
        length_of = self._length_of
        entries = [
            _Entry(length_of(item), now, call, index, item) for index, item in enumerate(items)
        ]
        call.entries = entries
        call.unscheduled = call.unfinished = len(entries)
        for entry in entries:
            self._queue.push(entry)
        if self._shaper is not None:
            self._shaper.note_arrival(len(entries), now)
        if len(self._running) < self._config.max_concurrent_batches:
            self._wakeup.set()
        return call

    def _arm_deadline(self, call: _Call[ItemT, ResultT]) -> asyncio.TimerHandle | None:
        """Schedules the call's expiry at its deadline, if it has one."""
        if call.deadline is None:
            return None
        delay = call.deadline - time.monotonic()
        return asyncio.get_running_loop().call_later(delay, self._expire, call)

    def _expire(self, call: _Call[ItemT, ResultT]) -> None:
        """Fails the call with ``DeadlineExceeded`` if some of its items are still queued."""
        if not call.finished and call.unscheduled > 0:
            self._abandon(call, "deadline", self._deadline_error(call))

    def _abandon(self, call: _Call[ItemT, ResultT], reason: str, error: Exception | None) -> None:
        """Finishes ``call`` without results: drops its unscheduled items, fails its future."""
        if call.finished:
            return
        call.finished = True
        self._queue.drop(call.entries)
        if call.unscheduled:
            self._observer.on_dropped(reason, call.unscheduled)
            call.unscheduled = 0
        if error is not None and not call.future.done():
            call.future.set_exception(error)
        self._wakeup.set()

    # -- background task --------------------------------------------------------------------

    async def _run(self) -> None:
        """Dispatches batches until stopped and drained."""
        try:
            while True:
                self._wakeup.clear()
                wait_s = self._dispatch_due()
                if self._closing and not self._queue and not self._running:
                    return
                await self._sleep(wait_s)
        except Exception:
            logger.exception("batcher %r crashed; failing its pending requests", self._name)
            self._closing = True
            self._fail_everything(Unavailable(f"The '{self._name}' batcher failed; retry later."))

    async def _sleep(self, seconds: float | None) -> None:
        """Waits for a wake-up, or at most ``seconds`` when given."""
        if seconds is None:
            await self._wakeup.wait()
            return
        try:
            async with asyncio.timeout(seconds):
                await self._wakeup.wait()
        except TimeoutError:
            pass

    def _dispatch_due(self) -> float | None:
        """Dispatches batches while a slot is free and one is due.

        Returns the seconds until the oldest item's delay runs out, or None when only an event
        (an arrival, a finished batch, a stop) can make the next batch due.
        """
        if self._shaper is not None:
            return self._dispatch_shaped(self._shaper)
        config = self._config
        while len(self._running) < config.max_concurrent_batches:
            oldest = self._queue.oldest()
            if oldest is None:
                return None
            now = time.monotonic()
            wait_s = oldest.enqueued_at + self._max_delay_s - now
            if wait_s > 0 and not self._closing:
                selection = self._full_selection()
                if selection is None:
                    return wait_s
            else:
                selection = self._queue.select(config.max_batch_size, config.max_batch_tokens)
            self._queue.take(selection.entries)
            self._launch(selection.entries, now)
        return None

    def _dispatch_shaped(self, shaper: CostShaper) -> float | None:
        """Like ``_dispatch_due``, choosing batch shapes and waits from the cost model."""
        config = self._config
        while len(self._running) < config.max_concurrent_batches:
            oldest = self._queue.oldest()
            if oldest is None:
                return None
            now = time.monotonic()
            selection = self._queue.select(config.max_batch_size, config.max_batch_tokens)
            wait_s = 0.0 if self._closing else oldest.enqueued_at + self._max_delay_s - now
            wait_s = min(wait_s, self._company_wait_limit(selection.entries, now, shaper))
            plan = shaper.plan(selection, now, wait_s)
            if not plan.ready:
                return wait_s
            self._queue.take(plan.entries)
            self._launch(plan.entries, now)
        return None

    def _company_wait_limit(
        self, entries: Sequence[_Entry[ItemT, ResultT]], now: float, shaper: CostShaper
    ) -> float:
        """Seconds the items' deadlines still allow waiting for company (inf: no deadline).

        Each item may spend on it ``_DEADLINE_SHARE`` of the time it had until its deadline,
        less the predicted run of the slowest batch these items could form; the rest is left for
        the run and for a busy event loop that wakes late.
        """
        limit = math.inf
        slowest_s: float | None = None
        for entry in entries:
            deadline = entry.call.deadline
            if deadline is None:
                continue
            if slowest_s is None:
                longest = max(other.length for other in entries)
                slowest_s = shaper.table.predict(len(entries), longest)
            share = _DEADLINE_SHARE * (deadline - entry.enqueued_at - slowest_s)
            limit = min(limit, entry.enqueued_at + share - now)
        return limit

    def _full_selection(self) -> Selection[_Entry[ItemT, ResultT]] | None:
        """The next batch if the queue already fills one, else None."""
        config, queue = self._config, self._queue
        if (
            len(queue) < config.max_batch_size
            and len(queue) * queue.longest <= config.max_batch_tokens
        ):
            return None  # everything queued fits in one batch, so no limit can be reached yet
        selection = queue.select(config.max_batch_size, config.max_batch_tokens)
        return selection if selection.full else None

    def _launch(self, entries: list[_Entry[ItemT, ResultT]], now: float) -> None:
        """Drops expired items, then starts executing the rest as one batch."""
        entries = self._without_expired(entries, now)
        if not entries:
            return
        waits = [now - entry.enqueued_at for entry in entries]
        for entry, wait in zip(entries, waits, strict=True):
            call = entry.call
            call.unscheduled -= 1
            call.queue_s = max(call.queue_s, wait)
        lengths = [entry.length for entry in entries]
        self._observer.on_batch(len(entries), len(entries) * max(lengths), sum(lengths), waits)
        items = [entry.item for entry in entries]
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, _execute_timed, self._execute, items)
        except RuntimeError as error:  # the executor was shut down under us
            self._fail_calls(
                entries, "shutdown", Unavailable(f"{self._shutdown_message()} ({error})")
            )
            return
        self._running[future] = entries
        if self._shaper is not None:
            padded_length = max(lengths)
            predicted_s = self._shaper.table.predict(len(entries), padded_length)
            self._predictions[future] = (len(entries), padded_length, predicted_s)
        future.add_done_callback(self._on_batch_done)

    def _without_expired(
        self, entries: list[_Entry[ItemT, ResultT]], now: float
    ) -> list[_Entry[ItemT, ResultT]]:
        """Fails the calls whose deadline has passed; returns the entries of the other calls."""
        expired = False
        for entry in entries:
            call = entry.call
            if call.deadline is not None and call.deadline <= now and not call.finished:
                self._abandon(call, "deadline", self._deadline_error(call))
                expired = True
        return [entry for entry in entries if not entry.call.finished] if expired else entries

    def _on_batch_done(self, future: asyncio.Future[_Outcome[ResultT]]) -> None:
        """Delivers a finished batch's results (or error) to its callers."""
        entries = self._running.pop(future, [])  # none left when stop() already failed them
        prediction = self._predictions.pop(future, None)
        self._wakeup.set()
        if future.cancelled():
            self._fail_calls(entries, "shutdown", Unavailable(self._shutdown_message()))
            return
        outcome = future.result()
        self._observer.on_executed(outcome.seconds)
        if prediction is not None:
            self._observer.on_cost(*prediction, outcome.seconds)
        if not entries:
            return
        if outcome.results is None or len(outcome.results) != len(entries):
            self._fail_calls(
                entries, "failed", outcome.error or self._count_mismatch(outcome, entries)
            )
            return
        for entry, result in zip(entries, outcome.results, strict=True):
            self._deliver(entry, result, outcome.seconds)

    def _count_mismatch(
        self, outcome: _Outcome[ResultT], entries: Sequence[_Entry[ItemT, ResultT]]
    ) -> RuntimeError:
        """The error for an ``execute`` that returned the wrong number of results."""
        returned = "no" if outcome.results is None else len(outcome.results)
        return RuntimeError(
            f"The '{self._name}' model returned {returned} results "
            f"for a batch of {len(entries)} items."
        )

    def _deliver(self, entry: _Entry[ItemT, ResultT], result: ResultT, seconds: float) -> None:
        """Stores one item's result; resolves its call when it was the last one missing."""
        call = entry.call
        if call.finished:
            return
        call.results[entry.index] = result
        call.execute_s = max(call.execute_s, seconds)
        call.unfinished -= 1
        if call.unfinished == 0:
            call.finished = True
            if not call.future.done():
                call.future.set_result(None)

    def _fail_calls(
        self, entries: Sequence[_Entry[ItemT, ResultT]], reason: str, error: Exception
    ) -> None:
        """Fails every call with an item among ``entries``; their queued items are dropped."""
        for call in dict.fromkeys(entry.call for entry in entries):
            self._abandon(call, reason, error)

    def _fail_everything(self, error: Exception) -> None:
        """Fails every queued and running call (their running batches' results are discarded)."""
        running = [entry for entries in self._running.values() for entry in entries]
        self._running.clear()
        self._fail_calls(self._queue.drain() + running, "shutdown", error)

    def _deadline_error(self, call: _Call[ItemT, ResultT]) -> DeadlineExceeded:
        """The error for a call whose deadline passed while items of it were queued."""
        waited_ms = (time.monotonic() - call.enqueued_at) * 1000.0
        return DeadlineExceeded(
            f"Deadline exceeded after waiting {waited_ms:.1f} ms in the '{self._name}' batching "
            f"queue ({call.unscheduled} of {len(call.results)} items had not started); "
            "allow a longer deadline or retry when the service is less loaded."
        )

    def _shutdown_message(self) -> str:
        """Why a request cannot be served while the batcher is not running."""
        if self._task is None and not self._closing:
            return f"The '{self._name}' batcher has not been started; retry shortly."
        return f"The '{self._name}' model is shutting down; retry on another replica."
