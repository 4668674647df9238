"""The EmbeddingService servicer: decode, call the embedder, encode. Errors map in ``status``."""

from __future__ import annotations

import asyncio
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


def _deadline(context: Context, default_timeout_s: float) -> float:
    """The call's deadline on the monotonic clock the batcher uses: the client's, or
    ``default_timeout_s`` from now when it set none, so no request waits forever."""
    remaining = context.time_remaining()
    return time.monotonic() + (default_timeout_s if remaining is None else remaining)


class EmbeddingServicer(pb_grpc.EmbeddingServiceServicer):
    """Answers UNAVAILABLE until the application hands it a warm embedder."""

    def __init__(self, default_timeout_s: float = 300.0) -> None:
        self.embedder: Embedder | None = None
        self.default_timeout_s = default_timeout_s
        self.closing = False
        """Set on shutdown: new calls get UNAVAILABLE while those in flight finish."""
        self.refused_at = 0.0
        """Event-loop time of the last call refused because of ``closing``."""

    def served_models(self) -> Collection[str]:
        """The names of the models served now (none until the embedder is warm)."""
        return () if self.embedder is None else self.embedder.models.keys()

    def _ready(self) -> Embedder:
        if self.closing:
            self.refused_at = asyncio.get_running_loop().time()
            raise Unavailable("the server is shutting down; retry on another replica")
        if self.embedder is None:
            raise Unavailable("models are still loading and warming up; retry in a few seconds")
        return self.embedder

    async def _embed(self, request: pb.EmbedRequest, context: Context) -> pb.EmbedResponse:
        deadline = _deadline(context, self.default_timeout_s)
        outcome = await self._ready().embed(codec.embed_query(request), deadline)
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
        deadline = _deadline(context, self.default_timeout_s)
        outcome = await self._ready().fill_mask(codec.fill_mask_query(request), deadline)
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
