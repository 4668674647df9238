"""TLS for the API port: server credentials from the PEM files named in the settings."""

from __future__ import annotations

import grpc

from service.config import Settings


def server_credentials(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS credentials when a certificate is configured (None: plaintext). With client CAs,
    every client must present a certificate they sign (mutual TLS); others fail the handshake.
    """
    if settings.tls_cert_file is None or settings.tls_key_file is None:
        return None
    chain = settings.tls_cert_file.read_bytes()
    key = settings.tls_key_file.read_bytes()
    client_cas = settings.tls_client_ca_file
    return grpc.ssl_server_credentials(
        [(key, chain)],
        root_certificates=client_cas.read_bytes() if client_cas is not None else None,
        require_client_auth=client_cas is not None,
    )
