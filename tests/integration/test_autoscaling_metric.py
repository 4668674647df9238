"""prometheus-adapter's rule for the HPA (deploy/prometheus-adapter/config.yaml) against a real
Prometheus scraping a real server: its series query finds the pods, and its metrics query,
templates filled in as the adapter fills them, returns one value per pod, the worst of the
pod's models."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.client import AsyncEmbeddingClient
from tests.integration.harness import running_server
from tests.prometheus_server import PrometheusServer, config_for
from tests.unit.deploy import k8s

MODELS = ("tiny-mlm", "tiny-encoder")
NAMESPACE = "embedding"
# One server scraped as two targets, labelled as the Prometheus Operator labels pods.
PODS = ("embedding-service-a", "embedding-service-b")


async def traffic(target: str, seconds: float) -> list[float]:
    """Concurrent Embed calls on both models (more on tiny-mlm); each call's queue_us."""
    queue_us: list[float] = []
    async with AsyncEmbeddingClient(target, timeout=30, retries=0) as client:

        async def embed(model: str, text: str) -> None:
            response = await client.embed([text], model, cache_policy="bypass")
            queue_us.append(response.timing.queue_us)

        until = time.monotonic() + seconds
        round_index = 0
        while time.monotonic() < until:
            calls = [embed(MODELS[i % 3 == 0], f"round {round_index} text {i}") for i in range(24)]
            await asyncio.gather(*calls)
            round_index += 1
            await asyncio.sleep(0.05)
    return queue_us


@pytest.fixture(scope="module")
def scraped(
    imported: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PrometheusServer, list[float]]]:
    directory = tmp_path_factory.mktemp("adapter")
    with running_server(imported["models"], max_batch_size=4, max_queue_delay_ms=5) as server:
        target = f"127.0.0.1:{server.app.metrics_port}"
        prometheus = PrometheusServer(directory, target)
        config = config_for(target)
        config["scrape_configs"][0]["static_configs"] = [
            {"targets": [target], "labels": {"namespace": NAMESPACE, "pod": pod}} for pod in PODS
        ]
        prometheus.config_path.write_text(yaml.safe_dump(config))
        with prometheus:
            # Targets appear with the first discovery update (~5 s): traffic only after it.
            wait_for_every_pod(prometheus, "up == 1")
            queue_us = asyncio.run(traffic(server.target, seconds=4))
            yield prometheus, queue_us


def wait_for_every_pod(
    prometheus: PrometheusServer, expression: str, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """``expression``'s result once it has a series for every pod."""
    deadline = time.monotonic() + timeout
    while True:
        result = prometheus.query(expression)
        pods = {s["metric"].get("pod") for s in result}
        if pods == set(PODS) or time.monotonic() > deadline:
            assert pods == set(PODS), (expression, result)
            return result
        time.sleep(0.25)


def at(prometheus: PrometheusServer, expression: str, when: float) -> list[dict[str, Any]]:
    data = prometheus.api("query", query=expression, time=f"{when:.3f}")
    result: list[dict[str, Any]] = data["result"]
    return result


def test_the_series_query_finds_every_pod(scraped: tuple[PrometheusServer, list[float]]) -> None:
    prometheus, _ = scraped
    series = prometheus.api("series", **{"match[]": k8s.adapter_rule()["seriesQuery"]})
    assert {s["pod"] for s in series} == set(PODS)
    assert {s["model"] for s in series} == set(MODELS)


def test_the_metrics_query_is_each_pods_worst_model_mean_queue_wait(
    scraped: tuple[PrometheusServer, list[float]],
) -> None:
    prometheus, queue_us = scraped
    rule = k8s.adapter_rule()
    matchers = f'namespace="{NAMESPACE}",pod=~"{"|".join(PODS)}"'
    query = k8s.adapter_query(rule, matchers, "pod")
    wait_for_every_pod(prometheus, query)
    when = time.time()
    result = at(prometheus, query, when)
    assert {s["metric"]["pod"] for s in result} == set(PODS)
    assert all(set(s["metric"]) == {"pod"} for s in result), result  # one value per pod
    values = {s["metric"]["pod"]: float(s["value"][1]) for s in result}

    # The same window per model, at the same instant: the pod's value is their maximum.
    per_model = at(
        prometheus,
        f"sum by (pod, model) (rate(embed_queue_duration_seconds_sum{{{matchers}}}[30s]))"
        f" / sum by (pod, model) (rate(embed_queue_duration_seconds_count{{{matchers}}}[30s]))",
        when,
    )
    for pod in PODS:
        means = [float(s["value"][1]) for s in per_model if s["metric"]["pod"] == pod]
        assert len(means) == len(MODELS)
        assert values[pod] == pytest.approx(max(means))
    # At least the mean over every request, as their responses' Timing reported it.
    mean_timing_s = sum(queue_us) / len(queue_us) / 1e6
    assert mean_timing_s > 0
    assert values[PODS[0]] >= mean_timing_s / 2


def test_a_pod_of_another_namespace_is_not_matched(
    scraped: tuple[PrometheusServer, list[float]],
) -> None:
    prometheus, _ = scraped
    query = k8s.adapter_query(k8s.adapter_rule(), 'namespace="elsewhere",pod=~".+"', "pod")
    assert prometheus.query(query) == []
