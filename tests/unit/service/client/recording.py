"""A real gRPC server for the client tests that answers every RPC from its request and records
what arrives, so a test sees exactly what a client or the console command sent."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from concurrent import futures
from contextlib import contextmanager

import grpc
from google.protobuf.message import Message
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc


class RecordingServicer(pb_grpc.EmbeddingServiceServicer):  # type: ignore[misc]
    """Answers every RPC with a response derived from its request and keeps (method,
    request, authorization header) of each call. ``models`` is what ListModels lists."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Message, str | None]] = []
        self.models = [pb.ModelInfo(name="recorded-model", version="1")]

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
        """One prediction per text: "word", its sequence the text with its mask filled."""
        self._record("FillMask", request, context)
        results = [
            pb.FillMaskResult(
                masks=[
                    pb.MaskPredictions(
                        predictions=[
                            pb.MaskPrediction(
                                token="word", score=0.5, sequence=text.replace("[MASK]", "word")
                            )
                        ]
                    )
                ]
            )
            for text in request.texts
        ]
        return pb.FillMaskResponse(model=request.model, version=request.version, results=results)

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
        return pb.ListModelsResponse(models=self.models)

    def GetModel(self, request: pb.GetModelRequest, context: grpc.ServicerContext) -> pb.ModelInfo:
        self._record("GetModel", request, context)
        return pb.ModelInfo(name=request.model, version=request.version or "1")


def embed_response(request: pb.EmbedRequest) -> pb.EmbedResponse:
    """One 2-d vector per text: (its length, 1)."""
    embeddings = [pb.Embedding(values=[len(text), 1.0], num_tokens=1) for text in request.texts]
    return pb.EmbedResponse(
        model=request.model, version=request.version, dim=2, embeddings=embeddings
    )


@contextmanager
def recording_server() -> Iterator[tuple[str, RecordingServicer]]:
    """(target, recorder) of a server on a free port, with gRPC health answering SERVING."""
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
