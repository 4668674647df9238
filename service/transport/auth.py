"""Bearer-token authentication: ``authorization: Bearer <token>`` checked against a token file.

The file holds one accepted token per line (blank lines and ``#`` comments are ignored). It is
re-read when it changes: a request looks at the file's ``stat`` at most once per
``POLL_INTERVAL_S``, so rotating a token needs no restart and costs no thread. A refused call
ends with UNAUTHENTICATED from this interceptor itself, not from a domain error: no handler has
run, and authentication is a transport concern. It is placed after ``ServiceInterceptor``, which
therefore wraps it and counts the refusal. Tokens are never logged nor echoed.
"""

from __future__ import annotations

import hmac
import logging
import os
import time
from collections.abc import Collection, Iterable
from pathlib import Path
from typing import Any

import grpc

log = logging.getLogger(__name__)

POLL_INTERVAL_S = 1.0
AUTHORIZATION = "authorization"
SCHEME = "bearer"
MISSING = (
    "this call needs a bearer token: send the metadata 'authorization: Bearer <token>' with a "
    "token listed in the server's auth-tokens-file"
)
REFUSED = (
    "the bearer token is not accepted: check it against the server's auth-tokens-file "
    "(it may have been rotated)"
)


def parse_tokens(text: str) -> list[bytes]:
    """The tokens of a token file's text: stripped lines, less blanks and ``#`` comments."""
    lines = (line.strip() for line in text.splitlines())
    return [line.encode() for line in lines if line and not line.startswith("#")]


class TokenFile:
    """The accepted tokens, re-read when the file's mtime, size or inode changes."""

    def __init__(self, path: Path, poll_interval_s: float = POLL_INTERVAL_S) -> None:
        self.path = path
        self.poll_interval_s = poll_interval_s
        self._signature = self._stat()
        self._tokens = parse_tokens(path.read_text())
        if not self._tokens:
            raise RuntimeError(f"auth-tokens-file {path} holds no tokens: every call would fail")
        self._checked = time.monotonic()

    def _stat(self) -> tuple[int, int, int]:
        info = os.stat(self.path)
        return info.st_mtime_ns, info.st_size, info.st_ino

    def tokens(self) -> list[bytes]:
        """The current tokens; a file that cannot be read refuses every token (fails closed)."""
        now = time.monotonic()
        if now - self._checked < self.poll_interval_s:
            return self._tokens
        self._checked = now
        try:
            signature = self._stat()
            if signature != self._signature:
                self._signature = signature
                self._tokens = parse_tokens(self.path.read_text())
                log.info("auth-tokens-file %s re-read: %d tokens", self.path, len(self._tokens))
        except OSError as error:
            if self._tokens:
                log.warning("auth-tokens-file unreadable, refusing every token: %s", error)
            self._signature, self._tokens = (0, 0, 0), []
        return self._tokens


def bearer_token(metadata: Iterable[tuple[str, Any]] | None) -> bytes | None:
    """The token of the call's ``authorization: Bearer`` metadata (None when there is none)."""
    for key, value in metadata or ():
        if key != AUTHORIZATION or not isinstance(value, str):
            continue
        scheme, _, token = value.strip().partition(" ")
        if scheme.lower() == SCHEME and token.strip():
            return token.strip().encode()
    return None


def accepted(token: bytes, tokens: Iterable[bytes]) -> bool:
    """Compared in constant time with every token, so timing tells nothing about which."""
    found = False
    for candidate in tokens:
        found |= hmac.compare_digest(candidate, token)
    return found


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls without an accepted token, except the ``exempt`` methods."""

    def __init__(self, tokens: TokenFile, exempt: Collection[str]) -> None:
        self.tokens = tokens
        self.exempt = frozenset(exempt)

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        handler = await continuation(details)
        if handler is None or details.method in self.exempt:
            return handler
        token = bearer_token(details.invocation_metadata)
        if token is not None and accepted(token, self.tokens.tokens()):
            return handler
        return _refusing(handler, MISSING if token is None else REFUSED)


def _refusing(handler: Any, message: str) -> Any:
    """A handler of the same kind as ``handler`` that aborts with UNAUTHENTICATED."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(grpc.StatusCode.UNAUTHENTICATED, message)

    common = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(refuse, **common)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse, **common)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse, **common)
    return grpc.stream_stream_rpc_method_handler(refuse, **common)


def token_file(path: Path | None) -> TokenFile | None:
    """The server's accepted tokens, shared by every transport (None: calls are open)."""
    return None if path is None else TokenFile(path)


def auth_interceptors(
    tokens: TokenFile | None, exempt: Collection[str]
) -> list[grpc.aio.ServerInterceptor]:
    """The auth interceptor when a token file is configured (else none: calls are open)."""
    return [] if tokens is None else [AuthInterceptor(tokens, exempt)]
