"""Both clients offer the same methods and send the same requests: each method is called
through the blocking and the asyncio client against one real gRPC server that records what
arrives, and the console command runs as ``python -m service.client``."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc
from service.client import AsyncEmbeddingClient, EmbeddingClient, embed_request

ROOT = Path(__file__).resolve().parents[4]
TOKEN = "s3cret-token"


class RecordingServicer(pb_grpc.EmbeddingServiceServicer):  # type: ignore[misc]
    """Answers every RPC with a response derived from its request and keeps (method,
    request, authorization header) of each call."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Message, str | None]] = []

    def _record(self, method: str, request: Message, context: grpc.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata())
        self.calls.append((method, request, metadata.get("authorization")))

    def Embed(self, request: pb.EmbedRequest, context: grpc.ServicerContext) -> pb.EmbedResponse:
        self._record("Embed", request, context)
        return embed_response(request)

    def EmbedStream(
        self, requests: Iterable[pb.EmbedRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.EmbedResponse]:
        for request in requests:
            self._record("EmbedStream", request, context)
            yield embed_response(request)

    def FillMask(
        self, request: pb.FillMaskRequest, context: grpc.ServicerContext
    ) -> pb.FillMaskResponse:
        self._record("FillMask", request, context)
        return pb.FillMaskResponse(model=request.model, version=request.version)

    def MostSimilar(
        self, request: pb.MostSimilarRequest, context: grpc.ServicerContext
    ) -> pb.MostSimilarResponse:
        self._record("MostSimilar", request, context)
        neighbors = [pb.Neighbor(word=word, score=0.5) for word in request.positive]
        return pb.MostSimilarResponse(model=request.model, neighbors=neighbors)

    def Tokenize(
        self, request: pb.TokenizeRequest, context: grpc.ServicerContext
    ) -> pb.TokenizeResponse:
        self._record("Tokenize", request, context)
        results = [pb.TokenizedText(tokens=text.split()) for text in request.texts]
        return pb.TokenizeResponse(model=request.model, results=results)

    def ListModels(
        self, request: pb.ListModelsRequest, context: grpc.ServicerContext
    ) -> pb.ListModelsResponse:
        self._record("ListModels", request, context)
        return pb.ListModelsResponse(models=[pb.ModelInfo(name="recorded-model", version="1")])

    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> pb.ModelInfo:
        self._record("GetModel", request, context)
        return pb.ModelInfo(name=request.model, version=request.version or "1")


def embed_response(request: pb.EmbedRequest) -> pb.EmbedResponse:
    """One 2-d vector per text: (its length, 1)."""
    embeddings = [pb.Embedding(values=[len(text), 1.0], num_tokens=1) for text in request.texts]
    return pb.EmbedResponse(
        model=request.model, version=request.version, dim=2, embeddings=embeddings
    )


@pytest.fixture
def server() -> Iterator[tuple[str, RecordingServicer]]:
    recorder = RecordingServicer()
    grpc_server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pb_grpc.add_EmbeddingServiceServicer_to_server(recorder, grpc_server)
    health_servicer = health.HealthServicer()
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    try:
        yield f"127.0.0.1:{port}", recorder
    finally:
        grpc_server.stop(None)


def public_methods(cls: type) -> dict[str, Callable[..., Any]]:
    return {
        name: member
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_")
    }


def test_both_clients_have_the_same_methods_and_parameters() -> None:
    blocking, asynchronous = public_methods(EmbeddingClient), public_methods(AsyncEmbeddingClient)
    assert sorted(blocking) == sorted(asynchronous)
    for name, method in blocking.items():
        expected = [
            (p.name, p.kind, p.default) for p in inspect.signature(method).parameters.values()
        ]
        other = asynchronous[name]
        actual = [(p.name, p.kind, p.default) for p in inspect.signature(other).parameters.values()]
        assert actual == expected, name
        assert inspect.iscoroutinefunction(other) or inspect.isasyncgenfunction(other), name
    assert inspect.signature(EmbeddingClient) == inspect.signature(AsyncEmbeddingClient)


STREAM = [embed_request(["a b", "c"], "bert", pooling="mean"), embed_request(["d"], "bert")]
# Every public method but close: (arguments, keyword arguments).
CALLS: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = {
    "embed": ((["the cook", "an apple"], "bert"), {"pooling": "cls", "layers": [1, 2]}),
    "embed_stream": ((STREAM,), {}),
    "fill_mask": ((["the [MASK] is red"], "bert"), {"top_k": 3, "cache_policy": "bypass"}),
    "most_similar": (("word2vec", ["apple"]), {"negative": ["mushy"], "top_k": 4}),
    "tokenize": ((["some text"], "bert"), {"version": "2"}),
    "list_models": ((), {}),
    "get_model": (("elmo",), {"version": "3"}),
    "health": ((), {}),
}


def test_every_method_is_called_by_the_request_test() -> None:
    assert set(CALLS) == set(public_methods(EmbeddingClient)) - {"close"}


async def call_async(client: AsyncEmbeddingClient, name: str) -> Any:
    args, kwargs = CALLS[name]
    if name == "embed_stream":
        return [response async for response in client.embed_stream(*args, **kwargs)]
    return await getattr(client, name)(*args, **kwargs)


def call_blocking(client: EmbeddingClient, name: str) -> Any:
    args, kwargs = CALLS[name]
    result = getattr(client, name)(*args, **kwargs)
    return list(result) if name == "embed_stream" else result


@pytest.mark.parametrize("name", sorted(CALLS))
async def test_both_clients_send_the_same_requests(
    server: tuple[str, RecordingServicer], name: str
) -> None:
    target, recorder = server
    with EmbeddingClient(target, timeout=10, token=TOKEN) as blocking:
        blocking_result = call_blocking(blocking, name)
    blocking_calls, recorder.calls[:] = list(recorder.calls), []
    async with AsyncEmbeddingClient(target, timeout=10, token=TOKEN) as asynchronous:
        async_result = await call_async(asynchronous, name)
    assert async_result == blocking_result
    assert recorder.calls == blocking_calls
    if name == "health":
        assert blocking_result == "SERVING"
    else:
        assert blocking_calls, "the server saw no call"
        assert {authorization for _, _, authorization in blocking_calls} == {f"Bearer {TOKEN}"}
    if name == "embed_stream":
        assert [request for _, request, _ in blocking_calls] == STREAM


def test_requests_carry_the_arguments(server: tuple[str, RecordingServicer]) -> None:
    target, recorder = server
    with EmbeddingClient(target, timeout=10) as client:
        response = client.embed(
            ["the cook"],
            "bert",
            pooling="cls",
            layers=[1, 2],
            normalize=False,
            prompt_name="query",
            dimensions=2,
        )
        client.get_model("elmo", version="3")
    (_, embed, authorization), (_, get_model, _) = recorder.calls
    assert embed == pb.EmbedRequest(
        model="bert",
        texts=["the cook"],
        pooling=pb.POOLING_CLS,
        layers=[1, 2],
        normalization=pb.NORMALIZATION_OFF,
        prompt_name="query",
        dimensions=2,
    )
    assert authorization is None  # no token, no header
    assert get_model == pb.GetModelRequest(model="elmo", version="3")
    assert response.dim == 2


def run_cli(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-W", "error::RuntimeWarning", "-m", "service.client", *arguments],
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "200"},  # rich wraps table cells to the terminal
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_console_command_runs_as_a_module(server: tuple[str, RecordingServicer]) -> None:
    target, recorder = server
    models = run_cli("--target", target, "models")
    assert models.returncode == 0, models.stderr
    assert "recorded-model" in models.stdout
    healthy = run_cli("--target", target, "health")
    assert (healthy.returncode, healthy.stdout.strip()) == (0, "SERVING")
    embedded = run_cli("--target", target, "embed", "--model", "bert", "--json", "abc", "de")
    assert embedded.returncode == 0, embedded.stderr
    assert embedded.stdout.strip() == "[[3.0, 1.0], [2.0, 1.0]]"
    assert [method for method, _, _ in recorder.calls] == ["ListModels", "Embed"]
