"""The in-process tier: bounded in bytes, least recently used out first, expiry honoured."""

from __future__ import annotations

import pytest

from service.cache import memory as memory_module
from service.cache.memory import ENTRY_OVERHEAD_BYTES, MemoryCache


def cost(key: str, value: bytes) -> int:
    return len(key) + len(value) + ENTRY_OVERHEAD_BYTES


async def test_hits_and_misses_in_order() -> None:
    cache = MemoryCache(10_000)
    await cache.set_many([("a", b"1"), ("b", b"2")], ttl_s=60)
    assert await cache.get_many(["b", "x", "a"]) == [b"2", None, b"1"]


async def test_bounded_in_bytes_least_recently_used_first() -> None:
    value = b"v" * 100
    cache = MemoryCache(3 * cost("k0", value))
    await cache.set_many([(f"k{i}", value) for i in range(3)], ttl_s=60)
    assert await cache.get_many(["k0"]) == [value]  # k0 is now the most recent
    await cache.set_many([("k3", value)], ttl_s=60)
    assert await cache.get_many(["k0", "k1", "k2", "k3"]) == [value, None, value, value]
    assert cache.size_bytes == 3 * cost("k0", value) <= cache.capacity_bytes
    assert len(cache) == 3


async def test_overwrite_keeps_the_byte_count_right() -> None:
    cache = MemoryCache(10_000)
    await cache.set_many([("a", b"x" * 10)], ttl_s=60)
    await cache.set_many([("a", b"y" * 20)], ttl_s=60)
    assert cache.size_bytes == cost("a", b"y" * 20)
    assert await cache.get_many(["a"]) == [b"y" * 20]


async def test_a_value_larger_than_the_tier_is_not_kept() -> None:
    cache = MemoryCache(200)
    await cache.set_many([("small", b"s")], ttl_s=60)
    await cache.set_many([("big", b"b" * 500)], ttl_s=60)
    assert await cache.get_many(["small", "big"]) == [b"s", None]


async def test_expired_entries_read_as_misses(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr(memory_module, "time", type("Clock", (), {"monotonic": lambda: now[0]}))
    cache = MemoryCache(10_000)
    await cache.set_many([("a", b"1")], ttl_s=5)
    now[0] += 4.9
    assert await cache.get_many(["a"]) == [b"1"]
    now[0] += 0.2
    assert await cache.get_many(["a"]) == [None]
    assert cache.size_bytes == 0
