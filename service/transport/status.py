"""The one table from domain errors to status codes (gRPC's, and the HTTP API's derived from
them), and the gRPC handler wrappers that use it."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from service.errors import (
    BatchFailed,
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    Overloaded,
    ServiceError,
    Unavailable,
)

log = logging.getLogger(__name__)

STATUS_OF: dict[type[ServiceError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    Overloaded: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    BatchFailed: grpc.StatusCode.UNAVAILABLE,  # one batch failed; the next one may well succeed
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
}

HTTP_STATUS_OF: dict[grpc.StatusCode, tuple[int, str]] = {
    grpc.StatusCode.INVALID_ARGUMENT: (400, "invalid_request_error"),
    grpc.StatusCode.UNAUTHENTICATED: (401, "authentication_error"),
    grpc.StatusCode.NOT_FOUND: (404, "not_found_error"),
    grpc.StatusCode.RESOURCE_EXHAUSTED: (429, "rate_limit_error"),
    grpc.StatusCode.UNAVAILABLE: (503, "service_unavailable_error"),
    grpc.StatusCode.DEADLINE_EXCEEDED: (504, "timeout_error"),
    grpc.StatusCode.INTERNAL: (500, "server_error"),
}
"""Per gRPC status, the HTTP API's status and the error ``type`` of OpenAI's error body."""

Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer")


def status_of(error: ServiceError) -> grpc.StatusCode:
    for kind in type(error).__mro__:
        if kind in STATUS_OF:
            return STATUS_OF[kind]
    return grpc.StatusCode.INTERNAL


async def _abort(
    context: grpc.aio.ServicerContext[Any, Any], error: Exception, method: str
) -> None:
    if isinstance(error, ServiceError):
        await context.abort(status_of(error), error.message)
    log.exception("%s failed unexpectedly", method, exc_info=error)
    await context.abort(
        grpc.StatusCode.INTERNAL, f"{method}: internal error ({type(error).__name__})"
    )


def unary(
    handler: Callable[[Servicer, Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Response]],
) -> Callable[[Servicer, Request, grpc.aio.ServicerContext[Any, Any]], Awaitable[Response]]:
    """Map domain errors of a unary handler to their status codes."""

    @functools.wraps(handler)
    async def wrapper(
        self: Servicer, request: Request, context: grpc.aio.ServicerContext[Any, Any]
    ) -> Response:
        try:
            return await handler(self, request, context)
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as error:
            await _abort(context, error, handler.__name__)
            raise  # unreachable: abort raises

    return wrapper


def streaming(
    handler: Callable[[Servicer, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Response]],
) -> Callable[[Servicer, Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Response]]:
    """Map domain errors of a streaming handler to their status codes."""

    @functools.wraps(handler)
    async def wrapper(
        self: Servicer, requests: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Response]:
        try:
            async for response in handler(self, requests, context):
                yield response
        except (grpc.aio.AbortError, grpc.aio.UsageError):
            raise
        except Exception as error:  # noqa: BLE001 - every error leaves with a status
            await _abort(context, error, handler.__name__)

    return wrapper
