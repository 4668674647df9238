"""Dynamic batching of per-item work for one model: the queue, submission, deadlines, delivery.

Callers on the event loop submit items (one tokenized text each) and await one result per item.
A single background task owns the queue: whenever one of ``max_concurrent_batches`` slots is
free it asks its policy (``policy``: fill to the limits, or shapes chosen by a cost table) for the
next batch, and hands it to the synchronous ``execute`` function on an executor thread, so the
event loop stays free while the model runs. While every slot is busy the queue just grows; the
next batch is formed the moment a slot frees, from everything that arrived meanwhile, which is
what makes the batching dynamic. Everything runs on one event loop, so the queue needs no locks.

A call's items are admitted all or none, dropped when the call's deadline passes while they
queue or when the caller goes away, and a batch that fails fails only the calls it carried.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import time
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar, cast

from service.batching.calls import BatchTiming, Call, Entry, Outcome, Running, execute_timed
from service.batching.costs import CostTable
from service.batching.observers import BatchObserver, TeeObserver
from service.batching.policy import CostPolicy, policy_for
from service.batching.selection import LengthBucketQueue
from service.config import BatchingConfig
from service.errors import DeadlineExceeded, Unavailable, refuse_beyond

logger = logging.getLogger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


class DynamicBatcher(Generic[ItemT, ResultT]):
    """Batches items from concurrent callers for one model; see the module docstring.

    ``execute`` maps a batch of items to one result per item, in order; it runs on ``executor``
    (default: an own pool of ``max_concurrent_batches`` threads named after ``name``, shut down by
    ``stop``). ``length_of`` gives an item's token length. With a ``cost_table`` batch shapes are
    chosen by their predicted cost (``CostPolicy``), else batches fill to the limits.
    """

    def __init__(
        self,
        name: str,
        execute: Callable[[Sequence[ItemT]], Sequence[ResultT]],
        length_of: Callable[[ItemT], int],
        config: BatchingConfig,
        *,
        cost_table: CostTable | None = None,
        executor: concurrent.futures.Executor | None = None,
        observer: BatchObserver | None = None,
    ) -> None:
        self._name = name
        self._execute = execute
        self._length_of = length_of
        self._config = config
        self._policy = policy_for(config, cost_table)
        self._owns_executor = executor is None
        self._executor = executor or concurrent.futures.ThreadPoolExecutor(
            max_workers=config.max_concurrent_batches, thread_name_prefix=f"batcher-{name}"
        )
        self._observer = TeeObserver([observer] if observer is not None else [])
        self._queue: LengthBucketQueue[Entry[ItemT, ResultT]] = LengthBucketQueue()
        self._running: dict[asyncio.Future[Outcome[ResultT]], Running[ItemT, ResultT]] = {}
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def name(self) -> str:
        """The model operation this batcher serves, for messages and logs."""
        return self._name

    @property
    def queue_size(self) -> int:
        """Items waiting to be put in a batch."""
        return len(self._queue)

    @property
    def config(self) -> BatchingConfig:
        """The limits this batcher works within."""
        return self._config

    @property
    def cost_table(self) -> CostTable | None:
        """The table batch shapes are chosen by; None when batches fill to the limits."""
        return self._policy.table if isinstance(self._policy, CostPolicy) else None

    async def start(self) -> None:
        """Starts the background task that forms and dispatches batches."""
        if self._task is not None:
            raise RuntimeError(f"batcher {self._name!r} was already started")
        self._task = asyncio.create_task(self._dispatch_loop(), name=f"batcher-{self._name}")

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
        return cast(list[ResultT], call.results), call.timing

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
        if self._config.max_queue_size is not None:
            refuse_beyond(
                count,
                len(self._queue),
                self._config.max_queue_size,
                f"the '{self._name}' batching queue",
                "max_queue_size",
            )
        if deadline is not None and deadline <= time.monotonic():
            self._observer.on_dropped("deadline", count)
            raise DeadlineExceeded(
                f"The deadline had already passed when the request reached the '{self._name}' "
                "batching queue; nothing was run."
            )

    def _enqueue(self, items: Sequence[ItemT], deadline: float | None) -> Call[ItemT, ResultT]:
        """Queues ``items`` as one call and wakes the batcher if it could dispatch now."""
        now = time.monotonic()
        loop = asyncio.get_running_loop()
        call: Call[ItemT, ResultT] = Call(loop.create_future(), [None] * len(items), now, deadline)
        length_of = self._length_of
        entries = [
            Entry(length_of(item), now, deadline, call=call, index=index, item=item)
            for index, item in enumerate(items)
        ]
        call.entries = entries
        call.unscheduled = call.unfinished = len(entries)
        for entry in entries:
            self._queue.push(entry)
        self._policy.note_arrival(len(entries), now)
        if len(self._running) < self._config.max_concurrent_batches:
            self._wakeup.set()
        return call

    def _arm_deadline(self, call: Call[ItemT, ResultT]) -> asyncio.TimerHandle | None:
        """Schedules the call's expiry at its deadline, if it has one."""
        if call.deadline is None:
            return None
        delay = call.deadline - time.monotonic()
        return asyncio.get_running_loop().call_later(delay, self._expire, call)

    def _expire(self, call: Call[ItemT, ResultT]) -> None:
        """Fails the call with ``DeadlineExceeded`` if some of its items are still queued."""
        if not call.finished and call.unscheduled > 0:
            self._abandon(call, "deadline", self._deadline_error(call))

    def _abandon(self, call: Call[ItemT, ResultT], reason: str, error: Exception | None) -> None:
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

    async def _dispatch_loop(self) -> None:
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
        """Dispatches the batches the policy chooses while a slot is free.

        Returns the seconds until the policy wants to be asked again, or None when only an
        event (an arrival, a finished batch, a stop) can make the next batch due.
        """
        while len(self._running) < self._config.max_concurrent_batches:
            if not self._queue:
                return None
            now = time.monotonic()
            chosen = self._policy.next_batch(self._queue, now, self._closing)
            if isinstance(chosen, float):
                return chosen
            self._queue.take(chosen)
            self._launch(chosen, now)
        return None

    def _launch(self, entries: list[Entry[ItemT, ResultT]], now: float) -> None:
        """Drops expired items, then starts executing the rest as one batch."""
        entries = self._without_expired(entries, now)
        if not entries:
            return
        waits = [now - entry.enqueued_at for entry in entries]
        for entry, wait in zip(entries, waits, strict=True):
            entry.call.scheduled(wait)
        lengths = [entry.length for entry in entries]
        self._observer.on_batch(len(entries), len(entries) * max(lengths), sum(lengths), waits)
        items = [entry.item for entry in entries]
        loop = asyncio.get_running_loop()
        try:
            future = loop.run_in_executor(self._executor, execute_timed, self._execute, items)
        except RuntimeError as error:  # the executor was shut down under us
            self._fail_calls(
                entries, "shutdown", Unavailable(f"{self._shutdown_message()} ({error})")
            )
            return
        predicted_s = self._policy.predict(len(entries), max(lengths))
        prediction = None if predicted_s is None else (len(entries), max(lengths), predicted_s)
        self._running[future] = Running(entries, prediction)
        future.add_done_callback(self._on_batch_done)

    def _without_expired(
        self, entries: list[Entry[ItemT, ResultT]], now: float
    ) -> list[Entry[ItemT, ResultT]]:
        """Fails the calls whose deadline has passed; returns the entries of the other calls."""
        expired = False
        for entry in entries:
            call = entry.call
            if call.deadline is not None and call.deadline <= now and not call.finished:
                self._abandon(call, "deadline", self._deadline_error(call))
                expired = True
        return [entry for entry in entries if not entry.call.finished] if expired else entries

    def _on_batch_done(self, future: asyncio.Future[Outcome[ResultT]]) -> None:
        """Delivers a finished batch's results (or error) to its callers."""
        running = self._running.pop(future, None)  # gone when stop() already failed them
        entries = running.entries if running is not None else []
        self._wakeup.set()
        if future.cancelled():
            self._fail_calls(entries, "shutdown", Unavailable(self._shutdown_message()))
            return
        outcome = future.result()
        self._observer.on_executed(outcome.seconds)
        if running is not None and running.prediction is not None:
            self._observer.on_cost(*running.prediction, outcome.seconds)
        if not entries:
            return
        if outcome.results is None or len(outcome.results) != len(entries):
            self._fail_calls(
                entries, "failed", outcome.error or self._count_mismatch(outcome, entries)
            )
            return
        for entry, result in zip(entries, outcome.results, strict=True):
            entry.call.deliver(entry.index, result, outcome.seconds)

    def _count_mismatch(
        self, outcome: Outcome[ResultT], entries: Sequence[Entry[ItemT, ResultT]]
    ) -> RuntimeError:
        """The error for an ``execute`` that returned the wrong number of results."""
        returned = "no" if outcome.results is None else len(outcome.results)
        return RuntimeError(
            f"The '{self._name}' model returned {returned} results "
            f"for a batch of {len(entries)} items."
        )

    def _fail_calls(
        self, entries: Sequence[Entry[ItemT, ResultT]], reason: str, error: Exception
    ) -> None:
        """Fails every call with an item among ``entries``; their queued items are dropped."""
        for call in dict.fromkeys(entry.call for entry in entries):
            self._abandon(call, reason, error)

    def _fail_everything(self, error: Exception) -> None:
        """Fails every queued and running call (their running batches' results are discarded)."""
        running = [entry for batch in self._running.values() for entry in batch.entries]
        self._running.clear()
        self._fail_calls(self._queue.drain() + running, "shutdown", error)

    def _deadline_error(self, call: Call[ItemT, ResultT]) -> DeadlineExceeded:
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
