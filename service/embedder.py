"""The facade behind every RPC: resolve the model, prepare, batch, finish, time.

Per model version there is one inference thread shared by its batchers (embeddings and
fill-mask), so its graphs never compete for the cores; tokenization and post-processing run on
a separate pool. This is also where the cache tiers will sit (hits return before batching).
Static models (word2vec, a ``DirectRuntime``) have no batcher and no inference thread: their
lookups run at once on the worker pool and never wait behind the contextual models' batches.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from modelrepo import ModelSpec
from service.batching import BatchingConfig, BatchObserver, DynamicBatcher
from service.domain import (
    EmbedOptions,
    EmbedOutcome,
    EmbedQuery,
    FillMaskOutcome,
    FillMaskQuery,
    MostSimilarOutcome,
    MostSimilarQuery,
    Timing,
    TokenizedText,
    resolve_embed_options,
)
from service.errors import InvalidArgument, NotFound
from service.runtime.base import (
    DirectRuntime,
    EmbedItem,
    FillMaskItem,
    FillMaskRuntime,
    LayerStates,
    Runtime,
)

T = TypeVar("T")

# Given a batcher's name ("bert/1 embed"), the observer its batches are reported to.
ObserverFactory = Callable[[str], BatchObserver | None]

MAX_TOP_K = 1000
DEFAULT_SIMILAR_TOP_K = 10


@dataclass
class ServedModel:
    """A model version with its runtime, and its batchers and inference thread unless direct."""

    runtime: Runtime
    embed_batcher: DynamicBatcher[EmbedItem, LayerStates] | None
    fill_mask_batcher: DynamicBatcher[FillMaskItem, np.ndarray] | None
    inference_thread: ThreadPoolExecutor | None
    direct: DirectRuntime | None = None  # set (and no batchers) for static models

    @property
    def spec(self) -> ModelSpec:
        return self.runtime.spec


@dataclass(frozen=True)
class RequestLimits:
    max_texts_per_request: int = 1024


class Embedder:
    """Serves every loaded model version; one instance per server."""

    def __init__(
        self,
        runtimes: dict[str, dict[int, Runtime]],
        batching: BatchingConfig,
        limits: RequestLimits,
        worker_threads: int = 2,
        observers: ObserverFactory | None = None,
    ) -> None:
        self.limits = limits
        self.workers = ThreadPoolExecutor(worker_threads, thread_name_prefix="prepare")
        self.observers: ObserverFactory = observers or (lambda _: None)
        self.models: dict[str, dict[int, ServedModel]] = {
            name: {version: self._serve(runtime, batching) for version, runtime in versions.items()}
            for name, versions in runtimes.items()
        }

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
        return ServedModel(runtime, embed, fill_mask, thread)

    # -- lifecycle ------------------------------------------------------------------------
    def warmup(self) -> None:
        for served in self.served():
            served.runtime.warmup()

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
        if not version.isdigit():
            raise InvalidArgument(f"version must be a number or empty (newest), got {version!r}")
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

    async def _on_workers(self, function: Callable[[], T]) -> tuple[T, float]:
        started = time.perf_counter()
        result = await asyncio.get_running_loop().run_in_executor(self.workers, function)
        return result, time.perf_counter() - started

    async def embed(self, query: EmbedQuery, deadline: float | None) -> EmbedOutcome:
        started = time.perf_counter()
        self._check_texts(query.texts)
        served = self.resolve(query.model, query.version)
        runtime = served.runtime
        options = resolve_embed_options(served.spec, query)
        if served.direct is not None:
            return await self._embed_now(served, served.direct, query.texts, options, started)
        if served.embed_batcher is None:  # every runtime that is not direct has one
            raise InvalidArgument(f"{served.spec.name} serves no embeddings")
        items, tokenizing = await self._on_workers(
            lambda: runtime.prepare_embed(query.texts, options)
        )
        states, batch_timing = await served.embed_batcher.submit_timed(items, deadline)
        results, finishing = await self._on_workers(
            lambda: [runtime.finish_embed(i, s) for i, s in zip(items, states, strict=True)]
        )
        timing = Timing(
            queue_s=batch_timing.queue_s,
            tokenization_s=tokenizing + finishing,
            inference_s=batch_timing.execute_s,
            total_s=time.perf_counter() - started,
        )
        return EmbedOutcome(results, runtime.dim, served.spec.name, served.spec.version, timing)

    async def _embed_now(
        self,
        served: ServedModel,
        direct: DirectRuntime,
        texts: Sequence[str],
        options: EmbedOptions,
        started: float,
    ) -> EmbedOutcome:
        """A static model: split, look up and pool in one step on the worker pool, no queue."""
        results, elapsed = await self._on_workers(lambda: direct.embed_now(texts, options))
        timing = Timing(inference_s=elapsed, total_s=time.perf_counter() - started)
        spec = served.spec
        return EmbedOutcome(results, served.runtime.dim, spec.name, spec.version, timing)

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
        runtime: FillMaskRuntime = served.runtime  # type: ignore[assignment]
        top_k = query.top_k or 5
        items, tokenizing = await self._on_workers(
            lambda: runtime.prepare_fill_mask(query.texts, top_k)
        )
        logits, batch_timing = await served.fill_mask_batcher.submit_timed(items, deadline)
        results, finishing = await self._on_workers(
            lambda: [runtime.finish_fill_mask(i, row) for i, row in zip(items, logits, strict=True)]
        )
        timing = Timing(
            queue_s=batch_timing.queue_s,
            tokenization_s=tokenizing + finishing,
            inference_s=batch_timing.execute_s,
            total_s=time.perf_counter() - started,
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


def _embed_length(item: EmbedItem) -> int:
    return len(item.ids)


def _fill_mask_length(item: FillMaskItem) -> int:
    return len(item.ids)
