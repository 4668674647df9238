"""The EmbeddingService servicer: decode, call the embedder, encode. Errors map in ``status``."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Any, TypeAlias

from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc
from service.embedder import Embedder
from service.transport import codec
from service.transport.gate import ServingGate
from service.transport.status import streaming, unary
from service.transport.streams import in_order

# grpc ships no type information; the context is a grpc.aio.ServicerContext.
Context: TypeAlias = Any


def _deadline(context: Context, default_timeout_s: float) -> float:
    """The call's deadline on the monotonic clock the batcher uses: the client's, or
    ``default_timeout_s`` from now when it set none, so no request waits forever."""
    remaining = context.time_remaining()
    return time.monotonic() + (default_timeout_s if remaining is None else remaining)


class EmbeddingServicer(pb_grpc.EmbeddingServiceServicer):
    """Answers UNAVAILABLE until the gate has a warm embedder, and once it closes."""

    def __init__(
        self, gate: ServingGate, default_timeout_s: float, stream_concurrency: int
    ) -> None:
        self.gate = gate
        self.default_timeout_s = default_timeout_s
        self.stream_concurrency = stream_concurrency
        """Messages of one EmbedStream worked on at once (they batch with each other)."""

    def _ready(self) -> Embedder:
        return self.gate.ready()

    async def _embed(self, request: pb.EmbedRequest, context: Context) -> pb.EmbedResponse:
        deadline = _deadline(context, self.default_timeout_s)
        encoding = codec.vector_encoding(request)
        outcome = await self._ready().embed(codec.embed_query(request), deadline)
        return codec.embed_response(outcome, encoding)

    @unary
    async def Embed(self, request: pb.EmbedRequest, context: Context) -> pb.EmbedResponse:
        return await self._embed(request, context)

    @streaming
    async def EmbedStream(
        self, requests: AsyncIterator[pb.EmbedRequest], context: Context
    ) -> AsyncIterator[pb.EmbedResponse]:
        """Up to ``stream_concurrency`` messages at once, answered in order; the first error
        in order ends the stream with its status after the replies before it. Their texts
        together stay within the stream's budget (``Admission.stream_budget``)."""
        budget = self._ready().stream_budget()

        async def embed(request: pb.EmbedRequest) -> pb.EmbedResponse:
            async with budget.hold(len(request.texts)):
                return await self._embed(request, context)

        responses = in_order(requests, embed, self.stream_concurrency)
        async with aclosing(responses):
            async for response in responses:
                yield response

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
        outcome = await self._ready().tokenize(request.model, request.version, request.texts)
        return codec.tokenize_response(outcome)

    @unary
    async def ListModels(
        self, request: pb.ListModelsRequest, context: Context
    ) -> pb.ListModelsResponse:
        """Every served version, and each model that is known but has none ready (loading,
        being built, draining or failed) with its state."""
        views = self._ready().list_models()
        return pb.ListModelsResponse(models=[codec.model_info(view) for view in views])

    @unary
    async def GetModel(self, request: pb.GetModelRequest, context: Context) -> pb.ModelInfo:
        """The served version asked for (empty: the newest ready one); a model or version that
        is known but not served is described by its state instead of NOT_FOUND."""
        return codec.model_info(self._ready().describe(request.model, request.version))
