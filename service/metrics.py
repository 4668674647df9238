"""Every metric the service exports, in one place, and the hooks that record them.

One prefix, ``embed_``; seconds for durations, ``_total`` for counters; labels of bounded
cardinality only (model, operation, method, code, tier): never a text, a client or a request
id. The dashboard (``deploy/grafana``), the rules (``deploy/prometheus``) and the autoscaler
depend on these names. Each ``Metrics`` holds its own registry, so several servers in one
process (tests, the benchmark) never mix their series.

Events are recorded where they happen: batch shapes, queue drops and executions through the
batchers' ``BatchObserver`` hooks (``BatcherMetrics``); each request's stages from the same
``Timing`` its response carries (``observe_request``); cache lookups through the cache's
``CacheObserver`` hooks; request counts, latency and in-flight requests in the gRPC server
interceptor (``service.transport.interceptors``) and, for the HTTP API, in its middleware
(``service.transport.http.middleware``), as a family of its own labelled by endpoint and HTTP
status. The stage histograms are the same for both transports: the lane records them.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import TYPE_CHECKING, Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from service.domain import Timing
from service.errors import PortUnavailable

if TYPE_CHECKING:
    from service.batching import BatcherKey, CostTable

log = logging.getLogger(__name__)

# Geometric: 50 µs, 100 µs, ... ~52 s (21 buckets); sizes in powers of two.
DURATION_BUCKETS = tuple(50e-6 * 2**step for step in range(21))
BATCH_SIZE_BUCKETS = tuple(float(2**step) for step in range(13))  # 1 ... 4096
BATCH_TOKEN_BUCKETS = tuple(float(2**step) for step in range(3, 18))  # 8 ... 131072
EFFICIENCY_BUCKETS = tuple(step / 10 for step in range(1, 11))  # 0.1 ... 1.0
COST_RATIO_BUCKETS = tuple(0.25 * 2 ** (step / 2) for step in range(9))  # 0.25 ... 4

MODEL_STATES = ("loading", "ready", "draining", "failed")
UNKNOWN_MODEL = "unknown"
NO_MODEL = "none"


class Metrics:
    """The service's metrics in a registry of their own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "embed_requests_total",
            "Requests by method, model and gRPC status code",
            ["method", "model", "code"],
            registry=r,
        )
        self.request_duration = Histogram(
            "embed_request_duration_seconds",
            "Time from receipt to response, as the server sees it",
            ["method", "model"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        stage = ["model", "operation"]
        self.http_requests = Counter(
            "embed_http_requests_total",
            "HTTP API requests by endpoint (method, e.g. 'POST /v1/embeddings'), model and HTTP "
            "status (code)",
            ["method", "model", "code"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            "embed_http_request_duration_seconds",
            "Time from an HTTP API request's arrival to its response, as the server sees it",
            ["method", "model"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.queue_duration = Histogram(
            "embed_queue_duration_seconds",
            "Per request: the longest wait of its texts for a batch (0 when all were cached)",
            stage,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.tokenization_duration = Histogram(
            "embed_tokenization_duration_seconds",
            "Per request: tokenization and input checks of its texts",
            stage,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.inference_duration = Histogram(
            "embed_inference_duration_seconds",
            "Per request: the model time of the batches that carried its texts",
            stage,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.postprocess_duration = Histogram(
            "embed_postprocess_duration_seconds",
            "Per request: pooling, normalisation and top-k of its texts",
            stage,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "embed_batch_size",
            "Texts per batch",
            stage,
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.batch_tokens = Histogram(
            "embed_batch_tokens",
            "Padded tokens per batch (batch size x longest text)",
            stage,
            buckets=BATCH_TOKEN_BUCKETS,
            registry=r,
        )
        self.batch_padding_efficiency = Histogram(
            "embed_batch_padding_efficiency",
            "Real tokens over padded tokens per batch",
            stage,
            buckets=EFFICIENCY_BUCKETS,
            registry=r,
        )
        self.batch_execution = Histogram(
            "embed_batch_execution_seconds",
            "Model time per batch",
            stage,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.batch_cost_ratio = Histogram(
            "embed_batch_cost_ratio",
            "Measured over predicted execution time per batch (batchers with a cost model)",
            stage,
            buckets=COST_RATIO_BUCKETS,
            registry=r,
        )
        self.batch_cost = Gauge(
            "embed_batch_cost_seconds",
            "Seconds per batch the cost model measured at warm-up, by batch size and length",
            ["model", "version", "batch_size", "length"],
            registry=r,
        )
        self.texts = Counter(
            "embed_texts_total",
            "Texts answered, by where the result came from (computed or cached)",
            ["model", "operation", "source"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "embed_queue_depth", "Texts waiting for a batch", stage, registry=r
        )
        self.inflight = Gauge(
            "embed_inflight_requests",
            "Requests being handled, by gRPC method or HTTP endpoint",
            ["method"],
            registry=r,
        )
        self.dropped = Counter(
            "embed_dropped_items_total",
            "Queued texts that never ran (deadline, cancelled, failed, shutdown)",
            ["model", "operation", "reason"],
            registry=r,
        )
        self.cache_lookups = Counter(
            "embed_cache_lookups_total",
            "Texts looked up per cache tier: hit, miss or error (the tier could not answer)",
            ["tier", "result"],
            registry=r,
        )
        self.cache_duration = Histogram(
            "embed_cache_duration_seconds",
            "Time of one batched cache call per tier (op get or set)",
            ["tier", "op"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.cache_writes_dropped = Counter(
            "embed_cache_writes_dropped_total",
            "Texts not written to Redis because too many writes were pending",
            registry=r,
        )
        self.model_ready = Gauge(
            "embed_model_ready",
            "1 while the model version serves",
            ["model", "version"],
            registry=r,
        )
        self.model_states = Gauge(
            "embed_model_state",
            "1 for the state the model version is in (loading, ready, draining, failed), "
            "0 for the others",
            ["model", "version", "state"],
            registry=r,
        )
        self.model_load = Gauge(
            "embed_model_load_seconds",
            "Seconds the model version took to load, check and warm up",
            ["model", "version"],
            registry=r,
        )
        self.build_info = Gauge(
            "embed_build_info",
            "The service's version and the ONNX Runtime providers in use",
            ["version", "providers"],
            registry=r,
        )
        self._http: tuple[WSGIServer, threading.Thread] | None = None
        # Labelled children by (metric, labels): ``labels()`` takes a lock and builds a key on
        # every call, which shows in the cost of the cheapest requests. Labels are bounded, so
        # this is too.
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    # -- batches ----------------------------------------------------------------------------
    def batcher(self, key: BatcherKey) -> BatcherMetrics:
        """The observer of one batcher (labelled by its model and operation)."""
        return BatcherMetrics(self, key.model, key.operation)

    def cost_table(self, model: str, version: int, table: CostTable) -> None:
        """The seconds per batch measured at warm-up, one series per grid point."""
        for size, row in zip(table.batch_sizes, table.seconds, strict=True):
            for length, seconds in zip(table.lengths, row, strict=True):
                self.batch_cost.labels(model, str(version), str(size), str(length)).set(seconds)

    def watch_queue(self, model: str, operation: str, depth: Callable[[], int]) -> None:
        self.queue_depth.labels(model, operation).set_function(depth)

    # -- requests ---------------------------------------------------------------------------
    def observe_request(
        self,
        model: str,
        operation: str,
        timing: Timing,
        computed: int,
        cached: int,
        batched: bool = True,
    ) -> None:
        """A request's stages, from the same ``Timing`` its response carries. A static
        (``batched=False``) lookup has no queue: its queue wait is not recorded, so the
        autoscaler's mean queue wait is that of the requests that do queue."""
        child = self._child
        if batched:
            child(self.queue_duration, model, operation).observe(timing.queue_s)
        child(self.tokenization_duration, model, operation).observe(timing.tokenization_s)
        child(self.inference_duration, model, operation).observe(timing.inference_s)
        child(self.postprocess_duration, model, operation).observe(timing.postprocess_s)
        if computed:
            child(self.texts, model, operation, "computed").inc(computed)
        if cached:
            child(self.texts, model, operation, "cached").inc(cached)

    def request_started(self, method: str) -> None:
        self._child(self.inflight, method).inc()

    def request_finished(self, method: str, model: str, code: str, seconds: float) -> None:
        self._child(self.inflight, method).dec()
        self._child(self.requests, method, model, code).inc()
        self._child(self.request_duration, method, model).observe(seconds)

    def http_request_finished(self, endpoint: str, model: str, status: int, seconds: float) -> None:
        self._child(self.inflight, endpoint).dec()
        self._child(self.http_requests, endpoint, model, str(status)).inc()
        self._child(self.http_request_duration, endpoint, model).observe(seconds)

    # -- cache ------------------------------------------------------------------------------
    def on_lookup(self, tier: str, hits: int, misses: int, errors: int, seconds: float) -> None:
        for result, count in (("hit", hits), ("miss", misses), ("error", errors)):
            if count:
                self._child(self.cache_lookups, tier, result).inc(count)
        self._child(self.cache_duration, tier, "get").observe(seconds)

    def on_write(self, tier: str, count: int, seconds: float) -> None:
        self._child(self.cache_duration, tier, "set").observe(seconds)

    def on_write_dropped(self, count: int) -> None:
        self.cache_writes_dropped.inc(count)

    # -- models and build -------------------------------------------------------------------
    def model_loaded(self, model: str, version: int, seconds: float) -> None:
        self.model_load.labels(model, str(version)).set(seconds)
        self.model_ready.labels(model, str(version)).set(1)

    def model_state_changed(self, model: str, version: int, state: str) -> None:
        """``embed_model_state`` says ``state``; ``embed_model_ready`` is 1 only when ready."""
        for each in MODEL_STATES:
            self.model_states.labels(model, str(version), each).set(1 if each == state else 0)
        self.model_ready.labels(model, str(version)).set(1 if state == "ready" else 0)

    def model_stopped(self, model: str, version: int) -> None:
        """The version is unloaded: not ready, and in no state any more."""
        self.model_ready.labels(model, str(version)).set(0)
        for each in MODEL_STATES:
            with contextlib.suppress(KeyError):  # never reported in that state
                self.model_states.remove(model, str(version), each)

    def built(self, providers: Sequence[str]) -> None:
        try:
            version = metadata.version("embedding-service")
        except metadata.PackageNotFoundError:
            version = "unknown"
        self.build_info.labels(version, ",".join(sorted(set(providers)))).set(1)

    # -- exposition -------------------------------------------------------------------------
    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` over HTTP on its own thread; returns the bound port (``port`` 0
        picks a free one); a port it cannot bind is a ``PortUnavailable`` naming the setting."""
        try:
            server, thread = start_http_server(port, host, registry=self.registry)
        except OSError as error:
            raise PortUnavailable(
                "metrics endpoint",
                host,
                port,
                "metrics_port",
                error.strerror or str(error),
                also=", or turn metrics off with --no-metrics",
            ) from error
        self._http = (server, thread)
        return int(server.server_port)

    def close(self) -> None:
        if self._http is not None:
            server, thread = self._http
            server.shutdown()
            server.server_close()
            thread.join(5)
            self._http = None


class BatcherMetrics:
    """One batcher's ``BatchObserver``: its label children are resolved once."""

    def __init__(self, metrics: Metrics, model: str, operation: str) -> None:
        labels = (model, operation)
        self._size = metrics.batch_size.labels(*labels)
        self._tokens = metrics.batch_tokens.labels(*labels)
        self._efficiency = metrics.batch_padding_efficiency.labels(*labels)
        self._execution = metrics.batch_execution.labels(*labels)
        self._cost_ratio = metrics.batch_cost_ratio.labels(*labels)
        self._dropped = metrics.dropped
        self._labels = labels

    def on_batch(
        self, batch_size: int, padded_tokens: int, real_tokens: int, queue_wait_s: Sequence[float]
    ) -> None:
        self._size.observe(batch_size)
        self._tokens.observe(padded_tokens)
        self._efficiency.observe(real_tokens / padded_tokens if padded_tokens else 1.0)

    def on_dropped(self, reason: str, count: int) -> None:
        self._dropped.labels(*self._labels, reason).inc(count)

    def on_executed(self, seconds: float) -> None:
        self._execution.observe(seconds)

    def on_cost(
        self, batch_size: int, padded_length: int, predicted_s: float, executed_s: float
    ) -> None:
        if predicted_s > 0:
            self._cost_ratio.observe(executed_s / predicted_s)
