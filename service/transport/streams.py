"""Work on the messages of one stream concurrently, answering in order.

A stream that awaits each message before reading the next never batches with itself: one
client with a stream is served like one client with one call at a time. ``in_order`` keeps up to
``limit`` messages in flight, so they reach the batcher together, and still yields the results
in the order the messages came.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable
from typing import TypeVar

Message = TypeVar("Message")
Result = TypeVar("Result")


async def in_order(
    messages: AsyncIterable[Message],
    work: Callable[[Message], Awaitable[Result]],
    limit: int,
) -> AsyncGenerator[Result, None]:
    """``work(message)`` for each message, up to ``limit`` at once, results in message order.

    Backpressure: a message is read only while fewer than ``limit`` are pending (started and
    not yet taken by the consumer), so a fast sender waits in gRPC's flow control, not here.
    The first failure in message order is raised after the results before it were yielded;
    reading stops there. When the consumer stops (an error, a cancelled call, ``aclose``),
    every pending work and the reading are cancelled and awaited: nothing outlives the stream.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    slots = asyncio.Semaphore(limit)
    started: asyncio.Queue[asyncio.Future[Result] | None] = asyncio.Queue()
    pending: set[asyncio.Future[Result]] = set()

    async def read() -> None:
        """Start the work of each message as a slot frees; ``None`` marks the end (or a
        failure to read, which ``reader`` then holds)."""
        try:
            async for message in messages:
                future = asyncio.ensure_future(work(message))
                pending.add(future)
                future.add_done_callback(pending.discard)
                started.put_nowait(future)
                await slots.acquire()
        finally:
            started.put_nowait(None)

    await slots.acquire()  # the first message's slot: each read holds the next one's
    reader = asyncio.create_task(read())
    try:
        while (future := await started.get()) is not None:
            result = await future
            slots.release()
            yield result
        await reader  # raises what ended the reading, if it was not the end of the stream
    finally:
        reader.cancel()
        for future in pending:
            future.cancel()
        await asyncio.gather(reader, *pending, return_exceptions=True)
        while not started.empty():  # started, failed and never awaited: retrieve the error
            if (left := started.get_nowait()) is not None and left.done() and not left.cancelled():
                left.exception()
