"""What every HTTP request goes through before and after its route, as plain ASGI: its request
id, metrics and access-log line (``RequestLog``), the body size limit (``BodyLimit``) and the
bearer token (``BearerAuth``). The gRPC interceptors' counterparts, sharing their helpers."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from typing import Any

import orjson

from service.metrics import NO_MODEL, UNKNOWN_MODEL, Metrics
from service.transport.auth import MISSING, REFUSED, TokenFile, accepted
from service.transport.interceptors import REQUEST_ID_HEADER, log_access, request_id, request_id_of
from service.transport.status import HTTP_STATUS_OF

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
App = Callable[[Scope, Receive, Send], Any]

STATE = "state"
"""The scope's key of ``Request.state``, where a route notes the model, texts and cached."""
ROUTES = ("/v1/embeddings", "/v1/models", "/health", "/docs", "/openapi.json")
MODEL_ROUTE = "/v1/models/{model}"


def endpoint_label(method: str, path: str) -> str:
    """A request's endpoint as a metric label: its route's template, so that no client-chosen
    path (a model name, a probe for files) adds a series."""
    if path in ROUTES:
        route = path
    elif path.startswith("/v1/models/"):
        route = MODEL_ROUTE
    else:
        route = "other"
    return f"{method} {route}" if method in ("GET", "POST") else f"other {route}"


async def send_error(send: Send, status: int, message: str, code: str) -> None:
    """A refusal in OpenAI's error shape, from the middleware itself (no route ran)."""
    _, kind = next(
        (value for key, value in HTTP_STATUS_OF.items() if value[0] == status),
        (status, "invalid_request_error"),
    )
    body = orjson.dumps({"error": {"message": message, "type": kind, "param": None, "code": code}})
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def header(scope: Scope, name: bytes) -> str | None:
    """A request header's value (the first of its name), or None."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return bytes(value).decode("latin-1")
    return None


class RequestLog:
    """Request id in and out (``x-request-id``), the metrics of each request by endpoint, model
    and HTTP status, and the access-log line."""

    def __init__(
        self,
        app: App,
        metrics: Metrics | None,
        known_models: Callable[[], Collection[str]],
        write_access_log: bool,
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.known_models = known_models
        self.write_access_log = write_access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        echoed = request_id_of(header(scope, REQUEST_ID_HEADER.encode()))
        token = request_id.set(echoed)
        endpoint = endpoint_label(scope["method"], scope["path"])
        state: dict[str, Any] = scope.setdefault(STATE, {})
        status = 500
        answered = False

        async def noted(message: dict[str, Any]) -> None:
            nonlocal status, answered
            if message["type"] == "http.response.start":
                status, answered = message["status"], True
                headers = list(message.get("headers", ()))
                headers.append((REQUEST_ID_HEADER.encode(), echoed.encode("latin-1", "replace")))
                message = {**message, "headers": headers}
            await send(message)

        if self.metrics is not None:
            self.metrics.request_started(endpoint)
        try:
            await self.app(scope, receive, noted)
        except Exception:
            if not answered:  # nothing was sent: answer 500, and let the server log it
                raise
            # Starlette re-raises what its error handler already answered (and logged): the
            # connection stays open and the error is not logged twice.
        finally:
            model = self._model_label(state.get("model"))
            seconds = time.perf_counter() - started
            if self.metrics is not None:
                self.metrics.http_request_finished(endpoint, model, status, seconds)
            if self.write_access_log:
                version = str(state.get("version", ""))
                texts, cached = int(state.get("texts", 0)), int(state.get("cached", 0))
                log_access(endpoint, model, version, str(status), seconds, texts, cached)
            request_id.reset(token)

    def _model_label(self, name: object) -> str:
        if not isinstance(name, str):
            return NO_MODEL
        return name if name in self.known_models() else UNKNOWN_MODEL


class BodyLimit:
    """413 for a request body over ``limit`` bytes, said by its length or found while it is
    read (a chunked body), before the route parses any of it."""

    def __init__(self, app: App, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > self.limit:
                await send_error(send, 413, self._message(int(declared)), "request_too_large")
                return
            await self.app(scope, receive, send)  # its length is known and within the limit
            return
        messages: list[dict[str, Any]] = []  # read whole (the route would), counting
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > self.limit:
                await send_error(send, 413, self._message(size), "request_too_large")
                return
            if message["type"] != "http.request" or not message.get("more_body", False):
                break
        replay = iter(messages)

        async def replayed() -> Any:
            return next(replay, None) or await receive()

        await self.app(scope, replayed, send)

    def _message(self, size: int) -> str:
        return (
            f"the request body has {size}+ bytes; the limit is {self.limit} (max-message-bytes): "
            "send fewer or shorter texts per request"
        )


class JsonBody:
    """415 for a POST whose body says it is not JSON (a missing type is read as JSON, as
    OpenAI's API reads it)."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            kind = (header(scope, b"content-type") or "").split(";")[0].strip().lower()
            if kind and kind != "application/json" and not kind.endswith("+json"):
                message = f"the body must be JSON (content-type application/json), not {kind!r}"
                await send_error(send, 415, message[:200], "unsupported_media_type")
                return
        await self.app(scope, receive, send)


class BearerAuth:
    """401 without an ``Authorization: Bearer`` token from the server's token file, except on
    the ``exempt`` paths (health and the API's documents)."""

    def __init__(self, app: App, tokens: TokenFile, exempt: Collection[str]) -> None:
        self.app = app
        self.tokens = tokens
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        given = header(scope, b"authorization") or ""
        scheme, _, token = given.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            await send_error(send, 401, MISSING.replace("metadata", "header"), "invalid_api_key")
            return
        if not accepted(token.strip().encode(), self.tokens.tokens()):
            await send_error(send, 401, REFUSED, "invalid_api_key")
            return
        await self.app(scope, receive, send)
