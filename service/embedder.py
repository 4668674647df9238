"""The facade behind every transport: resolve the model, admit the request, run its operation.

Each method checks what can be checked before anything is computed (sizes, then the model and
its options), holds the request's texts in admission for as long as it runs, counts it on the
version it resolved to (so a retiring version unloads only after it), and hands the operation to
the lane. The registry says what is served, ``ModelLifecycle`` changes it; nothing here does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TypeVar

from service.admission import Admission, TextBudget
from service.domain import (
    CachePolicy,
    EmbedOutcome,
    EmbedQuery,
    FillMaskOutcome,
    FillMaskQuery,
    MostSimilarOutcome,
    MostSimilarQuery,
    Timing,
    TokenizeOutcome,
    resolve_embed_options,
    served_dim,
)
from service.lane import Lane
from service.operations import (
    EmbedOperation,
    FillMaskOperation,
    SimilarityOperation,
    TextOperation,
    TokenizeOperation,
)
from service.registry.registry import ModelRegistry, ModelView
from service.registry.served import ServedModel

ItemT = TypeVar("ItemT")
StateT = TypeVar("StateT")
ResultT = TypeVar("ResultT")


class Embedder:
    """Serves every model version the registry holds; one instance per server."""

    def __init__(self, registry: ModelRegistry, admission: Admission, lane: Lane) -> None:
        self.registry = registry
        self.admission = admission
        self.lane = lane

    # -- what is served ---------------------------------------------------------------------
    def resolve(self, name: str, version: str) -> ServedModel:
        return self.registry.resolve(name, version)

    def served(self) -> list[ServedModel]:
        return self.registry.served()

    def list_models(self) -> list[ModelView]:
        return self.registry.listing()

    def describe(self, name: str, version: str) -> ModelView:
        return self.registry.describe(name, version)

    def ready_names(self) -> set[str]:
        """Models with a version that answers requests."""
        return self.registry.ready_names()

    def known_models(self) -> set[str]:
        """Models served, loading, being built or failed."""
        return self.registry.states.known

    @property
    def inflight(self) -> Mapping[str, int]:
        """Per model, the texts admitted and not yet answered."""
        return self.admission.inflight

    @property
    def busy(self) -> bool:
        """Some request is admitted and not yet answered (the drain at shutdown waits)."""
        return self.admission.busy

    def stream_budget(self) -> TextBudget:
        return self.admission.stream_budget()

    # -- operations -------------------------------------------------------------------------
    async def embed(self, query: EmbedQuery, deadline: float | None) -> EmbedOutcome:
        started = time.perf_counter()
        self.admission.check_texts(query.texts)
        served = self.resolve(query.model, query.version)
        runtime = served.runtime
        options = resolve_embed_options(served.spec, query, runtime.embed_support)
        operation = EmbedOperation(runtime, options)
        results, timing = await self._admitted(
            served, operation, query.texts, query.cache_policy, started, deadline
        )
        dim = served_dim(served.spec, options)
        return EmbedOutcome(results, dim, served.spec.name, served.spec.version, timing)

    async def fill_mask(self, query: FillMaskQuery, deadline: float | None) -> FillMaskOutcome:
        started = time.perf_counter()
        self.admission.check_texts(query.texts)
        served = self.resolve(query.model, query.version)
        operation = FillMaskOperation.checked(served, query.top_k, query.truncate)
        results, timing = await self._admitted(
            served, operation, query.texts, query.cache_policy, started, deadline
        )
        return FillMaskOutcome(results, served.spec.name, served.spec.version, timing)

    async def tokenize(self, name: str, version: str, texts: Sequence[str]) -> TokenizeOutcome:
        started = time.perf_counter()
        self.admission.check_texts(texts)
        served = self.resolve(name, version)
        operation = TokenizeOperation(served.runtime)
        results, _ = await self._admitted(
            served, operation, texts, CachePolicy.BYPASS, started, deadline=None
        )
        return TokenizeOutcome(results, served.spec.name, served.spec.version)

    async def most_similar(self, query: MostSimilarQuery) -> MostSimilarOutcome:
        """Nearest words of a static model (gensim's ``most_similar``), answered at once."""
        served = self.resolve(query.model, query.version)
        operation = SimilarityOperation.checked(served, query.positive, query.negative, query.top_k)
        words = operation.words
        self.admission.check_count(words, "query words")
        with self.registry.using(served), self.admission.hold(served.spec.name, words, "words"):
            neighbors, _ = await self.lane.run_step(operation.run)
        return MostSimilarOutcome(neighbors, served.spec.name, served.spec.version)

    async def _admitted(
        self,
        served: ServedModel,
        operation: TextOperation[ItemT, StateT, ResultT],
        texts: Sequence[str],
        policy: CachePolicy,
        started: float,
        deadline: float | None,
    ) -> tuple[list[ResultT], Timing]:
        with self.registry.using(served), self.admission.hold(served.spec.name, len(texts)):
            return await self.lane.run(served, operation, texts, policy, started, deadline)

    async def stop(self, grace: float | None) -> None:
        """Finish queued work (within ``grace``), then release every version and the workers."""
        await self.registry.stop(grace)
        self.lane.close()
