"""The one lane every operation on texts takes: cache → prepare → batch → finish, timed once.

The cache sits in front (``service.cache.texts``): hits return before batching and only misses
go on. A batched model's misses are prepared (tokenized and checked), submitted to the model
operation's batcher, and finished; a static model's (word2vec, whose lookups cost less than a
cache read or a queue) run all three steps at once, uncached, and never wait behind the
contextual models' batches. Tokenizing, finishing and static runs happen on the event loop when
tiny (``INLINE_CHARS``) and on a pool of worker threads otherwise. The request's ``Timing`` is
built here and nowhere else, from the stages as they ran, and recorded in the metrics.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from service.batching import BatchTiming, DynamicBatcher
from service.cache.keys import KeyScope, options_digest
from service.cache.texts import TextCache
from service.domain import CachePolicy, Timing
from service.errors import BatchFailed, InvalidArgument, ServiceError
from service.metrics import Metrics
from service.operations import TextOperation
from service.registry.served import ServedModel

log = logging.getLogger(__name__)

T = TypeVar("T")
ItemT = TypeVar("ItemT")
StateT = TypeVar("StateT")
ResultT = TypeVar("ResultT")

INLINE_CHARS = 1000
"""Tokenizing, looking up or finishing texts of this many characters in all takes less than the
hop to a worker thread and back (tens of µs against ~100 µs here), so it runs on the event loop;
longer work goes to the workers, where it neither blocks the loop nor waits behind it."""


class Lane:
    """Runs operations for every model; one per server."""

    def __init__(
        self, cache: TextCache | None, metrics: Metrics | None, worker_threads: int
    ) -> None:
        self.cache = cache
        self.metrics = metrics
        self.workers = ThreadPoolExecutor(worker_threads, thread_name_prefix="prepare")

    async def run(
        self,
        served: ServedModel,
        operation: TextOperation[ItemT, StateT, ResultT],
        texts: Sequence[str],
        policy: CachePolicy,
        started: float,
        deadline: float | None,
    ) -> tuple[list[ResultT], Timing]:
        """Each text's result, in order, and where the request's time went."""
        batcher = served.batcher(operation.name)

        async def compute(indices: list[int]) -> tuple[list[ResultT], Timing]:
            if batcher is None:
                return await self._at_once(operation, [texts[index] for index in indices])
            return await self._batched(operation, texts, indices, batcher, deadline)

        codec = operation.codec
        if self.cache is None or codec is None or batcher is None or policy is CachePolicy.BYPASS:
            results, timing = await compute(list(range(len(texts))))
        else:
            scope = _scope(served, operation.name, operation.cache_options())
            results, timing = await self.cache.serve(texts, scope, codec, policy, compute, deadline)
        timing.total_s = time.perf_counter() - started
        if self.metrics is not None and operation.recorded:
            cached = sum(1 for result in results if getattr(result, "cached", False))
            self.metrics.observe_request(
                served.spec.name,
                operation.name,
                timing,
                len(results) - cached,
                cached,
                batched=batcher is not None,
            )
        return results, timing

    async def _batched(
        self,
        operation: TextOperation[ItemT, StateT, ResultT],
        texts: Sequence[str],
        indices: list[int],
        batcher: DynamicBatcher[ItemT, StateT],
        deadline: float | None,
    ) -> tuple[list[ResultT], Timing]:
        """Prepare → one queue submission → finish."""
        chosen = [texts[index] for index in indices]
        chars = sum(map(len, chosen))
        try:
            items, tokenizing = await self.run_step(lambda: operation.prepare(chosen), chars)
        except InvalidArgument:
            if len(chosen) < len(texts):  # name the bad text by the caller's own index
                await self.run_step(lambda: operation.prepare(texts))
            raise
        states, batch = await _submitted(batcher, items, deadline)
        finished, finishing = await self.run_step(
            lambda: operation.finish(items, states), 0 if operation.light_finish else chars
        )
        return finished.results, Timing(
            queue_s=batch.queue_s,
            tokenization_s=tokenizing,
            inference_s=max(0.0, batch.execute_s - finished.in_batch_s),
            postprocess_s=finishing + finished.in_batch_s,
        )

    async def _at_once(
        self, operation: TextOperation[ItemT, StateT, ResultT], texts: list[str]
    ) -> tuple[list[ResultT], Timing]:
        """All three steps in one go, with no queue (static models, tokenizing)."""

        def steps() -> tuple[list[ResultT], Timing]:
            started = time.perf_counter()
            items = operation.prepare(texts)
            prepared = time.perf_counter()
            states = list(operation.execute(items))
            executed = time.perf_counter()
            finished = operation.finish(items, states)
            return finished.results, Timing(
                tokenization_s=prepared - started,
                inference_s=max(0.0, executed - prepared - finished.in_batch_s),
                postprocess_s=time.perf_counter() - executed + finished.in_batch_s,
            )

        (results, timing), _ = await self.run_step(steps, sum(map(len, texts)))
        return results, timing

    async def run_step(
        self, function: Callable[[], T], chars: int | None = None
    ) -> tuple[T, float]:
        """One step of a request, timed: on the event loop itself when it works on ``chars``
        characters of text or fewer (``INLINE_CHARS``: the hop would cost more), else on the
        worker pool (``chars`` None: always there)."""
        started = time.perf_counter()
        if chars is not None and chars <= INLINE_CHARS:
            result = function()
        else:
            result = await asyncio.get_running_loop().run_in_executor(self.workers, function)
        return result, time.perf_counter() - started

    def close(self) -> None:
        self.workers.shutdown(wait=True)


async def _submitted(
    batcher: DynamicBatcher[ItemT, StateT], items: list[ItemT], deadline: float | None
) -> tuple[list[StateT], BatchTiming]:
    """The batch results of ``items``; a runtime failure fails only this batch's calls, as
    UNAVAILABLE (the next batch may well succeed)."""
    try:
        return await batcher.submit_timed(items, deadline)
    except ServiceError:
        raise
    except Exception as error:
        log.error("%s failed on a batch", batcher.name, exc_info=error)
        raise BatchFailed(
            f"the model {batcher.name} failed on this batch ({type(error).__name__}: "
            f"{error}); retry"
        ) from error


def _scope(served: ServedModel, operation: str, options: dict[str, Any]) -> KeyScope:
    """Everything in a cache key but the text (built only when a cache is read)."""
    spec = served.spec
    return KeyScope(
        spec.name,
        spec.version,
        operation,
        served.fingerprints[operation],
        options_digest(options),
    )
