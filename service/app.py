"""Wiring and lifecycle: bind → NOT_SERVING → load and check models → warm up → SERVING;
on SIGTERM/SIGINT: NOT_SERVING → stop accepting → finish in-flight work → close sessions →
send pending cache writes and close Redis.

With ``model_control=poll`` the models come and go while serving
(``service.registry.lifecycle``):
the server listens even on an empty repository, and health is SERVING while at least one model
is ready, each model's own health name while that model is."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING

import grpc
from grpc_health.v1 import health_pb2

from modelrepo.model_config import ModelConfigReader
from service.admission import Admission, RequestLimits
from service.batching import ObserverFactory
from service.batching.limits import ModelBatching
from service.batching.observers import combined
from service.cache.factory import CacheConfig, create_cache
from service.cache.texts import TextCache
from service.config import Settings
from service.embedder import Embedder
from service.lane import Lane
from service.metrics import Metrics
from service.registry.lifecycle import ModelLifecycle
from service.registry.registry import ModelRegistry
from service.runtime.session import SessionOptions
from service.transport.auth import token_file
from service.transport.gate import ServingGate
from service.transport.health import DrainingHealthServicer, model_service_name
from service.transport.server import SERVICE_NAME, create_health_server, create_server
from service.transport.servicer import EmbeddingServicer

if TYPE_CHECKING:
    from service.transport.http.server import HttpServer

log = logging.getLogger(__name__)

HEALTH_SERVICES = ("", SERVICE_NAME)
DRAIN_POLL_S = 0.01
# Stop gRPC only once no new call was refused for this long: a call that reaches gRPC's own
# stop in the act gets CANCELLED, not our UNAVAILABLE (bounded by the grace period).
DRAIN_QUIET_S = 0.2


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def cache_config(settings: Settings) -> CacheConfig:
    return CacheConfig(
        enabled=settings.cache == "on",
        memory_bytes=settings.cache_memory_mb * 2**20,
        redis_url=settings.redis_url,
        redis_cluster=settings.redis_cluster,
        ttl_s=settings.cache_ttl_s,
        redis_timeout_s=settings.redis_timeout_ms / 1000,
    )


def session_options(settings: Settings) -> SessionOptions:
    """Where and how the server's ONNX Runtime sessions run."""
    return SessionOptions(
        device=settings.device,
        intra_op_threads=settings.intra_op_threads,
        inter_op_threads=settings.inter_op_threads,
        spin_wait=settings.spin_wait,
        io_binding=settings.io_binding,
    )


class Application:
    """One server process: its gRPC server, health, and (once models load) the embedder."""

    def __init__(self, settings: Settings, observers: ObserverFactory | None = None) -> None:
        self.settings = settings
        self.observers = observers
        self.metrics = Metrics() if settings.metrics else None
        self.metrics_port: int | None = None
        self.gate = ServingGate()
        self.servicer = EmbeddingServicer(
            self.gate, settings.default_timeout_s, settings.stream_concurrency
        )
        self.health = DrainingHealthServicer()
        tokens = token_file(settings.auth_tokens_file)
        self.server, self.port = create_server(
            settings, self.servicer, self.health, self.metrics, tokens
        )
        self.http: HttpServer | None = None
        if settings.http_port is not None:  # FastAPI and uvicorn are imported only then
            from service.transport.http.app import create_http_app
            from service.transport.http.server import HttpServer

            api = create_http_app(self.gate, settings, self.metrics, tokens)
            self.http = HttpServer(api, settings, settings.grace_period_s)
        self.health_server: grpc.aio.Server | None = None
        self.health_port: int | None = None
        if (health_only := create_health_server(settings, self.health)) is not None:
            self.health_server, self.health_port = health_only
        self.embedder: Embedder | None = None
        self.cache: TextCache | None = None
        self.lifecycle: ModelLifecycle | None = None
        self._model_health: set[str] = set()
        """Models whose health name has been set."""
        self._built = False

    async def _set_health(
        self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType
    ) -> None:
        for service in HEALTH_SERVICES:
            await self.health.set(service, status)

    async def start(self) -> None:
        """Listen at once (health says NOT_SERVING), then load, warm up and report SERVING."""
        await self.listen()
        await self.load()

    async def listen(self) -> None:
        """Accept calls: health answers NOT_SERVING and the API UNAVAILABLE until ``load``.
        Metrics bind first: every port is bound (or its ``PortUnavailable`` raised) before
        the server accepts a call."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        if self.metrics is not None:
            self.metrics_port = self.metrics.serve(self.settings.host, self.settings.metrics_port)
        await self.server.start()
        if self.health_server is not None:
            await self.health_server.start()
            log.info("health alone on %s:%d (plaintext)", self.settings.host, self.health_port)
        if self.http is not None:
            await self.http.start()
            scheme = "https" if self.settings.tls_cert_file is not None else "http"
            log.info("HTTP API on %s://%s:%d/v1", scheme, self.settings.host, self.http.port)
        if self.metrics_port is not None:
            log.info("metrics on http://%s:%d/metrics", self.settings.host, self.metrics_port)

    async def _publish_health(self) -> None:
        """Health after a change of the served models: "" and the service name SERVING while
        any model is ready, each model's own name while it is. The transports get the embedder
        from the first change on (before it, calls hear that models are loading)."""
        embedder = self.embedder
        if embedder is None:
            return
        self.gate.embedder = embedder
        ready = embedder.ready_names()
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        await self._set_health(serving if ready else not_serving)
        self._model_health |= embedder.known_models() | ready
        for name in sorted(self._model_health):
            status = serving if name in ready else not_serving
            await self.health.set(model_service_name(SERVICE_NAME, name), status)
        if self.metrics is not None and not self._built and ready:
            self.metrics.built([served.runtime.device for served in embedder.served()])
            self._built = True

    async def load(self) -> None:
        """Load, check and warm up what the repository holds, then report SERVING; with
        model control by polling, keep the served versions in line with it from then on."""
        settings = self.settings
        poll = settings.model_control == "poll"
        log.info(
            "listening on %s:%d; loading models from %s (model control: %s)",
            settings.host,
            self.port,
            settings.models_dir,
            settings.model_control,
        )
        self.cache = create_cache(cache_config(settings), self.metrics)
        registry = ModelRegistry(self.metrics)
        admission = Admission(
            RequestLimits(
                max_texts_per_request=settings.max_texts_per_request,
                max_text_chars=settings.max_text_chars,
                max_inflight_texts=settings.inflight_limit,
            )
        )
        self.embedder = Embedder(
            registry, admission, Lane(self.cache, self.metrics, settings.tokenizer_threads)
        )
        configs = ModelConfigReader(settings.models_dir, settings.default_version_policy)
        self.lifecycle = ModelLifecycle(
            settings.models_dir,
            settings.models,
            registry,
            ModelBatching(
                configs,
                settings.batching(),
                cost_model=settings.batching_cost_model == "on",
                budget_s=settings.cost_model_budget_s,
            ),
            session_options(settings),
            settings.default_version_policy,
            self._publish_health,
            combined(self.metrics.batcher if self.metrics is not None else None, self.observers),
            self.metrics,
            interval_s=settings.repository_poll_s,
            grace_s=settings.grace_period_s,
        )
        await self.lifecycle.start(poll)
        served = ", ".join(f"{s.label} ({s.runtime.device})" for s in registry.served())
        if poll:
            log.info(
                "serving %s; polling %s every %.1f s",
                served or "no model yet",
                settings.models_dir,
                settings.repository_poll_s,
            )
        else:
            log.info("serving %s on %s:%d", served, settings.host, self.port)
        tiers = " + ".join(self.cache.tiers) if self.cache is not None else "off"
        log.info("cache: %s", tiers)

    async def _drain(self, until: float) -> None:
        """New API calls get UNAVAILABLE from the gate while the admitted ones (every
        method is admitted) finish, and until callers have stopped sending for
        ``DRAIN_QUIET_S``. Waiting for quiet takes at most half of what is left of the grace,
        so callers that keep retrying cannot leave open streams between messages without one."""
        gate, embedder = self.gate, self.embedder
        gate.closing = True
        gate.refused_at = started = loop_time()
        quiet_until = started + (until - started) / 2
        while loop_time() < until:
            busy = embedder is not None and embedder.busy
            noisy = loop_time() - gate.refused_at < DRAIN_QUIET_S
            if not busy and not (noisy and loop_time() < quiet_until):
                return
            await asyncio.sleep(DRAIN_POLL_S)

    async def stop(self) -> None:
        """Graceful: NOT_SERVING, refuse new calls, let in-flight ones finish within the grace."""
        grace = self.settings.grace_period_s
        until = loop_time() + grace
        await self.health.enter_graceful_shutdown()
        if self.lifecycle is not None:  # nothing new loads or unloads from here on
            await self.lifecycle.halt()
        await self._drain(until)
        remaining = max(0.0, until - loop_time())
        stopping = [self.server.stop(remaining)]
        if self.http is not None:
            stopping.append(self.http.stop(remaining))
        await asyncio.gather(*stopping)
        if self.health_server is not None:  # answered NOT_SERVING while the API drained
            await self.health_server.stop(None)
        if self.lifecycle is not None:  # versions retired before the signal finish closing
            await self.lifecycle.finish(max(0.0, until - loop_time()))
        if self.embedder is not None:
            await self.embedder.stop(grace)
        if self.cache is not None:
            await self.cache.close()
        if self.metrics is not None:
            if self.embedder is not None:
                for served in self.embedder.served():
                    self.metrics.model_stopped(served.spec.name, served.spec.version)
            self.metrics.close()
        log.info("stopped")


async def serve(settings: Settings) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully."""
    app = Application(settings)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        await app.start()
        await stopping.wait()
        log.info("shutting down (grace %.1f s)", settings.grace_period_s)
    finally:
        await app.stop()
