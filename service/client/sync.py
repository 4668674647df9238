"""The blocking client, and how both clients take their arguments: the texts (or words)
first, the model by keyword."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar, cast, overload

import grpc
from typing_extensions import deprecated

from proto.embedding.v1 import embedding_pb2 as pb
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

R = TypeVar("R")
POSITIONAL_MODEL = "a positional model is deprecated: pass it by keyword (model=NAME)"


def _usage(method: str, first: str) -> str:
    return f"call {method}({first}, model=NAME, ...), the model by keyword"


def model_by_keyword(*old_order: str) -> Callable[[Callable[..., R]], Callable[..., R]]:
    """Checks each call of a method that takes the texts (or words) first and the model by
    keyword, before anything is sent. The order most people guess, ``embed("bert", texts)``,
    would otherwise fail deep inside protobuf, and a bare str as the texts would be sent as one
    text per character: both are a TypeError that names the order. ``old_order`` lists the
    method's positional parameters from before the model became keyword-only; a call in that
    order (``embed(texts, "bert")``) still works, with a DeprecationWarning."""

    def decorate(method: Callable[..., R]) -> Callable[..., R]:
        name = method.__name__
        first = list(inspect.signature(method).parameters)[1]  # after self

        def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            legacy = len(args) > 1 or (
                # most_similar(model, positive): the old order put the model first
                old_order[0] == "model"
                and len(args) == 1
                and isinstance(args[0], str)
                and "model" not in kwargs
            )
            names = old_order if legacy else (first,)
            if len(args) > len(names):
                raise TypeError(
                    f"{name}() takes at most {len(old_order)} positional arguments, in the "
                    f"deprecated order ({', '.join(old_order)}); {_usage(name, first)}"
                )
            given = dict(zip(names, args, strict=False))
            if twice := sorted(given.keys() & kwargs.keys()):
                raise TypeError(f"{name}() got multiple values for argument {twice[0]!r}")
            given.update(kwargs)
            _check(name, first, given)
            if legacy:
                # the caller's line: this function, the wrapper, then the call
                warnings.warn(f"{name}(): {POSITIONAL_MODEL}", DeprecationWarning, stacklevel=3)
            return given

        if inspect.iscoroutinefunction(method):

            @functools.wraps(method)
            async def call_async(self: object, *args: Any, **kwargs: Any) -> Any:
                return await method(self, **arguments(args, kwargs))

            return cast(Callable[..., R], call_async)

        @functools.wraps(method)
        def call(self: object, *args: Any, **kwargs: Any) -> R:
            return method(self, **arguments(args, kwargs))

        return call

    return decorate


def _check(method: str, first: str, arguments: Mapping[str, Any]) -> None:
    if first not in arguments:
        raise TypeError(f"{method}() missing its {first}: {_usage(method, first)}")
    if "model" not in arguments:
        raise TypeError(f"{method}() needs the model by keyword: {_usage(method, first)}")
    texts, model = arguments[first], arguments["model"]
    if isinstance(texts, str | bytes):
        shown = f"{texts[:40]!r}{'…' if len(texts) > 40 else ''}"
        raise TypeError(
            f"{method}(): {first} must be a list of strings, not the {type(texts).__name__} "
            f"{shown}; {_usage(method, first)}"
        )
    if not isinstance(model, str):
        raise TypeError(
            f"{method}(): model must be a str, not {type(model).__name__}; {_usage(method, first)}"
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
