"""Replicas behind one name: two server processes sharing one real Redis (memory tier off), a
client balancing over both, and connections closed at their maximum age so clients find
replicas added later."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from proto.embedding.v1 import embedding_pb2 as pb
from service.client import EmbeddingClient, vectors
from tests.integration.harness import running_server
from tests.integration.server_process import ServerProcess
from tests.redis_servers import RedisServer

MODEL = "tiny-encoder"


@pytest.fixture
def replicas(
    imported: dict[str, Path], redis_server: RedisServer, tmp_path: Path
) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Two ``python -m service`` processes, every cache read and write going to one Redis."""
    args = ["--models", MODEL, "--cache-memory-mb", "0", "--redis-url", redis_server.url]
    a = ServerProcess(sys.executable, imported["models"], tmp_path / "a.log", args)
    b = ServerProcess(sys.executable, imported["models"], tmp_path / "b.log", args)
    with a, b:
        a.spawn(), b.spawn()  # load side by side
        yield a.wait_ready(), b.wait_ready()


def embed_calls(server: ServerProcess) -> float:
    return server.value("embed_requests_total", method="Embed", model=MODEL, code="OK")


def wait_for_keys(redis_server: RedisServer, count: int, timeout: float = 10.0) -> None:
    """Until Redis holds ``count`` keys: writes go out after the reply."""
    client = redis_server.client()
    try:
        deadline = time.monotonic() + timeout
        while client.dbsize() < count:
            assert time.monotonic() < deadline, f"Redis holds {client.dbsize()} keys, not {count}"
            time.sleep(0.02)
    finally:
        client.close()


def test_round_robin_reaches_both_replicas_and_they_share_the_cache(
    replicas: tuple[ServerProcess, ServerProcess], redis_server: RedisServer
) -> None:
    a, b = replicas
    first: list[pb.EmbedResponse] = []
    # round_robin picks among the addresses connected so far: B may join a few calls late.
    deadline = time.monotonic() + 20
    with EmbeddingClient(f"ipv4:{a.target},{b.target}", retries=0) as both:
        while len(first) < 20 or not (embed_calls(a) and embed_calls(b)):
            assert time.monotonic() < deadline, (embed_calls(a), embed_calls(b))
            first.append(both.embed([f"text number {len(first)} for the pair"], MODEL))
    calls = len(first)
    assert not any(r.embeddings[0].cached for r in first)
    on_a, on_b = embed_calls(a), embed_calls(b)
    assert on_a > 0 and on_b > 0, (on_a, on_b)  # each replica's own count
    assert on_a + on_b == calls
    wait_for_keys(redis_server, calls)

    # Computed on A, then asked of B: B answers from the shared Redis and computes nothing.
    text = "the cook peeled a mushy apple in the steamy kitchen ."
    with EmbeddingClient(a.target, retries=0) as on_a_only:
        computed = on_a_only.embed([text], MODEL)
    assert not computed.embeddings[0].cached
    wait_for_keys(redis_server, calls + 1)
    computed_on_b = b.value("embed_texts_total", model=MODEL, source="computed")
    with EmbeddingClient(b.target, retries=0) as on_b_only:
        served = on_b_only.embed([text], MODEL)
    assert served.embeddings[0].cached
    np.testing.assert_array_equal(vectors(served)[0], vectors(computed)[0])
    assert b.value("embed_texts_total", model=MODEL, source="computed") == computed_on_b
    assert b.value("embed_cache_lookups_total", tier="redis", result="hit") >= 1
    assert b.value("embed_cache_lookups_total", tier="memory") == 0  # the tier is off


def test_a_dns_target_reaches_a_replica(replicas: tuple[ServerProcess, ServerProcess]) -> None:
    a, _ = replicas
    with EmbeddingClient(f"dns:///localhost:{a.port}", retries=0) as client:
        assert client.health() == "SERVING"
        assert len(client.embed(["by name"], MODEL).embeddings) == 1


@pytest.mark.parametrize(("age_ms", "least", "most"), [(400, 3, 100), (0, 1, 1)])
def test_connections_are_closed_at_their_maximum_age(
    imported: dict[str, Path], age_ms: int, least: int, most: int
) -> None:
    """The server closes each connection after ``max_connection_age_ms`` (GOAWAY): clients
    connect again, resolving the name anew, and calls keep succeeding; 0 never closes."""
    with (
        running_server(
            imported["models"], max_connection_age_ms=age_ms, max_connection_age_grace_ms=200
        ) as server,
        # pick_first goes IDLE on GOAWAY and reconnects on the next call, one READY each time
        # (round_robin reconnects at once, too fast for the sampled connectivity states).
        EmbeddingClient(server.target, retries=0, load_balancing="pick_first") as client,
    ):
        states: list[str] = []

        def record(state: grpc.ChannelConnectivity) -> None:
            states.append(state.name)

        client.channel.subscribe(record)
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert len(client.embed(["still answered"], MODEL).embeddings) == 1
            time.sleep(0.1)
        client.channel.unsubscribe(record)
    assert least <= states.count("READY") <= most, states
