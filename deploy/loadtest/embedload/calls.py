"""gRPC channels for the load, and an interceptor that reports every call as Locust expects.

The interceptor times each call from its start to its last response and hands the method name,
the time in milliseconds, the response size in bytes and, for a failure, a ``GrpcStatusError``
(whose repr is the status name: Locust's failures CSV shows ``UNAVAILABLE``, not a message with
addresses in it) to a callback with the signature of Locust's ``events.request.fire``. Locust
itself is not imported here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

Report = Callable[..., None]
"""``events.request.fire``: request_type, name, response_time, response_length, exception."""

REQUEST_TYPE = "grpc"
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


class GrpcStatusError(Exception):
    """A call that ended with a status other than OK."""

    def __init__(self, code: grpc.StatusCode, details: str = "") -> None:
        super().__init__(code.name, details)
        self.code = code
        self.details = details

    def __repr__(self) -> str:
        return str(self.code.name)

    def __str__(self) -> str:
        return str(self.code.name)


def status_error(error: grpc.RpcError) -> GrpcStatusError:
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = error.details() if isinstance(error, grpc.Call) else str(error)
    return GrpcStatusError(code or grpc.StatusCode.UNKNOWN, details or "")


@dataclass(frozen=True)
class Target:
    """Where the load goes: ``HOST:PORT``, ``grpc://HOST:PORT``, ``grpcs://HOST:PORT`` (TLS), or
    a gRPC name such as ``dns:///HOST:PORT``, passed to gRPC as it is."""

    address: str
    tls: bool

    @classmethod
    def parse(cls, host: str, tls: bool = False) -> Target:
        if host.startswith(("dns:", "ipv4:", "ipv6:", "unix:")):
            return cls(host, tls)
        for scheme, secure in (("grpcs://", True), ("grpc://", False)):
            if host.startswith(scheme):
                host, tls = host.removeprefix(scheme), tls or secure
        host = host.rstrip("/")
        _, colon, port = host.rpartition(":")
        if not colon or not port.isdigit() or "/" in host:
            raise ValueError(
                f"--host must be HOST:PORT, grpc://HOST:PORT or grpcs://..., got {host!r}"
            )
        return cls(host, tls)


def open_channel(
    target: Target,
    ca_file: str = "",
    server_name: str = "",
    cert_file: str = "",
    key_file: str = "",
) -> grpc.Channel:
    """A channel of its own: ``use_local_subchannel_pool`` keeps gRPC from sharing one TCP
    connection among every channel to the same address, so each user is one real client.
    Retries are off: a load test reports each failure as it happened. ``cert_file`` and
    ``key_file`` (PEM) are the client certificate for a server that requires mutual TLS."""
    options: list[tuple[str, Any]] = [
        ("grpc.use_local_subchannel_pool", 1),
        ("grpc.enable_retries", 0),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
    ]
    if not target.tls:
        return grpc.insecure_channel(target.address, options=options)
    roots = Path(ca_file).read_bytes() if ca_file else None
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    if bool(cert_file) != bool(key_file):
        raise ValueError("--grpc-tls-cert and --grpc-tls-key go together (mutual TLS)")
    credentials = grpc.ssl_channel_credentials(
        root_certificates=roots,
        private_key=Path(key_file).read_bytes() if key_file else None,
        certificate_chain=Path(cert_file).read_bytes() if cert_file else None,
    )
    return grpc.secure_channel(target.address, credentials, options=options)


def read_bearer_token(path: str) -> str:
    """The first token of a file in the server's format (blank lines and # comments skipped)."""
    for line in Path(path).read_text().splitlines():
        if (token := line.strip()) and not token.startswith("#"):
            return token
    raise ValueError(f"{path} holds no token")


def bearer_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),) if token else ()


class ReportingInterceptor(grpc.UnaryUnaryClientInterceptor, grpc.StreamStreamClientInterceptor):  # type: ignore[misc]
    """Reports each call through ``report``; unary and bidirectional streaming calls."""

    def __init__(self, report: Report) -> None:
        self.report = report

    def _fire(
        self, method: str | bytes, started: float, size: int, error: GrpcStatusError | None
    ) -> None:
        name = method.decode() if isinstance(method, bytes) else method
        self.report(
            request_type=REQUEST_TYPE,
            name=name.rsplit("/", 1)[-1],
            response_time=(time.perf_counter() - started) * 1000,
            response_length=size,
            exception=error,
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        started = time.perf_counter()
        call = continuation(details, request)
        try:
            response = call.result()
        except grpc.RpcError as error:
            self._fire(details.method, started, 0, status_error(error))
        else:
            self._fire(details.method, started, response.ByteSize(), None)
        return call

    def intercept_stream_stream(
        self, continuation: Any, details: Any, request_iterator: Any
    ) -> Iterator[Any]:
        started = time.perf_counter()
        return self._relay(details.method, started, continuation(details, request_iterator))

    def _relay(
        self, method: str | bytes, started: float, responses: Iterator[Any]
    ) -> Iterator[Any]:
        """The stream's responses; the call is reported once, when the stream ends."""
        size = 0
        try:
            for response in responses:
                size += response.ByteSize()
                yield response
        except grpc.RpcError as error:
            self._fire(method, started, size, status_error(error))
            raise
        self._fire(method, started, size, None)


def reporting_channel(channel: grpc.Channel, report: Report) -> grpc.Channel:
    return grpc.intercept_channel(channel, ReportingInterceptor(report))
