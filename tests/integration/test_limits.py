"""Overload, limits, deadlines, cancellation and faults, against a real server over gRPC.

The runtime of "tiny-mlm" is wrapped (test-only, see ``InstrumentedRuntime``) to count what it
tokenizes and runs, to slow its batches down so that requests pile up, and to fail one batch.
"""

from __future__ import annotations

import asyncio
import shutil
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, cast

import grpc
import numpy as np
import pytest

import service.registry.lifecycle
from modelrepo import SpecError, read_spec, sha256_of
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc
from service.background import BackgroundServer, background_server
from service.batching import BatcherKey, BatchObserver
from service.client import AsyncEmbeddingClient, EmbeddingClient, embed_request
from service.domain import EmbedOptions
from service.embedder import Embedder
from service.runtime.base import EmbedItem, PooledEmbedding, Runtime
from service.runtime.loader import load_runtime
from service.runtime.session import SessionOptions
from tests.integration.harness import ServerThread, settings_for

MODEL = "tiny-mlm"


class InstrumentedRuntime:
    """Test-only wrapper of a loaded runtime: counts tokenized and executed texts, can slow
    every batch down and fail the next one; everything else goes to the real runtime."""

    def __init__(self, inner: Runtime) -> None:
        self.inner = inner
        self.prepared = 0
        self.executed: list[tuple[str, ...]] = []
        self.batch_delay_s = 0.0
        self.fail_next = False
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def prepare_embed(self, texts: Sequence[str], options: EmbedOptions) -> list[EmbedItem]:
        with self.lock:
            self.prepared += len(texts)
        return self.inner.prepare_embed(texts, options)

    def embed_batch(self, items: Sequence[EmbedItem]) -> list[PooledEmbedding]:
        time.sleep(self.batch_delay_s)
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : injected by the test")
        self.executed += [item.tokens for item in items]
        return self.inner.embed_batch(items)


class Recorder:
    """Batch observer: batch sizes and dropped items by reason."""

    def __init__(self) -> None:
        self.batched = 0
        self.dropped: Counter[str] = Counter()

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        self.batched += batch_size

    def on_dropped(self, reason: str, count: int) -> None:
        self.dropped[reason] += count

    def on_executed(self, seconds: float) -> None:
        pass


@pytest.fixture
def instrumented(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[InstrumentedRuntime]]:
    """Every server started in the test serves tiny-mlm through an ``InstrumentedRuntime``."""
    wrapped: list[InstrumentedRuntime] = []

    def load(directory: Path, options: SessionOptions) -> Runtime:
        runtime = load_runtime(directory, options)
        if runtime.spec.name != MODEL:
            return runtime
        wrapped.append(InstrumentedRuntime(runtime))
        return cast(Runtime, wrapped[-1])

    monkeypatch.setattr(service.registry.lifecycle, "load_runtime", load)
    yield wrapped


def embedder_of(server: BackgroundServer) -> Embedder:
    assert server.app.embedder is not None
    return server.app.embedder


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.002)


def test_limits_are_settings_with_documented_defaults(imported: dict[str, Path]) -> None:
    settings = settings_for(imported["models"])
    assert settings.max_text_chars == 100_000
    assert settings.max_inflight_texts is None  # the server admits max_queue_size (4096)
    assert settings.max_queue_size == 4096
    assert settings.max_message_bytes == 64 * 2**20
    assert settings.max_concurrent_streams == 1024
    assert settings.default_timeout_s == 300.0


def test_text_and_message_limits(imported: dict[str, Path], instrumented: list[Any]) -> None:
    overrides = {"max_text_chars": 50, "max_message_bytes": 4096}
    with (
        background_server(settings_for(imported["models"], **overrides)) as server,
        EmbeddingClient(server.target, retries=0) as client,
    ):
        with pytest.raises(grpc.RpcError) as raised:
            client.embed(["short", "x" * 51], MODEL)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "text 1 has 51 characters; the limit is 50" in raised.value.details()
        with pytest.raises(grpc.RpcError) as raised:  # gRPC itself refuses the message
            client.embed(["word " * 9] * 200, MODEL)
        assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert instrumented[0].prepared == 0
        assert len(client.embed(["a" * 50], MODEL).embeddings) == 1


def test_admission_refuses_before_tokenizing(
    imported: dict[str, Path], instrumented: list[InstrumentedRuntime]
) -> None:
    sent, per_request, concurrency = 300, 4, 12

    async def burst(target: str) -> tuple[list[grpc.StatusCode], list[float]]:
        """``sent`` calls, ``concurrency`` at a time: a latency is one call's, not the wait
        behind hundreds of others in this client's and the server's event loops."""
        slots = asyncio.Semaphore(concurrency)
        async with AsyncEmbeddingClient(target, retries=0, timeout=60) as client:

            async def one(number: int) -> tuple[grpc.StatusCode, float]:
                async with slots:
                    return await timed(number)

            async def timed(number: int) -> tuple[grpc.StatusCode, float]:
                texts = [f"request {number} text {index} river bank" for index in range(4)]
                started = time.perf_counter()
                try:
                    await client.embed(texts, MODEL)
                except grpc.aio.AioRpcError as error:
                    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
                    assert "retry with exponential backoff" in (error.details() or "")
                    return error.code(), time.perf_counter() - started
                return grpc.StatusCode.OK, time.perf_counter() - started

            await client.list_models()  # connected before the burst
            outcomes = await asyncio.gather(*(one(number) for number in range(sent)))
            return [code for code, _ in outcomes], [
                seconds for code, seconds in outcomes if code != grpc.StatusCode.OK
            ]

    settings = settings_for(imported["models"], max_inflight_texts=16, max_batch_size=4)
    with background_server(settings) as server:
        runtime = instrumented[0]
        runtime.batch_delay_s = 0.02
        codes, refused_s = asyncio.run(burst(server.target))
        counts = Counter(codes)
        ok, refused = counts[grpc.StatusCode.OK], counts[grpc.StatusCode.RESOURCE_EXHAUSTED]
        assert ok + refused == sent and ok > 0 and refused > 0
        assert runtime.prepared == ok * per_request  # a refused request was never tokenized
        assert len(runtime.executed) == ok * per_request
        assert embedder_of(server).inflight[MODEL] == 0  # every admitted text was released
    p99_ms = float(np.percentile(refused_s, 99)) * 1000
    p50_ms = float(np.percentile(refused_s, 50)) * 1000
    print(f"\nrefusal latency, {refused} refused calls: p50 {p50_ms:.2f} ms, p99 {p99_ms:.2f} ms")
    # Printed, not asserted: the goal is < 10 ms, but on 2 shared cores the client, the server
    # and ONNX Runtime's threads compete (p50 about 5 ms, p99 14-290 ms as seen here).


def test_deadlines_and_cancellation_drop_queued_work(
    imported: dict[str, Path], instrumented: list[InstrumentedRuntime]
) -> None:
    recorder = Recorder()

    def observers(key: BatcherKey) -> BatchObserver | None:
        return recorder if (key.model, key.operation) == (MODEL, "embed") else None

    busy_texts = [f"busy text {index} river bank" for index in range(80)]
    settings = settings_for(imported["models"], max_batch_size=1, default_timeout_s=0.3)
    with (
        background_server(settings, observers) as server,
        EmbeddingClient(server.target, timeout=60, retries=0) as busy,
        EmbeddingClient(server.target, timeout=0.1, retries=0) as hurried,
        ThreadPoolExecutor(1) as pool,
    ):
        runtime = instrumented[0]
        runtime.batch_delay_s = 0.05  # 80 batches: about 4 s of queue, slack for a busy machine
        stub = pb_grpc.EmbeddingServiceStub(busy.channel)
        batcher = embedder_of(server).resolve(MODEL, "").embed_batcher
        assert batcher is not None
        background = pool.submit(busy.embed, busy_texts, MODEL)
        wait_for(lambda: batcher.queue_size >= 30)

        with pytest.raises(grpc.RpcError) as raised:  # the client's deadline
            hurried.embed(["hurried text"], MODEL)
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

        with pytest.raises(grpc.RpcError) as raised:  # no client deadline: default_timeout_s
            stub.Embed(embed_request(["patient text one", "patient text two"], MODEL))
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert "batching queue" in raised.value.details()

        # The patient call's 2 texts expire in the queue (no gRPC deadline: only the server's).
        # At the hurried call's deadline gRPC cancels its handler as the batcher's timer
        # fires, so its 1 text is dropped for either reason, whichever comes first.
        wait_for(lambda: recorder.dropped["deadline"] + recorder.dropped["cancelled"] == 3)
        assert recorder.dropped["deadline"] >= 2
        cancelled = stub.Embed.future(
            embed_request(["cancelled text one", "two", "three"], MODEL), timeout=60
        )
        wait_for(lambda: runtime.prepared == len(busy_texts) + 6)  # tokenized, then queued
        time.sleep(0.05)
        assert batcher.queue_size > 3  # still behind the busy request's texts
        cancelled.cancel()
        wait_for(lambda: recorder.dropped["deadline"] + recorder.dropped["cancelled"] == 6)

        assert len(background.result().embeddings) == len(busy_texts)
        assert recorder.batched == len(busy_texts)  # nothing of the dropped calls was computed
        assert len(runtime.executed) == len(busy_texts)
        assert recorder.dropped["deadline"] + recorder.dropped["cancelled"] == 6
        assert set(recorder.dropped) <= {"deadline", "cancelled"}
        assert recorder.dropped["cancelled"] >= 3  # the cancelled call's texts left the queue
        wait_for(lambda: embedder_of(server).inflight[MODEL] == 0)


def test_a_failed_batch_fails_only_its_requests(
    imported: dict[str, Path], instrumented: list[InstrumentedRuntime]
) -> None:
    with (
        background_server(settings_for(imported["models"])) as server,
        EmbeddingClient(server.target, retries=0) as client,
    ):
        runtime = instrumented[0]
        runtime.fail_next = True
        with pytest.raises(grpc.RpcError) as raised:
            client.embed(["the batch that fails"], MODEL)
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
        details = raised.value.details()
        assert "failed on this batch (RuntimeError: [ONNXRuntimeError]" in details
        assert details.endswith("retry")
        assert len(client.embed(["the next batch", "succeeds"], MODEL).embeddings) == 2
        assert client.health() == "SERVING"
        assert embedder_of(server).inflight[MODEL] == 0


def test_the_client_retries_a_failed_batch_for_its_caller(
    imported: dict[str, Path], instrumented: list[InstrumentedRuntime]
) -> None:
    """A failed batch is UNAVAILABLE before any reply header has gone out, so the client's
    retry policy answers the call from the next batch."""
    with (
        background_server(settings_for(imported["models"])) as server,
        EmbeddingClient(server.target, retries=1) as client,
    ):
        runtime = instrumented[0]
        runtime.fail_next = True
        executed = len(runtime.executed)
        response = client.embed(["retried after a failed batch"], MODEL)
        assert len(response.embeddings) == 1 and not runtime.fail_next
        assert runtime.executed[executed:] == [tuple(response.embeddings[0].tokens)]
        assert embedder_of(server).inflight[MODEL] == 0


@pytest.mark.parametrize("damage", ["missing", "truncated", "altered"])
def test_a_damaged_model_file_refuses_start(
    imported: dict[str, Path], tmp_path: Path, damage: str
) -> None:
    models = tmp_path / "models"
    version = models / MODEL / "1"
    shutil.copytree(imported["models"] / MODEL, models / MODEL)
    spec = read_spec(version)
    graph = version / spec.graphs["encoder"].file
    expected = spec.file_checksums[graph.name]
    data = graph.read_bytes()
    if damage == "missing":
        graph.unlink()
    elif damage == "truncated":
        graph.write_bytes(data[: len(data) // 2])
    else:
        graph.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    actual = "no file" if damage == "missing" else sha256_of(graph)
    server = ServerThread(settings_for(models))
    try:
        with pytest.raises(SpecError) as raised:
            server.call(server.app.start())
    finally:
        server.close()
    message = str(raised.value)
    assert graph.name in message and expected in message and actual in message
    rebuild = f"python -m export bert --from-hf {imported[MODEL].resolve()} --name {MODEL}"
    assert f"rm -r {version} && {rebuild}" in message
