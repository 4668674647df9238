"""``in_order``: concurrent work on a stream's messages, results in order, bounded, cancellable."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from service.transport.streams import in_order


class Source:
    """An async stream of 0..count-1 that records how many messages were read."""

    def __init__(self, count: int, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.read = 0

    async def __aiter__(self) -> AsyncIterator[int]:
        for number in range(self.count):
            await asyncio.sleep(0)
            if number == self.fail_at:
                raise ConnectionError(f"reading message {number} failed")
            self.read += 1
            yield number


class Gated:
    """Work whose every item waits for its own gate; records what runs at once."""

    def __init__(self) -> None:
        self.gates: dict[int, asyncio.Event] = {}
        self.running = 0
        self.most_running = 0
        self.cancelled: list[int] = []

    def gate(self, number: int) -> asyncio.Event:
        return self.gates.setdefault(number, asyncio.Event())

    async def __call__(self, number: int) -> int:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            await self.gate(number).wait()
        except asyncio.CancelledError:
            self.cancelled.append(number)
            raise
        finally:
            self.running -= 1
        return number * 10


async def settle() -> None:
    """Let every ready task run until all wait on something."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_results_come_in_message_order_when_work_finishes_out_of_order() -> None:
    async def work(number: int) -> int:
        await asyncio.sleep(0.001 * (10 - number))  # the first message finishes last
        return number

    results = [result async for result in in_order(Source(10), work, limit=10)]
    assert results == list(range(10))


async def test_messages_are_worked_on_concurrently() -> None:
    gated = Gated()
    stream = in_order(Source(8), gated, limit=8)
    first = asyncio.ensure_future(anext(stream))
    await settle()
    assert gated.running == 8  # all eight started before the first finished
    for number in range(8):
        gated.gate(number).set()
    assert await first == 0
    assert [result async for result in stream] == [10, 20, 30, 40, 50, 60, 70]


async def test_reading_stops_while_limit_messages_are_pending() -> None:
    source, gated = Source(20), Gated()
    stream = in_order(source, gated, limit=3)
    first = asyncio.ensure_future(anext(stream))
    await settle()
    assert (source.read, gated.running) == (3, 3)
    gated.gate(1).set()  # a later message finishing frees no slot: its reply is not taken
    await settle()
    assert source.read == 3
    gated.gate(0).set()
    assert await first == 0
    await settle()
    assert source.read == 4  # the first reply taken: one more read
    for number in range(20):
        gated.gate(number).set()
    rest = [result async for result in stream]
    assert rest == [number * 10 for number in range(1, 20)]
    assert gated.most_running <= 3


async def test_a_failure_ends_the_stream_after_the_results_before_it() -> None:
    gated = Gated()

    async def work(number: int) -> int:
        if number == 2:
            raise LookupError("message 2 is bad")
        return await gated(number)

    stream = in_order(Source(10), work, limit=5)
    received: list[int] = []
    consumer = asyncio.ensure_future(_collect(stream, received))
    await settle()
    assert not consumer.done()  # message 2 failed at once, but 0 and 1 are still running
    gated.gate(1).set()
    gated.gate(0).set()
    with pytest.raises(LookupError, match="message 2 is bad"):
        await consumer
    assert received == [0, 10]
    # The pending work after it is cancelled (5 and 6 if read once 0 and 1 were taken).
    assert {3, 4} <= set(gated.cancelled) <= {3, 4, 5, 6}
    assert gated.running == 0


async def test_a_failure_to_read_comes_after_the_results_of_what_was_read() -> None:
    async def work(number: int) -> int:
        return number

    received: list[int] = []
    with pytest.raises(ConnectionError, match="reading message 3 failed"):
        await _collect(in_order(Source(10, fail_at=3), work, limit=4), received)
    assert received == [0, 1, 2]


async def test_cancelling_the_consumer_cancels_every_pending_work() -> None:
    gated = Gated()
    before = len(asyncio.all_tasks())
    consumer = asyncio.ensure_future(_collect(in_order(Source(100), gated, limit=6), []))
    await settle()
    assert gated.running == 6
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert sorted(gated.cancelled) == [0, 1, 2, 3, 4, 5] and gated.running == 0
    assert len(asyncio.all_tasks()) == before  # no reader or work task outlives the stream


async def test_closing_the_stream_early_cancels_the_rest() -> None:
    gated = Gated()
    gated.gate(0).set()
    stream = in_order(Source(100), gated, limit=4)
    assert await anext(stream) == 0
    await settle()
    await stream.aclose()
    assert sorted(gated.cancelled) == [1, 2, 3, 4] and gated.running == 0


async def test_a_limit_below_one_is_refused() -> None:
    async def work(number: int) -> int:
        return number

    with pytest.raises(ValueError, match="limit must be at least 1"):
        await anext(in_order(Source(1), work, limit=0))


async def _collect(stream: AsyncIterator[int], into: list[int]) -> None:
    async for result in stream:
        into.append(result)
