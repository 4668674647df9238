"""The shared tier: Redis (one node, TLS, or a Redis Cluster) through ``redis.asyncio``.

Every call is one round trip for the whole batch (``MGET``; a pipeline of ``SET EX``), bounded
by a timeout, behind a circuit breaker. On a Cluster, redis-py groups the keys per node
(``mget_nonatomic`` and the cluster pipeline). A fault never reaches the caller: it reads as
no answer (the caller computes), is counted, and is logged once when the circuit opens (and
once when it closes again).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.backoff import NoBackoff
from redis.exceptions import OutOfMemoryError
from redis.retry import Retry

from service.cache.breaker import BreakerConfig, CircuitBreaker

log = logging.getLogger(__name__)

# Writes happen behind the reply, so they may take longer than reads before they count as faults.
WRITE_TIMEOUT_FACTOR = 10


@dataclass
class RedisCounters:
    """Faults of the Redis tier, for tests and metrics."""

    read_faults: int = 0
    write_faults: int = 0
    skipped: int = 0
    """Calls not made because the circuit was open."""
    opened: int = 0
    """Times the circuit opened."""
    full: int = 0
    """Writes refused because Redis was out of memory (counted in ``write_faults`` too)."""


def connect(url: str, cluster: bool, timeout_s: float) -> Redis | RedisCluster:
    """A client for ``url`` (``redis://``, ``rediss://`` for TLS, password in the URL).

    Connections are made lazily, so a Redis that is down at start only degrades the cache.
    One retry on a fresh connection covers a pool that went stale when Redis restarted.
    """
    options: dict[str, Any] = {
        "socket_timeout": timeout_s,
        "socket_connect_timeout": timeout_s,
        "decode_responses": False,
    }
    if cluster:
        return RedisCluster.from_url(url, retry=Retry(NoBackoff(), 1), **options)
    return Redis.from_url(url, retry=Retry(NoBackoff(), 1), **options)


def _redacted(url: str) -> str:
    scheme, _, rest = url.partition("://")
    return f"{scheme}://{rest.rpartition('@')[2]}"


class RedisCache:
    """The Redis tier; see the module docstring."""

    name = "redis"

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        timeout_s: float,
        where: str = "redis",
        breaker: BreakerConfig | None = None,
    ) -> None:
        self.client = client
        self.timeout_s = timeout_s
        self.where = _redacted(where)
        self.breaker = CircuitBreaker(breaker)
        self.counters = RedisCounters()

    @property
    def cluster(self) -> bool:
        return isinstance(self.client, RedisCluster)

    def _fault(self, operation: str, error: BaseException) -> None:
        if operation == "read":
            self.counters.read_faults += 1
        else:
            self.counters.write_faults += 1
        if self.breaker.failed():
            self.counters.opened += 1
            log.warning(
                "Redis cache at %s failed (%s on %s: %s); serving from the models and retrying "
                "every %g s",
                self.where,
                type(error).__name__,
                operation,
                error,
                self.breaker.config.open_s,
            )

    def _full(self, error: OutOfMemoryError) -> None:
        """Redis refused a write for lack of memory (a ``noeviction`` policy): counted, logged
        once; reads go on."""
        self.counters.write_faults += 1
        self.counters.full += 1
        if self.counters.full == 1:
            log.warning(
                "Redis cache at %s is full and refuses writes (%s); results are not shared "
                "until it has room: set maxmemory-policy allkeys-lru",
                self.where,
                error,
            )

    def _recovered(self) -> None:
        if self.breaker.succeeded():
            log.info("Redis cache at %s answers again; caching resumed", self.where)

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None] | None:
        if not keys:
            return []
        if not self.breaker.allow():
            self.counters.skipped += 1
            return None
        try:
            async with asyncio.timeout(self.timeout_s):
                if isinstance(self.client, RedisCluster):
                    values = await self.client.mget_nonatomic(list(keys))
                else:
                    values = await self.client.mget(list(keys))
            if not isinstance(values, list) or len(values) != len(keys):
                raise ValueError(f"MGET of {len(keys)} keys answered {type(values).__name__}")
        except asyncio.CancelledError:
            self.breaker.abandoned()
            raise
        except Exception as error:  # noqa: BLE001 - a cache fault must never fail a request
            self._fault("read", error)
            return None
        self._recovered()
        return [value if isinstance(value, bytes) else None for value in values]

    async def set_many(self, items: Sequence[tuple[str, bytes]], ttl_s: int) -> None:
        if not items:
            return
        if not self.breaker.allow():
            self.counters.skipped += 1
            return
        try:
            async with asyncio.timeout(self.timeout_s * WRITE_TIMEOUT_FACTOR):
                pipe = self.client.pipeline(transaction=False)
                for key, value in items:
                    pipe.set(key, value, ex=ttl_s)
                await pipe.execute()
        except asyncio.CancelledError:
            self.breaker.abandoned()
            raise
        except OutOfMemoryError as error:
            self._full(error)  # Redis answers: reads still work, so the circuit stays closed
        except Exception as error:  # noqa: BLE001 - a cache fault must never fail a request
            self._fault("write", error)
            return
        self._recovered()

    async def close(self) -> None:
        try:
            await self.client.aclose()
        except Exception as error:  # noqa: BLE001 - closing a broken connection is not an error
            log.debug("closing the Redis client: %s", error)
