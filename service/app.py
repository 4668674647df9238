"""Wiring and lifecycle: bind → NOT_SERVING → load and check models → warm up → SERVING;
on SIGTERM/SIGINT: NOT_SERVING → stop accepting → finish in-flight work → close sessions →
send pending cache writes and close Redis.

With ``model_control=poll`` the models come and go while serving (``service.model_control``):
the server listens even on an empty repository, and health is SERVING while at least one model
is ready, each model's own health name while that model is."""

from __future__ import annotations

import asyncio
import logging
import signal

import grpc
from grpc_health.v1 import health_pb2

from service.batch_costs import BatchShaping
from service.batching import BatchingConfig, BatchObserver, TeeObserver
from service.cache.factory import CacheConfig, create_cache
from service.cache.texts import TextCache
from service.config import Settings
from service.embedder import Embedder, ObserverFactory, RequestLimits
from service.metrics import Metrics
from service.model_control import RepositoryPoller
from service.model_states import ModelState
from service.runtime.base import Runtime
from service.runtime.loader import load_repository
from service.runtime.session import SessionOptions
from service.transport.health import DrainingHealthServicer, model_service_name
from service.transport.server import SERVICE_NAME, create_health_server, create_server
from service.transport.servicer import EmbeddingServicer

log = logging.getLogger(__name__)

HEALTH_SERVICES = ("", SERVICE_NAME)
DRAIN_POLL_S = 0.01
# Stop gRPC only once no new call was refused for this long: a call that reaches gRPC's own
# stop in the act gets CANCELLED, not our UNAVAILABLE (bounded by the grace period).
DRAIN_QUIET_S = 0.2


def loop_time() -> float:
    return asyncio.get_running_loop().time()


def batching_config(settings: Settings) -> BatchingConfig:
    return BatchingConfig(
        max_batch_size=settings.max_batch_size,
        max_batch_tokens=settings.max_batch_tokens,
        max_queue_delay_ms=settings.max_queue_delay_ms,
        max_queue_size=settings.max_queue_size,
        max_concurrent_batches=settings.max_concurrent_batches,
    )


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
    """One server process: its gRPC server, health, and (once warm) the embedder."""

    def __init__(self, settings: Settings, observers: ObserverFactory | None = None) -> None:
        self.settings = settings
        self.observers = observers
        self.metrics = Metrics() if settings.metrics else None
        self.metrics_port: int | None = None
        self.servicer = EmbeddingServicer(settings.default_timeout_s, settings.stream_concurrency)
        self.health = DrainingHealthServicer()
        self.server, self.port = create_server(settings, self.servicer, self.health, self.metrics)
        self.health_server: grpc.aio.Server | None = None
        self.health_port: int | None = None
        if (health_only := create_health_server(settings, self.health)) is not None:
            self.health_server, self.health_port = health_only
        self.embedder: Embedder | None = None
        self.cache: TextCache | None = None
        self.poller: RepositoryPoller | None = None
        self._model_health: set[str] = set()
        """Models whose health name has been set."""
        self._built = False

    async def _set_health(
        self, status: health_pb2.HealthCheckResponse.ServingStatus.ValueType
    ) -> None:
        for service in HEALTH_SERVICES:
            await self.health.set(service, status)

    def _observers(self) -> ObserverFactory | None:
        """Each batcher's observer: the metrics' and the caller's (tests, the benchmark)."""
        metrics, extra = self.metrics, self.observers
        if metrics is None:
            return extra
        if extra is None:
            return metrics.batcher

        def both(name: str) -> BatchObserver | None:
            found = [o for o in (metrics.batcher(name), extra(name)) if o is not None]
            return found[0] if len(found) == 1 else TeeObserver(found)

        return both

    async def start(self) -> None:
        """Listen at once (health says NOT_SERVING), then load, warm up and report SERVING."""
        await self.listen()
        await self.load()

    async def listen(self) -> None:
        """Accept calls: health answers NOT_SERVING and the API UNAVAILABLE until ``load``."""
        await self._set_health(health_pb2.HealthCheckResponse.NOT_SERVING)
        await self.server.start()
        if self.health_server is not None:
            await self.health_server.start()
            log.info("health alone on %s:%d (plaintext)", self.settings.host, self.health_port)
        if self.metrics is not None:
            self.metrics_port = self.metrics.serve(self.settings.host, self.settings.metrics_port)
            log.info("metrics on http://%s:%d/metrics", self.settings.host, self.metrics_port)

    def _embedder(self, runtimes: dict[str, dict[int, Runtime]]) -> Embedder:
        self.cache = create_cache(cache_config(self.settings), self.metrics)
        return Embedder(
            runtimes,
            batching_config(self.settings),
            RequestLimits(
                max_texts_per_request=self.settings.max_texts_per_request,
                max_text_chars=self.settings.max_text_chars,
                max_inflight_texts=self.settings.max_inflight_texts or self.settings.max_queue_size,
            ),
            self.settings.tokenizer_threads,
            self._observers(),
            self.cache,
            self.metrics,
            shaping=BatchShaping(
                models_dir=self.settings.models_dir,
                cost_model=self.settings.batching_cost_model == "on",
                budget_s=self.settings.cost_model_budget_s,
            ),
        )

    async def _publish_health(self) -> None:
        """Health after a change of the served models: "" and the service name SERVING while
        any model is ready, each model's own name while it is. The servicer gets the embedder
        from the first change on (before it, calls hear that models are loading)."""
        embedder = self.embedder
        if embedder is None:
            return
        self.servicer.embedder = embedder
        ready = set(embedder.models)
        serving = health_pb2.HealthCheckResponse.SERVING
        not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
        await self._set_health(serving if ready else not_serving)
        self._model_health |= embedder.states.known | ready
        for name in sorted(self._model_health):
            status = serving if name in ready else not_serving
            await self.health.set(model_service_name(SERVICE_NAME, name), status)
        if self.metrics is not None and not self._built and ready:
            self.metrics.built([served.runtime.device for served in embedder.served()])
            self._built = True

    async def load(self) -> None:
        """Load and check every model, warm it up, start batching, then report SERVING; with
        model control by polling, the first read of the repository instead, then keep polling."""
        log.info(
            "listening on %s:%d; loading models from %s (model control: %s)",
            self.settings.host,
            self.port,
            self.settings.models_dir,
            self.settings.model_control,
        )
        if self.settings.model_control == "poll":
            await self._load_polled()
            return
        options = session_options(self.settings)
        load_seconds: dict[tuple[str, int], float] = {}
        runtimes = await asyncio.to_thread(
            load_repository, self.settings.models_dir, self.settings.models, options, load_seconds
        )
        if not runtimes:
            raise RuntimeError(
                f"{self.settings.models_dir} holds no models; build the defaults with "
                "`python -m export defaults` or import one with `python -m export bert --from-hf`"
            )
        embedder = self._embedder(runtimes)
        self.embedder = embedder
        warm_seconds = await asyncio.to_thread(embedder.warmup)
        await embedder.start()
        for served in embedder.served():
            key = (served.spec.name, served.spec.version)
            embedder.states.set(*key, ModelState.READY)
            if self.metrics is not None:
                seconds = load_seconds.get(key, 0.0) + warm_seconds.get(key, 0.0)
                self.metrics.model_loaded(*key, seconds)
        await self._publish_health()
        names = ", ".join(
            f"{s.spec.name}/{s.spec.version} ({s.runtime.device})" for s in embedder.served()
        )
        log.info("serving %s on %s:%d", names, self.settings.host, self.port)
        tiers = " + ".join(self.cache.tiers) if self.cache is not None else "off"
        log.info("cache: %s", tiers)

    async def _load_polled(self) -> None:
        """An empty embedder, filled by the poller: once from what the repository holds now
        (before this returns), then every ``repository_poll_s``."""
        embedder = self._embedder({})
        self.embedder = embedder
        poller = RepositoryPoller(
            self.settings.models_dir,
            self.settings.models,
            embedder,
            session_options(self.settings),
            self.settings.repository_poll_s,
            self._publish_health,
            self.metrics,
            grace_s=self.settings.grace_period_s,
        )
        self.poller = poller
        await poller.reconcile_logged()
        poller.start()
        served = ", ".join(f"{s.spec.name}/{s.spec.version}" for s in embedder.served())
        log.info(
            "serving %s; polling %s every %.1f s",
            served or "no model yet",
            self.settings.models_dir,
            self.settings.repository_poll_s,
        )
        tiers = " + ".join(self.cache.tiers) if self.cache is not None else "off"
        log.info("cache: %s", tiers)

    async def _drain(self, until: float) -> None:
        """New API calls get UNAVAILABLE from the servicer while those in the embedder finish,
        and until callers have stopped sending for ``DRAIN_QUIET_S``. Waiting for quiet takes
        at most half of what is left of the grace, so callers that keep retrying cannot leave
        the calls gRPC still holds (MostSimilar, Tokenize, open streams) without a grace."""
        servicer, embedder = self.servicer, self.embedder
        servicer.closing = True
        servicer.refused_at = started = loop_time()
        quiet_until = started + (until - started) / 2
        while loop_time() < until:
            busy = embedder is not None and any(embedder.inflight.values())
            noisy = loop_time() - servicer.refused_at < DRAIN_QUIET_S
            if not busy and not (noisy and loop_time() < quiet_until):
                return
            await asyncio.sleep(DRAIN_POLL_S)

    async def stop(self) -> None:
        """Graceful: NOT_SERVING, refuse new calls, let in-flight ones finish within the grace."""
        grace = self.settings.grace_period_s
        until = loop_time() + grace
        await self.health.enter_graceful_shutdown()
        if self.poller is not None:  # nothing new loads or unloads from here on
            await self.poller.halt()
        await self._drain(until)
        await self.server.stop(max(0.0, until - loop_time()))
        if self.health_server is not None:  # answered NOT_SERVING while the API drained
            await self.health_server.stop(None)
        if self.poller is not None:  # versions retired before the signal finish closing
            await self.poller.finish(max(0.0, until - loop_time()))
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
