"""The server's settings: one object, read once in ``__main__`` and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_settings import BaseSettings, CliApp, SettingsConfigDict

from modelrepo.model_config import ALL_VERSIONS, NEWEST_ONLY, VersionPolicy

# Callable without a token: probes and tooling (see auth_exempt_methods).
EXEMPT_METHODS = (
    "/grpc.health.v1.Health/Check",
    "/grpc.health.v1.Health/Watch",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)


class BatchingConfig(BaseModel):
    """One batcher's limits. The server's settings take these fields (and so their defaults
    and checks) as they are; a model's ``config.json`` overrides them per model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch_size: int = Field(32, ge=1, description="texts per batch")
    max_batch_tokens: int = Field(
        8192, ge=1, description="padded tokens per batch (batch size x longest text)"
    )
    max_queue_delay_ms: float = Field(
        2.0, ge=0, description="how long the oldest queued text may wait for a batch to fill"
    )
    max_concurrent_batches: int = Field(
        1, ge=1, description="batches in inference at once per model"
    )
    max_queue_size: int | None = Field(
        None,
        ge=1,
        description="items one batcher's queue holds, beyond which it refuses a call (None: "
        "unbounded; the server bounds texts per model at admission instead)",
    )


BATCHING_FIELDS: dict[str, Any] = dict(BatchingConfig.model_fields)
"""Its fields as declared, for the server settings of the same names (typed loosely: a
field's declaration stands for its default)."""


class Settings(BaseSettings):
    """Serve embedding models over gRPC.

    Every option is also read from an environment variable named EMBED_ and the option in upper
    case with underscores (e.g. --max-batch-size 64 or EMBED_MAX_BATCH_SIZE=64); the command
    line wins over the environment.
    """

    model_config = SettingsConfigDict(
        env_prefix="EMBED_",
        cli_kebab_case=True,
        cli_prog_name="python -m service",
        cli_implicit_flags=True,
        frozen=True,
    )

    # Where and what to serve.
    models_dir: Path = Field(Path("models"), description="model repository root")
    models: list[str] = Field(
        default_factory=list,
        description="model names to serve (default: every model in the repository)",
    )
    model_control: Literal["none", "poll"] = Field(
        "none",
        description="none: load every version on disk at start and keep them; poll: re-read "
        "the repository every repository-poll-s, loading new versions and unloading those that "
        "leave each model's version policy (models/<name>/config.json; default: the newest)",
    )
    repository_poll_s: float = Field(
        5.0, gt=0, description="with model-control poll, seconds between repository reads"
    )
    host: str = Field("127.0.0.1", description="address to bind (0.0.0.0 inside a container)")
    port: int = Field(50051, ge=0, le=65535, description="gRPC port (0 picks a free one)")
    http_port: int | None = Field(
        None,
        ge=0,
        le=65535,
        description="also serve the OpenAI-compatible HTTP API (/v1/embeddings, /v1/models, "
        "/health, /docs) on this port, with the same auth, TLS, limits and cache (0 picks a "
        "free one; off unless set)",
    )
    http_request_timeout_header: str = Field(
        "x-request-timeout",
        description="HTTP header a client may set to its deadline in seconds (the gRPC deadline's "
        "counterpart); without it, default-timeout-s",
    )
    health_port: int = Field(
        0,
        ge=0,
        le=65535,
        description="also serve grpc.health.v1 alone, in plaintext, on this port: for probes "
        "that cannot speak TLS or send a token, such as kubelet's (0: off)",
    )

    # Security: bearer tokens and TLS on the API port (the health and metrics ports stay plain).
    auth_tokens_file: Path | None = Field(
        None,
        description="require 'authorization: Bearer <token>' metadata; one accepted token per "
        "line (blank lines and # comments ignored), re-read within 5 s of a change",
    )
    auth_exempt_methods: list[str] = Field(
        default_factory=lambda: list(EXEMPT_METHODS),
        description="full method names callable without a token (default: health and reflection)",
    )
    tls_cert_file: Path | None = Field(None, description="PEM certificate chain: serve TLS")
    tls_key_file: Path | None = Field(None, description="PEM private key of tls-cert-file")
    tls_client_ca_file: Path | None = Field(
        None, description="PEM roots: require client certificates they sign (mutual TLS)"
    )

    # Connections: replicas behind one name (see docs/deploy.md).
    max_connection_age_ms: int = Field(
        300_000,
        ge=0,
        description="close each client connection after about this long (gRPC adds 10 % "
        "jitter), so clients resolve the name again and reach replicas added since (0: never)",
    )
    max_connection_age_grace_ms: int = Field(
        30_000, ge=0, description="how long calls in flight on a closing connection may finish"
    )
    keepalive_time_ms: int = Field(
        60_000, ge=0, description="ping an idle client connection this often (0: never)"
    )
    keepalive_timeout_ms: int = Field(
        20_000, ge=1, description="close a connection whose ping is not answered in this time"
    )

    # Dynamic batching, per model (a model's config.json may override each; see BatchingConfig).
    max_batch_size: int = BATCHING_FIELDS["max_batch_size"]
    max_batch_tokens: int = BATCHING_FIELDS["max_batch_tokens"]
    max_queue_delay_ms: float = BATCHING_FIELDS["max_queue_delay_ms"]
    max_queue_size: int = Field(
        4096,
        ge=1,
        description="texts admitted per model at once, unless max-inflight-texts says otherwise; "
        "beyond it requests get RESOURCE_EXHAUSTED",
    )
    max_texts_per_request: int = Field(
        1024, ge=1, description="texts in one request; more gets INVALID_ARGUMENT"
    )
    max_concurrent_batches: int = BATCHING_FIELDS["max_concurrent_batches"]
    batching_cost_model: Literal["on", "off"] = Field(
        "on",
        description="choose batch shapes by the engine's cost, timed at warm-up on a grid of "
        "batch sizes x lengths; off: fill every batch to the limits",
    )
    cost_model_budget_s: float = Field(
        3.0, gt=0, description="seconds of warm-up per model spent timing the cost grid"
    )

    # Limits: what one request and one model may take (README "Limits and overload").
    max_text_chars: int = Field(
        100_000, ge=1, description="characters in one text; longer gets INVALID_ARGUMENT"
    )
    max_inflight_texts: int | None = Field(
        None,
        ge=1,
        description="texts admitted per model at once (tokenizing, queued, running, finishing); "
        "beyond it a request gets RESOURCE_EXHAUSTED on arrival, before any tokenizing "
        "(default: max-queue-size)",
    )
    max_message_bytes: int = Field(
        64 * 2**20,
        ge=1024,
        description="largest request or response message; gRPC answers a larger one with "
        "RESOURCE_EXHAUSTED",
    )
    max_concurrent_streams: int = Field(
        1024, ge=1, description="calls at once per client connection (HTTP/2 streams)"
    )
    stream_concurrency: int = Field(
        64,
        ge=1,
        description="messages of one EmbedStream call worked on at once, so they batch with "
        "each other; replies keep their order, and no message is read while this many wait",
    )
    default_timeout_s: float = Field(
        300.0,
        gt=0,
        description="deadline of a request whose client set none: queued work past it is "
        "dropped and the call gets DEADLINE_EXCEEDED",
    )

    # ONNX Runtime.
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="auto: CUDA when ONNX Runtime can use it, else CPU"
    )
    intra_op_threads: int = Field(
        0, ge=0, description="threads inside one ONNX operator (0: one per physical core)"
    )
    inter_op_threads: int = Field(1, ge=1, description="ONNX operators run in parallel")
    spin_wait: bool = Field(
        False,
        description="ONNX Runtime's threads spin between runs: lower latency on dedicated "
        "cores, CPU burnt otherwise (off by default)",
    )
    io_binding: Literal["auto", "on", "off"] = Field(
        "auto",
        description="bind inputs and fetched outputs with ONNX Runtime's IOBinding, so outputs "
        "not asked for stay on the device (auto: on CUDA only)",
    )
    tokenizer_threads: int = Field(2, ge=1, description="threads for tokenization and pooling")

    # Caching of contextual results (BERT, ELMo embeddings and fill-mask; never word2vec).
    cache: Literal["on", "off"] = Field(
        "on", description="cache results per text: in process, and in Redis when redis-url is set"
    )
    cache_memory_mb: int = Field(
        256, ge=0, description="bytes of the in-process cache tier, in MiB (0: no in-process tier)"
    )
    redis_url: str = Field(
        "",
        description="shared cache tier, e.g. redis://:PASSWORD@HOST:6379/0 or rediss:// for TLS "
        "(empty: no Redis tier)",
    )
    redis_cluster: bool = Field(False, description="redis-url names a node of a Redis Cluster")
    cache_ttl_s: int = Field(86_400, ge=1, description="seconds a cached result lives")
    redis_timeout_ms: float = Field(
        50.0, gt=0, description="longest a request waits for a Redis read before it computes"
    )

    # Metrics and logs.
    metrics: bool = Field(True, description="serve Prometheus metrics (--no-metrics turns it off)")
    metrics_port: int = Field(
        9464, ge=0, le=65535, description="HTTP port of /metrics (0 picks a free one)"
    )
    access_log: bool = Field(
        False, description="one JSON line per request on the service.access logger (no texts)"
    )
    request_id_metadata: Literal["trailing", "initial"] = Field(
        "trailing",
        description="where a unary call's x-request-id comes back: trailing metadata, sent with "
        "the status at no cost, or initial metadata, a gRPC write of its own (40-130 µs a call "
        "here) that also commits the call, so clients no longer retry its UNAVAILABLE; streams "
        "always send it in their initial metadata, before the first reply",
    )

    # Lifecycle and logs.
    grace_period_s: float = Field(
        10.0, ge=0, description="on SIGTERM, how long in-flight requests may take to finish"
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field("info", description="log level")

    def batching(self) -> BatchingConfig:
        """The server's batching limits, which each model's ``config.json`` may override. The
        batchers get no queue bound of their own: ``max_queue_size`` here is the admission
        limit's default (see ``inflight_limit``), which bounds every model's queues at once."""
        shared = (name for name in BATCHING_FIELDS if name != "max_queue_size")
        return BatchingConfig(**{name: getattr(self, name) for name in shared})

    @property
    def inflight_limit(self) -> int:
        """Texts admitted per model at once: max-inflight-texts, else max-queue-size."""
        return self.max_inflight_texts or self.max_queue_size

    @property
    def default_version_policy(self) -> VersionPolicy:
        """The versions of a model without a ``config.json`` policy: every version on disk
        when the set is fixed at start (``none``: what a server with several versions mounted
        has always served), the newest when polling (a new version replaces the old)."""
        return NEWEST_ONLY if self.model_control == "poll" else ALL_VERSIONS

    @model_validator(mode="after")
    def _ports_are_their_own(self) -> Settings:
        """Each listener needs a port of its own (0 picks a free one for any of them; the
        metrics port counts only while metrics are served)."""
        named = [("port", self.port), ("metrics-port", self.metrics_port if self.metrics else 0)]
        named += [("health-port", self.health_port), ("http-port", self.http_port or 0)]
        taken: dict[int, str] = {}
        for name, port in named:
            if port and port in taken:
                raise ValueError(f"{name} {port} is also the {taken[port]}; give each its own")
            taken.setdefault(port, name)
        return self

    @model_validator(mode="after")
    def _tls_files_pair_up(self) -> Settings:
        """A certificate needs its key (and the reverse); client CAs need TLS itself."""
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError(
                "tls-cert-file and tls-key-file go together: give both to serve TLS, or neither"
            )
        if self.tls_client_ca_file is not None and self.tls_cert_file is None:
            raise ValueError("tls-client-ca-file needs tls-cert-file and tls-key-file (TLS)")
        return self


def load_settings(argv: list[str] | None = None) -> Settings:
    """Settings from the command line (``argv``) over the environment over the defaults."""
    return CliApp.run(Settings, cli_args=argv if argv is not None else [])
