"""The few calls this command makes itself: health while a server starts, and the model's
details and token counts for the summary. They happen before the first scrape, so they are
never counted with the load."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc


@dataclass(frozen=True)
class Connection:
    target: str
    tls: bool = False
    ca_file: str = ""
    token: str = ""

    def channel(self) -> grpc.Channel:
        if not self.tls:
            return grpc.insecure_channel(self.target)
        roots = Path(self.ca_file).read_bytes() if self.ca_file else None
        return grpc.secure_channel(self.target, grpc.ssl_channel_credentials(roots))

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        return (("authorization", f"Bearer {self.token}"),) if self.token else ()


def serving(connection: Connection, timeout_s: float = 2.0) -> bool:
    """Whether the server's health says SERVING (False while it loads or cannot be reached)."""
    with connection.channel() as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s, metadata=connection.metadata
            )
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def wait_serving(
    connection: Connection, timeout_s: float, alive: Callable[[], bool] | None = None
) -> bool:
    """Poll health until SERVING, for at most ``timeout_s``; ``alive()`` False stops early."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / 0.25) + 1):
        if serving(connection):
            return True
        if alive is not None and not alive():
            return False
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)
    return False


def model_info(connection: Connection, model: str) -> pb.ModelInfo | None:
    with connection.channel() as channel:
        stub = pb_grpc.EmbeddingServiceStub(channel)
        try:
            info: pb.ModelInfo = stub.GetModel(
                pb.GetModelRequest(model=model), timeout=10, metadata=connection.metadata
            )
        except grpc.RpcError:
            return None
    return info


def token_counts(connection: Connection, model: str, texts: Sequence[str]) -> list[int] | None:
    """Tokens (special ones included) the model makes of each text; ``None`` if it cannot say."""
    with connection.channel() as channel:
        stub = pb_grpc.EmbeddingServiceStub(channel)
        try:
            response: pb.TokenizeResponse = stub.Tokenize(
                pb.TokenizeRequest(model=model, texts=list(texts)),
                timeout=30,
                metadata=connection.metadata,
            )
        except grpc.RpcError:
            return None
    return [len(result.tokens) for result in response.results]
