"""``create_server(settings, servicer, health) -> (server, port)``: bound, not yet serving;
``create_health_server`` for the plaintext health-only port."""

from __future__ import annotations

import socket
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc
from service.config import Settings
from service.errors import PortUnavailable
from service.metrics import Metrics
from service.transport.auth import TokenFile, auth_interceptors
from service.transport.interceptors import ServiceInterceptor
from service.transport.servicer import EmbeddingServicer
from service.transport.tls import server_credentials

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EmbeddingService"].full_name
# The shortest interval between client pings accepted without calls in flight; more often
# counts as a strike, and after two gRPC closes the connection (too_many_pings).
CLIENT_PING_MIN_MS = 10_000
NEVER_MS = 2**31 - 1  # gRPC's "infinite" for its millisecond options


def create_server(
    settings: Settings,
    servicer: EmbeddingServicer,
    health_servicer: health.aio.HealthServicer,
    metrics: Metrics | None = None,
    tokens: TokenFile | None = None,
) -> tuple[grpc.aio.Server, int]:
    """An unstarted server with the API, health and reflection, bound to the configured port."""
    interceptor = ServiceInterceptor(
        metrics,
        servicer.gate.known_models,
        settings.access_log,
        id_in_headers=settings.request_id_metadata == "initial",
    )
    server = grpc.aio.server(
        # The first wraps the next: the metrics see (and count) calls that auth refuses.
        interceptors=[
            interceptor,
            *auth_interceptors(tokens, settings.auth_exempt_methods),
        ],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.max_concurrent_streams", settings.max_concurrent_streams),
            ("grpc.so_reuseport", 0),
            *connection_options(settings),
        ],
    )
    pb_grpc.add_EmbeddingServiceServicer_to_server(servicer, server)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection(
        (
            SERVICE_NAME,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    api = Listener("gRPC API", "port", "picks a free one")
    return server, _bind(server, settings.host, settings.port, api, server_credentials(settings))


def create_health_server(
    settings: Settings, health_servicer: health.aio.HealthServicer
) -> tuple[grpc.aio.Server, int] | None:
    """``grpc.health.v1`` alone, in plaintext, on ``health_port`` (None when it is 0).

    Kubelet's gRPC probes can neither speak TLS nor send a token: when the API port needs
    either, the probes use this port. It shares the API's health servicer, so it reports the
    same status through the whole lifecycle.
    """
    if not settings.health_port:
        return None
    # The API's keepalive rules too, so a client's idle pings are accepted here as well.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0), *connection_options(settings)])
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    listener = Listener("health port", "health_port", "turns the health port off")
    return server, _bind(server, settings.host, settings.health_port, listener)


def connection_options(settings: Settings) -> list[tuple[str, int]]:
    """Connection lifetime and keepalive.

    A connection closed at its maximum age (GOAWAY, calls in flight finish within the grace)
    makes clients resolve the service name again, so replicas added by a scale-up receive
    calls; keepalive pings find dead peers. Client pings are accepted every
    ``CLIENT_PING_MIN_MS`` even without calls (``service.client`` pings less often).
    """
    options = [
        ("grpc.keepalive_time_ms", settings.keepalive_time_ms or NEVER_MS),
        ("grpc.keepalive_timeout_ms", settings.keepalive_timeout_ms),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", CLIENT_PING_MIN_MS),
    ]
    if settings.max_connection_age_ms:
        options += [
            ("grpc.max_connection_age_ms", settings.max_connection_age_ms),
            ("grpc.max_connection_age_grace_ms", settings.max_connection_age_grace_ms),
        ]
    return options


@dataclass(frozen=True)
class Listener:
    """What a gRPC port serves and the setting that chose it, for the error when it cannot
    be bound (``zero``: what the setting's 0 means)."""

    what: str
    setting: str
    zero: str


def _bind(
    server: grpc.aio.Server,
    host: str,
    port: int,
    listener: Listener,
    credentials: grpc.ServerCredentials | None = None,
) -> int:
    """Bind ``host:port``, or raise ``PortUnavailable``. The port is tried with a socket of
    our own first, so that one held by another process is refused by that one line, not by
    gRPC core's log line and its ``Failed to bind`` that name no setting."""
    address = f"{host}:{port}"
    if port and (reason := _refusal(host, port)) is not None:
        raise PortUnavailable(listener.what, host, port, listener.setting, reason, listener.zero)
    try:
        if credentials is None:
            bound = server.add_insecure_port(address)
        else:
            bound = server.add_secure_port(address, credentials)
    except RuntimeError:
        bound = 0
    if bound == 0:  # taken since it was tried, or an address gRPC alone cannot bind
        raise PortUnavailable(
            listener.what, host, port, listener.setting, "gRPC could not bind it", listener.zero
        )
    return int(bound)


def _refusal(host: str, port: int) -> str | None:
    """Why no address of ``host`` can be bound at ``port`` (as gRPC binds: SO_REUSEADDR, any
    one address will do), or None when one can or the name does not resolve here."""
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror:
        return None
    reasons = []
    for family, kind, protocol, _, address in addresses:
        try:  # a family the kernel lacks (IPv6 off) is one more address that cannot be bound
            with socket.socket(family, kind, protocol) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(address)
        except OSError as error:
            reasons.append(error.strerror or str(error))
        else:
            return None
    return reasons[0] if reasons else None
