"""The cache through the real server over real channels, with real Redis servers.

The Redis tests run with ``cache_memory_mb=0``, so a hit can only come from Redis.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from export.bert.exporter import import_bert
from modelrepo import ModelSpec
from proto.embedding.v1 import embedding_pb2 as pb
from service.background import BackgroundServer, background_server
from service.batching import BatcherKey
from service.client import AsyncEmbeddingClient, EmbeddingClient
from tests.checkpoints import save_mlm_checkpoint
from tests.integration.harness import settings_for
from tests.redis_servers import RedisClusterServers, RedisServer

MODEL = "tiny-mlm"
TEXTS = ["the river bank is muddy", "the bank raised its rates", "a cat sat on the mat"]


class TextCounter:
    """Batch observer: how many texts reached each batcher (what the model computed)."""

    def __init__(self) -> None:
        self.texts: Counter[str] = Counter()

    def observer(self, key: BatcherKey) -> Any:
        counter = self

        class Observer:
            def on_batch(self, batch_size: int, *_: Any) -> None:
                counter.texts[key.operation] += batch_size

            def on_dropped(self, reason: str, count: int) -> None:
                pass

            def on_executed(self, seconds: float) -> None:
                pass

        return Observer()


@pytest.fixture(scope="module")
def repositories(imported: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``main``: tiny-mlm v1 and v2 (the same weights) and tiny-encoder; ``other``: a tiny-mlm v1
    exported from other weights, as a re-export under the same name and version would be."""
    root = tmp_path_factory.mktemp("cache-repos")
    main = root / "main"
    shutil.copytree(imported["models"], main)
    import_bert(imported[MODEL], main, MODEL, version=2)
    other = root / "other"
    import_bert(save_mlm_checkpoint(root / "other-mlm", seed=5), other, MODEL)
    return {"main": main, "other": other}


@contextmanager
def server_with(
    models: Path, counter: TextCounter | None = None, **settings: Any
) -> Iterator[BackgroundServer]:
    observers = counter.observer if counter is not None else None
    with background_server(settings_for(models, cache="on", **settings), observers) as server:
        yield server


def drain(server: BackgroundServer) -> None:
    """Wait for the write-behind Redis writes, so the next request can read them."""
    cache = server.app.cache
    assert cache is not None
    server.call(cache.drain(5))


def as_bytes(embedding: pb.Embedding) -> bytes:
    return np.asarray(embedding.values, dtype=np.float32).tobytes()


def documented_key(models: Path, version: int, text: str, operation: str = "embed") -> str:
    """The key as ``service/cache/keys.py`` documents it, derived here from spec.json by hand
    (options hash aside, which the test matches with a wildcard)."""
    spec_text = (models / MODEL / str(version) / "spec.json").read_text()
    spec = json.loads(spec_text)
    graph = spec["graphs"]["encoder" if operation == "embed" else "fill_mask"]["file"]
    rest = ModelSpec.model_validate_json(spec_text).model_dump(
        mode="json", exclude={"file_checksums"}
    )
    checksums = {
        **spec["file_checksums"],
        "spec.json": hashlib.sha256(
            json.dumps(rest, sort_keys=True, separators=(",", ":")).encode()
        ).hexdigest(),
    }
    files = sorted({graph, *spec["tokenizer_files"], "spec.json"})
    listed = "\n".join(f"{name}={checksums[name]}" for name in files)
    fingerprint = hashlib.sha256(listed.encode()).hexdigest()[:16]
    text_hash = hashlib.sha256(text.encode()).hexdigest()
    return f"emb:v2:{MODEL}:{version}:{operation}:{fingerprint}:*:{text_hash}"


@pytest.fixture
def redis_cached(repositories: Any, redis_server: RedisServer) -> Iterator[BackgroundServer]:
    with server_with(repositories["main"], cache_memory_mb=0, redis_url=redis_server.url) as server:
        yield server


def test_second_request_is_cached_byte_equal_and_keyed_as_documented(
    redis_cached: BackgroundServer, redis_server: RedisServer, repositories: Any
) -> None:
    with EmbeddingClient(redis_cached.target) as client:
        first = client.embed(TEXTS, MODEL, pooling="mean")
        assert not any(e.cached for e in first.embeddings)
        drain(redis_cached)
        second = client.embed(TEXTS, MODEL, pooling="mean")
    assert all(e.cached for e in second.embeddings)
    for before, after in zip(first.embeddings, second.embeddings, strict=True):
        assert as_bytes(before) == as_bytes(after)
        assert (before.num_tokens, list(before.tokens)) == (after.num_tokens, list(after.tokens))
    with redis_server.client() as direct:
        for text in TEXTS:
            assert len(list(direct.scan_iter(documented_key(repositories["main"], 2, text)))) == 1
    cache = redis_cached.app.cache
    assert cache is not None
    assert cache.counters.redis_hits == 3 and cache.counters.memory_hits == 0


@pytest.mark.parametrize(
    ("model", "options"),
    [
        (MODEL, {"pooling": "cls"}),
        (MODEL, {"layers": [1]}),
        (MODEL, {"layers": [1, 2]}),
        (MODEL, {"layer_weights": [0.0, 1.0, 2.0]}),
        (MODEL, {"normalize": True}),
        (MODEL, {"truncate": True}),
        (MODEL, {"version": "1"}),
        ("tiny-encoder", {}),
    ],
)
def test_any_other_option_version_or_model_misses(
    redis_cached: BackgroundServer, model: str, options: dict[str, Any]
) -> None:
    with EmbeddingClient(redis_cached.target) as client:
        client.embed(TEXTS, MODEL, pooling="mean")
        drain(redis_cached)
        assert all(e.cached for e in client.embed(TEXTS, MODEL, pooling="mean").embeddings)
        changed = client.embed(TEXTS, model, **({"pooling": "mean"} | options))
    assert not any(e.cached for e in changed.embeddings)


def test_a_reexported_graph_never_serves_the_old_vectors(
    repositories: Any, redis_server: RedisServer
) -> None:
    shared: dict[str, Any] = {"cache_memory_mb": 0, "redis_url": redis_server.url}
    with (
        server_with(repositories["main"], **shared) as server,
        EmbeddingClient(server.target) as client,
    ):
        old = client.embed(TEXTS, MODEL, version="1")
        drain(server)
    with (
        server_with(repositories["other"], **shared) as server,
        EmbeddingClient(server.target) as client,
    ):
        new = client.embed(TEXTS, MODEL, version="1")
    assert not any(e.cached for e in new.embeddings)
    assert as_bytes(old.embeddings[0]) != as_bytes(new.embeddings[0])


def test_three_seen_and_two_new_texts_compute_exactly_two(
    repositories: Any, redis_server: RedisServer
) -> None:
    counter = TextCounter()
    with (
        server_with(
            repositories["main"], counter, cache_memory_mb=0, redis_url=redis_server.url
        ) as server,
        EmbeddingClient(server.target) as client,
    ):
        client.embed(TEXTS, MODEL)
        drain(server)
        assert counter.texts["embed"] == 3
        texts = ["a new sentence", TEXTS[2], TEXTS[0], "another new one", TEXTS[1]]
        response = client.embed(texts, MODEL)
        reference = client.embed(texts, MODEL, cache_policy="bypass")
    assert counter.texts["embed"] == 3 + 2 + 5
    assert [e.cached for e in response.embeddings] == [False, True, True, False, True]
    for got, expected in zip(response.embeddings, reference.embeddings, strict=True):
        np.testing.assert_allclose(
            np.asarray(got.values), np.asarray(expected.values), rtol=1e-5, atol=1e-6
        )


def test_identical_texts_are_computed_once_within_and_across_requests(
    repositories: Any,
) -> None:
    counter = TextCounter()
    with server_with(repositories["main"], counter, max_queue_delay_ms=50) as server:

        async def burst() -> list[pb.EmbedResponse]:
            async with AsyncEmbeddingClient(server.target) as client:
                return await asyncio.gather(
                    *(client.embed(["same text", "same text", f"own {i}"], MODEL) for i in range(8))
                )

        responses = asyncio.run(burst())
    assert counter.texts["embed"] == 1 + 8
    values = {as_bytes(r.embeddings[0]) for r in responses} | {
        as_bytes(r.embeddings[1]) for r in responses
    }
    assert len(values) == 1


def test_fill_mask_results_are_cached(redis_cached: BackgroundServer) -> None:
    texts = ["the cat sat on the [MASK] .", "the [MASK] bank [MASK] ."]
    with EmbeddingClient(redis_cached.target) as client:
        first = client.fill_mask(texts, MODEL, top_k=3)
        drain(redis_cached)
        second = client.fill_mask(texts, MODEL, top_k=3)
        other_k = client.fill_mask(texts, MODEL, top_k=4)
    assert [r.cached for r in first.results] == [False, False]
    assert [r.cached for r in second.results] == [True, True]
    assert [r.cached for r in other_k.results] == [False, False]
    for before, after in zip(first.results, second.results, strict=True):
        assert [list(m.predictions) for m in before.masks] == [
            list(m.predictions) for m in after.masks
        ]


def test_bypass_neither_reads_nor_writes_and_refresh_overwrites(
    redis_cached: BackgroundServer, redis_server: RedisServer, repositories: Any
) -> None:
    with EmbeddingClient(redis_cached.target) as client:
        client.embed(["bypassed text"], MODEL, cache_policy="bypass")
        drain(redis_cached)
        assert not client.embed(["bypassed text"], MODEL).embeddings[0].cached
        drain(redis_cached)
        assert client.embed(["bypassed text"], MODEL).embeddings[0].cached
        assert (
            not client.embed(["bypassed text"], MODEL, cache_policy="bypass").embeddings[0].cached
        )
        pattern = documented_key(repositories["main"], 2, "bypassed text")
        with redis_server.client() as direct:
            (key,) = direct.scan_iter(pattern)
            direct.set(key, b"EMBC not a value")
            damaged = client.embed(["bypassed text"], MODEL)
            refreshed = client.embed(["bypassed text"], MODEL, cache_policy="refresh")
            drain(redis_cached)
            assert direct.get(key) != b"EMBC not a value"
        again = client.embed(["bypassed text"], MODEL)
    assert not damaged.embeddings[0].cached  # corrupt: recomputed
    assert not refreshed.embeddings[0].cached
    assert again.embeddings[0].cached
    assert as_bytes(again.embeddings[0]) == as_bytes(refreshed.embeddings[0])
    cache = redis_cached.app.cache
    assert cache is not None and cache.counters.corrupt == 1


def test_entries_expire_after_the_ttl(repositories: Any, redis_server: RedisServer) -> None:
    with (
        server_with(
            repositories["main"], cache_memory_mb=0, redis_url=redis_server.url, cache_ttl_s=1
        ) as server,
        EmbeddingClient(server.target) as client,
    ):
        client.embed(TEXTS, MODEL)
        drain(server)
        assert all(e.cached for e in client.embed(TEXTS, MODEL).embeddings)
        time.sleep(1.3)
        assert not any(e.cached for e in client.embed(TEXTS, MODEL).embeddings)


def test_the_in_process_tier_caches_without_redis(repositories: Any) -> None:
    with server_with(repositories["main"]) as server, EmbeddingClient(server.target) as client:
        first = client.embed(TEXTS, MODEL)
        second = client.embed(TEXTS, MODEL)
    assert not any(e.cached for e in first.embeddings)
    assert all(e.cached for e in second.embeddings)
    assert [as_bytes(e) for e in first.embeddings] == [as_bytes(e) for e in second.embeddings]


def test_cache_off_computes_everything(repositories: Any) -> None:
    counter = TextCounter()
    with (
        background_server(
            settings_for(repositories["main"], cache="off"), counter.observer
        ) as server,
        EmbeddingClient(server.target) as client,
    ):
        client.embed(["same", "same"], MODEL)
        response = client.embed(["same", "same"], MODEL)
    assert server.app.cache is None
    assert counter.texts["embed"] == 4
    assert not any(e.cached for e in response.embeddings)


# -- faults -----------------------------------------------------------------------------------
def concurrent_embeds(target: str, count: int, texts: Sequence[str]) -> Counter[str]:
    """``count`` concurrent Embed calls, two texts each; the status code of each."""

    async def run() -> Counter[str]:
        codes: Counter[str] = Counter()
        async with AsyncEmbeddingClient(target, timeout=60, retries=0) as client:

            async def one(i: int) -> None:
                try:
                    await client.embed([texts[i % len(texts)], f"text number {i}"], MODEL)
                    codes["OK"] += 1
                except grpc.aio.AioRpcError as error:
                    codes[error.code().name] += 1

            await asyncio.gather(*(one(i) for i in range(count)))
        return codes

    return asyncio.run(run())


def wait_until_written(server: BackgroundServer, text: str, seconds: float = 5.0) -> float:
    """Seconds until a new result is readable from Redis again (fails after ``seconds``)."""
    started = time.monotonic()
    with EmbeddingClient(server.target) as client:
        attempt = 0
        while time.monotonic() - started < seconds:
            probe = f"{text} {attempt}"
            attempt += 1
            client.embed([probe], MODEL)
            drain(server)
            if client.embed([probe], MODEL).embeddings[0].cached:
                return time.monotonic() - started
            time.sleep(0.1)
    pytest.fail(f"no result was written to Redis within {seconds} s of its return")


def test_redis_killed_under_load_fails_nothing_and_caching_resumes(
    redis_cached: BackgroundServer, redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    with EmbeddingClient(redis_cached.target) as client:
        client.embed(TEXTS, MODEL)
    drain(redis_cached)

    async def kill_soon() -> None:
        await asyncio.sleep(0.05)
        redis_server.kill()

    async def load_with_kill() -> Counter[str]:
        killer = asyncio.create_task(kill_soon())
        codes = await asyncio.to_thread(concurrent_embeds, redis_cached.target, 400, TEXTS)
        await killer
        return codes

    codes = asyncio.run(load_with_kill())
    assert codes == Counter({"OK": 400})
    assert not redis_server.running
    assert concurrent_embeds(redis_cached.target, 50, TEXTS) == Counter({"OK": 50})
    faults = [r for r in caplog.records if "Redis cache at" in r.getMessage()]
    assert len(faults) == 1
    redis_server.restart()
    assert wait_until_written(redis_cached, "after the restart") < 5.0


def test_cluster_caches_and_survives_a_node_down(
    repositories: Any, redis_cluster: RedisClusterServers
) -> None:
    with server_with(
        repositories["main"], cache_memory_mb=0, redis_url=redis_cluster.url, redis_cluster=True
    ) as server:
        with EmbeddingClient(server.target) as client:
            texts = [f"cluster text {i}" for i in range(30)]
            client.embed(texts, MODEL)
            drain(server)
            assert all(e.cached for e in client.embed(texts, MODEL).embeddings)
        with redis_cluster.client() as direct:
            sizes = [node.redis_connection.dbsize() for node in direct.get_primaries()]
        assert all(size > 0 for size in sizes), sizes
        redis_cluster.kill_node(1)
        assert concurrent_embeds(server.target, 400, texts) == Counter({"OK": 400})
        redis_cluster.restart_node(1)
        assert wait_until_written(server, "after the node returned") < 5.0


def test_flush_removes_one_model_or_everything(
    repositories: Any, redis_server: RedisServer
) -> None:
    with (
        server_with(repositories["main"], cache_memory_mb=0, redis_url=redis_server.url) as server,
        EmbeddingClient(server.target) as client,
    ):
        client.embed(TEXTS, MODEL)
        client.embed(TEXTS, "tiny-encoder")
        drain(server)
    with redis_server.client() as direct:
        direct.set("unrelated:key", b"kept")

        def keys(pattern: str) -> int:
            return len(list(direct.scan_iter(pattern)))

        assert keys(f"emb:v2:{MODEL}:*") == 3 and keys("emb:v2:tiny-encoder:*") == 3
        flush = [sys.executable, "-m", "service.cache", "flush", "--redis-url", redis_server.url]
        done = subprocess.run(
            [*flush, "--model", MODEL], check=False, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert "removed 3" in done.stdout
        assert keys(f"emb:v2:{MODEL}:*") == 0 and keys("emb:v2:tiny-encoder:*") == 3
        subprocess.run([*flush, "--all"], check=True, capture_output=True)
        assert keys("emb:v2:*") == 0
        assert direct.get("unrelated:key") == b"kept"


def test_errors_name_the_text_by_its_index_in_the_request(redis_cached: BackgroundServer) -> None:
    too_long = " ".join(["word"] * 400)
    with EmbeddingClient(redis_cached.target, retries=0) as client:
        client.embed(TEXTS, MODEL)
        with pytest.raises(grpc.RpcError) as raised:
            client.embed([TEXTS[0], TEXTS[1], too_long], MODEL)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "texts[2]" in raised.value.details()
