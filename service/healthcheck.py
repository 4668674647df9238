"""``python -m service.healthcheck``: exit status 0 only while the local server is SERVING.

The container image's ``HEALTHCHECK``. It reads the same settings as the server (``EMBED_*``
variables, or the same options), so it asks the port the server listens on: the plaintext
health-only port when ``health_port`` is set, else the gRPC port.
"""

from __future__ import annotations

import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from service.config import Settings, load_settings

TIMEOUT_S = 3.0
WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "[::1]", "[::]": "[::1]"}


def health_target(settings: Settings) -> str:
    """Where this machine reaches the server's health service."""
    host = WILDCARDS.get(settings.host, settings.host)
    return f"{host}:{settings.health_port or settings.port}"


def check(target: str, timeout: float = TIMEOUT_S) -> str:
    """The overall status's name (SERVING, NOT_SERVING, ...), or the gRPC error's code."""
    with grpc.insecure_channel(target) as channel:
        try:
            response = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError as error:
            return str(error.code().name)
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(response.status))


def main(argv: list[str] | None = None) -> int:
    target = health_target(load_settings(sys.argv[1:] if argv is None else argv))
    status = check(target)
    print(f"{target}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
