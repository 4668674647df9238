"""EmbedStream works on up to ``stream_concurrency`` messages at once, over a real channel:
replies in order, the messages of one stream batched together, the bound kept, errors and
cancellation as for one message at a time."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from proto.embedding.v1 import embedding_pb2 as pb
from service.background import BackgroundServer, background_server
from service.batching import BatcherKey, BatchObserver
from service.client import EmbeddingClient, embed_request, vectors
from tests.integration.harness import settings_for

MODEL = "tiny-mlm"
WORDS = "the river bank raised its muddy rates again while a cat sat on the mat".split()


class BatchRecorder:
    """Batch observer of the model's embed batcher: each batch's size, drops by reason."""

    def __init__(self) -> None:
        self.sizes: list[int] = []
        self.dropped: Counter[str] = Counter()

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        self.sizes.append(batch_size)

    def on_dropped(self, reason: str, count: int) -> None:
        self.dropped[reason] += count

    def on_executed(self, seconds: float) -> None:
        pass


@contextmanager
def observed_server(
    models: Path, **settings: Any
) -> Iterator[tuple[BackgroundServer, BatchRecorder]]:
    recorder = BatchRecorder()

    def observers(key: BatcherKey) -> BatchObserver | None:
        return recorder if (key.model, key.operation) == (MODEL, "embed") else None

    with background_server(settings_for(models, **settings), observers) as server:
        recorder.sizes.clear()  # warm-up batches
        yield server, recorder


def wait_for(condition: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


def text(number: int) -> str:
    """Texts of 1 to 15 words, so replies of one stream finish at different times."""
    return " ".join(WORDS[: 1 + number * 7 % len(WORDS)])


def test_replies_keep_their_order_under_concurrency(client: EmbeddingClient) -> None:
    requests = [
        embed_request([text(n)] * (1 + n % 3), MODEL, pooling="none" if n % 2 else "mean")
        for n in range(40)
    ]
    streamed = list(client.embed_stream(requests))
    assert len(streamed) == len(requests)
    for request, reply in zip(requests, streamed, strict=True):
        alone = client.stub.Embed(request)  # the same message on its own
        assert [list(e.tokens) for e in reply.embeddings] == [
            list(e.tokens) for e in alone.embeddings
        ]
        for ours, expected in zip(vectors(reply), vectors(alone), strict=True):
            np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)


def test_the_messages_of_one_stream_batch_together(imported: dict[str, Path]) -> None:
    requests = [embed_request([text(n)], MODEL) for n in range(24)]
    with (
        observed_server(imported["models"], max_queue_delay_ms=50) as (server, recorder),
        EmbeddingClient(server.target, timeout=60) as client,
    ):
        assert len(list(client.embed_stream(requests))) == 24
    assert sum(recorder.sizes) == 24 and max(recorder.sizes) > 1, recorder.sizes


def test_one_at_a_time_with_stream_concurrency_one(imported: dict[str, Path]) -> None:
    requests = [embed_request([text(n)], MODEL) for n in range(6)]
    with (
        observed_server(imported["models"], max_queue_delay_ms=50, stream_concurrency=1) as (
            server,
            recorder,
        ),
        EmbeddingClient(server.target, timeout=60) as client,
    ):
        assert len(list(client.embed_stream(requests))) == 6
    assert recorder.sizes == [1] * 6


def test_no_more_than_stream_concurrency_messages_are_in_flight(
    imported: dict[str, Path],
) -> None:
    """Each batch waits 100 ms for company, so it takes every message in flight: with 4
    allowed, no batch can hold more than 4 single-text messages."""
    requests = [embed_request([text(n)], MODEL) for n in range(16)]
    with (
        observed_server(imported["models"], max_queue_delay_ms=100, stream_concurrency=4) as (
            server,
            recorder,
        ),
        EmbeddingClient(server.target, timeout=60) as client,
    ):
        assert len(list(client.embed_stream(requests))) == 16
    assert sum(recorder.sizes) == 16
    assert 1 < max(recorder.sizes) <= 4, recorder.sizes


def test_an_error_mid_stream_comes_after_the_replies_before_it(
    client: EmbeddingClient,
) -> None:
    """Message 3 fails at once (no such model) while 0-2 are still being computed: the
    client still gets those three replies first, then the stream's status."""
    requests = [embed_request([text(n)] * 4, MODEL) for n in range(3)]
    requests += [embed_request(["x"], "missing")]
    requests += [embed_request([text(n)], MODEL) for n in range(5)]
    received: list[pb.EmbedResponse] = []
    with pytest.raises(grpc.RpcError) as raised:
        for reply in client.embed_stream(requests):
            received.append(reply)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND
    assert "missing" in raised.value.details()
    assert [len(reply.embeddings) for reply in received] == [4, 4, 4]


async def _task_count() -> int:
    return len(asyncio.all_tasks())


def test_cancelling_the_stream_cancels_its_pending_messages(imported: dict[str, Path]) -> None:
    """Eight messages wait in the batching queue (a batch waits 10 s for company); the client
    cancels: every queued text is dropped as cancelled and no task of the stream is left."""
    with (
        observed_server(imported["models"], max_queue_delay_ms=10_000) as (server, recorder),
        EmbeddingClient(server.target, timeout=60) as client,
    ):
        embedder = server.app.embedder
        assert embedder is not None
        batcher = embedder.resolve(MODEL, "").embed_batcher
        assert batcher is not None
        idle_tasks = server.call(_task_count())
        call = client.stub.EmbedStream(iter([embed_request([text(n)], MODEL) for n in range(8)]))
        wait_for(lambda: batcher.queue_size == 8)
        call.cancel()
        wait_for(lambda: recorder.dropped["cancelled"] == 8)
        wait_for(lambda: embedder.inflight[MODEL] == 0)
        wait_for(lambda: server.call(_task_count()) == idle_tasks)
        assert recorder.sizes == []  # nothing was computed
        assert client.embed(["still serving"], MODEL).embeddings  # the server is fine


def test_a_streams_own_messages_never_refuse_each_other(imported: dict[str, Path]) -> None:
    """Twelve messages of 64 texts against an in-flight limit of 128: at most 64 texts of the
    stream run at once, so no message is refused for the others of its stream."""
    with observed_server(imported["models"], max_inflight_texts=128, stream_concurrency=12) as (
        server,
        recorder,
    ):
        texts = [" ".join(WORDS[: 3 + i % 9]) for i in range(64)]
        requests = [embed_request(texts, MODEL) for _ in range(12)]
        with EmbeddingClient(server.target, timeout=60) as client:
            responses = list(client.embed_stream(requests))
        assert [len(response.embeddings) for response in responses] == [64] * 12
        assert max(recorder.sizes) > 1
        embedder = server.app.embedder
        assert embedder is not None and embedder.inflight[MODEL] == 0
