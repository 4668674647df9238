"""The blocking client (the model by keyword: ``service.client.arguments``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, overload

import grpc
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


class EmbeddingClient(ClientBase[grpc.Channel]):
    """Blocking client. Use as a context manager or call ``close()``."""

    @staticmethod
    def _open_channel(
        target: str, options: ChannelOptions, credentials: grpc.ChannelCredentials | None
    ) -> grpc.Channel:
        if credentials is None:
            return grpc.insecure_channel(target, options=options)
        return grpc.secure_channel(target, credentials, options=options)

    def __enter__(self) -> EmbeddingClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self.channel.close()

    @overload
    def embed(
        self, texts: Sequence[str], *, model: str, encoding: str = "float", **options: Any
    ) -> pb.EmbedResponse: ...
    @overload
    @deprecated(POSITIONAL_MODEL)
    def embed(
        self, texts: Sequence[str], model: str, /, *, encoding: str = "float", **options: Any
    ) -> pb.EmbedResponse: ...
    @model_by_keyword("texts", "model")
    def embed(
        self, texts: Sequence[str], *, model: str, encoding: str = "float", **options: Any
    ) -> pb.EmbedResponse:
        """``options`` are ``embed_request``'s; ``encoding`` float32 or float16 has the vectors
        sent as raw bytes (``vectors(response)`` reads either form)."""
        response: pb.EmbedResponse = self.stub.Embed(
            embed_request(texts, model, encoding=encoding, **options), **self._call_options()
        )
        return response

    def embed_stream(self, requests: Iterable[pb.EmbedRequest]) -> Iterator[pb.EmbedResponse]:
        """One response per request, in order, over one call."""
        responses: Iterator[pb.EmbedResponse] = self.stub.EmbedStream(
            iter(requests), **self._call_options()
        )
        return responses

    @overload
    def fill_mask(
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
    def fill_mask(
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
    def fill_mask(
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
        response: pb.FillMaskResponse = self.stub.FillMask(request, **self._call_options())
        return response

    @overload
    def most_similar(
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
    def most_similar(
        self,
        model: str,
        /,
        positive: Sequence[str],
        negative: Sequence[str] = (),
        top_k: int = 10,
        version: str = "",
    ) -> pb.MostSimilarResponse: ...
    @model_by_keyword("model", "positive", "negative", "top_k", "version")
    def most_similar(
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
        response: pb.MostSimilarResponse = self.stub.MostSimilar(request, **self._call_options())
        return response

    @overload
    def tokenize(
        self, texts: Sequence[str], *, model: str, version: str = ""
    ) -> pb.TokenizeResponse: ...
    @overload
    @deprecated(POSITIONAL_MODEL)
    def tokenize(
        self, texts: Sequence[str], model: str, /, version: str = ""
    ) -> pb.TokenizeResponse: ...
    @model_by_keyword("texts", "model", "version")
    def tokenize(
        self, texts: Sequence[str], *, model: str, version: str = ""
    ) -> pb.TokenizeResponse:
        request = tokenize_request(texts, model, version)
        response: pb.TokenizeResponse = self.stub.Tokenize(request, **self._call_options())
        return response

    def list_models(self) -> pb.ListModelsResponse:
        response: pb.ListModelsResponse = self.stub.ListModels(
            pb.ListModelsRequest(), **self._call_options()
        )
        return response

    def get_model(self, model: str, version: str = "") -> pb.ModelInfo:
        request = get_model_request(model, version)
        response: pb.ModelInfo = self.stub.GetModel(request, **self._call_options())
        return response

    def health(self, service: str = "") -> str:
        """SERVING, NOT_SERVING, ... for ``service`` ("" = the whole server)."""
        response = self.health_stub.Check(health_request(service), **self._call_options())
        return health_status(response)
