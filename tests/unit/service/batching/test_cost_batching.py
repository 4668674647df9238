"""The dynamic batcher with a cost table: shapes by predicted throughput, waits that pay."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio

from service.batching import BatchingConfig, CostTable, DynamicBatcher, TeeObserver
from service.errors import DeadlineExceeded

pytestmark = pytest.mark.asyncio

SIZES = (1, 2, 4, 8, 16, 32)
LENGTHS = (8, 16, 32, 64, 128)


def affine_table(fixed_s: float, per_token_s: float) -> CostTable:
    """Seconds per batch of ``fixed_s + per_token_s * batch * length``."""
    return CostTable(
        SIZES, LENGTHS, tuple(tuple(fixed_s + per_token_s * b * n for n in LENGTHS) for b in SIZES)
    )


PER_TOKEN = affine_table(0.0, 2e-7)
"""Batching does not pay: the cost is linear in the batch, with no fixed part."""
FIXED = affine_table(0.004, 1e-7)
"""Batching pays: a large fixed cost per batch."""
ENCODER = affine_table(0.0005, 1e-5)
"""A small transformer encoder on a CPU: a fixed cost worth 50 padded tokens, then per token."""


@dataclass(frozen=True)
class Text:
    """A tokenized text as far as the batcher cares."""

    value: int
    length: int


@dataclass
class SimulatedEngine:
    """Runs each batch for as long as the cost table predicts, recording its shape.

    ``gate`` holds execution while cleared, so a test can fill the queue behind a running batch.
    """

    table: CostTable
    batches: list[list[Text]] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.gate.set()

    def __call__(self, texts: Sequence[Text]) -> list[int]:
        self.batches.append(list(texts))
        if not self.gate.wait(timeout=2.0):
            raise TimeoutError("test left the gate closed")
        time.sleep(self.table.predict(len(texts), max(text.length for text in texts)))
        return [text.value for text in texts]

    def sizes(self) -> list[int]:
        return [len(batch) for batch in self.batches]


@dataclass
class Recorder:
    """A ``BatchObserver`` with the optional ``on_cost`` hook."""

    shapes: list[tuple[int, int, int, list[float]]] = field(default_factory=list)
    costs: list[tuple[int, int, float, float]] = field(default_factory=list)
    executed: list[float] = field(default_factory=list)

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        self.shapes.append((batch_size, padded_tokens, real_tokens, list(queue_wait_s)))

    def on_dropped(self, reason: str, count: int) -> None:
        pass

    def on_executed(self, seconds: float) -> None:
        self.executed.append(seconds)

    def on_cost(
        self, batch_size: int, padded_length: int, predicted_s: float, executed_s: float
    ) -> None:
        self.costs.append((batch_size, padded_length, predicted_s, executed_s))

    def padding_efficiency(self) -> float:
        return sum(real for _, _, real, _ in self.shapes) / sum(pad for _, pad, _, _ in self.shapes)

    def longest_wait(self) -> float:
        return max(wait for *_, waits in self.shapes for wait in waits)


@dataclass
class PlainObserver:
    """A ``BatchObserver`` without ``on_cost``, as the ones written before cost models."""

    executed: list[float] = field(default_factory=list)

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        pass

    def on_dropped(self, reason: str, count: int) -> None:
        pass

    def on_executed(self, seconds: float) -> None:
        self.executed.append(seconds)


Batcher = DynamicBatcher[Text, int]
Built = tuple[Batcher, SimulatedEngine, Recorder]
MakeBatcher = Callable[..., Awaitable[Built]]


@pytest_asyncio.fixture
async def make() -> AsyncIterator[MakeBatcher]:
    """Builds and starts batchers whose engine runs as long as ``table`` predicts.

    ``batcher, engine, recorder = await make(table, cost_model=table or None, **config)``.
    """
    started: list[Built] = []

    async def build(table: CostTable, **config: Any) -> Built:
        engine, recorder = SimulatedEngine(table), Recorder()
        cost_table = config.pop("cost_model", table)
        batcher: Batcher = DynamicBatcher(
            "test-model",
            engine,
            lambda text: text.length,
            BatchingConfig(**config),
            cost_table=cost_table,
            observer=recorder,
        )
        await batcher.start()
        started.append((batcher, engine, recorder))
        return batcher, engine, recorder

    yield build
    for batcher, engine, _ in started:
        engine.gate.set()
        await batcher.stop(grace=1.0)


async def stream(
    batcher: Batcher,
    lengths: Sequence[int],
    interval_s: float,
    deadline_s: float | None = None,
    per_tick: int = 1,
) -> list[list[int]]:
    """Submits ``per_tick`` texts (each from its own task) per ``interval_s``; gathers results."""
    tasks = []
    for value, length in enumerate(lengths):
        deadline = None if deadline_s is None else time.monotonic() + deadline_s
        tasks.append(asyncio.create_task(batcher.submit([Text(value, length)], deadline)))
        if (value + 1) % per_tick == 0:
            await asyncio.sleep(interval_s)
    return list(await asyncio.gather(*tasks))


async def eventually(condition: Callable[[], bool], timeout_s: float = 1.0) -> None:
    give_up = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < give_up, "condition not reached in time"
        await asyncio.sleep(0.001)


# -- when to wait -------------------------------------------------------------------------------


async def test_when_batching_does_not_pay_texts_go_at_once(make: MakeBatcher) -> None:
    batcher, engine, recorder = await make(PER_TOKEN, max_queue_delay_ms=200.0)

    results = await stream(batcher, [16] * 40, interval_s=0.002)

    assert results == [[value] for value in range(40)]
    assert recorder.longest_wait() < 0.05  # far below the 200 ms the delay allows
    assert sum(engine.sizes()) / len(engine.batches) < 2


async def test_without_a_cost_model_the_same_stream_waits_to_fill(make: MakeBatcher) -> None:
    batcher, engine, recorder = await make(
        PER_TOKEN, cost_model=None, max_batch_size=8, max_queue_delay_ms=200.0
    )

    await stream(batcher, [16] * 24, interval_s=0.002)

    assert recorder.longest_wait() >= 0.01
    assert max(engine.sizes()) == 8


async def test_when_a_fixed_cost_dominates_batches_fill_up(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(FIXED, max_batch_size=8, max_queue_delay_ms=200.0)

    results = await stream(batcher, [16] * 41, interval_s=0.001)

    assert results == [[value] for value in range(41)]
    full = sum(size for size in engine.sizes() if size == 8)
    assert full >= 32, engine.sizes()


async def test_waiting_for_a_fuller_batch_stops_before_a_deadline(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(FIXED, max_batch_size=32, max_queue_delay_ms=10_000.0)
    started = time.monotonic()

    results = await stream(batcher, [16] * 4, interval_s=0.002, deadline_s=0.1)

    assert results == [[value] for value in range(4)]
    assert time.monotonic() - started < 0.5
    assert engine.sizes()[-1] >= 2  # it did wait for company, as long as the deadline allowed


async def test_deadline_still_fails_items_that_cannot_start_in_time(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(FIXED, max_batch_size=32)
    engine.gate.clear()
    blocker = asyncio.create_task(batcher.submit([Text(-1, 8)]))
    await eventually(lambda: len(engine.batches) == 1)

    with pytest.raises(DeadlineExceeded):
        await batcher.submit([Text(1, 8)], deadline=time.monotonic() + 0.02)

    engine.gate.set()
    assert await blocker == [-1]
    assert [text.value for batch in engine.batches for text in batch] == [-1]


# -- what to batch ------------------------------------------------------------------------------


async def test_oldest_item_is_always_in_the_next_batch(make: MakeBatcher) -> None:
    batcher, engine, _ = await make(ENCODER, max_batch_size=8)
    engine.gate.clear()
    blocker = asyncio.create_task(batcher.submit([Text(-1, 8)]))
    await eventually(lambda: len(engine.batches) == 1)
    lengths = [120, *[6] * 12, 118, 7]
    tasks = [
        asyncio.create_task(batcher.submit([Text(value, length)]))
        for value, length in enumerate(lengths)
    ]
    await eventually(lambda: batcher.queue_size == len(lengths))

    engine.gate.set()
    await asyncio.gather(blocker, *tasks)

    assert engine.batches[1][0] == Text(0, 120)
    not_run = set(range(len(lengths)))
    for batch in engine.batches[1:]:
        assert batch[0].value == min(not_run)
        not_run -= {text.value for text in batch}
    assert not not_run


async def test_mixed_lengths_are_batched_with_little_padding(make: MakeBatcher) -> None:
    rng = random.Random(11)
    lengths = [rng.randint(4, 128) for _ in range(600)]
    batcher, engine, recorder = await make(ENCODER)

    await stream(batcher, lengths, interval_s=0.001, per_tick=2)

    sizes = engine.sizes()
    assert recorder.padding_efficiency() >= 0.85
    assert sum(sizes) / len(sizes) >= 2  # these are real batches, not batch-1 serving


# -- reporting ----------------------------------------------------------------------------------


async def test_observer_sees_the_predicted_cost_next_to_the_real_one(make: MakeBatcher) -> None:
    batcher, _, recorder = await make(FIXED)

    await batcher.submit([Text(1, 10), Text(2, 30), Text(3, 20)])

    ((size, padded_length, predicted_s, executed_s),) = recorder.costs
    assert (size, padded_length) == (3, 30)
    assert predicted_s == FIXED.predict(3, 30)
    assert executed_s == recorder.executed[0] >= predicted_s


async def test_observers_without_the_cost_hook_keep_working() -> None:
    plain, recorder = PlainObserver(), Recorder()
    engine = SimulatedEngine(FIXED)
    batcher: Batcher = DynamicBatcher(
        "test-model",
        engine,
        lambda text: text.length,
        BatchingConfig(),
        cost_table=FIXED,
        observer=TeeObserver([plain, recorder]),
    )
    await batcher.start()
    try:
        assert await batcher.submit([Text(1, 8)]) == [1]
    finally:
        await batcher.stop(grace=1.0)

    assert len(plain.executed) == len(recorder.costs) == 1


async def test_without_a_cost_model_there_is_no_prediction(make: MakeBatcher) -> None:
    batcher, _, recorder = await make(FIXED, cost_model=None)

    await batcher.submit([Text(1, 8)])

    assert recorder.costs == []
    assert len(recorder.executed) == 1


async def test_size_and_token_limits_stay_hard_limits(make: MakeBatcher) -> None:
    batcher, engine, recorder = await make(FIXED, max_batch_size=4, max_batch_tokens=64)
    engine.gate.clear()
    blocker = asyncio.create_task(batcher.submit([Text(-1, 8)]))
    await eventually(lambda: len(engine.batches) == 1)
    lengths = [10, 3, 10, 10, 4, 12, 10, 5, 20, 9, 30, 16, 16, 16, 16, 16]
    tasks = [
        asyncio.create_task(batcher.submit([Text(value, length)]))
        for value, length in enumerate(lengths)
    ]
    await eventually(lambda: batcher.queue_size == len(lengths))

    engine.gate.set()
    await asyncio.gather(blocker, *tasks)

    assert all(len(batch) <= 4 for batch in engine.batches)
    assert all(padded <= 64 for _, padded, _, _ in recorder.shapes)
    assert sorted(text.value for batch in engine.batches for text in batch) == [
        -1,
        *range(len(lengths)),
    ]
