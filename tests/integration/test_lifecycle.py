"""Health through the lifecycle, backpressure, deadlines and graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.client import AsyncEmbeddingClient, EmbeddingClient
from tests.integration.harness import ServerThread, running_server, settings_for

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def test_health_goes_from_not_serving_to_serving(imported: dict[str, Path]) -> None:
    server = ServerThread(settings_for(imported["models"]))
    try:
        server.call(server.app.listen())
        with EmbeddingClient(server.target, retries=0) as client:
            assert client.health() == "NOT_SERVING"
            assert client.health("embedding.v1.EmbeddingService") == "NOT_SERVING"
            with pytest.raises(grpc.RpcError) as raised:
                client.embed(["too early"], "tiny-mlm")
            assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
            assert "warming up" in raised.value.details()
            server.call(server.app.load())
            assert client.health() == "SERVING"
            assert client.health("embedding.v1.EmbeddingService") == "SERVING"
            assert len(client.embed(["now"], "tiny-mlm").embeddings) == 1
    finally:
        server.close()


def test_full_queue_answers_resource_exhausted(imported: dict[str, Path]) -> None:
    text = " ".join(["river bank"] * 50)

    async def burst(target: str) -> list[grpc.StatusCode]:
        async with AsyncEmbeddingClient(target, retries=0) as client:

            async def one() -> grpc.StatusCode:
                try:
                    await client.embed([text] * 8, "tiny-mlm")
                except grpc.aio.AioRpcError as error:
                    assert "queue" in (error.details() or "")
                    return error.code()
                return grpc.StatusCode.OK

            return list(await asyncio.gather(*(one() for _ in range(40))))

    with running_server(imported["models"], max_queue_size=16, max_batch_size=4) as server:
        codes = asyncio.run(burst(server.target))
        assert set(codes) <= {grpc.StatusCode.OK, grpc.StatusCode.RESOURCE_EXHAUSTED}
        assert grpc.StatusCode.RESOURCE_EXHAUSTED in codes and grpc.StatusCode.OK in codes
        with EmbeddingClient(server.target) as client:  # still healthy afterwards
            assert client.health() == "SERVING"


def test_expired_deadline_is_reported_not_hung(imported: dict[str, Path]) -> None:
    with (
        running_server(imported["models"], max_batch_size=1, max_texts_per_request=1000) as server,
        EmbeddingClient(server.target, timeout=30) as busy,
        EmbeddingClient(server.target, timeout=0.02) as hurried,
    ):
        texts = [" ".join(["river bank flows"] * 40)] * 1000
        with ThreadPoolExecutor(1) as pool:
            background = pool.submit(busy.embed, texts, "tiny-mlm")
            assert server.app.embedder is not None
            batcher = server.app.embedder.resolve("tiny-mlm", "").embed_batcher
            assert batcher is not None
            while batcher.queue_size < 500:
                time.sleep(0.001)
            with pytest.raises(grpc.RpcError) as raised:
                hurried.embed(["late"], "tiny-mlm")
            assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
            assert len(background.result().embeddings) == 1000


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_sigterm_finishes_in_flight_requests(imported: dict[str, Path]) -> None:
    port = free_port()
    env = {**os.environ, "EMBED_GRACE_PERIOD_S": "20", "EMBED_MAX_BATCH_SIZE": "2"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "service",
            "--models-dir",
            str(imported["models"]),
            "--port",
            str(port),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    target = f"127.0.0.1:{port}"
    try:
        with EmbeddingClient(target, timeout=60) as client:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    if client.health() == "SERVING":
                        break
                except grpc.RpcError:
                    pass
                time.sleep(0.1)
            assert client.health() == "SERVING"
            watched: list[int] = []
            channel = grpc.insecure_channel(target)
            watch = health_pb2_grpc.HealthStub(channel).Watch(
                health_pb2.HealthCheckRequest(service="")
            )

            def follow() -> None:
                try:
                    for update in watch:
                        watched.append(update.status)
                        if update.status == NOT_SERVING:
                            watch.cancel()
                except grpc.RpcError as error:  # our own cancel ends the stream
                    assert error.code() == grpc.StatusCode.CANCELLED

            follower = threading.Thread(target=follow)
            follower.start()
            texts = [" ".join(["river bank flows"] * 30)] * 24
            with ThreadPoolExecutor(8) as pool:
                calls = [pool.submit(client.embed, texts, "tiny-mlm") for _ in range(8)]
                time.sleep(0.3)
                process.send_signal(signal.SIGTERM)
                results = [call.result() for call in calls]
            assert all(len(result.embeddings) == 24 for result in results)
            follower.join(timeout=30)
            channel.close()
            assert watched[0] == SERVING and watched[-1] == NOT_SERVING
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
        output = process.stdout.read() if process.stdout else ""
    assert "shutting down" in output and "stopped" in output
