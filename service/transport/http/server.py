"""The HTTP API's server: uvicorn in the same process and event loop as the gRPC server.

The socket is bound here (a port in use is an error naming the address and the setting, not
uvicorn's exit), uvicorn serves on it without installing signal handlers of its own (the
application owns SIGTERM), and ``stop`` lets requests in flight finish within the grace. TLS
uses the same certificate, key and client CAs as the gRPC port.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Iterator
from typing import Any

import uvicorn

from service.config import Settings
from service.errors import PortUnavailable

log = logging.getLogger(__name__)


class HttpServer:
    """One uvicorn server on a socket of its own."""

    def __init__(self, app: Any, settings: Settings, grace_s: float) -> None:
        assert settings.http_port is not None, "the HTTP API is off"
        tls: dict[str, Any] = {}
        if settings.tls_cert_file is not None:
            tls = {
                "ssl_certfile": str(settings.tls_cert_file),
                "ssl_keyfile": str(settings.tls_key_file),
            }
            if settings.tls_client_ca_file is not None:
                tls |= {
                    "ssl_ca_certs": str(settings.tls_client_ca_file),
                    "ssl_cert_reqs": ssl.CERT_REQUIRED,
                }
        self.config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.http_port,
            lifespan="off",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=max(1, round(grace_s)),
            ws="none",  # no websocket routes: nothing to upgrade to
            **tls,
        )
        self.socket = _bind(settings.host, settings.http_port)
        self.port = int(self.socket.getsockname()[1])
        self.server = _Server(self.config)
        self._serving: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Serve on the bound socket; returns once uvicorn accepts connections."""
        self._serving = asyncio.create_task(self.server.serve([self.socket]), name="http-server")
        while not self.server.started:
            if self._serving.done():
                self._serving.result()  # its start failed: say why
                raise RuntimeError("the HTTP API stopped while starting")
            await asyncio.sleep(0.005)

    async def stop(self, remaining_s: float) -> None:
        """Stop accepting, let requests in flight finish (at most ``remaining_s``, what is
        left of the grace), close. A failure of the server itself is logged: shutdown goes on."""
        if self._serving is None:
            self.socket.close()
            return
        self.config.timeout_graceful_shutdown = max(0, int(remaining_s))
        self.server.should_exit = True
        try:
            await self._serving
        except Exception:
            log.exception("the HTTP API failed while stopping")


class _Server(uvicorn.Server):
    """uvicorn without signal handlers of its own: the application owns SIGTERM and SIGINT."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto named: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on sockets that say
    # they are TCP; without it every reply waits ~40 ms for the client's delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        raise PortUnavailable("HTTP API", host, port, "http_port", reason) from error
    sock.set_inheritable(True)
    return sock
