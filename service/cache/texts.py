"""The cache in front of a batched operation: per-text lookups, single flight, write-back.

A request's texts are keyed one by one. Hits come from the in-process tier, then from Redis (a
Redis hit is copied into memory). Only the misses are computed, each distinct text once, and
results return in input order. A text that another request is computing right now is not
computed again: the request waits for that result (single flight); if that computation fails
or is abandoned, the waiting request computes the text itself. A flight covers the tier reads
too, so a second request never recomputes a text whose first request is still reading Redis.
New results go into memory before the reply and to Redis behind it (write-behind), so Redis
never delays a response.
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
    decode_embedding,
    decode_fill_mask,
    encode_embedding,
    encode_fill_mask,
)
from service.domain import CachePolicy, EmbeddingResult, FillMaskResult, Timing
from service.errors import DeadlineExceeded

log = logging.getLogger(__name__)

ResultT = TypeVar("ResultT")
T = TypeVar("T")

# Given the request's indices of the texts to compute, their results (in that order) and timing.
Compute = Callable[[list[int]], Awaitable[tuple[list[ResultT], Timing]]]

# Bytes of values waiting to be written to Redis; beyond it new writes are dropped (and
# counted), not queued, so a slow Redis cannot grow the server's memory.
MAX_PENDING_WRITE_BYTES = 64 * 2**20
# Values larger than this in all (per request) are encoded or decoded on a thread, not on the
# event loop (per-token vectors of a long request reach megabytes).
OFFLOAD_BYTES = 256 * 2**10


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
    """Texts not written to Redis because too many bytes of writes were pending."""


class FlightAbandoned(Exception):
    """The request computing a text failed or went away; whoever waited computes it anew."""


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
        self._pending_bytes = 0

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
        size = sum(len(value) for _, value in items)
        if self._pending_bytes + size > MAX_PENDING_WRITE_BYTES:
            self.counters.writes_dropped += len(items)
            if self.observer is not None:
                self.observer.on_write_dropped(len(items))
            return
        self._pending_bytes += size
        task = asyncio.create_task(self._write(self.redis, items, size))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)

    async def _write(self, tier: CacheTier, items: list[tuple[str, bytes]], size: int) -> None:
        started = time.perf_counter()
        try:
            await tier.set_many(items, self.ttl_s)
        finally:
            self._pending_bytes -= size
        if self.observer is not None:
            self.observer.on_write(tier.name, len(items), time.perf_counter() - started)

    async def drain(self, timeout_s: float | None = None) -> None:
        """Wait (at most ``timeout_s``) for the pending Redis writes."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=timeout_s)

    async def close(self, timeout_s: float = 1.0) -> None:
        """Send what is pending (within ``timeout_s``), then close the tiers."""
        await self.drain(timeout_s)
        unfinished = list(self._writes)
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
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
        deadline: float | None = None,
    ) -> tuple[list[ResultT], Timing]:
        """Each text's result, in input order: cached where possible, computed where not.

        ``policy`` is USE or REFRESH (REFRESH reads nothing, joins no other request and
        overwrites); BYPASS never gets here. ``compute`` is called with request indices only,
        at most twice (the second time for texts whose single flight was abandoned).
        ``deadline`` (``time.monotonic()``) bounds the wait for another request's flight.
        """
        keys = [scope.key(text) for text in texts]
        first: dict[str, int] = {}
        for index, key in enumerate(keys):
            first.setdefault(key, index)
        if policy is CachePolicy.REFRESH:
            results: dict[str, ResultT] = {}
            timing = await self._compute(list(first), first, codec, compute, results)
            return [results[key] for key in keys], timing
        joined = {key: self._flights[key] for key in first if key in self._flights}
        own = [key for key in first if key not in joined]
        results, timing = await self._lead(own, first, codec, compute)
        retry = []
        for key, flight in joined.items():
            try:
                results[key] = await self._follow(flight, deadline)
                self.counters.shared += 1
            except FlightAbandoned:
                retry.append(key)
        if retry:
            again = await self._compute(retry, first, codec, compute, results)
            timing = timing.merged(again)
        return [results[key] for key in keys], timing

    async def _lead(
        self,
        keys: list[str],
        first: dict[str, int],
        codec: Codec[ResultT],
        compute: Compute[ResultT],
    ) -> tuple[dict[str, ResultT], Timing]:
        """Read ``keys`` from the tiers and compute what they lack, as these keys' single flight:
        a request asking for one of them meanwhile waits for this result instead."""
        results: dict[str, ResultT] = {}
        if not keys:
            return results, Timing()
        loop = asyncio.get_running_loop()
        flights: dict[str, asyncio.Future[Any]] = {}
        for key in keys:
            flights[key] = self._flights[key] = loop.create_future()
        try:
            results = await self._decode(codec, keys, await self._read(keys))
            missing = [key for key in keys if key not in results]
            self.counters.misses += len(missing)
            timing = Timing()
            if missing:
                timing = await self._compute(missing, first, codec, compute, results)
        except BaseException:
            for flight in flights.values():
                flight.set_exception(FlightAbandoned())
                flight.exception()  # retrieved: nobody may be waiting
            raise
        else:
            for key, flight in flights.items():
                flight.set_result(results[key])
        finally:
            for key, flight in flights.items():
                if self._flights.get(key) is flight:
                    del self._flights[key]
        return results, timing

    @staticmethod
    async def _follow(flight: asyncio.Future[Any], deadline: float | None) -> Any:
        """Another request's result for the same text, within this request's deadline."""
        if deadline is None:
            return await asyncio.shield(flight)
        try:
            return await asyncio.wait_for(asyncio.shield(flight), deadline - time.monotonic())
        except TimeoutError as error:
            raise DeadlineExceeded(
                "The deadline passed while an identical text of another request was being "
                "computed; retry with a longer deadline."
            ) from error

    async def _decode(
        self, codec: Codec[ResultT], keys: list[str], values: list[bytes | None]
    ) -> dict[str, ResultT]:
        """The values that decode; a damaged one is counted and left to be recomputed."""
        found = [(key, value) for key, value in zip(keys, values, strict=True) if value]

        def decode_all() -> list[ResultT | Exception]:
            decoded: list[ResultT | Exception] = []
            for _, value in found:
                try:
                    decoded.append(codec.decode(value))
                except Exception as error:  # noqa: BLE001 - a damaged value is only a miss
                    decoded.append(error)
            return decoded

        decoded = await _maybe_offloaded(sum(len(value) for _, value in found), decode_all)
        results: dict[str, ResultT] = {}
        for (key, _), result in zip(found, decoded, strict=True):
            if isinstance(result, Exception):
                self.counters.corrupt += 1
                log.debug("cache value of %s is damaged (%s); recomputing", key, result)
            else:
                results[key] = result
        return results

    async def _compute(
        self,
        keys: list[str],
        first: dict[str, int],
        codec: Codec[ResultT],
        compute: Compute[ResultT],
        results: dict[str, ResultT],
    ) -> Timing:
        """Compute ``keys`` (into ``results``) and store them in the tiers."""
        computed, timing = await compute([first[key] for key in keys])
        self.counters.computed += len(keys)
        results.update(zip(keys, computed, strict=True))
        size = sum(_result_bytes(result) for result in computed)

        def encode_all() -> list[bytes | None]:
            return [_encoded(codec, result) for result in computed]

        encoded = await _maybe_offloaded(size, encode_all)
        items = [
            (key, value) for key, value in zip(keys, encoded, strict=True) if value is not None
        ]
        await self._store(items)
        return timing


def _encoded(codec: Codec[ResultT], result: ResultT) -> bytes | None:
    try:
        return codec.encode(result)
    except Exception:  # a result that cannot be stored is served uncached
        log.exception("a result could not be encoded for the cache; it is not stored")
        return None


def _result_bytes(result: object) -> int:
    vectors = getattr(result, "vectors", None)
    return int(vectors.nbytes) if vectors is not None else 0


async def _maybe_offloaded(size_bytes: int, work: Callable[[], list[T]]) -> list[T]:
    """``work`` at once when small; on a thread when it would hold up the event loop."""
    if size_bytes < OFFLOAD_BYTES:
        return work()
    return await asyncio.to_thread(work)
