"""Domain errors raised below the transport layer.

They carry a message written for the caller (what was wrong and how to fix it). The transport
maps each class to one gRPC status code in a single table; nothing here knows about gRPC.
"""

from __future__ import annotations

ENV_PREFIX = "EMBED_"
"""The settings' environment prefix (``service.config``), for messages that name a setting."""


class PortUnavailable(OSError):
    """A listener could not bind its port: a startup error, not a caller's. Its one line names
    what listens, the address, the setting that chose the port and how to choose another, since
    a bare ``[Errno 98]`` does not say which of the server's ports another process holds."""

    def __init__(
        self,
        what: str,
        host: str,
        port: int,
        setting: str,
        reason: str,
        zero: str = "picks a free one",
        also: str = "",
    ) -> None:
        flag = "--" + setting.replace("_", "-")
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        super().__init__(
            f"could not bind the {what} ({flag}) to {address} ({reason}); choose another port "
            f"with {flag} or {ENV_PREFIX}{setting.upper()} (0 {zero}){also}"
        )
        self.address = address
        self.setting = setting


class ServiceError(Exception):
    """Base class of every error a caller can be told about."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ServiceError):
    """The request itself is wrong: empty input, unknown option, text too long, ..."""


class NotFound(ServiceError):
    """The model or version asked for is not in the repository."""


class Overloaded(ServiceError):
    """The queue is full; the caller should back off and retry."""


class Unavailable(ServiceError):
    """The service cannot serve right now (not warm yet, shutting down)."""


class BatchFailed(Unavailable):
    """The model failed on the batch that carried the request (an ONNX Runtime error, say).

    Only that batch's requests fail; the next batch runs as usual, so the caller may retry.
    """


class DeadlineExceeded(ServiceError):
    """The request's deadline passed before its work could be done."""


def refuse_beyond(
    count: int, held: int, limit: int, what: str, setting: str, unit: str = "texts"
) -> None:
    """The one admission rule: refuse ``count`` more ``unit`` where ``held`` of ``limit`` are
    taken, INVALID_ARGUMENT when they could never fit, RESOURCE_EXHAUSTED when they do not fit
    now. Used by the server's admission and by a batcher's own bounded queue."""
    if count > limit:
        raise InvalidArgument(
            f"{count} {unit} in one request, but {what} holds at most {limit} at once "
            f"({setting}); split the request"
        )
    if held + count > limit:
        raise Overloaded(
            f"{what} is full ({held} of {limit} held, {count} {unit} more asked; {setting}); "
            "retry with exponential backoff"
        )
