"""The request path of the cache: partial hits in input order, single flight, corrupt values."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import numpy as np
import pytest

from service.cache.keys import KeyScope
from service.cache.memory import MemoryCache
from service.cache.texts import EMBEDDING_CODEC, TextCache
from service.domain import CachePolicy, EmbeddingResult, Timing
from service.errors import DeadlineExceeded

SCOPE = KeyScope("bert", 1, "embed", "f" * 16, "0" * 16)


class Model:
    """Computes a text's 'embedding' (its length and first character), counting what it computes."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.computed: list[str] = []
        self.delay_s = delay_s
        self.fail_next = False

    def compute_for(self, texts: list[str]):
        async def compute(indices: list[int]) -> tuple[list[EmbeddingResult], Timing]:
            chosen = [texts[index] for index in indices]
            self.computed += chosen
            await asyncio.sleep(self.delay_s)
            if self.fail_next:
                self.fail_next = False
                raise RuntimeError("the batch failed")
            return [embedding(text) for text in chosen], Timing(inference_s=0.001)

        return compute


def embedding(text: str) -> EmbeddingResult:
    return EmbeddingResult(np.asarray([len(text), ord(text[0])], np.float32), tuple(text.split()))


async def serve(
    cache: TextCache, model: Model, texts: list[str], policy: CachePolicy = CachePolicy.USE
) -> list[EmbeddingResult]:
    results, _ = await cache.serve(texts, SCOPE, EMBEDDING_CODEC, policy, model.compute_for(texts))
    return results


def memory_cache() -> TextCache:
    return TextCache(MemoryCache(1 << 20), None, ttl_s=60)


async def test_partial_hits_keep_input_order_and_compute_only_misses() -> None:
    cache, model = memory_cache(), Model()
    await serve(cache, model, ["a b", "c", "dd e"])
    model.computed.clear()
    texts = ["new one", "c", "a b", "another", "dd e"]
    results = await serve(cache, model, texts)
    assert model.computed == ["new one", "another"]
    assert [r.cached for r in results] == [False, True, True, False, True]
    for text, result in zip(texts, results, strict=True):
        assert result.vectors.tolist() == embedding(text).vectors.tolist()
        assert result.tokens == tuple(text.split())
    assert cache.counters.memory_hits == 3


async def test_identical_texts_in_one_request_are_computed_once() -> None:
    cache, model = memory_cache(), Model()
    results = await serve(cache, model, ["x", "y", "x", "x"])
    assert model.computed == ["x", "y"]
    assert [r.vectors.tolist() for r in results] == [embedding(t).vectors.tolist() for t in "xyxx"]


async def test_single_flight_across_concurrent_requests() -> None:
    cache, model = memory_cache(), Model(delay_s=0.05)
    batches = [["s1", "s2", "s3"], ["s2", "s3", "s4"], ["s3", "s1"]]
    results = await asyncio.gather(*(serve(cache, model, texts) for texts in batches))
    assert sorted(model.computed) == ["s1", "s2", "s3", "s4"]
    assert cache.counters.shared == 4  # s2, s3 of the second; s3, s1 of the third
    assert [r.tokens for r in results[2]] == [("s3",), ("s1",)]


async def test_a_failed_flight_is_recomputed_by_whoever_waited() -> None:
    cache, model = memory_cache(), Model(delay_s=0.05)
    model.fail_next = True
    first = asyncio.create_task(serve(cache, model, ["shared", "own"]))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(serve(cache, model, ["shared"]))
    with pytest.raises(RuntimeError):
        await first
    (result,) = await second
    assert result.tokens == ("shared",) and not result.cached
    assert model.computed == ["shared", "own", "shared"]


async def test_a_cancelled_leader_does_not_fail_the_followers() -> None:
    cache, model = memory_cache(), Model(delay_s=0.2)
    first = asyncio.create_task(serve(cache, model, ["t"]))
    await asyncio.sleep(0.01)
    second = asyncio.create_task(serve(cache, model, ["t"]))
    await asyncio.sleep(0.01)
    first.cancel()
    (result,) = await second
    assert result.tokens == ("t",)
    assert model.computed == ["t", "t"]


async def test_refresh_recomputes_and_overwrites() -> None:
    cache, model = memory_cache(), Model()
    await serve(cache, model, ["r"])
    results = await serve(cache, model, ["r"], CachePolicy.REFRESH)
    assert not results[0].cached and model.computed == ["r", "r"]
    assert (await serve(cache, model, ["r"]))[0].cached


async def test_corrupt_values_are_recomputed_and_overwritten() -> None:
    memory = MemoryCache(1 << 20)
    cache, model = TextCache(memory, None, ttl_s=60), Model()
    key = SCOPE.key("c")
    await memory.set_many([(key, b"EMBC garbage")], ttl_s=60)
    (result,) = await serve(cache, model, ["c"])
    assert not result.cached and cache.counters.corrupt == 1
    (stored,) = await memory.get_many([key])
    assert stored is not None and EMBEDDING_CODEC.decode(stored).tokens == ("c",)


async def test_a_follower_waits_no_longer_than_its_deadline() -> None:
    cache, model = memory_cache(), Model(delay_s=0.5)
    leader = asyncio.create_task(serve(cache, model, ["slow"]))
    await asyncio.sleep(0.01)
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        await cache.serve(
            ["slow"],
            SCOPE,
            EMBEDDING_CODEC,
            CachePolicy.USE,
            model.compute_for(["slow"]),
            deadline=time.monotonic() + 0.05,
        )
    assert time.monotonic() - started < 0.3
    assert (await leader)[0].tokens == ("slow",)  # the leader is not disturbed


async def test_a_flight_covers_the_tier_read() -> None:
    """A request that arrives while the first one still reads the (slow) shared tier waits
    for it instead of computing the same text again."""

    class SlowTier(MemoryCache):
        name = "redis"

        async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
            await asyncio.sleep(0.05)
            return await super().get_many(keys)

    cache, model = TextCache(None, SlowTier(1 << 20), ttl_s=60), Model()
    first = asyncio.create_task(serve(cache, model, ["read first"]))
    await asyncio.sleep(0.01)
    second = await serve(cache, model, ["read first"])
    await first
    assert model.computed == ["read first"]
    assert second[0].tokens == ("read", "first")
    await cache.drain(1)
