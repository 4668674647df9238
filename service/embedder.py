"""The facade behind every RPC: resolve the model, then one lane for every operation on texts:
cache → prepare → batch → finish, timed.

Per model version there is one inference thread shared by its batchers (embeddings and
fill-mask), so its graphs never compete for the cores; tokenization and post-processing run on
a separate pool. The cache sits in front (``service.cache.texts``): hits return before
batching and only misses go on. Static models (word2vec, a ``DirectRuntime``) have no batcher
and no inference thread: their lookups run at once on the worker pool, uncached (a lookup costs
less than a cache read), and never wait behind the contextual models' batches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from modelrepo import ModelSpec
from service.batching import BatchingConfig, BatchObserver, DynamicBatcher
from service.cache.keys import KeyScope, graph_fingerprint, options_digest
from service.cache.keys import embed_options as embed_options_key
from service.cache.texts import EMBEDDING_CODEC, FILL_MASK_CODEC, Codec, Compute, TextCache
from service.domain import (
    CachePolicy,
    EmbeddingResult,
    EmbedOptions,
    EmbedOutcome,
    EmbedQuery,
    FillMaskOutcome,
    FillMaskQuery,
    FillMaskResult,
    MostSimilarOutcome,
    MostSimilarQuery,
    Timing,
    TokenizedText,
    resolve_embed_options,
)
from service.errors import BatchFailed, InvalidArgument, NotFound, Overloaded, ServiceError
from service.metrics import Metrics
from service.runtime.base import (
    DirectRuntime,
    EmbedItem,
    FillMaskItem,
    FillMaskRuntime,
    LayerStates,
    Runtime,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
ItemT = TypeVar("ItemT")
StateT = TypeVar("StateT")
ResultT = TypeVar("ResultT")

# Given a batcher's name ("bert/1 embed"), the observer its batches are reported to.
ObserverFactory = Callable[[str], BatchObserver | None]

MAX_TOP_K = 1000
DEFAULT_SIMILAR_TOP_K = 10
DEFAULT_FILL_MASK_TOP_K = 5
MAX_FILL_MASK_PREDICTIONS = 100_000
"""Masks x top_k over one request's computed texts: 1024 texts of 120 masks at top_k 1000
would build a reply of gigabytes (found by tests/integration/test_fuzz.py)."""


@dataclass
class ServedModel:
    """A model version with its runtime, and its batchers and inference thread unless direct."""

    runtime: Runtime
    embed_batcher: DynamicBatcher[EmbedItem, LayerStates] | None
    fill_mask_batcher: DynamicBatcher[FillMaskItem, np.ndarray] | None
    inference_thread: ThreadPoolExecutor | None
    direct: DirectRuntime | None = None  # set (and no batchers) for static models
    fingerprints: dict[str, str] = field(default_factory=dict)
    """Per cached operation, the fingerprint of its graph (part of every cache key)."""

    @property
    def spec(self) -> ModelSpec:
        return self.runtime.spec

    def batcher(self, operation: str) -> DynamicBatcher[Any, Any] | None:
        return self.embed_batcher if operation == "embed" else self.fill_mask_batcher


@dataclass(frozen=True)
class RequestLimits:
    """What one request, and all requests to one model together, may ask (see ``Settings``)."""

    max_texts_per_request: int = 1024
    max_text_chars: int = 100_000
    max_inflight_texts: int = 4096
    """Texts of one model (all versions) between admission and reply."""


class Embedder:
    """Serves every loaded model version; one instance per server."""

    def __init__(
        self,
        runtimes: dict[str, dict[int, Runtime]],
        batching: BatchingConfig,
        limits: RequestLimits,
        worker_threads: int = 2,
        observers: ObserverFactory | None = None,
        cache: TextCache | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.limits = limits
        self.cache = cache
        self.metrics = metrics
        self.workers = ThreadPoolExecutor(worker_threads, thread_name_prefix="prepare")
        self.observers: ObserverFactory = observers or (lambda _: None)
        self.models: dict[str, dict[int, ServedModel]] = {
            name: {version: self._serve(runtime, batching) for version, runtime in versions.items()}
            for name, versions in runtimes.items()
        }
        self.inflight: dict[str, int] = dict.fromkeys(self.models, 0)
        """Per model name, the texts of the requests admitted and not yet answered."""
        if metrics is not None:
            self._watch_queues(metrics)

    def _serve(self, runtime: Runtime, batching: BatchingConfig) -> ServedModel:
        if isinstance(runtime, DirectRuntime):
            return ServedModel(runtime, None, None, None, direct=runtime)
        label = f"{runtime.spec.name}/{runtime.spec.version}"
        thread = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{label}")
        embed = DynamicBatcher(
            f"{label} embed",
            runtime.run_embed,
            _embed_length,
            batching,
            executor=thread,
            observer=self.observers(f"{label} embed"),
        )
        fill_mask = None
        if runtime.spec.supports("fill_mask"):
            masked: FillMaskRuntime = runtime  # type: ignore[assignment]
            fill_mask = DynamicBatcher(
                f"{label} fill_mask",
                masked.run_fill_mask,
                _fill_mask_length,
                batching,
                executor=thread,
                observer=self.observers(f"{label} fill_mask"),
            )
        operations = ("embed", "fill_mask") if fill_mask is not None else ("embed",)
        fingerprints = {
            operation: graph_fingerprint(runtime.spec, runtime.graph_roles[operation])
            for operation in operations
        }
        return ServedModel(runtime, embed, fill_mask, thread, fingerprints=fingerprints)

    def _watch_queues(self, metrics: Metrics) -> None:
        """Queue depth per model and operation, summed over the model's versions."""
        for name, versions in self.models.items():
            for operation in ("embed", "fill_mask"):
                batchers = [
                    batcher
                    for served in versions.values()
                    if (batcher := served.batcher(operation)) is not None
                ]
                if batchers:
                    metrics.watch_queue(name, operation, _total_queue(batchers))

    # -- lifecycle ------------------------------------------------------------------------
    def warmup(self) -> dict[tuple[str, int], float]:
        """Warm every model version up; returns the seconds each took."""
        seconds = {}
        for served in self.served():
            started = time.perf_counter()
            served.runtime.warmup()
            seconds[(served.spec.name, served.spec.version)] = time.perf_counter() - started
        return seconds

    async def start(self) -> None:
        for batcher in self._batchers():
            await batcher.start()

    async def stop(self, grace: float | None) -> None:
        """Finish queued work (within ``grace``), then release threads and sessions."""
        await asyncio.gather(*(batcher.stop(grace) for batcher in self._batchers()))
        for served in self.served():
            if served.inference_thread is not None:
                served.inference_thread.shutdown(wait=True)
            served.runtime.close()
        self.workers.shutdown(wait=True)

    def _batchers(self) -> list[DynamicBatcher[Any, Any]]:
        found: list[DynamicBatcher[Any, Any]] = []
        for served in self.served():
            found += [b for b in (served.embed_batcher, served.fill_mask_batcher) if b is not None]
        return found

    # -- lookup ---------------------------------------------------------------------------
    def served(self) -> list[ServedModel]:
        return [served for versions in self.models.values() for served in versions.values()]

    def resolve(self, name: str, version: str) -> ServedModel:
        """The named model at ``version`` (empty: the newest), or NOT_FOUND saying what exists."""
        if not name:
            raise InvalidArgument(f"model is empty; choose one of {sorted(self.models)}")
        versions = self.models.get(name)
        if versions is None:
            raise NotFound(f"model {name!r} is not served; served models: {sorted(self.models)}")
        if not version:
            return versions[max(versions)]
        # ASCII digits only, and few: int() refuses "²" and numbers of 4,300+ digits.
        if not (version.isascii() and version.isdigit()) or len(version) > 18:
            raise InvalidArgument(
                f"version must be a number or empty (newest), got {version[:40]!r}"
            )
        served = versions.get(int(version))
        if served is None:
            raise NotFound(f"{name} has no version {version}; served versions: {sorted(versions)}")
        return served

    # -- operations -----------------------------------------------------------------------
    def _check_texts(self, texts: Sequence[str]) -> None:
        if not texts:
            raise InvalidArgument("texts is empty; send at least one text")
        limit = self.limits.max_texts_per_request
        if len(texts) > limit:
            raise InvalidArgument(
                f"{len(texts)} texts in one request; the limit is {limit}, split the request"
            )
        chars = self.limits.max_text_chars
        for index, text in enumerate(texts):
            if len(text) > chars:
                raise InvalidArgument(
                    f"text {index} has {len(text)} characters; the limit is {chars} "
                    "(max-text-chars), shorten or split it"
                )

    @contextmanager
    def _admitted(self, served: ServedModel, count: int) -> Iterator[None]:
        """Holds ``count`` of the model's in-flight texts while the request runs, or refuses it
        at once with ``Overloaded``: before any tokenizing or cache read, so a refusal is cheap.
        Released however the request ends (result, error, cancellation). One event loop, so the
        counter needs no lock."""
        name, limit = served.spec.name, self.limits.max_inflight_texts
        if count > limit:
            raise InvalidArgument(
                f"{count} texts in one request, but {name} admits at most {limit} at once "
                "(max-inflight-texts); split the request"
            )
        held = self.inflight[name]
        if held + count > limit:
            raise Overloaded(
                f"{name}'s queue is at its limit of texts in flight ({held} of {limit}, {count} "
                "more asked); retry with exponential backoff"
            )
        self.inflight[name] = held + count
        try:
            yield
        finally:
            self.inflight[name] -= count

    async def _on_workers(self, function: Callable[[], T]) -> tuple[T, float]:
        started = time.perf_counter()
        result = await asyncio.get_running_loop().run_in_executor(self.workers, function)
        return result, time.perf_counter() - started

    def _batched(
        self,
        texts: Sequence[str],
        prepare: Callable[[Sequence[str]], list[ItemT]],
        batcher: DynamicBatcher[ItemT, StateT],
        finish: Callable[[ItemT, StateT], ResultT],
        deadline: float | None,
    ) -> Compute[ResultT]:
        """Prepare on the workers → one queue submission → finish on the workers, timed."""

        async def compute(indices: list[int]) -> tuple[list[ResultT], Timing]:
            chosen = [texts[index] for index in indices]
            try:
                items, tokenizing = await self._on_workers(lambda: prepare(chosen))
            except InvalidArgument:
                if len(chosen) < len(texts):  # name the bad text by the caller's own index
                    await self._on_workers(lambda: prepare(texts))
                raise
            try:
                states, batch = await batcher.submit_timed(items, deadline)
            except ServiceError:
                raise
            except Exception as error:  # the runtime failed: only this batch's calls fail
                log.error("%s failed on a batch", batcher.name, exc_info=error)
                raise BatchFailed(
                    f"the model {batcher.name} failed on this batch ({type(error).__name__}: "
                    f"{error}); retry"
                ) from error
            results, finishing = await self._on_workers(
                lambda: [finish(item, state) for item, state in zip(items, states, strict=True)]
            )
            return results, Timing(
                queue_s=batch.queue_s,
                tokenization_s=tokenizing,
                inference_s=batch.execute_s,
                postprocess_s=finishing,
            )

        return compute

    async def _run(
        self,
        served: ServedModel,
        operation: str,
        texts: Sequence[str],
        compute: Compute[ResultT],
        cached_as: tuple[KeyScope, Codec[ResultT]] | None,
        policy: CachePolicy,
        started: float,
        deadline: float | None,
    ) -> tuple[list[ResultT], Timing]:
        """The one lane of every operation on texts: the cache (when it applies), then
        ``compute`` for what it lacks; timed and recorded."""
        if self.cache is None or cached_as is None or policy is CachePolicy.BYPASS:
            results, timing = await compute(list(range(len(texts))))
        else:
            scope, codec = cached_as
            results, timing = await self.cache.serve(texts, scope, codec, policy, compute, deadline)
        timing.total_s = time.perf_counter() - started
        if self.metrics is not None:
            cached = sum(1 for result in results if getattr(result, "cached", False))
            self.metrics.observe_request(
                served.spec.name,
                operation,
                timing,
                len(results) - cached,
                cached,
                batched=served.direct is None,
            )
        return results, timing

    def _scope(self, served: ServedModel, operation: str, options: dict[str, object]) -> KeyScope:
        spec = served.spec
        return KeyScope(
            spec.name,
            spec.version,
            operation,
            served.fingerprints[operation],
            options_digest(options),
        )

    async def embed(self, query: EmbedQuery, deadline: float | None) -> EmbedOutcome:
        started = time.perf_counter()
        self._check_texts(query.texts)
        served = self.resolve(query.model, query.version)
        with self._admitted(served, len(query.texts)):
            return await self._embed(served, query, started, deadline)

    async def _embed(
        self, served: ServedModel, query: EmbedQuery, started: float, deadline: float | None
    ) -> EmbedOutcome:
        runtime = served.runtime
        options = resolve_embed_options(served.spec, query)
        texts = query.texts
        if served.direct is not None:  # static lookups cost less than a cache read
            lookup = self._direct(served.direct, texts, options)
            results, timing = await self._run(
                served, "embed", texts, lookup, None, query.cache_policy, started, deadline
            )
        elif served.embed_batcher is None:  # every runtime that is not direct has one
            raise InvalidArgument(f"{served.spec.name} serves no embeddings")
        else:
            compute = self._batched(
                texts,
                lambda chosen: runtime.prepare_embed(chosen, options),
                served.embed_batcher,
                runtime.finish_embed,
                deadline,
            )
            scope = self._scope(served, "embed", embed_options_key(options))
            results, timing = await self._run(
                served,
                "embed",
                texts,
                compute,
                (scope, EMBEDDING_CODEC),
                query.cache_policy,
                started,
                deadline,
            )
        return EmbedOutcome(results, runtime.dim, served.spec.name, served.spec.version, timing)

    def _direct(
        self, direct: DirectRuntime, texts: Sequence[str], options: EmbedOptions
    ) -> Compute[EmbeddingResult]:
        """A static model: split, look up and pool in one step on the worker pool, no queue."""

        async def compute(indices: list[int]) -> tuple[list[EmbeddingResult], Timing]:
            chosen = [texts[index] for index in indices]
            results, elapsed = await self._on_workers(lambda: direct.embed_now(chosen, options))
            return results, Timing(inference_s=elapsed)

        return compute

    async def fill_mask(self, query: FillMaskQuery, deadline: float | None) -> FillMaskOutcome:
        started = time.perf_counter()
        self._check_texts(query.texts)
        served = self.resolve(query.model, query.version)
        if served.fill_mask_batcher is None:
            raise InvalidArgument(
                f"{served.spec.name} has no masked-LM head (capabilities: "
                f"{', '.join(served.spec.capabilities)}), so it cannot fill masks; use a model "
                "whose capabilities include fill_mask"
            )
        if query.top_k > MAX_TOP_K:
            raise InvalidArgument(f"top_k is {query.top_k}; at most {MAX_TOP_K} is allowed")
        with self._admitted(served, len(query.texts)):
            return await self._fill_mask(served, served.fill_mask_batcher, query, started, deadline)

    async def _fill_mask(
        self,
        served: ServedModel,
        batcher: DynamicBatcher[FillMaskItem, np.ndarray],
        query: FillMaskQuery,
        started: float,
        deadline: float | None,
    ) -> FillMaskOutcome:
        runtime: FillMaskRuntime = served.runtime  # type: ignore[assignment]
        top_k = query.top_k or DEFAULT_FILL_MASK_TOP_K

        def finish(item: FillMaskItem, logits: np.ndarray) -> FillMaskResult:
            masks = runtime.finish_fill_mask(item, logits)
            return FillMaskResult(tuple(tuple(mask) for mask in masks))

        compute = self._batched(
            query.texts,
            lambda chosen: _bounded_fills(runtime.prepare_fill_mask(chosen, top_k), top_k),
            batcher,
            finish,
            deadline,
        )
        scope = self._scope(served, "fill_mask", {"top_k": top_k})
        results, timing = await self._run(
            served,
            "fill_mask",
            query.texts,
            compute,
            (scope, FILL_MASK_CODEC),
            query.cache_policy,
            started,
            deadline,
        )
        return FillMaskOutcome(results, served.spec.name, served.spec.version, timing)

    async def most_similar(self, query: MostSimilarQuery) -> MostSimilarOutcome:
        """Nearest words of a static model (gensim's ``most_similar``), answered at once."""
        served = self.resolve(query.model, query.version)
        spec = served.spec
        direct = served.direct
        if direct is None or not spec.supports("most_similar"):
            raise InvalidArgument(
                f"model {spec.name} has no most_similar capability (architecture "
                f"{spec.architecture}, capabilities {list(spec.capabilities)}); ask a word2vec "
                "model exported with its similarity graph"
            )
        if query.top_k > MAX_TOP_K:
            raise InvalidArgument(f"top_k is {query.top_k}; at most {MAX_TOP_K} is allowed")
        words = len(query.positive) + len(query.negative)
        limit = self.limits.max_texts_per_request
        if words > limit:
            raise InvalidArgument(f"{words} query words; the limit is {limit}")
        top_k = query.top_k or DEFAULT_SIMILAR_TOP_K
        neighbors, _ = await self._on_workers(
            lambda: direct.most_similar(query.positive, query.negative, top_k)
        )
        return MostSimilarOutcome(neighbors, spec.name, spec.version)

    async def tokenize(
        self, name: str, version: str, texts: Sequence[str]
    ) -> tuple[ServedModel, list[TokenizedText]]:
        self._check_texts(texts)
        served = self.resolve(name, version)
        tokenized, _ = await self._on_workers(lambda: served.runtime.tokenize(texts))
        return served, tokenized


def _total_queue(batchers: list[DynamicBatcher[Any, Any]]) -> Callable[[], int]:
    return lambda: sum(batcher.queue_size for batcher in batchers)


def _embed_length(item: EmbedItem) -> int:
    return len(item.ids)


def _fill_mask_length(item: FillMaskItem) -> int:
    return len(item.ids)


def _bounded_fills(items: list[FillMaskItem], top_k: int) -> list[FillMaskItem]:
    """``items``, or INVALID_ARGUMENT when their predictions would exceed the bound."""
    predictions = sum(len(item.mask_positions) for item in items) * top_k
    if predictions > MAX_FILL_MASK_PREDICTIONS:
        raise InvalidArgument(
            f"{predictions} predictions (masks x top_k) in one request; the limit is "
            f"{MAX_FILL_MASK_PREDICTIONS}: send fewer masks or texts, or a smaller top_k"
        )
    return items
