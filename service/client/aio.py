"""The asyncio client: the blocking client's methods, awaitable (``embed_stream`` is an
async iterator)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Iterable, Sequence
from typing import Any, overload

import grpc
import grpc.aio
from typing_extensions import deprecated

from proto.embedding.v1 import embedding_pb2 as pb
from service.client.arguments import POSITIONAL_MODEL, model_by_keyword
from service.client.channel import ChannelOptions, ClientBase
from service.client.messages import (
    embed_request,
    fill_mask_request,
    get_model_request,
    health_request,
    health_status,
    most_similar_request,
    tokenize_request,
)


class AsyncEmbeddingClient(ClientBase[grpc.aio.Channel]):
    """asyncio client with the same methods as ``EmbeddingClient`` (awaitable). Use as an
    async context manager or await ``close()``."""

    @staticmethod
    def _open_channel(
        target: str, options: ChannelOptions, credentials: grpc.ChannelCredentials | None
    ) -> grpc.aio.Channel:
        if credentials is None:
            return grpc.aio.insecure_channel(target, options=options)
        return grpc.aio.secure_channel(target, credentials, options=options)

    async def __aenter__(self) -> AsyncEmbeddingClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.channel.close()

    @overload
    async def embed(
        self, texts: Sequence[str], *, model: str, encoding: str = "float", **options: Any
    ) -> pb.EmbedResponse: ...
    @overload
    @deprecated(POSITIONAL_MODEL)
    async def embed(
        self, texts: Sequence[str], model: str, /, *, encoding: str = "float", **options: Any
    ) -> pb.EmbedResponse: ...
    @model_by_keyword("texts", "model")
    async def embed(
        self, texts: Sequence[str], *, model: str, encoding: str = "float", **options: Any
    ) -> pb.EmbedResponse:
        """``options`` are ``embed_request``'s; ``encoding`` float32 or float16 has the vectors
        sent as raw bytes (``vectors(response)`` reads either form)."""
        response: pb.EmbedResponse = await self.stub.Embed(
            embed_request(texts, model, encoding=encoding, **options), **self._call_options()
        )
        return response

    async def embed_stream(
        self, requests: Iterable[pb.EmbedRequest] | AsyncIterable[pb.EmbedRequest]
    ) -> AsyncIterator[pb.EmbedResponse]:
        """One response per request, in order, over one call; ``requests`` may be produced
        while the responses arrive."""
        call = self.stub.EmbedStream(requests, **self._call_options())
        async for response in call:
            yield response

    @overload
    async def fill_mask(
        self,
        texts: Sequence[str],
        *,
        model: str,
        top_k: int = 5,
        version: str = "",
        cache_policy: str = "use",
        truncate: bool = False,
    ) -> pb.FillMaskResponse: ...
    @overload
    @deprecated(POSITIONAL_MODEL)
    async def fill_mask(
        self,
        texts: Sequence[str],
        model: str,
        /,
        top_k: int = 5,
        version: str = "",
        cache_policy: str = "use",
        *,
        truncate: bool = False,
    ) -> pb.FillMaskResponse: ...
    @model_by_keyword("texts", "model", "top_k", "version", "cache_policy")
    async def fill_mask(
        self,
        texts: Sequence[str],
        *,
        model: str,
        top_k: int = 5,
        version: str = "",
        cache_policy: str = "use",
        truncate: bool = False,
    ) -> pb.FillMaskResponse:
        """``truncate`` cuts a text longer than the model takes to a window around its
        masks instead of refusing it."""
        request = fill_mask_request(texts, model, top_k, version, cache_policy, truncate=truncate)
        response: pb.FillMaskResponse = await self.stub.FillMask(request, **self._call_options())
        return response

    @overload
    async def most_similar(
        self,
        positive: Sequence[str],
        *,
        model: str,
        negative: Sequence[str] = (),
        top_k: int = 10,
        version: str = "",
    ) -> pb.MostSimilarResponse: ...
    @overload
    @deprecated(POSITIONAL_MODEL)
    async def most_similar(
        self,
        model: str,
        /,
        positive: Sequence[str],
        negative: Sequence[str] = (),
        top_k: int = 10,
        version: str = "",
    ) -> pb.MostSimilarResponse: ...
    @model_by_keyword("model", "positive", "negative", "top_k", "version")
    async def most_similar(
        self,
        positive: Sequence[str],
        *,
        model: str,
        negative: Sequence[str] = (),
        top_k: int = 10,
        version: str = "",
    ) -> pb.MostSimilarResponse:
        """The words nearest ``positive`` minus ``negative`` (word2vec)."""
        request = most_similar_request(model, positive, negative, top_k, version)
        response: pb.MostSimilarResponse = await self.stub.MostSimilar(
            request, **self._call_options()
        )
        return response

    @overload
    async def tokenize(
        self, texts: Sequence[str], *, model: str, version: str = ""
    ) -> pb.TokenizeResponse: ...
    @overload
    @deprecated(POSITIONAL_MODEL)
    async def tokenize(
        self, texts: Sequence[str], model: str, /, version: str = ""
    ) -> pb.TokenizeResponse: ...
    @model_by_keyword("texts", "model", "version")
    async def tokenize(
        self, texts: Sequence[str], *, model: str, version: str = ""
    ) -> pb.TokenizeResponse:
        request = tokenize_request(texts, model, version)
        response: pb.TokenizeResponse = await self.stub.Tokenize(request, **self._call_options())
        return response

    async def list_models(self) -> pb.ListModelsResponse:
        response: pb.ListModelsResponse = await self.stub.ListModels(
            pb.ListModelsRequest(), **self._call_options()
        )
        return response

    async def get_model(self, model: str, version: str = "") -> pb.ModelInfo:
        request = get_model_request(model, version)
        response: pb.ModelInfo = await self.stub.GetModel(request, **self._call_options())
        return response

    async def health(self, service: str = "") -> str:
        """SERVING, NOT_SERVING, ... for ``service`` ("" = the whole server)."""
        response = await self.health_stub.Check(health_request(service), **self._call_options())
        return health_status(response)
