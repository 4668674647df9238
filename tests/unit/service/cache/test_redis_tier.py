"""The Redis tier against real redis-server processes: batches, expiry, faults, recovery."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

import pytest

from service.cache.breaker import BreakerConfig
from service.cache.redis_tier import RedisCache, connect
from tests.redis_servers import RedisClusterServers, RedisServer

FAST_BREAKER = BreakerConfig(failures_to_open=2, open_s=0.3)


def tier(url: str, cluster: bool = False) -> RedisCache:
    return RedisCache(connect(url, cluster, 0.2), timeout_s=0.2, where=url, breaker=FAST_BREAKER)


async def test_batches_round_trip_with_expiry(redis_server: RedisServer) -> None:
    cache = tier(redis_server.url)
    items = [(f"emb:v1:test:{i}", bytes([i]) * 100) for i in range(50)]
    await cache.set_many(items, ttl_s=30)
    keys = [key for key, _ in items]
    assert await cache.get_many([*keys, "emb:v1:absent"]) == [v for _, v in items] + [None]
    with redis_server.client() as direct:
        assert 25 <= direct.ttl(keys[0]) <= 30
    await cache.close()


async def test_entries_expire(redis_server: RedisServer) -> None:
    cache = tier(redis_server.url)
    await cache.set_many([("emb:v1:short", b"x")], ttl_s=1)
    assert await cache.get_many(["emb:v1:short"]) == [b"x"]
    await asyncio.sleep(1.2)
    assert await cache.get_many(["emb:v1:short"]) == [None]
    await cache.close()


async def test_a_value_of_another_type_reads_as_a_miss(redis_server: RedisServer) -> None:
    with redis_server.client() as direct:
        direct.rpush("emb:v1:list", b"a")  # MGET answers nil for a non-string
    cache = tier(redis_server.url)
    assert await cache.get_many(["emb:v1:list"]) == [None]
    assert cache.counters.read_faults == 0
    await cache.close()


async def test_redis_down_reads_as_misses_then_recovers(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.cache")
    cache = tier(redis_server.url)
    await cache.set_many([("emb:v1:a", b"1")], ttl_s=60)
    redis_server.kill()
    started = time.perf_counter()
    for _ in range(10):
        assert await cache.get_many(["emb:v1:a"]) is None
        await cache.set_many([("emb:v1:b", b"2")], ttl_s=60)
    assert time.perf_counter() - started < 2.0  # refused at once, then skipped while open
    opened = cache.breaker.is_open
    assert opened
    assert cache.counters.opened == 1
    assert cache.counters.skipped > 0
    faults = [r for r in caplog.records if "Redis cache at" in r.getMessage()]
    assert len(faults) == 1, "the fault is logged once, not once per call"
    redis_server.restart()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        await cache.set_many([("emb:v1:c", b"3")], ttl_s=60)
        if not cache.breaker.is_open:
            break
        await asyncio.sleep(0.1)
    assert await cache.get_many(["emb:v1:c"]) == [b"3"]
    assert any("answers again" in r.getMessage() for r in caplog.records)
    await cache.close()


async def test_a_stalled_redis_costs_at_most_the_timeout(redis_server: RedisServer) -> None:
    cache = tier(redis_server.url)
    await cache.set_many([("emb:v1:a", b"1")], ttl_s=60)
    with redis_server.client() as direct:
        direct.client_pause(2000)  # every command waits 2 s
    started = time.perf_counter()
    assert await cache.get_many(["emb:v1:a"]) is None
    assert time.perf_counter() - started < 0.2 + 0.15
    assert cache.counters.read_faults == 1
    await cache.close()


async def test_cluster_spreads_keys_and_reads_them_back(
    redis_cluster: RedisClusterServers,
) -> None:
    cache = tier(redis_cluster.url, cluster=True)
    items = [(f"emb:v1:model:1:embed:{i:04d}", f"value {i}".encode()) for i in range(60)]
    await cache.set_many(items, ttl_s=60)
    assert await cache.get_many([key for key, _ in items]) == [value for _, value in items]
    with redis_cluster.client() as direct:
        per_node = [node.redis_connection.dbsize() for node in direct.get_primaries()]
    assert len(per_node) == 3 and all(count > 0 for count in per_node), per_node
    await cache.close()


async def test_a_full_redis_loses_writes_and_nothing_else(tmp_path: Path) -> None:
    with RedisServer(tmp_path, ["--maxmemory", "2mb", "--maxmemory-policy", "noeviction"]) as full:
        cache = tier(full.url)
        await cache.set_many([("emb:v1:small", b"kept")], ttl_s=60)
        big = [(f"emb:v1:big:{i}", bytes(200_000)) for i in range(40)]  # 8 MB > 2 MB
        for start in range(0, len(big), 5):
            await cache.set_many(big[start : start + 5], ttl_s=60)  # never raises
        assert cache.counters.full >= 1  # OOM command not allowed
        assert not cache.breaker.is_open  # Redis still answers
        assert await cache.get_many(["emb:v1:small"]) == [b"kept"]
        await cache.close()
