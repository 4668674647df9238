"""``create_server(settings, servicer, health) -> (server, port)``: bound, not yet serving."""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc
from service.config import Settings
from service.metrics import Metrics
from service.transport.interceptors import ServiceInterceptor
from service.transport.servicer import EmbeddingServicer

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["EmbeddingService"].full_name
MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def create_server(
    settings: Settings,
    servicer: EmbeddingServicer,
    health_servicer: health.aio.HealthServicer,
    metrics: Metrics | None = None,
) -> tuple[grpc.aio.Server, int]:
    """An unstarted server with the API, health and reflection, bound to the configured port."""
    interceptor = ServiceInterceptor(metrics, servicer.served_models, settings.access_log)
    server = grpc.aio.server(
        interceptors=[interceptor],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.so_reuseport", 0),
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
    address = f"{settings.host}:{settings.port}"
    port = server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"could not bind {address}; is the port in use?")
    return server, port
