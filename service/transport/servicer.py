"""The EmbeddingService servicer: decode, call the embedder, encode. Errors map in ``status``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection
from typing import Any, TypeAlias

from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc
from service.embedder import Embedder
from service.errors import Unavailable
from service.transport import codec
from service.transport.status import streaming, unary

# grpc ships no type information; the context is a grpc.aio.ServicerContext.
Context: TypeAlias = Any


def _deadline(context: Context) -> float | None:
    """The client's deadline on the monotonic clock the batcher uses, if it set one."""
    remaining = context.time_remaining()
    return None if remaining is None else time.monotonic() + remaining


class EmbeddingServicer(pb_grpc.EmbeddingServiceServicer):
    """Answers UNAVAILABLE until the application hands it a warm embedder."""

    def __init__(self) -> None:
        self.embedder: Embedder | None = None

    def served_models(self) -> Collection[str]:
        """The names of the models served now (none until the embedder is warm)."""
        return () if self.embedder is None else self.embedder.models.keys()

    def _ready(self) -> Embedder:
        if self.embedder is None:
            raise Unavailable("models are still loading and warming up; retry in a few seconds")
        return self.embedder

    async def _embed(self, request: pb.EmbedRequest, context: Context) -> pb.EmbedResponse:
        outcome = await self._ready().embed(codec.embed_query(request), _deadline(context))
        return codec.embed_response(outcome)

    @unary
    async def Embed(self, request: pb.EmbedRequest, context: Context) -> pb.EmbedResponse:
        return await self._embed(request, context)

    @streaming
    async def EmbedStream(
        self, requests: AsyncIterator[pb.EmbedRequest], context: Context
    ) -> AsyncIterator[pb.EmbedResponse]:
        async for request in requests:
            yield await self._embed(request, context)

    @unary
    async def FillMask(self, request: pb.FillMaskRequest, context: Context) -> pb.FillMaskResponse:
        outcome = await self._ready().fill_mask(codec.fill_mask_query(request), _deadline(context))
        return codec.fill_mask_response(outcome)

    @unary
    async def MostSimilar(
        self, request: pb.MostSimilarRequest, context: Context
    ) -> pb.MostSimilarResponse:
        outcome = await self._ready().most_similar(codec.most_similar_query(request))
        return codec.most_similar_response(outcome)

    @unary
    async def Tokenize(self, request: pb.TokenizeRequest, context: Context) -> pb.TokenizeResponse:
        served, results = await self._ready().tokenize(
            request.model, request.version, request.texts
        )
        return codec.tokenize_response(served.spec.name, served.spec.version, results)

    @unary
    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        embedder = self._ready()
        return pb.ListModelsResponse(
            models=[
                codec.model_info(served.runtime, sorted(embedder.models[served.spec.name]), True)
                for served in embedder.served()
            ]
        )

    @unary
    async def GetModel(self, request: pb.GetModelRequest, context: Context) -> pb.ModelInfo:
        embedder = self._ready()
        served = embedder.resolve(request.model, request.version)
        return codec.model_info(served.runtime, sorted(embedder.models[served.spec.name]), True)
