"""The cache section: Redis hits against misses for the bert-base-shaped model, side by side.

The server runs with the result cache on, no in-process tier and a private ``redis-server``, so
every hit is a Redis round trip. The same load (one text per call) then runs three times:

* hit path, 1 client: one request in flight, so its latency is the cache path, not queueing;
* hit path, N clients: cycling over texts primed into Redis beforehand (every response must be
  ``cached``);
* miss path, N clients: every text made new (``run_load(unique=True)``), so each one is
  computed.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

from bench.common.load import run_load
from bench.common.models import BERT_BASE
from bench.common.redis_server import redis_server
from bench.common.report import console, make_table, ms, verdict
from bench.common.servers import Engine, bench_settings
from bench.common.texts import read_texts
from service.background import BackgroundServer, background_server
from service.cache.redis_tier import RedisCache
from service.client import EmbeddingClient
from service.config import Settings

MODEL = BERT_BASE
THROUGHPUT_GOAL = 20.0
"""Hit-path over miss-path throughput at the same load."""
P99_GOAL_MS = 5.0
"""p99 of a Redis hit with one request in flight."""
PRIME_CHUNK = 32
"""Texts per priming request: one full batch, so priming takes seconds, not minutes."""
STORED_TIMEOUT_S = 30.0


def cache_settings(models_dir: Path, redis_url: str, engine: Engine) -> Settings:
    """Cache on, Redis only (no in-process tier), so every hit pays the Redis round trip."""
    return bench_settings(
        models_dir, MODEL, engine, cache="on", cache_memory_mb=0, redis_url=redis_url
    )


def hit_texts(texts: Path, count: int, into: Path) -> list[str]:
    """The first ``count`` distinct texts, written to ``into`` for the load process."""
    chosen = list(dict.fromkeys(read_texts(texts)))[:count]
    into.parent.mkdir(parents=True, exist_ok=True)
    into.write_text("\n".join(chosen) + "\n")
    return chosen


def stored_keys(redis_url: str) -> int:
    """How many keys the private Redis holds (the server's warm-up may have written some)."""
    client = redis.Redis.from_url(redis_url)
    try:
        return int(client.dbsize())
    finally:
        client.close()


def wait_until_stored(redis_url: str, expected: int) -> None:
    """Wait for the server's write-behind: Redis holds ``expected`` keys, or this raises."""
    deadline = time.monotonic() + STORED_TIMEOUT_S
    while (stored := stored_keys(redis_url)) < expected:
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"Redis holds {stored} of {expected} keys {STORED_TIMEOUT_S:.0f} s after "
                "priming: the server's writes to Redis were lost"
            )
        time.sleep(0.05)


def prime(target: str, redis_url: str, texts: list[str]) -> None:
    """Compute every text once so Redis holds them, then check one reads back ``cached``."""
    before = stored_keys(redis_url)
    with EmbeddingClient(target, timeout=300, retries=0) as client:
        for start in range(0, len(texts), PRIME_CHUNK):
            client.embed(texts[start : start + PRIME_CHUNK], model=MODEL)
        wait_until_stored(redis_url, before + len(texts))
        response = client.embed(texts[:1], model=MODEL)
        if not response.embeddings[0].cached:
            raise RuntimeError("a primed text came back cached=False: the Redis tier missed it")


async def _snapshot(server: BackgroundServer) -> dict[str, int]:
    cache = server.app.cache
    if cache is None:
        return {}
    counters: dict[str, int] = dataclasses.asdict(cache.counters)
    if isinstance(cache.redis, RedisCache):
        redis_counters = dataclasses.asdict(cache.redis.counters)
        counters.update({f"redis_{name}": value for name, value in redis_counters.items()})
    return counters


def with_counters(server: BackgroundServer, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``run``'s load result plus what the server's cache counted meanwhile, so a response
    that was not cached can be traced to its cause (a Redis read fault or timeout, a miss)."""
    before = server.call(_snapshot(server))
    result = run()
    after = server.call(_snapshot(server))
    result["server_cache"] = {name: after[name] - before.get(name, 0) for name in after}
    return result


def measure_paths(
    server: BackgroundServer, hits_file: Path, clients: int, seconds: float
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """The hit path at 1 and at ``clients`` clients, then the miss path (primed texts made new)."""

    def load(label: str, count: int, unique: bool) -> dict[str, Any]:
        plural = "" if count == 1 else "s"
        console.print(f"[bold]{MODEL}[/bold]: {label}, {count} client{plural}, {seconds:.0f} s")
        target = server.target
        return with_counters(
            server, lambda: run_load(target, MODEL, hits_file, count, seconds, unique)
        )

    hit_one = load("Redis hits", 1, unique=False)
    hit = load("Redis hits", clients, unique=False)
    miss = load("misses", clients, unique=True)
    return hit_one, hit, miss


def bench_cache(
    models_dir: Path, texts: Path, count: int, clients: int, seconds: float, engine: Engine
) -> dict[str, Any]:
    """A private Redis, one server with the cache on: prime, then measure both paths."""
    with redis_server() as url:
        settings = cache_settings(models_dir, url, engine)
        with background_server(settings) as server:
            hits_file = Path("build/bench/cache-texts.txt")
            primed = hit_texts(texts, count, hits_file)
            console.print(f"[bold]{MODEL}[/bold]: priming Redis with {len(primed)} texts")
            prime(server.target, url, primed)
            hit_one, hit, miss = measure_paths(server, hits_file, clients, seconds)
    ratio = hit["throughput"] / max(1e-9, miss["throughput"])
    return {
        "model": MODEL,
        "primed_texts": len(primed),
        "hit_1_client": hit_one,
        "hit": hit,
        "miss": miss,
        "hit_over_miss": ratio,
        "throughput_goal": THROUGHPUT_GOAL,
        "throughput_goal_met": ratio >= THROUGHPUT_GOAL,
        "p99_goal_ms": P99_GOAL_MS,
        "p99_goal_met": hit_one["p99_ms"] is not None and hit_one["p99_ms"] <= P99_GOAL_MS,
        "valid": valid(hit_one, hit, miss),
    }


def valid(hit_one: dict[str, Any], hit: dict[str, Any], miss: dict[str, Any]) -> bool:
    """Whether the runs measured what they claim: hits all cached, misses none, no errors."""
    clean = not (hit_one["errors"] or hit["errors"] or miss["errors"])
    return (
        clean
        and hit_one["uncached"] == hit["uncached"] == 0
        and (miss["uncached"] == miss["responses"])
    )


def report_cache(result: dict[str, Any]) -> None:
    """One row per run, then the two goals."""
    table = make_table(
        f"result cache, Redis tier only: {result['model']} (texts/s)",
        (
            "path",
            "clients",
            "texts/s",
            "p50 ms",
            "p99 ms",
            "not cached",
            "Redis hits",
            "computed",
            "Redis read faults",
            "errors",
        ),
    )
    for label, run in (
        ("Redis hit", result["hit_1_client"]),
        ("Redis hit", result["hit"]),
        ("miss (new texts)", result["miss"]),
    ):
        table.add_row(
            label,
            str(run["clients"]),
            f"{run['throughput']:.0f}",
            ms(run["p50_ms"], 2),
            ms(run["p99_ms"], 2),
            f"{run['uncached']} of {run['responses']}",
            str(run["server_cache"].get("redis_hits", "-")),
            str(run["server_cache"].get("computed", "-")),
            str(run["server_cache"].get("redis_read_faults", "-")),
            str(run["errors"] or "-"),
        )
    console.print(table)
    console.print(
        f"hit/miss throughput at {result['hit']['clients']} clients: "
        f"{result['hit_over_miss']:.1f}x (goal >= {result['throughput_goal']:.0f}x: "
        f"{verdict(result['throughput_goal_met'])}); "
        f"Redis-hit p99 at 1 client: {ms(result['hit_1_client']['p99_ms'], 2)} ms "
        f"(goal <= {result['p99_goal_ms']:.0f} ms: {verdict(result['p99_goal_met'])})"
    )
    if not result["valid"]:
        console.print(
            "[red]invalid run: a hit-path response was not cached, a miss-path one was, "
            "or requests failed (see the table)[/red]"
        )
