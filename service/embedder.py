"""The facade behind every RPC: resolve the model, then one lane for every operation on texts:
cache → prepare → batch → finish, timed.

Per model version there is one inference thread shared by its batchers (embeddings and
fill-mask), so its graphs never compete for the cores; embeddings come out of it pooled, a
whole batch at once (``Runtime.embed_batch``); tokenization and fill-mask's top-k run on the
event loop when tiny (``INLINE_CHARS``) and on a separate pool otherwise. The cache sits in
front (``service.cache.texts``): hits return before batching and only misses go on. Static
models (word2vec, a ``DirectRuntime``) have no batcher and no inference thread: their lookups
run at once (on the worker pool unless tiny), uncached (a lookup costs less than a cache
read), and never wait behind the contextual models' batches.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, TypeVar

import numpy as np

from modelrepo import ModelSpec
from service.batch_costs import BatchShaping, describe_limits, measure_embed_costs
from service.batching import BatchingConfig, BatchObserver, CostTable, DynamicBatcher
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
from service.errors import (
    BatchFailed,
    InvalidArgument,
    NotFound,
    Overloaded,
    ServiceError,
    Unavailable,
)
from service.metrics import Metrics
from service.model_states import ModelState, ModelStates
from service.runtime.base import (
    DirectRuntime,
    EmbedItem,
    FillMaskItem,
    FillMaskRuntime,
    PooledEmbedding,
    Runtime,
)

log = logging.getLogger(__name__)

T = TypeVar("T")
ItemT = TypeVar("ItemT")
StateT = TypeVar("StateT")
ResultT = TypeVar("ResultT")

# Given a batcher's name ("bert/1 embed"), the observer its batches are reported to.
ObserverFactory = Callable[[str], BatchObserver | None]
# A batch's results for one request: (items, what the batcher returned for them, characters of
# their texts) → (results, post-processing seconds, of which spent inside the batch).
Finish = Callable[[list[ItemT], list[StateT], int], Awaitable[tuple[list[ResultT], float, float]]]


async def _pooled_in_batch(
    items: list[EmbedItem], pooled: list[PooledEmbedding], chars: int
) -> tuple[list[EmbeddingResult], float, float]:
    """Embeddings come out of the batch finished (``Runtime.embed_batch``); the pooling's time
    is the request's post-processing, and is not counted as inference too."""
    seconds = max((each.pooling_s for each in pooled), default=0.0)
    return [each.result for each in pooled], seconds, seconds


MAX_TOP_K = 1000
INLINE_CHARS = 1000
"""Tokenizing, looking up or pooling texts of this many characters in all takes less than the
hop to a worker thread and back (tens of µs against ~100 µs here), so it runs on the event loop;
longer work goes to the workers, where it neither blocks the loop nor waits behind it."""
UNLOAD_POLL_S = 0.01  # how often a retired version checks whether its last request is done
DEFAULT_SIMILAR_TOP_K = 10
DEFAULT_FILL_MASK_TOP_K = 5
MAX_FILL_MASK_PREDICTIONS = 100_000
"""Masks x top_k over one request's computed texts: 1024 texts of 120 masks at top_k 1000
would build a reply of gigabytes (found by tests/integration/test_fuzz.py)."""


@dataclass
class ServedModel:
    """A model version with its runtime, and its batchers and inference thread unless direct."""

    runtime: Runtime
    embed_batcher: DynamicBatcher[EmbedItem, PooledEmbedding] | None
    fill_mask_batcher: DynamicBatcher[FillMaskItem, np.ndarray] | None
    inference_thread: ThreadPoolExecutor | None
    direct: DirectRuntime | None = None  # set (and no batchers) for static models
    fingerprints: dict[str, str] = field(default_factory=dict)
    """Per cached operation, the fingerprint of its graph (part of every cache key)."""
    active: int = 0
    """Requests resolved to this version and not yet answered: a retired version unloads
    once this reaches 0."""
    answered: int = 0
    """Requests this version has finished (answered or failed), since it was loaded."""
    cost_table: CostTable | None = None
    """What its embed batches cost by shape, when its batcher chooses shapes by it."""

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
        states: ModelStates | None = None,
        shaping: BatchShaping | None = None,
    ) -> None:
        self.limits = limits
        self.batching = batching
        self.shaping = shaping or BatchShaping()
        self.states = states or ModelStates(metrics)
        """Every known version's state, served or not (loading, draining, failed)."""
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
        self.retired: list[ServedModel] = []
        """Versions that take no new requests and are not yet closed (``unload``)."""
        if metrics is not None:
            self._watch_queues(metrics)

    def _serve(self, runtime: Runtime, defaults: BatchingConfig) -> ServedModel:
        if isinstance(runtime, DirectRuntime):
            return ServedModel(runtime, None, None, None, direct=runtime)
        label = f"{runtime.spec.name}/{runtime.spec.version}"
        batching = self.shaping.limits(runtime.spec.name, defaults)
        log.info(
            "%s batching: %s",
            label,
            describe_limits(batching, self.shaping.measures(runtime.spec.name)),
        )
        thread = ThreadPoolExecutor(1, thread_name_prefix=f"infer-{label}")
        embed = DynamicBatcher(
            f"{label} embed",
            runtime.embed_batch,
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

    def _watch_queues(self, metrics: Metrics, names: Sequence[str] | None = None) -> None:
        """Queue depth per model and operation, summed over the model's served versions."""
        for name in self.models if names is None else names:
            versions = self.models.get(name, {})
            for operation in ("embed", "fill_mask"):
                batchers = [
                    batcher
                    for served in versions.values()
                    if (batcher := served.batcher(operation)) is not None
                ]
                if batchers or names is not None:  # a model's last version leaves: depth 0
                    metrics.watch_queue(name, operation, _total_queue(batchers))

    # -- versions coming and going while serving ------------------------------------------
    def cost_table_for(self, runtime: Runtime) -> CostTable | None:
        """The embed cost table of a warmed-up runtime, timed now (blocks for the budget: run
        it off the event loop), or None where batches fill to the limits."""
        name = runtime.spec.name
        if isinstance(runtime, DirectRuntime) or not self.shaping.measures(name):
            return None
        batching = self.shaping.limits(name, self.batching)
        return measure_embed_costs(runtime, batching, self.shaping.budget_s)

    def _use_cost_table(self, served: ServedModel, table: CostTable | None) -> None:
        if table is None or served.embed_batcher is None:
            return
        served.embed_batcher.use_cost_model(table)
        served.cost_table = table
        if self.metrics is not None:
            self.metrics.cost_table(served.spec.name, served.spec.version, table)

    async def add(self, runtime: Runtime, cost_table: CostTable | None = None) -> ServedModel:
        """Serve a loaded and warmed-up version: start its batchers, then let requests in."""
        served = self._serve(runtime, self.batching)
        self._use_cost_table(served, cost_table)
        for batcher in _batchers_of(served):
            await batcher.start()
        name = runtime.spec.name
        self.models.setdefault(name, {})[runtime.spec.version] = served
        self.inflight.setdefault(name, 0)
        if self.metrics is not None:
            self._watch_queues(self.metrics, [name])
        return served

    def retire(self, name: str, version: int) -> ServedModel | None:
        """Stop resolving requests to the version; those it has go on (see ``unload``)."""
        versions = self.models.get(name, {})
        served = versions.pop(version, None)
        if not versions:
            self.models.pop(name, None)
        if served is not None:
            self.retired.append(served)
            if self.metrics is not None:
                self._watch_queues(self.metrics, [name])
        return served

    async def unload(self, served: ServedModel, grace: float | None) -> None:
        """Once a retired version's requests are answered, stop its batchers, then close its
        inference thread and sessions (``stop`` closes those still draining at shutdown)."""
        while served.active:
            await asyncio.sleep(UNLOAD_POLL_S)
        if not any(retired is served for retired in self.retired):  # ``stop`` closed it
            return
        self.retired = [retired for retired in self.retired if retired is not served]
        await asyncio.gather(*(batcher.stop(grace) for batcher in _batchers_of(served)))
        await asyncio.to_thread(_close, served)

    # -- lifecycle ------------------------------------------------------------------------
    def warmup(self) -> dict[tuple[str, int], float]:
        """Warm every model version up and time its cost table (before ``start``); returns the
        seconds each took."""
        seconds = {}
        for served in self.served():
            started = time.perf_counter()
            served.runtime.warmup()
            self._use_cost_table(served, self.cost_table_for(served.runtime))
            seconds[(served.spec.name, served.spec.version)] = time.perf_counter() - started
        return seconds

    async def start(self) -> None:
        for batcher in self._batchers():
            await batcher.start()

    async def stop(self, grace: float | None) -> None:
        """Finish queued work (within ``grace``), then release threads and sessions, of the
        served versions and of retired ones still draining."""
        closing = [*self.served(), *self.retired]
        self.retired.clear()
        batchers = [batcher for served in closing for batcher in _batchers_of(served)]
        await asyncio.gather(*(batcher.stop(grace) for batcher in batchers))
        for served in closing:
            _close(served)
        self.workers.shutdown(wait=True)

    def _batchers(self) -> list[DynamicBatcher[Any, Any]]:
        return [batcher for served in self.served() for batcher in _batchers_of(served)]

    # -- lookup ---------------------------------------------------------------------------
    def served(self) -> list[ServedModel]:
        return [served for versions in self.models.values() for served in versions.values()]

    def resolve(self, name: str, version: str) -> ServedModel:
        """The named model at ``version`` (empty: the newest ready one), UNAVAILABLE while it
        is loading or being built, or NOT_FOUND saying what exists."""
        if not name:
            raise InvalidArgument(f"model is empty; choose one of {sorted(self.models)}")
        versions = self.models.get(name)
        if versions is None:
            self._not_served(name)
        if not version:
            return versions[max(versions)]
        # ASCII digits only, and few: int() refuses "²" and numbers of 4,300+ digits.
        if not (version.isascii() and version.isdigit()) or len(version) > 18:
            raise InvalidArgument(
                f"version must be a number or empty (newest), got {version[:40]!r}"
            )
        served = versions.get(int(version))
        if served is None:
            known = self.states.version(name, int(version))
            if known is not None and known.state is ModelState.LOADING:
                raise Unavailable(
                    f"{name} version {version} is still loading and warming up; retry in a few "
                    f"seconds (served versions: {sorted(versions)})"
                )
            refused = f" (refused: {known.reason})" if known and known.reason else ""
            raise NotFound(
                f"{name} has no version {version}{refused}; served versions: {sorted(versions)}"
            )
        return served

    def _not_served(self, name: str) -> NoReturn:
        """Why ``name`` has no ready version: UNAVAILABLE while it loads or is being built."""
        summary = self.states.summary(name)
        if summary is not None and summary.state is ModelState.LOADING:
            raise Unavailable(
                f"model {name!r} is not ready yet ({summary.reason}); retry in a few seconds"
            )
        why = f" ({summary.reason})" if summary is not None and summary.reason else ""
        raise NotFound(f"model {name!r} is not served{why}; served models: {sorted(self.models)}")

    @contextmanager
    def _using(self, served: ServedModel) -> Iterator[None]:
        """Counts the request on its version from the moment it resolves (with no ``await``
        in between), so a retired version unloads only after its last request."""
        served.active += 1
        try:
            yield
        finally:
            served.active -= 1
            served.answered += 1

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

    async def _on_workers(
        self, function: Callable[[], T], chars: int | None = None
    ) -> tuple[T, float]:
        """``function`` on the worker pool, timed; on the event loop itself when it works on
        ``chars`` characters of text or fewer (``INLINE_CHARS``): the hop costs more."""
        started = time.perf_counter()
        if chars is not None and chars <= INLINE_CHARS:
            result = function()
        else:
            result = await asyncio.get_running_loop().run_in_executor(self.workers, function)
        return result, time.perf_counter() - started

    def _batched(
        self,
        texts: Sequence[str],
        prepare: Callable[[Sequence[str]], list[ItemT]],
        batcher: DynamicBatcher[ItemT, StateT],
        finish: Finish[ItemT, StateT, ResultT],
        deadline: float | None,
    ) -> Compute[ResultT]:
        """Prepare on the workers → one queue submission → finish, timed."""

        async def compute(indices: list[int]) -> tuple[list[ResultT], Timing]:
            chosen = [texts[index] for index in indices]
            chars = sum(map(len, chosen))
            try:
                items, tokenizing = await self._on_workers(lambda: prepare(chosen), chars)
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
            results, finishing, in_batch = await finish(items, states, chars)
            return results, Timing(
                queue_s=batch.queue_s,
                tokenization_s=tokenizing,
                inference_s=max(0.0, batch.execute_s - in_batch),
                postprocess_s=finishing,
            )

        return compute

    async def _run(
        self,
        served: ServedModel,
        operation: str,
        texts: Sequence[str],
        compute: Compute[ResultT],
        cached_as: tuple[Callable[[], KeyScope], Codec[ResultT]] | None,
        policy: CachePolicy,
        started: float,
        deadline: float | None,
    ) -> tuple[list[ResultT], Timing]:
        """The one lane of every operation on texts: the cache (when it applies), then
        ``compute`` for what it lacks; timed and recorded."""
        if self.cache is None or cached_as is None or policy is CachePolicy.BYPASS:
            results, timing = await compute(list(range(len(texts))))
        else:
            scope, codec = cached_as  # the key scope is built only when a cache is read
            results, timing = await self.cache.serve(
                texts, scope(), codec, policy, compute, deadline
            )
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
        with self._using(served), self._admitted(served, len(query.texts)):
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
                _pooled_in_batch,
                deadline,
            )

            def scope() -> KeyScope:
                return self._scope(served, "embed", embed_options_key(options))

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
            results, elapsed = await self._on_workers(
                lambda: direct.embed_now(chosen, options), sum(map(len, chosen))
            )
            return results, Timing(inference_s=elapsed)

        return compute

    async def fill_mask(self, query: FillMaskQuery, deadline: float | None) -> FillMaskOutcome:
        started = time.perf_counter()
        self._check_texts(query.texts)
        served = self.resolve(query.model, query.version)
        with self._using(served):
            return await self._checked_fill_mask(served, query, started, deadline)

    async def _checked_fill_mask(
        self, served: ServedModel, query: FillMaskQuery, started: float, deadline: float | None
    ) -> FillMaskOutcome:
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

        def finish_one(item: FillMaskItem, logits: np.ndarray) -> FillMaskResult:
            masks = runtime.finish_fill_mask(item, logits)
            return FillMaskResult(tuple(tuple(mask) for mask in masks))

        async def finish(
            items: list[FillMaskItem], states: list[np.ndarray], chars: int
        ) -> tuple[list[FillMaskResult], float, float]:
            results, seconds = await self._on_workers(
                lambda: [finish_one(i, s) for i, s in zip(items, states, strict=True)], chars
            )
            return results, seconds, 0.0

        compute = self._batched(
            query.texts,
            lambda chosen: _bounded_fills(runtime.prepare_fill_mask(chosen, top_k), top_k),
            batcher,
            finish,
            deadline,
        )

        def scope() -> KeyScope:
            return self._scope(served, "fill_mask", {"top_k": top_k})

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
        with self._using(served):
            return await self._most_similar(served, query)

    async def _most_similar(
        self, served: ServedModel, query: MostSimilarQuery
    ) -> MostSimilarOutcome:
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
        with self._using(served):
            tokenized, _ = await self._on_workers(lambda: served.runtime.tokenize(texts))
        return served, tokenized


def _batchers_of(served: ServedModel) -> list[DynamicBatcher[Any, Any]]:
    return [b for b in (served.embed_batcher, served.fill_mask_batcher) if b is not None]


def _close(served: ServedModel) -> None:
    """Release a version whose batchers have stopped: its inference thread, then sessions."""
    if served.inference_thread is not None:
        served.inference_thread.shutdown(wait=True)
    served.runtime.close()


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
