"""The cache in front of a batched operation: per-text lookups, single flight, write-back.

A request's texts are keyed one by one. Hits come from the in-process tier, then from Redis (a
Redis hit is copied into memory). Only the misses are computed, each distinct text once, and
results return in input order. A text that another request is computing right now is not
computed again: the request waits for that result (single flight); if that computation fails
or is abandoned, the waiting request computes the text itself. New results go into memory
before the reply and to Redis behind it (write-behind), so Redis never delays a response.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from service.cache.keys import KeyScope
from service.cache.tier import CacheTier
from service.cache.values import (
    CorruptValue,
    decode_embedding,
    decode_fill_mask,
    encode_embedding,
    encode_fill_mask,
)
from service.domain import CachePolicy, EmbeddingResult, FillMaskResult, Timing

log = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")

# Given the request's indices of the texts to compute, their results (in that order) and timing.
Compute = Callable[[list[int]], Awaitable[tuple[list[ResultT], Timing]]]

# Redis writes waiting to be sent; beyond it new writes are dropped (and counted), not queued.
MAX_PENDING_WRITES = 256


@dataclass(frozen=True)
class Codec(Generic[ResultT]):
    """How one operation's results become cached values and back."""

    encode: Callable[[ResultT], bytes]
    decode: Callable[[bytes], ResultT]  # raises CorruptValue; the result is marked cached


EMBEDDING_CODEC: Codec[EmbeddingResult] = Codec(encode_embedding, decode_embedding)
FILL_MASK_CODEC: Codec[FillMaskResult] = Codec(encode_fill_mask, decode_fill_mask)


class CacheObserver(Protocol):
    """Hooks for metrics. Called on the event loop; must be quick and must not raise."""

    def on_lookup(self, tier: str, hits: int, misses: int, errors: int, seconds: float) -> None:
        """One batched read of ``tier``: texts found, not found, or not answered (a fault)."""

    def on_write(self, tier: str, count: int, seconds: float) -> None:
        """One batched write of ``count`` texts to ``tier`` finished."""

    def on_write_dropped(self, count: int) -> None:
        """``count`` texts were not written to Redis: too many writes were pending."""


@dataclass
class CacheCounters:
    """What the cache did, in texts (distinct texts of a request), for tests and metrics."""

    memory_hits: int = 0
    redis_hits: int = 0
    misses: int = 0
    corrupt: int = 0
    """Values that failed their header, length or checksum check (then recomputed)."""
    shared: int = 0
    """Misses answered by another request's computation of the same text (single flight)."""
    computed: int = 0
    writes_dropped: int = 0
    """Texts not written to Redis because too many writes were pending."""


class FlightAbandoned(Exception):
    """The request computing a text failed or went away; whoever waited computes it anew."""


def _text_timing(total: Timing, part: Timing) -> Timing:
    return Timing(
        queue_s=max(total.queue_s, part.queue_s),
        tokenization_s=total.tokenization_s + part.tokenization_s,
        inference_s=total.inference_s + part.inference_s,
        postprocess_s=total.postprocess_s + part.postprocess_s,
    )


class TextCache:
    """The tiers (either may be absent) and the in-flight texts; one per server."""

    def __init__(
        self,
        memory: CacheTier | None,
        redis: CacheTier | None,
        ttl_s: int,
        observer: CacheObserver | None = None,
    ) -> None:
        self.memory = memory
        self.redis = redis
        self.ttl_s = ttl_s
        self.observer = observer
        self.counters = CacheCounters()
        self._flights: dict[str, asyncio.Future[Any]] = {}
        self._writes: set[asyncio.Task[None]] = set()

    @property
    def tiers(self) -> list[str]:
        return [tier.name for tier in (self.memory, self.redis) if tier is not None]

    # -- tiers ----------------------------------------------------------------------------
    async def _lookup(self, tier: CacheTier, keys: list[str]) -> list[bytes | None]:
        started = time.perf_counter()
        found = await tier.get_many(keys)
        hits = 0 if found is None else sum(value is not None for value in found)
        if self.observer is not None:
            errors = len(keys) if found is None else 0
            misses = len(keys) - hits - errors
            self.observer.on_lookup(tier.name, hits, misses, errors, time.perf_counter() - started)
        return [None] * len(keys) if found is None else found

    async def _read(self, keys: list[str]) -> list[bytes | None]:
        found: list[bytes | None] = [None] * len(keys)
        if self.memory is not None:
            found = await self._lookup(self.memory, keys)
            self.counters.memory_hits += sum(value is not None for value in found)
        if self.redis is not None:
            lacking = [index for index, value in enumerate(found) if value is None]
            if lacking:
                remote = await self._lookup(self.redis, [keys[index] for index in lacking])
                promoted = []
                for index, value in zip(lacking, remote, strict=True):
                    if value is not None:
                        found[index] = value
                        promoted.append((keys[index], value))
                self.counters.redis_hits += len(promoted)
                if self.memory is not None and promoted:
                    await self.memory.set_many(promoted, self.ttl_s)
        return found

    async def _store(self, items: list[tuple[str, bytes]]) -> None:
        """Memory now; Redis in the background, never delaying the caller."""
        if self.memory is not None:
            await self.memory.set_many(items, self.ttl_s)
        if self.redis is None or not items:
            return
        if len(self._writes) >= MAX_PENDING_WRITES:
            self.counters.writes_dropped += len(items)
            if self.observer is not None:
                self.observer.on_write_dropped(len(items))
            return
        task = asyncio.create_task(self._write(self.redis, items))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, tier: CacheTier, items: list[tuple[str, bytes]]) -> None:
        started = time.perf_counter()
        await tier.set_many(items, self.ttl_s)
        if self.observer is not None:
            self.observer.on_write(tier.name, len(items), time.perf_counter() - started)

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait (at most ``timeout_s``) for the pending Redis writes."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=timeout_s)

    async def close(self, timeout_s: float = 1.0) -> None:
        """Send what is pending (within ``timeout_s``), then close the tiers."""
        await self.drain(timeout_s)
        for task in list(self._writes):
            task.cancel()
        for tier in (self.redis, self.memory):
            if tier is not None:
                await tier.close()

    # -- the request path -----------------------------------------------------------------
    async def serve(
        self,
        texts: Sequence[str],
        scope: KeyScope,
        codec: Codec[ResultT],
        policy: CachePolicy,
        compute: Compute[ResultT],
    ) -> tuple[list[ResultT], Timing]:
        """Each text's result, in input order: cached where possible, computed where not.

        ``policy`` is USE or REFRESH (REFRESH reads nothing and overwrites); BYPASS never gets
        here. ``compute`` is called with request indices only, at most twice (the second time
        for texts whose single flight was abandoned).
        """
        keys = [scope.key(text) for text in texts]
        first: dict[str, int] = {}
        for index, key in enumerate(keys):
            first.setdefault(key, index)
        results: dict[str, ResultT] = {}
        if policy is CachePolicy.USE:
            distinct = list(first)
            for key, value in zip(distinct, await self._read(distinct), strict=True):
                if value is None:
                    continue
                try:
                    results[key] = codec.decode(value)
                except CorruptValue as error:
                    self.counters.corrupt += 1
                    log.debug("cache value of %s is corrupt (%s); recomputing", key, error)
        missing = [key for key in first if key not in results]
        self.counters.misses += len(missing)
        joined = {key: self._flights[key] for key in missing if key in self._flights}
        lead = [key for key in missing if key not in joined]
        timing = Timing()
        if lead:
            timing = await self._compute(lead, first, codec, compute, results)
        retry = []
        for key, flight in joined.items():
            try:
                results[key] = await asyncio.shield(flight)
                self.counters.shared += 1
            except FlightAbandoned:
                retry.append(key)
        if retry:
            again = await self._compute(retry, first, codec, compute, results)
            timing = _text_timing(timing, again)
        return [results[key] for key in keys], timing

    async def _compute(
        self,
        keys: list[str],
        first: dict[str, int],
        codec: Codec[ResultT],
        compute: Compute[ResultT],
        results: dict[str, ResultT],
    ) -> Timing:
        """Compute ``keys`` as their single flight: others asking meanwhile wait for these."""
        loop = asyncio.get_running_loop()
        flights: dict[str, asyncio.Future[Any]] = {}
        for key in keys:
            flights[key] = self._flights[key] = loop.create_future()
        try:
            computed, timing = await compute([first[key] for key in keys])
        except BaseException:
            for flight in flights.values():
                flight.set_exception(FlightAbandoned())
                flight.exception()  # retrieved: nobody may be waiting
            raise
        else:
            for key, result in zip(keys, computed, strict=True):
                flights[key].set_result(result)
                results[key] = result
        finally:
            for key, flight in flights.items():
                if self._flights.get(key) is flight:
                    del self._flights[key]
        self.counters.computed += len(keys)
        pairs = zip(keys, computed, strict=True)
        await self._store([(key, codec.encode(result)) for key, result in pairs])
        return timing
