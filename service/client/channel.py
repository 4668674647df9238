"""How both clients connect: channel options, TLS credentials, the bearer token, and the one
constructor the blocking and the asyncio client share."""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Generic, TypeVar

import grpc
from grpc_health.v1 import health_pb2_grpc

from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc

LOAD_BALANCING = ("round_robin", "pick_first")
# Keepalive pings, even between calls, find a dead server (a node gone without closing its
# connections) in about 40 s; the server accepts pings this often (its CLIENT_PING_MIN_MS).
KEEPALIVE_TIME_MS = 30_000
KEEPALIVE_TIMEOUT_MS = 10_000
DEFAULT_TARGET = "127.0.0.1:50051"
FilePath = str | os.PathLike[str]
ChannelOptions = Sequence[tuple[str, Any]]
ChannelT = TypeVar("ChannelT")


def channel_options(
    retries: int = 4,
    max_message_bytes: int = 64 * 1024 * 1024,
    load_balancing: str = "round_robin",
) -> list[tuple[str, Any]]:
    """Channel options: gRPC's retry policy for UNAVAILABLE (``retries`` more attempts; 0: no
    policy, only gRPC's transparent retries of calls that never reached a server), large
    messages, keepalive, and the balancing policy over the addresses the target resolves to
    (``LOAD_BALANCING``)."""
    if load_balancing not in LOAD_BALANCING:
        raise ValueError(f"load_balancing must be one of {LOAD_BALANCING}, got {load_balancing!r}")
    method: dict[str, Any] = {"name": [{"service": "embedding.v1.EmbeddingService"}]}
    if retries > 0:  # gRPC's smallest policy is 2 attempts, so 0 retries means no policy
        method["retryPolicy"] = {
            "maxAttempts": retries + 1,
            "initialBackoff": "0.1s",
            "maxBackoff": "2s",
            "backoffMultiplier": 2,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
    service_config = {"loadBalancingConfig": [{load_balancing: {}}], "methodConfig": [method]}
    return [
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(service_config)),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),  # keep pinging an idle connection
    ]


def read_token_file(path: FilePath) -> str:
    """The first token of a file in the server's format (blank lines and # comments skipped)."""
    for line in Path(path).read_text().splitlines():
        if (token := line.strip()) and not token.startswith("#"):
            return token
    raise ValueError(f"{path} holds no token")


def auth_metadata(token: str | None) -> tuple[tuple[str, str], ...]:
    """Per-call metadata, not call credentials: gRPC refuses those on a plaintext channel, and
    a token may go over one (to localhost, or to a proxy that terminates TLS)."""
    return (("authorization", f"Bearer {token}"),) if token else ()


def channel_credentials(
    tls_ca_file: FilePath | None = None,
    tls_cert_file: FilePath | None = None,
    tls_key_file: FilePath | None = None,
) -> grpc.ChannelCredentials | None:
    """TLS when any file is given (None: plaintext): ``tls_ca_file`` the roots to check the
    server against (default: the system's), the certificate and key for mutual TLS."""
    if tls_ca_file is None and tls_cert_file is None and tls_key_file is None:
        return None
    if (tls_cert_file is None) != (tls_key_file is None):
        raise ValueError("tls_cert_file and tls_key_file go together (mutual TLS)")

    def read(path: FilePath | None) -> bytes | None:
        return Path(path).read_bytes() if path is not None else None

    return grpc.ssl_channel_credentials(
        root_certificates=read(tls_ca_file),
        private_key=read(tls_key_file),
        certificate_chain=read(tls_cert_file),
    )


class ClientBase(ABC, Generic[ChannelT]):
    """What the blocking and the asyncio client share: their constructor (one set of
    connection arguments), per-call timeout and metadata, and the stubs over one channel.
    A subclass only says which kind of channel it opens."""

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        timeout: float = 30.0,
        retries: int = 4,
        load_balancing: str = "round_robin",
        token: str | None = None,
        tls_ca_file: FilePath | None = None,
        tls_cert_file: FilePath | None = None,
        tls_key_file: FilePath | None = None,
    ) -> None:
        self.timeout = timeout
        self.metadata = auth_metadata(token)
        options = channel_options(retries, load_balancing=load_balancing)
        credentials = channel_credentials(tls_ca_file, tls_cert_file, tls_key_file)
        self.channel: ChannelT = self._open_channel(target, options, credentials)
        self.stub = pb_grpc.EmbeddingServiceStub(self.channel)
        self.health_stub = health_pb2_grpc.HealthStub(self.channel)

    @staticmethod
    @abstractmethod
    def _open_channel(
        target: str, options: ChannelOptions, credentials: grpc.ChannelCredentials | None
    ) -> ChannelT:
        """A plaintext channel when ``credentials`` is None, else a TLS one."""

    def _call_options(self) -> dict[str, Any]:
        return {"timeout": self.timeout, "metadata": self.metadata}
