"""The one gRPC server interceptor: request ids, request metrics and the access log.

Every request gets an id: the client's ``x-request-id`` metadata, or a new one. It is echoed in
a unary call's trailing metadata (sent with the status, in the same write) and in a stream's
initial metadata (before its first reply); ``id_in_headers`` puts a unary call's in its initial
metadata instead, at the price of a write of its own. It is set in a context variable that
``RequestIdFilter`` adds to the server's log lines. Each request is counted by method, model
and status code, timed, and (with ``--access-log``) written as one JSON line that never holds a
text, a vector or a token. Messages that gRPC itself refuses before any handler runs
(oversized, undecodable) never reach an interceptor, so they are not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import os
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Collection
from dataclasses import dataclass
from typing import Any

import grpc

from service.metrics import NO_MODEL, UNKNOWN_MODEL, Metrics

REQUEST_ID_HEADER = "x-request-id"
MAX_REQUEST_ID_CHARS = 128
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("service.access")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` (``-`` outside a request) to every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def request_id_of(incoming: str | None) -> str:
    """The caller's request id (cut to ``MAX_REQUEST_ID_CHARS``), or a new one: what every
    transport echoes and logs."""
    if incoming:
        return incoming[:MAX_REQUEST_ID_CHARS]
    return os.urandom(16).hex()  # as random as uuid4().hex, without building a UUID


def _incoming_id(context: Any) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == REQUEST_ID_HEADER and isinstance(value, str) and value:
            return request_id_of(value)
    return request_id_of(None)


@dataclass
class _Call:
    """What one request did, filled in as it runs."""

    method: str
    started: float
    model: str = NO_MODEL
    version: str = ""
    texts: int = 0
    cached: int = 0
    code: str = "OK"


def log_access(
    method: str, model: str, version: str, code: str, seconds: float, texts: int, cached: int
) -> None:
    """One JSON line per request on ``service.access``, for every transport: never a text, a
    vector or a token."""
    access_log.info(
        "%s",
        json.dumps(
            {
                "method": method,
                "model": model,
                "version": version,
                "code": code,
                "duration_ms": round(seconds * 1000, 3),
                "texts": texts,
                "cached": cached,
                "request_id": request_id.get(),
            }
        ),
    )


def _code_name(context: Any, default: str) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return str(code.name)
    return default


def _cached_count(response: Any) -> int:
    items = getattr(response, "embeddings", None) or getattr(response, "results", None) or ()
    return sum(1 for item in items if getattr(item, "cached", False))


class ServiceInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """See the module docstring. ``served`` names the models that may appear as labels."""

    def __init__(
        self,
        metrics: Metrics | None,
        served: Callable[[], Collection[str]],
        write_access_log: bool = False,
        id_in_headers: bool = False,
    ) -> None:
        self.metrics = metrics
        self.served = served
        self.write_access_log = write_access_log
        self.id_in_headers = id_in_headers
        self._wrapped: dict[str, tuple[Any, Any]] = {}
        """Per full method name, the servicer's handler and its wrapped form: handlers are
        fixed once the server starts, so each is wrapped once, not on every call."""

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None:
            return None
        known = self._wrapped.get(details.method)
        if known is not None and known[0] is handler:
            return known[1]
        wrapped = self._wrap(details.method.rsplit("/", 1)[-1], handler)
        self._wrapped[details.method] = (handler, wrapped)
        return wrapped

    def _wrap(self, method: str, handler: Any) -> Any:
        common = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(method, handler.unary_unary), **common
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                self._stream(method, handler.stream_stream), **common
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                self._unary_stream(method, handler.unary_stream), **common
            )
        return handler

    # -- bookkeeping --------------------------------------------------------------------------
    def _model_label(self, request: Any) -> str:
        name = getattr(request, "model", None)
        if name is None:
            return NO_MODEL
        return name if name in self.served() else UNKNOWN_MODEL

    def _note_request(self, call: _Call, request: Any) -> None:
        call.model = self._model_label(request)
        call.texts += len(getattr(request, "texts", ()))

    def _note_response(self, call: _Call, response: Any) -> None:
        call.version = getattr(response, "version", "") or call.version
        call.cached += _cached_count(response)

    async def _begin(
        self, method: str, context: Any, streaming: bool
    ) -> tuple[_Call, contextvars.Token[str]]:
        echoed = _incoming_id(context)
        token = request_id.set(echoed)
        header = ((REQUEST_ID_HEADER, echoed),)
        if streaming or self.id_in_headers:
            with contextlib.suppress(Exception):  # a client gone already: the call fails later
                await context.send_initial_metadata(header)
        else:  # kept by an abort too, so failed calls carry it
            context.set_trailing_metadata(header)
        if self.metrics is not None:
            self.metrics.request_started(method)
        return _Call(method, time.perf_counter()), token

    def _end(self, call: _Call, token: contextvars.Token[str]) -> None:
        seconds = time.perf_counter() - call.started
        if self.metrics is not None:
            self.metrics.request_finished(call.method, call.model, call.code, seconds)
        if self.write_access_log:
            log_access(
                call.method, call.model, call.version, call.code, seconds, call.texts, call.cached
            )
        with contextlib.suppress(ValueError):  # a stream closed from another context
            request_id.reset(token)

    # -- handler wrappers ---------------------------------------------------------------------
    def _unary(self, method: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        async def behavior(request: Any, context: Any) -> Any:
            call, token = await self._begin(method, context, streaming=False)
            self._note_request(call, request)
            try:
                response = await inner(request, context)
                call.code = _code_name(context, "OK")
                self._note_response(call, response)
                return response
            except BaseException as error:
                call.code = _failure_code(context, error)
                raise
            finally:
                self._end(call, token)

        return behavior

    def _stream(self, method: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        async def behavior(requests: AsyncIterator[Any], context: Any) -> AsyncIterator[Any]:
            call, token = await self._begin(method, context, streaming=True)

            async def noted() -> AsyncIterator[Any]:
                async for request in requests:
                    self._note_request(call, request)
                    yield request

            relay = self._relay(call, token, inner(noted(), context), context)
            async with contextlib.aclosing(relay) as responses:
                async for response in responses:
                    yield response

        return behavior

    def _unary_stream(self, method: str, inner: Callable[..., Any]) -> Callable[..., Any]:
        async def behavior(request: Any, context: Any) -> AsyncIterator[Any]:
            call, token = await self._begin(method, context, streaming=True)
            self._note_request(call, request)
            relay = self._relay(call, token, inner(request, context), context)
            async with contextlib.aclosing(relay) as responses:
                async for response in responses:
                    yield response

        return behavior

    async def _relay(
        self, call: _Call, token: contextvars.Token[str], result: Any, context: Any
    ) -> AsyncGenerator[Any, None]:
        """A streaming handler's responses, noted, then the call's end recorded."""
        try:
            async for response in _responses(result):
                self._note_response(call, response)
                yield response
            call.code = _code_name(context, "OK")
        except BaseException as error:
            call.code = _failure_code(context, error)
            raise
        finally:
            self._end(call, token)


async def _responses(result: Any) -> AsyncIterator[Any]:
    """A streaming handler's responses, whether it yields them or writes them itself."""
    if hasattr(result, "__aiter__"):
        async for response in result:
            yield response
    else:
        await result


def _failure_code(context: Any, error: BaseException) -> str:
    """The status a failed handler leaves with: what it aborted with, or CANCELLED when the
    client went away (gRPC also cancels the handler when the client's deadline passes; the
    client then sees DEADLINE_EXCEEDED)."""
    if isinstance(error, asyncio.CancelledError | GeneratorExit):  # the stream was abandoned
        return "CANCELLED"
    return _code_name(context, "UNKNOWN")
