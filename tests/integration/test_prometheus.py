"""The project's scrape config, rules and dashboard against a real Prometheus scraping a real
server that was sent known traffic."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import time
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import grpc
import httpx2 as httpx
import pytest

from service.background import BackgroundServer
from service.client import AsyncEmbeddingClient
from service.metrics import Metrics
from tests.integration.harness import running_server
from tests.prometheus_server import PrometheusServer
from tests.redis_servers import free_port
from tests.unit.deploy.promql import alert_expressions, dashboard_expressions, recording_rules

MODELS = ("tiny-mlm", "tiny-encoder")
# The autoscaler's per-model query (embed:queue_duration_seconds:mean1m), over every model.
MEAN_EMBED_QUEUE = (
    "sum(rate(embed_queue_duration_seconds_sum{operation='embed'}[1m]))"
    " / sum(rate(embed_queue_duration_seconds_count{operation='embed'}[1m]))"
)


def http_traffic(server: BackgroundServer) -> None:
    """Requests to the HTTP API: answered, refused as the client's fault, and one model
    described."""
    assert server.app.http is not None
    with httpx.Client(base_url=f"http://127.0.0.1:{server.app.http.port}", timeout=30) as http:
        for number in range(10):
            body = {"model": MODELS[number % 2], "input": [f"an http text {number}"]}
            assert http.post("/v1/embeddings", json=body).status_code == 200
            assert http.post("/v1/embeddings", json={"model": "x"}).status_code == 400
        assert http.get(f"/v1/models/{MODELS[0]}").status_code == 200


async def traffic(target: str, rounds: int) -> list[float]:
    """Concurrent Embed calls on both models, fill-masks, repeats, and unknown models; returns
    the ``Timing.queue_us`` of every Embed call that succeeded."""
    queue_us: list[float] = []
    async with AsyncEmbeddingClient(target, timeout=30, retries=0) as client:

        async def embed(model: str, text: str) -> None:
            response = await client.embed([text, "a sentence seen before"], model)
            queue_us.append(response.timing.queue_us)

        async def refused(call: Awaitable[Any]) -> None:
            with contextlib.suppress(grpc.aio.AioRpcError):
                await call

        for round_index in range(rounds):
            calls: list[Awaitable[Any]] = [
                embed(MODELS[i % 2], f"round {round_index} text {i}") for i in range(16)
            ]
            calls += [client.fill_mask(["the cat sat on the [MASK] ."], "tiny-mlm")]
            calls += [refused(client.embed(["x"], "no-such-model"))]
            calls += [refused(client.fill_mask(["no mask here"], "tiny-mlm"))]
            await asyncio.gather(*calls)
            await asyncio.sleep(0.25)
    return queue_us


async def overload(target: str, metrics: Metrics) -> None:
    """Bursts of requests with short deadlines behind small batches, until the queue has
    dropped some texts whose deadline passed (``embed_dropped_items_total``)."""
    dropped = metrics.dropped.labels("tiny-mlm", "embed", "deadline")
    async with AsyncEmbeddingClient(target, timeout=0.05, retries=0) as client:
        for _ in range(10):
            texts = [f"an overloaded request with a few more words {i}" for i in range(8)]
            await asyncio.gather(
                *(client.embed(texts, "tiny-mlm", cache_policy="bypass") for _ in range(64)),
                return_exceptions=True,
            )
            if dropped._value.get() > 0:
                return
    pytest.fail("no queued text was dropped at its deadline")


@pytest.fixture(scope="module")
def observed(
    imported: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[BackgroundServer, PrometheusServer, Any]]:
    """A server (cache on, its Redis tier pointed at a port nothing listens on, so the Redis
    error series exist; the HTTP API on), scraped every second by Prometheus while traffic
    flows for ~8 s."""
    directory = tmp_path_factory.mktemp("prometheus")
    with running_server(
        imported["models"],
        cache="on",
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        redis_timeout_ms=20,
        max_queue_delay_ms=5,
        max_batch_size=8,
        http_port=0,
    ) as server:
        target = f"127.0.0.1:{server.app.metrics_port}"
        assert server.app.metrics is not None
        with PrometheusServer(directory, target) as prometheus:
            queue_us = asyncio.run(traffic(server.target, rounds=30))
            http_traffic(server)
            time.sleep(2.5)  # two more scrapes: Prometheus has seen every request so far
            mean_queue = prometheus.query(MEAN_EMBED_QUEUE)
            asyncio.run(overload(server.target, server.app.metrics))
            assert prometheus.wait_for('embed_requests_total{code="OK"}'), "nothing scraped"
            yield server, prometheus, (queue_us, mean_queue)


def test_every_recording_rule_returns_a_series(observed: Any) -> None:
    _, prometheus, _ = observed
    empty = [name for name in recording_rules() if not prometheus.wait_for(name)]
    assert not empty, f"recording rules without a series: {empty}"


def test_every_dashboard_expression_parses_and_returns_data(observed: Any) -> None:
    _, prometheus, _ = observed
    for model in ("tiny-mlm", ".+"):
        empty = [e for e in dashboard_expressions(model) if not prometheus.wait_for(e, 15)]
        assert not empty, f"dashboard expressions without data for model {model}: {empty}"


def test_every_alert_parses_and_its_condition_has_data(observed: Any) -> None:
    _, prometheus, _ = observed
    for name, left, op, threshold in alert_expressions():
        prometheus.query(f"({left}) {op} {threshold}")  # parses and evaluates
        assert prometheus.wait_for(left), f"{name}: {left} returns nothing"


def test_the_autoscaling_query_covers_every_model_and_agrees_with_timing(observed: Any) -> None:
    _, prometheus, (queue_us, mean_queue) = observed
    assert prometheus.wait_for("embed:queue_duration_seconds:mean1m")
    series = {
        s["metric"]["model"]: float(s["value"][1])
        for s in prometheus.query("embed:queue_duration_seconds:mean1m")
    }
    assert set(MODELS) <= set(series), series
    # The same requests (before the overload bursts), as their responses' Timing reports them
    # and as Prometheus saw them.
    mean_timing_s = sum(queue_us) / len(queue_us) / 1e6
    measured = float(mean_queue[0]["value"][1])
    assert mean_timing_s > 0
    assert mean_timing_s / 2 <= measured <= mean_timing_s * 2, (measured, mean_timing_s)


def test_prometheus_is_installed_by_the_project() -> None:
    assert shutil.which("prometheus") and shutil.which("promtool")
