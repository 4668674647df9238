"""Metrics, request ids and the access log of the real server, read over its own HTTP port."""

from __future__ import annotations

import json
import logging
import re
import shutil
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from export.word2vec.exporter import import_word2vec
from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc
from service.background import BackgroundServer
from service.client import EmbeddingClient
from tests.integration.harness import running_server
from tests.word2vec_files import save_c_formats, train_tiny_vectors

MODEL = "tiny-mlm"


@pytest.fixture(scope="module")
def repository(imported: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("metrics")
    models = root / "models"
    shutil.copytree(imported["models"], models)
    files = save_c_formats(train_tiny_vectors(), root / "files")
    import_word2vec(files["binary"], True, models, "w2v")
    return models


@pytest.fixture(scope="module")
def served(repository: Path) -> Iterator[BackgroundServer]:
    with running_server(repository, cache="on", access_log=True) as server:
        yield server


def scrape(server: BackgroundServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` by (name, sorted labels)."""
    url = f"http://127.0.0.1:{server.app.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def settled(
    server: BackgroundServer, name: str, expected: float, **labels: str
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """A scrape once ``name{labels}`` reaches ``expected`` (within 5 s): a failed call is
    counted just after its status has gone to the client."""
    deadline = time.monotonic() + 5
    while True:
        samples = scrape(server)
        if value(samples, name, **labels) >= expected or time.monotonic() > deadline:
            return samples
        time.sleep(0.02)


def test_requests_and_stages_are_counted_exactly(served: BackgroundServer) -> None:
    before = scrape(served)
    with EmbeddingClient(served.target, retries=0) as client:
        for index in range(13):
            client.embed([f"the cat sat on mat number {index}"], MODEL)
        for _ in range(4):
            with pytest.raises(grpc.RpcError) as raised:
                client.embed(["a text"], "no-such-model")
            assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    after = settled(
        served,
        "embed_requests_total",
        4
        + value(before, "embed_requests_total", method="Embed", model="unknown", code="NOT_FOUND"),
        method="Embed",
        model="unknown",
        code="NOT_FOUND",
    )

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    requests = "embed_requests_total"
    assert moved(requests, method="Embed", model=MODEL, code="OK") == 13
    assert moved(requests, method="Embed", model="unknown", code="NOT_FOUND") == 4
    assert moved("embed_request_duration_seconds_count", method="Embed", model=MODEL) == 13
    stage = {"model": MODEL, "operation": "embed"}
    for histogram in ("queue", "tokenization", "inference", "postprocess"):
        assert moved(f"embed_{histogram}_duration_seconds_count", **stage) == 13, histogram
    assert moved("embed_batch_size_sum", **stage) == 13  # every text went through a batch
    assert moved("embed_batch_size_count", **stage) == moved(
        "embed_batch_padding_efficiency_count", **stage
    )
    assert moved("embed_texts_total", source="computed", **stage) == 13
    assert value(after, "embed_inflight_requests", method="Embed") == 0
    assert value(after, "embed_queue_depth", **stage) == 0


def test_static_lookups_and_cache_hits_are_counted(served: BackgroundServer) -> None:
    before = scrape(served)
    with EmbeddingClient(served.target) as client:
        client.embed(["apple ."], "w2v")
        client.embed(["cached twice"], MODEL)
        client.embed(["cached twice"], MODEL)
    after = scrape(served)
    assert (
        value(after, "embed_inference_duration_seconds_count", model="w2v", operation="embed")
        - value(before, "embed_inference_duration_seconds_count", model="w2v", operation="embed")
        == 1
    )
    hits = ("embed_cache_lookups_total", {"tier": "memory", "result": "hit"})
    misses = ("embed_cache_lookups_total", {"tier": "memory", "result": "miss"})
    assert value(after, hits[0], **hits[1]) - value(before, hits[0], **hits[1]) == 1
    assert value(after, misses[0], **misses[1]) - value(before, misses[0], **misses[1]) == 1
    assert (
        value(after, "embed_texts_total", model=MODEL, operation="embed", source="cached")
        - value(before, "embed_texts_total", model=MODEL, operation="embed", source="cached")
        == 1
    )


def test_models_and_build_are_described(served: BackgroundServer) -> None:
    samples = scrape(served)
    for model in (MODEL, "tiny-encoder", "w2v"):
        assert value(samples, "embed_model_ready", model=model, version="1") == 1
        assert value(samples, "embed_model_load_seconds", model=model, version="1") > 0
    assert any(name == "embed_build_info" for name, _ in samples)


def ids_in(metadata: Any) -> list[str]:
    return [value for key, value in metadata or () if key == "x-request-id"]


def test_request_ids_are_echoed_or_made(served: BackgroundServer) -> None:
    """Unary calls: in the trailing metadata, answered or failed, never as a header write of
    its own; streams: in the initial metadata, before the first reply."""
    with grpc.insecure_channel(served.target) as channel:
        stub = pb_grpc.EmbeddingServiceStub(channel)
        request = pb.EmbedRequest(model=MODEL, texts=["a request with an id"])
        _, call = stub.Embed.with_call(request, metadata=(("x-request-id", "trace-42"),))
        assert ids_in(call.trailing_metadata()) == ["trace-42"]
        assert ids_in(call.initial_metadata()) == []
        _, call = stub.Embed.with_call(request)
        (made,) = ids_in(call.trailing_metadata())
        assert re.fullmatch(r"[0-9a-f]{32}", made)
        with pytest.raises(grpc.RpcError) as failed:
            stub.Embed(
                pb.EmbedRequest(model="no-such-model", texts=["x"]),
                metadata=(("x-request-id", "trace-43"),),
            )
        assert failed.value.code() is grpc.StatusCode.NOT_FOUND
        assert ids_in(failed.value.trailing_metadata()) == ["trace-43"]
        stream = stub.EmbedStream(iter([request]), metadata=(("x-request-id", "trace-44"),))
        assert ids_in(stream.initial_metadata()) == ["trace-44"]
        assert len(list(stream)) == 1
        computed = pb.EmbedRequest(
            model=MODEL, texts=["computed"], cache_policy=pb.CACHE_POLICY_BYPASS
        )
        response, _ = stub.Embed.with_call(computed)
        assert response.timing.postprocess_us > 0
        assert response.timing.total_us >= response.timing.postprocess_us


def test_the_access_log_is_one_json_line_per_request_without_texts(
    served: BackgroundServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service.access")
    secret = "a private sentence about the bank"
    with EmbeddingClient(served.target) as client:
        client.embed([secret, secret + " again"], MODEL)
        with pytest.raises(grpc.RpcError):
            client.embed([secret], "no-such-model")

    def access_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "service.access"]

    deadline = time.monotonic() + 5  # the line is written just after the status is sent
    while len(access_lines()) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    lines = access_lines()
    entries = [json.loads(line) for line in lines if '"Embed"' in line][-2:]
    assert entries[0]["code"] == "OK" and entries[0]["texts"] == 2
    assert entries[0]["model"] == MODEL and entries[0]["version"] == "1"
    assert entries[1]["code"] == "NOT_FOUND" and entries[1]["model"] == "unknown"
    assert set(entries[0]) == {
        "method",
        "model",
        "version",
        "code",
        "duration_ms",
        "texts",
        "cached",
        "request_id",
    }
    assert all(secret not in line and "bank" not in line for line in lines)


def test_streams_and_health_checks_are_counted(served: BackgroundServer) -> None:
    before = scrape(served)
    with EmbeddingClient(served.target) as client:
        requests = [pb.EmbedRequest(model=MODEL, texts=[f"streamed {i}"]) for i in range(3)]
        assert len(list(client.embed_stream(requests))) == 3
        assert client.health() == "SERVING"
    after = scrape(served)
    stream = {"method": "EmbedStream", "model": MODEL, "code": "OK"}
    check = {"method": "Check", "model": "none", "code": "OK"}
    for labels in (stream, check):
        moved = value(after, "embed_requests_total", **labels) - value(
            before, "embed_requests_total", **labels
        )
        assert moved == 1, labels
    stage = {"model": MODEL, "operation": "embed"}
    assert (
        value(after, "embed_queue_duration_seconds_count", **stage)
        - value(before, "embed_queue_duration_seconds_count", **stage)
        == 3
    )


def test_request_ids_can_come_back_as_headers(repository: Path) -> None:
    """``--request-id-metadata initial``: a unary call's id in its initial metadata, as a
    client reading headers (a proxy, say) needs it."""
    with (
        running_server(repository, request_id_metadata="initial") as server,
        grpc.insecure_channel(server.target) as channel,
    ):
        stub = pb_grpc.EmbeddingServiceStub(channel)
        request = pb.EmbedRequest(model=MODEL, texts=["a request with an id"])
        _, call = stub.Embed.with_call(request, metadata=(("x-request-id", "trace-45"),))
        assert ids_in(call.initial_metadata()) == ["trace-45"]
