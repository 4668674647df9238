"""Unit tests of the dynamic batcher, with a fake engine standing in for the model."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from service.batching import BatchingConfig, BatchTiming, DynamicBatcher
from service.batching.selection import LengthBucketQueue, QueuedItem
from service.errors import DeadlineExceeded, InvalidArgument, Overloaded, Unavailable

pytestmark = pytest.mark.asyncio  # every test is async, so this holds without asyncio_mode


@dataclass(frozen=True)
class Item:
    """A tokenized text as far as the batcher cares: an id and a token count."""

    value: int
    length: int = 8


class EngineError(RuntimeError):
    """What the fake engine raises for a poisoned item."""


@dataclass
class FakeEngine:
    """Records each batch it is given and returns every item's value doubled.

    ``gate`` holds execution while cleared, so a test can keep the executor busy and fill the
    queue; ``poison`` makes a batch containing that value fail; ``lose_last`` returns one result
    too few.
    """

    delay_s: float = 0.0
    poison: int | None = None
    lose_last: bool = False
    batches: list[list[Item]] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    def __call__(self, items: Sequence[Item]) -> list[int]:
        self.batches.append(list(items))
        if not self.gate.wait(timeout=2.0):
            raise TimeoutError("test left the gate closed")
        time.sleep(self.delay_s)
        if any(item.value == self.poison for item in items):
            raise EngineError(f"cannot embed item {self.poison}")
        results = [item.value * 2 for item in items]
        return results[:-1] if self.lose_last else results

    def executed_values(self) -> list[int]:
        """Every value that reached the engine, in batch order."""
        return [item.value for batch in self.batches for item in batch]

    def batch_values(self) -> list[list[int]]:
        """Each batch as its item values."""
        return [[item.value for item in batch] for batch in self.batches]


@dataclass
class RecordingObserver:
    """Keeps every observer call."""

    batches: list[tuple[int, int, int, list[float]]] = field(default_factory=list)
    dropped: list[tuple[str, int]] = field(default_factory=list)
    executed: list[float] = field(default_factory=list)

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        self.batches.append((batch_size, padded_tokens, real_tokens, list(queue_wait_s)))

    def on_dropped(self, reason: str, count: int) -> None:
        self.dropped.append((reason, count))

    def on_executed(self, seconds: float) -> None:
        self.executed.append(seconds)


Batcher = DynamicBatcher[Item, int]
Built = tuple[Batcher, FakeEngine, RecordingObserver]
MakeBatcher = Callable[..., Awaitable[Built]]


@pytest_asyncio.fixture
async def make() -> AsyncIterator[MakeBatcher]:
    """Builds and starts batchers around fake engines; stops them all at teardown.

    Usage: ``batcher, engine, observer = await make(engine=..., **config_fields)``; the queue
    delay defaults to 0 so tests do not wait for it unless they ask.
    """
    started: list[Built] = []

    async def build(engine: FakeEngine | None = None, **config: float) -> Built:
        engine = engine or FakeEngine()
        observer = RecordingObserver()
        settings: dict[str, Any] = {"max_queue_delay_ms": 0.0, **config}
        batcher: Batcher = DynamicBatcher(
            "test-model",
            engine,
            lambda item: item.length,
            BatchingConfig(**settings),
            observer=observer,
        )
        await batcher.start()
        started.append((batcher, engine, observer))
        return batcher, engine, observer

    yield build
    for batcher, engine, _ in started:
        engine.gate.set()
        await batcher.stop(grace=1.0)


async def eventually(condition: Callable[[], bool], timeout_s: float = 1.0) -> None:
    """Polls ``condition`` on the event loop until it holds."""
    give_up = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < give_up, "condition not reached in time"
        await asyncio.sleep(0.001)


async def hold_executor(batcher: Batcher, engine: FakeEngine) -> asyncio.Task[list[int]]:
    """Starts a blocker batch that keeps the only executor slot busy until the gate opens."""
    engine.gate.clear()
    blocker = asyncio.create_task(batcher.submit([Item(-1, 1)]))
    await eventually(lambda: len(engine.batches) == 1)
    return blocker


async def queue_calls(
    batcher: Batcher, calls: Sequence[Sequence[Item]]
) -> list[asyncio.Task[list[int]]]:
    """Submits each call from its own task, in order, and waits until all their items are queued."""
    expected = batcher.queue_size + sum(len(call) for call in calls)
    tasks = [asyncio.create_task(batcher.submit(call)) for call in calls]
    await eventually(lambda: batcher.queue_size == expected)
    return tasks


# -- results and limits -------------------------------------------------------------------------


async def test_results_return_to_each_caller_in_order(make: MakeBatcher) -> None:
    batcher, _, _ = await make(max_queue_delay_ms=2.0)
    calls = [
        [Item(caller * 10 + index, length=3 + index) for index in range(caller + 1)]
        for caller in range(5)
    ]

    results = await asyncio.gather(*(batcher.submit(call) for call in calls))

    assert results == [[item.value * 2 for item in call] for call in calls]


async def test_batches_respect_max_batch_size(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(max_batch_size=4)

    results = await asyncio.gather(*(batcher.submit([Item(value)]) for value in range(10)))

    assert results == [[value * 2] for value in range(10)]
    assert all(len(batch) <= 4 for batch in engine.batches)
    assert sorted(engine.executed_values()) == list(range(10))


async def test_batches_respect_max_batch_tokens(make: MakeBatcher) -> None:
    batcher, engine, observer = await make(max_batch_size=32, max_batch_tokens=40)
    blocker = await hold_executor(batcher, engine)
    lengths = [10, 3, 10, 10, 4, 12, 10, 5, 20, 9]
    tasks = await queue_calls(
        batcher, [[Item(value, length)] for value, length in enumerate(lengths)]
    )

    engine.gate.set()
    await asyncio.gather(blocker, *tasks)

    for batch in engine.batches:
        assert len(batch) * max(item.length for item in batch) <= 40
    assert sorted(engine.executed_values()) == [-1, *range(len(lengths))]
    assert [padded for _, padded, _, _ in observer.batches] == [
        len(batch) * max(item.length for item in batch) for batch in engine.batches
    ]


async def test_item_longer_than_token_limit_runs_alone(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(max_batch_tokens=16)

    long, short = await asyncio.gather(batcher.submit([Item(1, 50)]), batcher.submit([Item(2, 4)]))

    assert (long, short) == ([2], [4])
    assert [1] in engine.batch_values()


async def test_call_larger_than_a_batch_is_split_and_reassembled(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(max_batch_size=4)
    items = [Item(value, length=(value * 7) % 11 + 1) for value in range(10)]

    results = await batcher.submit(items)

    assert results == [value * 2 for value in range(10)]
    assert sorted(len(batch) for batch in engine.batches) == [2, 4, 4]


# -- dynamic batching and selection -------------------------------------------------------------


async def test_submits_arriving_while_a_batch_runs_are_batched_together(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(max_batch_size=32)
    blocker = await hold_executor(batcher, engine)
    tasks = await queue_calls(batcher, [[Item(value)] for value in range(20)])

    engine.gate.set()
    results = await asyncio.gather(*tasks)

    assert results == [[value * 2] for value in range(20)]
    assert await blocker == [-2]
    assert engine.batch_values() == [[-1], list(range(20))]


async def test_concurrent_submits_wait_for_each_other_within_the_delay(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(max_batch_size=32, max_queue_delay_ms=50.0)

    await asyncio.gather(*(batcher.submit([Item(value)]) for value in range(20)))

    assert len(engine.batches) <= 2


async def test_full_batch_is_dispatched_without_waiting_for_the_delay(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(max_batch_size=4, max_queue_delay_ms=60_000.0)

    results = await asyncio.wait_for(batcher.submit([Item(value) for value in range(4)]), 1.0)

    assert results == [0, 2, 4, 6]
    assert len(engine.batches) == 1


async def test_lone_item_is_dispatched_after_the_delay(make: MakeBatcher) -> None:
    batcher, engine, observer = await make(max_batch_size=4, max_queue_delay_ms=20.0)

    assert await asyncio.wait_for(batcher.submit([Item(3)]), 1.0) == [6]
    assert engine.batch_values() == [[3]]
    assert observer.batches[0][3][0] >= 0.015


async def test_length_bucketing_keeps_similar_lengths_together(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(max_batch_size=2)
    blocker = await hold_executor(batcher, engine)
    lengths = [5, 100, 6, 101]
    tasks = await queue_calls(batcher, [[Item(length, length)] for length in lengths])

    engine.gate.set()
    await asyncio.gather(blocker, *tasks)

    assert engine.batch_values() == [[-1], [5, 6], [100, 101]]


async def test_oldest_item_is_always_included(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(max_batch_size=3)
    blocker = await hold_executor(batcher, engine)
    lengths = [50, 10, 11, 49, 90, 51, 12]
    tasks = await queue_calls(batcher, [[Item(length, length)] for length in lengths])

    engine.gate.set()
    await asyncio.gather(blocker, *tasks)

    assert engine.batch_values() == [[-1], [50, 49, 51], [10, 11, 12], [90]]


# -- admission, deadlines, cancellation -------------------------------------------------------


async def test_full_queue_rejects_the_whole_call_at_once(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(max_queue_size=4)
    blocker = await hold_executor(batcher, engine)
    (queued,) = await queue_calls(batcher, [[Item(1), Item(2), Item(3)]])

    with pytest.raises(Overloaded, match=r"queue is full \(3 of 4.*backoff"):
        await batcher.submit([Item(4), Item(5)])

    assert batcher.queue_size == 3
    engine.gate.set()
    assert await queued == [2, 4, 6]
    await blocker
    assert 4 not in engine.executed_values()
    assert 5 not in engine.executed_values()


async def test_call_larger_than_the_queue_is_invalid(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(max_queue_size=4)

    with pytest.raises(InvalidArgument, match="at most 4"):
        await batcher.submit([Item(value) for value in range(5)])

    assert batcher.queue_size == 0
    assert engine.batches == []


async def test_deadline_passing_in_the_queue_raises_and_skips_the_item(make: MakeBatcher) -> None:
    batcher, engine, observer = await make()
    blocker = await hold_executor(batcher, engine)

    with pytest.raises(DeadlineExceeded, match=r"after waiting \d+\.\d ms"):
        await batcher.submit([Item(7), Item(8)], deadline=time.monotonic() + 0.02)

    assert batcher.queue_size == 0
    engine.gate.set()
    await blocker
    assert await batcher.submit([Item(9)]) == [18]
    assert engine.executed_values() == [-1, 9]
    assert observer.dropped == [("deadline", 2)]


async def test_deadline_already_passed_is_rejected_without_queueing(make: MakeBatcher) -> None:
    batcher, engine, observer = await make()

    with pytest.raises(DeadlineExceeded):
        await batcher.submit([Item(1)], deadline=time.monotonic() - 0.001)

    assert batcher.queue_size == 0
    assert engine.batches == []
    assert observer.dropped == [("deadline", 1)]


async def test_expired_items_are_dropped_at_batch_formation(
    make: MakeBatcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    batcher, engine, observer = await make(max_batch_size=8)
    # Without its timer, only the check at batch formation can catch the passed deadline (the
    # timer and that check race in production when the loop is busy).
    monkeypatch.setattr(batcher, "_arm_deadline", lambda call: None)
    blocker = await hold_executor(batcher, engine)
    doomed = asyncio.create_task(batcher.submit([Item(1)], deadline=time.monotonic() + 0.01))
    await eventually(lambda: batcher.queue_size == 1)
    (kept,) = await queue_calls(batcher, [[Item(2)]])
    await asyncio.sleep(0.02)

    engine.gate.set()

    with pytest.raises(DeadlineExceeded):
        await doomed
    assert await kept == [4]
    await blocker
    assert engine.batch_values() == [[-1], [2]]
    assert observer.dropped == [("deadline", 1)]


async def test_cancelled_caller_items_are_never_executed(make: MakeBatcher) -> None:
    batcher, engine, observer = await make()
    blocker = await hold_executor(batcher, engine)
    (abandoned,) = await queue_calls(batcher, [[Item(1), Item(2)]])

    abandoned.cancel()
    with pytest.raises(asyncio.CancelledError):
        await abandoned

    assert batcher.queue_size == 0
    engine.gate.set()
    await blocker
    assert await batcher.submit([Item(3)]) == [6]
    assert engine.executed_values() == [-1, 3]
    assert observer.dropped == [("cancelled", 2)]


# -- failures and shutdown ----------------------------------------------------------------------


async def test_execute_failure_reaches_every_caller_of_the_batch(make: MakeBatcher) -> None:
    batcher, engine, observer = await make(engine=FakeEngine(poison=13))
    blocker = await hold_executor(batcher, engine)
    poisoned, bystander = await queue_calls(batcher, [[Item(13)], [Item(1)]])

    engine.gate.set()

    with pytest.raises(EngineError, match="item 13"):
        await poisoned
    with pytest.raises(EngineError):
        await bystander
    await blocker
    assert await batcher.submit([Item(2)]) == [4]
    assert len(observer.executed) == 3


async def test_failure_of_one_batch_drops_the_rest_of_its_call(make: MakeBatcher) -> None:
    batcher, engine, observer = await make(engine=FakeEngine(poison=0), max_batch_size=2)

    with pytest.raises(EngineError):
        await batcher.submit([Item(value) for value in range(6)])

    assert engine.batch_values() == [[0, 1]]
    assert observer.dropped == [("failed", 4)]
    assert await batcher.submit([Item(5)]) == [10]


async def test_wrong_number_of_results_is_an_error(make: MakeBatcher) -> None:
    batcher, _, _ = await make(engine=FakeEngine(lose_last=True))

    with pytest.raises(RuntimeError, match="returned 1 results for a batch of 2 items"):
        await batcher.submit([Item(1), Item(2)])


async def test_failing_observer_does_not_stop_batching(make: MakeBatcher) -> None:
    batcher, _, observer = await make()
    observer.on_batch = lambda *args: 1 / 0  # type: ignore[assignment, method-assign]

    assert await batcher.submit([Item(1)]) == [2]
    assert await batcher.submit([Item(2)]) == [4]


async def test_concurrent_batches_run_side_by_side(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(max_batch_size=1, max_concurrent_batches=2)
    engine.gate.clear()
    tasks = [asyncio.create_task(batcher.submit([Item(value)])) for value in range(3)]

    await eventually(lambda: len(engine.batches) == 2 and batcher.queue_size == 1)
    engine.gate.set()

    assert await asyncio.gather(*tasks) == [[0], [2], [4]]
    assert engine.batch_values() == [[0], [1], [2]]


async def test_stop_finishes_queued_work_then_rejects_new_work(make: MakeBatcher) -> None:
    batcher, engine, _ = await make()
    blocker = await hold_executor(batcher, engine)
    tasks = await queue_calls(batcher, [[Item(1)], [Item(2), Item(3)]])

    stopping = asyncio.create_task(batcher.stop())
    await asyncio.sleep(0.01)
    with pytest.raises(Unavailable, match="shutting down"):
        await batcher.submit([Item(4)])
    engine.gate.set()
    await stopping

    assert await blocker == [-2]
    assert [await task for task in tasks] == [[2], [4, 6]]
    with pytest.raises(Unavailable, match="shutting down"):
        await batcher.submit([Item(5)])


async def test_stop_after_grace_fails_what_is_left(make: MakeBatcher) -> None:
    batcher, engine, observer = await make()
    blocker = await hold_executor(batcher, engine)
    (queued,) = await queue_calls(batcher, [[Item(1)]])

    await batcher.stop(grace=0.02)
    engine.gate.set()
    await eventually(lambda: len(observer.executed) == 1)  # the blocker's thread has finished

    with pytest.raises(Unavailable):
        await blocker
    with pytest.raises(Unavailable):
        await queued
    assert ("shutdown", 1) in observer.dropped


async def test_submit_before_start_is_unavailable() -> None:
    batcher: Batcher = DynamicBatcher(
        "idle", FakeEngine(), lambda item: item.length, BatchingConfig()
    )

    with pytest.raises(Unavailable, match="not been started"):
        await batcher.submit([Item(1)])
    await batcher.stop()


# -- timing and observer ------------------------------------------------------------------------


async def test_submit_timed_reports_queue_and_execution_time(make: MakeBatcher) -> None:
    batcher, _, observer = await make(engine=FakeEngine(delay_s=0.02), max_batch_size=2)

    results, timing = await batcher.submit_timed([Item(1), Item(2), Item(3)])

    assert results == [2, 4, 6]
    assert isinstance(timing, BatchTiming)
    assert 0.02 <= timing.execute_s < 0.5
    assert timing.execute_s == max(observer.executed)
    assert timing.queue_s >= 0.02  # the second batch waited for the first
    assert await batcher.submit_timed([]) == ([], BatchTiming(0.0, 0.0))


async def test_observer_sees_batch_shape(make: MakeBatcher) -> None:
    batcher, _, observer = await make(max_batch_size=8)

    await batcher.submit([Item(1, 4), Item(2, 6), Item(3, 5)])

    assert [(size, padded, real) for size, padded, real, _ in observer.batches] == [(3, 18, 15)]
    assert len(observer.batches[0][3]) == 3


async def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchingConfig(max_batch_size=0)
    with pytest.raises(ValueError, match="max_queue_delay_ms"):
        BatchingConfig(max_queue_delay_ms=-1.0)


# -- the queue on its own -----------------------------------------------------------------------


async def test_queue_compacts_after_many_drops() -> None:
    queue: LengthBucketQueue[QueuedItem] = LengthBucketQueue()
    keeper = QueuedItem(length=5, enqueued_at=0.0)
    queue.push(keeper)
    dropped = [QueuedItem(length=5, enqueued_at=float(index + 1)) for index in range(3000)]
    for entry in dropped:
        queue.push(entry)

    for entry in dropped:
        queue.drop([entry])

    assert len(queue) == 1
    assert queue.select(max_size=4, max_tokens=100).entries == [keeper]
    assert len(queue._arrivals) < 1100  # memory stays bounded
