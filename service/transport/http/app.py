"""The OpenAI-compatible HTTP API: routes over the same ``Embedder`` facade as gRPC.

``POST /v1/embeddings`` (OpenAI's body, and our options as extension fields), ``GET /v1/models``
and ``GET /v1/models/{model}`` (OpenAI's list shape, with what ``GetModel`` says under
``info``), ``GET /health`` (200 while serving, else 503) and the OpenAPI document with ``/docs``.
Nothing here decides anything the gRPC servicer decides: resolution, admission, the cache and
batching are the embedder's, and every refusal maps through the one status table into OpenAI's
error shape.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import grpc
import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from service.config import Settings
from service.errors import DeadlineExceeded, InvalidArgument, ServiceError
from service.metrics import Metrics
from service.transport.auth import TokenFile
from service.transport.gate import ServingGate
from service.transport.http import encoding
from service.transport.http.middleware import (
    BearerAuth,
    BodyLimit,
    JsonBody,
    RequestLog,
)
from service.transport.http.schemas import (
    EmbeddingsRequest,
    EmbeddingsResponse,
    ErrorBody,
    Health,
    ModelList,
    ModelObject,
)
from service.transport.status import HTTP_STATUS_OF, status_of

log = logging.getLogger(__name__)

JSON = "application/json"
OPEN_PATHS = ("/health", "/docs", "/docs/oauth2-redirect", "/openapi.json")
"""Answered without a token: probes and the API's own description."""
ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": kind}
    for status, kind in (
        (400, "the request is wrong; the message says how"),
        (401, "no accepted bearer token"),
        (404, "no such model or version"),
        (413, "the body is over max-message-bytes"),
        (415, "the body is not JSON"),
        (429, "overloaded: retry with exponential backoff (Retry-After)"),
        (503, "loading, shutting down, or one batch failed: retry"),
        (504, "the deadline passed"),
    )
}
RETRY_AFTER_S = "1"


def error_response(status: int, kind: str, message: str, code: str) -> Response:
    body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
    headers = {"retry-after": RETRY_AFTER_S} if status in (429, 503) else None
    return Response(orjson.dumps(body), status_code=status, media_type=JSON, headers=headers)


def from_grpc(code: grpc.StatusCode, message: str) -> Response:
    """A refusal with the HTTP status and OpenAI type the one table gives its gRPC status."""
    status, kind = HTTP_STATUS_OF.get(code, HTTP_STATUS_OF[grpc.StatusCode.INTERNAL])
    return error_response(status, kind, message, code.name.lower())


def deadline_of(request: Request, header: str, default_timeout_s: float) -> float:
    """The request's deadline on the monotonic clock: its timeout header, else the default."""
    given = request.headers.get(header)
    if given is None:
        return time.monotonic() + default_timeout_s
    try:
        seconds = float(given)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise InvalidArgument(f"{header} must be a positive number of seconds, got {given[:40]!r}")
    return time.monotonic() + seconds


def _without_validation_errors(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents an invalid body as 422; this API answers it 400 in OpenAI's error
    shape (declared with the other refusals), so the 422 entries go."""
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            operation.get("responses", {}).pop("422", None)
    schemas = document.get("components", {}).get("schemas", {})
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    return document


def create_http_app(
    gate: ServingGate, settings: Settings, metrics: Metrics | None, tokens: TokenFile | None
) -> Any:
    """The ASGI application: the routes, wrapped in their middleware (outermost first: request
    log, bearer token, body limit, JSON only), so a caller without a token is refused before
    any of its body is read."""
    api = FastAPI(
        title="Embedding service",
        summary="OpenAI-compatible embeddings over the service's models, cache and batching",
        version="1",
        docs_url="/docs",
        redoc_url=None,
    )
    header, timeout_s = settings.http_request_timeout_header, settings.default_timeout_s

    @api.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError) -> Response:
        return from_grpc(status_of(error), error.message)

    @api.exception_handler(RequestValidationError)
    async def invalid_body(request: Request, error: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in error.errors()[:5]
        )
        return from_grpc(
            grpc.StatusCode.INVALID_ARGUMENT, f"the request body is invalid: {problems}"
        )

    @api.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException) -> Response:
        return error_response(error.status_code, "invalid_request_error", str(error.detail), "")

    @api.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        log.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=error)
        message = f"internal error ({type(error).__name__})"
        return from_grpc(grpc.StatusCode.INTERNAL, message)

    @api.post("/v1/embeddings", response_model=EmbeddingsResponse, responses=ERRORS)
    async def create_embeddings(body: EmbeddingsRequest, request: Request) -> Response:
        """One embedding per input text, as OpenAI's API answers (``extra_body`` for ours)."""
        request.state.model = body.model
        embedder = gate.ready()
        deadline = deadline_of(request, header, timeout_s)
        query = body.query()
        request.state.texts = len(query.texts)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())) as limit:
                outcome = await embedder.embed(query, deadline)
        except TimeoutError as error:
            if not limit.expired():
                raise
            raise DeadlineExceeded(
                "the deadline passed before the embeddings were computed; allow a longer one "
                f"({header}) or retry when the service is less loaded"
            ) from error
        request.state.version = outcome.version
        request.state.cached = sum(1 for result in outcome.results if result.cached)
        return Response(encoding.embeddings(outcome, body.encoding_format), media_type=JSON)

    @api.get("/v1/models", response_model=ModelList, responses=ERRORS)
    async def list_models() -> Response:
        """Every model the server knows, ready or not (``info.state`` says which)."""
        return Response(encoding.model_list(gate.ready().list_models()), media_type=JSON)

    @api.get("/v1/models/{model}", response_model=ModelObject, responses=ERRORS)
    async def get_model(model: str, request: Request) -> Response:
        """One model: its newest ready version, or its state while none is ready."""
        request.state.model = model
        view = gate.ready().describe(model, "")
        return Response(orjson.dumps(encoding.model_object(view)), media_type=JSON)

    @api.get("/health", response_model=Health, responses={503: {"model": Health}})
    async def health() -> Response:
        """200 while some model serves; 503 while none does, or once shutting down."""
        embedder = gate.embedder
        serving = not gate.closing and embedder is not None and embedder.ready_names()
        status = "serving" if serving else "shutting down" if gate.closing else "not serving"
        body = orjson.dumps({"status": status})
        return Response(body, status_code=200 if serving else 503, media_type=JSON)

    api.openapi_schema = _without_validation_errors(api.openapi())
    routes: Any = api
    app: Any = BodyLimit(JsonBody(routes), settings.max_message_bytes)
    if tokens is not None:
        app = BearerAuth(app, tokens, OPEN_PATHS)
    return RequestLog(app, metrics, gate.known_models, settings.access_log)
