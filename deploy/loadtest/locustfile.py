"""Locust load for the embedding service over gRPC, against any deployment.

    locust -f deploy/loadtest/locustfile.py --host 127.0.0.1:50051 --headless -u 16 -r 16 -t 60s
    locust -f deploy/loadtest/locustfile.py --host grpcs://embed.example:443 --bearer-token T
    locust -f deploy/loadtest/locustfile.py --host HOST:PORT --sweep 1,4,16,64 --step-time 30s

Each user opens one channel of its own in ``on_start`` (after any ``--processes`` fork) and
sends one call after another. Every call is reported to Locust by an interceptor with its method
name, time, response size and, for a failure, the gRPC status name. The work, by weight:
Embed of short texts (one sentence) and of long ones (``--long-sentences`` consecutive ones),
FillMask on ``--model`` (when it has an MLM head), MostSimilar on ``--similar-model`` (only when
it names a word2vec model) and EmbedStream (only when its weight is set). Texts are held-out
sentences of the default corpus (``--texts-file``, one per line; a few built-in ones without
it); ``--repeat-ratio`` of them repeat an earlier text, to exercise the server's cache.
Texts are kept within the model's limit (GetModel's ``max_sequence_length``): Embed truncates,
and FillMask, which is not asked to (a cut text is another question), sends only texts the
server's Tokenize counts within it. A call the
server refuses as INVALID_ARGUMENT is the load's own mistake: it is logged, and the timeline
counts it apart so that ``bench.loadtest`` never counts it as the server's error.

Every option below is also read from the environment as ``LOCUST_<OPTION>`` (Locust's rule),
e.g. ``LOCUST_MODEL=bert LOCUST_WEIGHT_FILL_MASK=0``. ``--sweep`` (or ``LOCUST_SWEEP``) turns on
a step load (``SweepShape``); without it the run is plain Locust (``-u``, ``-r``, ``-t``).
``--timeline FILE`` writes per-second figures and the levels held, for ``bench.loadtest``.

Only the generated stubs and ``embedload`` (standard library and grpc) are imported besides
Locust: importing the ``service`` package (numpy, redis) into a gevent process breaks it.
"""

# ruff: noqa: E402 -- gRPC must be switched to gevent before anything else touches it.
import grpc.experimental.gevent as grpc_gevent

grpc_gevent.init_gevent()

import argparse
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from embedload.calls import (
    GrpcStatusError,
    Target,
    bearer_metadata,
    open_channel,
    read_bearer_token,
    reporting_channel,
)
from embedload.sweep import Sweep, parse_levels, parse_timespan
from embedload.texts import TextSource, content_words, load_sentences
from embedload.timeline import Timeline
from locust import LoadTestShape, TaskSet, User, constant, events
from locust.env import Environment
from locust.runners import WorkerRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

from proto.embedding.v1 import embedding_pb2 as pb
from proto.embedding.v1 import embedding_pb2_grpc as pb_grpc

log = logging.getLogger("embedload")
TOKENIZE_BATCH = 256
"""Texts per Tokenize call while fitting FillMask's texts (within the server's default limit)."""
Handler = TypeVar("Handler", bound=Callable[..., None])


def _on(hook: Any) -> Callable[[Handler], Handler]:
    """``@hook.add_listener`` that keeps the handler's type (Locust's hooks are unannotated)."""

    def register(handler: Handler) -> Handler:
        hook.add_listener(handler)
        return handler

    return register


POOLINGS = {
    "default": pb.POOLING_UNSPECIFIED,
    "cls": pb.POOLING_CLS,
    "mean": pb.POOLING_MEAN,
    "max": pb.POOLING_MAX,
    "mean_sqrt_len": pb.POOLING_MEAN_SQRT_LEN,
    "none": pb.POOLING_NONE,
}
NORMALIZATIONS = {
    "default": pb.NORMALIZATION_UNSPECIFIED,
    "on": pb.NORMALIZATION_ON,
    "off": pb.NORMALIZATION_OFF,
}
WEIGHTS = {
    "embed_short": 6,
    "embed_long": 2,
    "fill_mask": 2,
    "most_similar": 2,
    "embed_stream": 0,
}
"""Default task weights; MostSimilar counts only with ``--similar-model``."""


def _dimensions(text: str) -> int:
    """``--dimensions``: a count of values, 0 for all of them."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"a count of values (0: all), got {text!r}")
    return int(text)


@_on(events.init_command_line_parser)
def _arguments(parser: Any) -> None:
    add = parser.add_argument
    add("--model", default="bert", help="model for Embed and FillMask")
    add("--similar-model", default="", help="word2vec model for MostSimilar (off when empty)")
    add("--pooling", default="default", choices=sorted(POOLINGS), help="Embed pooling")
    add(
        "--normalize",
        default="default",
        choices=sorted(NORMALIZATIONS),
        help="Embed normalisation (default: the model's)",
    )
    add("--prompt-name", default="", help="Embed prompt, one of the model's (default: its own)")
    add(
        "--dimensions",
        type=_dimensions,
        default=0,
        help="Embed: keep the first N values (0: all)",
    )
    add("--texts-per-request", type=int, default=1, help="texts in each Embed/FillMask call")
    add("--long-sentences", type=int, default=4, help="sentences in a long text")
    add("--repeat-ratio", type=float, default=0.5, help="share of texts sent before (cache)")
    add("--texts-file", default="", help="one text per line (default: built-in sentences)")
    add("--top-k", type=int, default=5, help="FillMask predictions per mask")
    add("--stream-messages", type=int, default=4, help="requests per EmbedStream call")
    for name, weight in WEIGHTS.items():
        flag = name.replace("_", "-")
        add(f"--weight-{flag}", type=int, default=weight, help=f"task weight of {name}")
    add("--call-timeout", type=float, default=30.0, help="seconds per call")
    add("--failure-pause", type=float, default=0.1, help="seconds a user waits after a failure")
    add("--grpc-tls", action="store_true", help="TLS to the server (implied by grpcs://)")
    add("--grpc-tls-ca", default="", help="PEM roots for TLS (default: the system's)")
    add("--grpc-tls-server-name", default="", help="name to check the certificate against")
    add("--grpc-tls-cert", default="", help="PEM client certificate, for mutual TLS")
    add("--grpc-tls-key", default="", help="PEM key of --grpc-tls-cert")
    add("--bearer-token", default="", is_secret=True, help="sent as 'authorization: Bearer'")
    add("--bearer-token-file", default="", help="file whose first token is sent (over the above)")
    add("--timeline", default="", help="write per-second figures and levels here (JSON)")
    add("--sweep", default="", help="step load: user counts, e.g. 1,4,16,64")
    add("--step-time", default="30s", help="how long --sweep holds each level")


def _early(flag: str, default: str) -> str:
    """An option the module needs before Locust parses them (the shape class must exist or not
    when Locust imports this file): from the command line, else the environment."""
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument(
        flag, default=os.environ.get("LOCUST_" + flag[2:].upper().replace("-", "_"), default)
    )
    known, _ = parser.parse_known_args(sys.argv[1:])
    return str(getattr(known, flag[2:].replace("-", "_")))


class _Shared:
    """What the users of one process share: model answers and the text source (made on first
    use, so after any fork)."""

    def __init__(self) -> None:
        self.environment: Environment | None = None
        self.infos: dict[str, pb.ModelInfo] = {}
        self.source: TextSource | None = None
        self.words: list[str] = []
        self.warned: set[str] = set()
        self.masks_fit: int | None = None
        self.fit_tried = False
        self.lock = threading.Lock()  # gevent's under Locust: the first user prepares, others wait

    def info(
        self,
        stub: pb_grpc.EmbeddingServiceStub,
        model: str,
        timeout: float,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> pb.ModelInfo | None:
        """GetModel, once per process when it answers; not reported to Locust (it is not load),
        and the server counts it under GetModel, apart from the load's methods. It does not
        wait for a server that is not there: the load's own calls then fail, and show."""
        if model not in self.infos:
            try:
                request = pb.GetModelRequest(model=model)
                self.infos[model] = stub.GetModel(request, timeout=timeout, metadata=metadata)
            except grpc.RpcError as error:
                self.warn(f"GetModel {model}", f"GetModel({model!r}) failed: {error.code().name}")
                return None
        return self.infos[model]

    def text_source(self, options: Any, info: pb.ModelInfo | None) -> TextSource:
        if self.source is None:
            sentences = load_sentences(options.texts_file or None)
            # word2vec is never cached, and a suffix would be unknown words to it.
            unique = info is None or info.architecture != "word2vec"
            self.source = TextSource(
                sentences, options.repeat_ratio, options.long_sentences, unique
            )
            self.words = content_words(sentences)
        return self.source

    def fit_masks(
        self,
        stub: pb_grpc.EmbeddingServiceStub,
        info: pb.ModelInfo,
        mask_token: str,
        timeout: float,
        metadata: tuple[tuple[str, str], ...] = (),
    ) -> int | None:
        """FillMask is not asked to truncate: keep its texts within the model's limit, counted
        by the server's Tokenize (once per process, not reported to Locust). How many texts
        fit; None when the limit or the counts are unknown (texts then go as they are)."""
        if self.fit_tried or self.source is None or info.max_sequence_length <= 0:
            return self.masks_fit
        self.fit_tried = True
        source, limit = self.source, info.max_sequence_length
        templates = [source.mask_template(sentence, mask_token) for sentence in source.sentences]
        tokens: list[int] = []
        try:
            for start in range(0, len(templates), TOKENIZE_BATCH):
                request = pb.TokenizeRequest(
                    model=info.name, texts=templates[start : start + TOKENIZE_BATCH]
                )
                reply = stub.Tokenize(request, timeout=timeout, metadata=metadata)
                tokens += [len(result.tokens) for result in reply.results]
        except grpc.RpcError as error:
            self.warn(
                "tokenize",
                f"Tokenize({info.name!r}) failed: {error.code().name}; FillMask texts are not "
                f"fitted to its {limit} tokens",
            )
            return None
        self.masks_fit = source.fit_masks(tokens, limit)
        log.info(
            "FillMask: %d of %d texts fit %s's %d tokens",
            self.masks_fit,
            len(tokens),
            info.name,
            limit,
        )
        return self.masks_fit

    def warn(self, key: str, message: str) -> None:
        if key not in self.warned:
            self.warned.add(key)
            log.warning("%s", message)


SHARED = _Shared()


TIMELINE = Timeline()


def _on_master(environment: Environment) -> bool:
    """The process that holds the run's levels and writes the timeline (not a worker)."""
    return not isinstance(environment.runner, WorkerRunner)


@_on(events.request)
def _record(
    name: str, response_time: float, exception: BaseException | None = None, **_: Any
) -> None:
    invalid = (
        isinstance(exception, GrpcStatusError)
        and exception.code == grpc.StatusCode.INVALID_ARGUMENT
    )
    TIMELINE.record(time.time(), response_time, exception is not None, invalid)
    if invalid:
        SHARED.warn(
            f"invalid {name}",
            f"{name} refused as INVALID_ARGUMENT, the load's own mistake (not the server's "
            f"error): {getattr(exception, 'details', '')}",
        )


@_on(events.report_to_master)
def _send(client_id: str, data: dict[str, Any]) -> None:
    data["embedload_timeline"] = TIMELINE.drain()


@_on(events.worker_report)
def _receive(client_id: str, data: dict[str, Any]) -> None:
    TIMELINE.merge(data.get("embedload_timeline", {}))


@_on(events.test_start)
def _started(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if _on_master(environment) and environment.shape_class is None and options is not None:
        TIMELINE.begin_level(int(options.num_users or 1), time.time())


@_on(events.spawning_complete)
def _spawned(user_count: int) -> None:
    TIMELINE.level_ready(user_count, time.time())


@_on(events.test_stop)
def _stopped(environment: Environment, **_: Any) -> None:
    TIMELINE.end(time.time())


@_on(events.quitting)
def _write(environment: Environment, **_: Any) -> None:
    options = environment.parsed_options
    if _on_master(environment) and options is not None and options.timeline:
        TIMELINE.end(time.time())
        TIMELINE.write(Path(options.timeline))


@_on(events.quit)
def _final_csv(exit_code: int) -> None:
    """Locust's CSV writer runs once a second and not at all at shutdown, so its files would
    miss the last second of the run; waiting one interval here (shutdown, after the final
    worker reports) lets it write the final figures, the same Locust prints."""
    environment = SHARED.environment
    if environment is None or not _on_master(environment):
        return
    if environment.parsed_options is not None and environment.parsed_options.csv_prefix:
        time.sleep(CSV_STATS_INTERVAL_SEC + 0.25)


@_on(events.init)
def _weights(environment: Environment, **_: Any) -> None:
    """The task list from the weights (``--weight-*``): a task appears ``weight`` times."""
    SHARED.environment = environment
    options = environment.parsed_options
    if options is None:
        return
    tasks: list[TaskSet | Callable[..., Any]] = []
    for name in WEIGHTS:
        weight = int(getattr(options, f"weight_{name}"))
        if weight < 0:
            raise ValueError(f"--weight-{name.replace('_', '-')} must not be negative")
        if name == "most_similar" and not options.similar_model:
            weight = 0
        tasks += [getattr(EmbeddingUser, name)] * weight
    if not tasks:
        raise ValueError("every task weight is 0: nothing to send")
    EmbeddingUser.tasks = tasks


class EmbeddingUser(User):
    """One client with its own channel, sending calls back to back (``wait_time`` 0)."""

    wait_time = constant(0)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        if not self.host:
            raise ValueError("--host HOST:PORT is required")
        self.options = options
        target = Target.parse(self.host, options.grpc_tls)
        self._plain = open_channel(
            target,
            options.grpc_tls_ca,
            options.grpc_tls_server_name,
            options.grpc_tls_cert,
            options.grpc_tls_key,
        )
        channel = reporting_channel(self._plain, self.environment.events.request.fire)
        self.stub = pb_grpc.EmbeddingServiceStub(channel)
        token_file = options.bearer_token_file
        self.metadata = bearer_metadata(
            read_bearer_token(token_file) if token_file else options.bearer_token
        )
        lookup = pb_grpc.EmbeddingServiceStub(self._plain)
        with SHARED.lock:  # what the users of this process share is prepared once
            info = SHARED.info(lookup, options.model, options.call_timeout, self.metadata)
            self.source = SHARED.text_source(options, info)
            self.mask_token = info.mask_token if info is not None and info.mask_token else "[MASK]"
            self.tasks = self._supported(info, lookup)

    def _supported(
        self, info: pb.ModelInfo | None, lookup: pb_grpc.EmbeddingServiceStub
    ) -> list[Any]:
        """The configured tasks less those the models cannot serve (known from GetModel)."""
        tasks = list(type(self).tasks)
        dropped: set[Any] = set()
        if info is not None and "fill_mask" not in info.capabilities:
            dropped.add(EmbeddingUser.fill_mask)
            SHARED.warn("fill_mask", f"{info.name} has no MLM head: FillMask is left out")
        elif info is not None and EmbeddingUser.fill_mask in tasks:
            timeout = self.options.call_timeout
            if SHARED.fit_masks(lookup, info, self.mask_token, timeout, self.metadata) == 0:
                dropped.add(EmbeddingUser.fill_mask)
                SHARED.warn(
                    "fill_mask",
                    f"no text fits {info.name}'s {info.max_sequence_length} tokens with a "
                    "mask: FillMask is left out",
                )
        if EmbeddingUser.most_similar in tasks:
            similar = SHARED.info(
                lookup, self.options.similar_model, self.options.call_timeout, self.metadata
            )
            if similar is not None and similar.architecture != "word2vec":
                dropped.add(EmbeddingUser.most_similar)
                SHARED.warn("similar", f"{similar.name} is not word2vec: MostSimilar is left out")
        return [task for task in tasks if task not in dropped] or tasks

    def on_stop(self) -> None:
        self._plain.close()

    # -- tasks ------------------------------------------------------------------------------
    def embed_short(self) -> None:
        self._call(self.stub.Embed, self._embed_request(self.source.short))

    def embed_long(self) -> None:
        self._call(self.stub.Embed, self._embed_request(self.source.long))

    def fill_mask(self) -> None:
        texts = [self.source.fill_mask(self.mask_token) for _ in range(self._per_request)]
        request = pb.FillMaskRequest(
            model=self.options.model, texts=texts, top_k=self.options.top_k
        )
        self._call(self.stub.FillMask, request)

    def most_similar(self) -> None:
        positive = random.sample(SHARED.words, min(2, len(SHARED.words)))
        request = pb.MostSimilarRequest(
            model=self.options.similar_model, positive=positive, top_k=10
        )
        self._call(self.stub.MostSimilar, request)

    def embed_stream(self) -> None:
        messages = max(1, int(self.options.stream_messages))
        requests = [self._embed_request(self.source.short) for _ in range(messages)]
        try:
            for _ in self.stub.EmbedStream(
                iter(requests), timeout=self.options.call_timeout, metadata=self.metadata
            ):
                pass
        except grpc.RpcError:
            time.sleep(self.options.failure_pause)

    # -- helpers ----------------------------------------------------------------------------
    @property
    def _per_request(self) -> int:
        return max(1, int(self.options.texts_per_request))

    def _embed_request(self, text: Callable[[], str]) -> pb.EmbedRequest:
        return pb.EmbedRequest(
            model=self.options.model,
            texts=[text() for _ in range(self._per_request)],
            pooling=POOLINGS[self.options.pooling],
            normalization=NORMALIZATIONS[self.options.normalize],
            prompt_name=self.options.prompt_name,
            dimensions=self.options.dimensions,
            truncate=True,
        )

    def _call(self, method: Any, request: Any) -> None:
        """One call; its report is the interceptor's. A failure pauses this user briefly, so a
        server that is down is not hammered by a loop of instant failures."""
        try:
            method(request, timeout=self.options.call_timeout, metadata=self.metadata)
        except grpc.RpcError:
            time.sleep(self.options.failure_pause)


_SWEEP_LEVELS = _early("--sweep", "")
if _SWEEP_LEVELS:
    SWEEP = Sweep(parse_levels(_SWEEP_LEVELS), parse_timespan(_early("--step-time", "30s")))

    class SweepShape(LoadTestShape):
        """``--sweep``: each level for ``--step-time``, reached within about a second (at
        ``--spawn-rate`` users/s when that is faster); the run stops after the last level."""

        use_common_options = True
        _level: int | None = None

        def tick(self) -> tuple[int, float] | None:
            index = SWEEP.level_at(time.perf_counter() - self.start_time)
            if index is None:
                return None
            users = SWEEP.levels[index]
            if index != self._level:
                self._level = index
                TIMELINE.begin_level(users, time.time())
            options = self.runner.environment.parsed_options if self.runner else None
            rate = float(options.spawn_rate or 0) if options is not None else 0.0
            return users, max(rate, float(users))
