"""The API's operations as values, each built for one request from its checked parameters.

An operation on texts says how its texts are prepared (tokenized and checked, any thread), what
one batch of them executes (on the model's inference thread, or at once for a static model), how
results are finished, and how they are cached: ``EmbedOperation``, ``FillMaskOperation`` and
``TokenizeOperation`` run through the one lane (``service.lane``). ``SimilarityOperation`` asks
about words, not texts: nothing of it is cached or batched, so it is one step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Generic, Protocol, TypeVar

import numpy as np

from service.cache.keys import embed_options, fill_mask_options
from service.cache.texts import EMBEDDING_CODEC, FILL_MASK_CODEC, Codec
from service.domain import (
    EmbeddingResult,
    EmbedOptions,
    FillMaskResult,
    Neighbor,
    TokenizedText,
    checked_top_k,
)
from service.errors import InvalidArgument
from service.registry.served import EMBED, FILL_MASK, ServedModel
from service.runtime.base import (
    EmbedItem,
    FillMaskItem,
    FillMaskRuntime,
    PooledEmbedding,
    Runtime,
    SimilarityRuntime,
)

ItemT = TypeVar("ItemT")
StateT = TypeVar("StateT")
ResultT = TypeVar("ResultT")

DEFAULT_SIMILAR_TOP_K = 10
DEFAULT_FILL_MASK_TOP_K = 5
MAX_FILL_MASK_PREDICTIONS = 100_000
"""Masks x top_k over one request's computed texts: 1024 texts of 120 masks at top_k 1000
would build a reply of gigabytes (found by tests/integration/test_fuzz.py)."""


@dataclass(frozen=True)
class Finished(Generic[ResultT]):
    """A batch's results for one request, and the seconds of their finishing already spent
    inside the batch (pooling: post-processing, not inference)."""

    results: list[ResultT]
    in_batch_s: float = 0.0


class TextOperation(Protocol[ItemT, StateT, ResultT]):
    """One request's operation on texts, as the lane runs it."""

    name: ClassVar[str]
    """The batcher it queues in, its metrics label and its cache keys' operation."""
    recorded: ClassVar[bool]
    """Its stages go to the request metrics."""
    light_finish: ClassVar[bool]
    """Finishing costs next to nothing: never worth a hop to a worker thread."""

    @property
    def codec(self) -> Codec[ResultT] | None:
        """How results are cached; None: never."""
        ...

    def prepare(self, texts: Sequence[str]) -> list[ItemT]: ...

    def execute(self, items: Sequence[ItemT]) -> Sequence[StateT]: ...

    def finish(self, items: list[ItemT], states: list[StateT]) -> Finished[ResultT]: ...

    def cache_options(self) -> dict[str, object]:
        """Every option that changes the result (part of the cache key)."""
        ...


@dataclass(frozen=True)
class EmbedOperation:
    """Embeddings, pooled for the whole batch on the inference thread (``embed_batch``)."""

    name: ClassVar[str] = EMBED
    codec: ClassVar[Codec[EmbeddingResult] | None] = EMBEDDING_CODEC
    recorded: ClassVar[bool] = True
    light_finish: ClassVar[bool] = True

    runtime: Runtime
    options: EmbedOptions

    def prepare(self, texts: Sequence[str]) -> list[EmbedItem]:
        return self.runtime.prepare_embed(texts, self.options)

    def execute(self, items: Sequence[EmbedItem]) -> Sequence[PooledEmbedding]:
        return self.runtime.embed_batch(items)

    def finish(
        self, items: list[EmbedItem], states: list[PooledEmbedding]
    ) -> Finished[EmbeddingResult]:
        pooled_s = max((state.pooling_s for state in states), default=0.0)
        return Finished([state.result for state in states], pooled_s)

    def cache_options(self) -> dict[str, object]:
        return embed_options(self.options)


@dataclass(frozen=True)
class FillMaskOperation:
    """The top-k tokens at each mask: logits at the masks in the batch, top-k after it."""

    name: ClassVar[str] = FILL_MASK
    codec: ClassVar[Codec[FillMaskResult] | None] = FILL_MASK_CODEC
    recorded: ClassVar[bool] = True
    light_finish: ClassVar[bool] = False

    runtime: FillMaskRuntime
    top_k: int
    truncate: bool = False
    """Cut a text over the model's maximum to a window around its masks."""

    @classmethod
    def checked(cls, served: ServedModel, top_k: int, truncate: bool = False) -> FillMaskOperation:
        if served.fill_mask_batcher is None:
            spec = served.spec
            raise InvalidArgument(
                f"{spec.name} has no masked-LM head (capabilities: "
                f"{', '.join(spec.capabilities)}), so it cannot fill masks; use a model "
                "whose capabilities include fill_mask"
            )
        runtime: FillMaskRuntime = served.runtime  # type: ignore[assignment]
        return cls(runtime, checked_top_k(top_k, DEFAULT_FILL_MASK_TOP_K), truncate)

    def prepare(self, texts: Sequence[str]) -> list[FillMaskItem]:
        """The texts' items, or INVALID_ARGUMENT when their predictions would exceed the
        bound."""
        items = self.runtime.prepare_fill_mask(texts, self.top_k, self.truncate)
        predictions = sum(len(item.mask_positions) for item in items) * self.top_k
        if predictions > MAX_FILL_MASK_PREDICTIONS:
            raise InvalidArgument(
                f"{predictions} predictions (masks x top_k) in one request; the limit is "
                f"{MAX_FILL_MASK_PREDICTIONS}: send fewer masks or texts, or a smaller top_k"
            )
        return items

    def execute(self, items: Sequence[FillMaskItem]) -> Sequence[np.ndarray]:
        return self.runtime.run_fill_mask(items)

    def finish(
        self, items: list[FillMaskItem], states: list[np.ndarray]
    ) -> Finished[FillMaskResult]:
        finish = self.runtime.finish_fill_mask
        return Finished(
            [
                FillMaskResult(
                    tuple(tuple(mask) for mask in finish(item, logits)), truncated=item.truncated
                )
                for item, logits in zip(items, states, strict=True)
            ]
        )

    def cache_options(self) -> dict[str, object]:
        return fill_mask_options(self.top_k, self.truncate)


@dataclass(frozen=True)
class TokenizeOperation:
    """Tokens, ids and offsets as the model splits the texts: all of it in ``prepare``."""

    name: ClassVar[str] = "tokenize"
    codec: ClassVar[Codec[TokenizedText] | None] = None
    recorded: ClassVar[bool] = False
    light_finish: ClassVar[bool] = True

    runtime: Runtime

    def prepare(self, texts: Sequence[str]) -> list[TokenizedText]:
        return self.runtime.tokenize(texts)

    def execute(self, items: Sequence[TokenizedText]) -> Sequence[TokenizedText]:
        return items

    def finish(
        self, items: list[TokenizedText], states: list[TokenizedText]
    ) -> Finished[TokenizedText]:
        return Finished(states)

    def cache_options(self) -> dict[str, object]:
        return {}


@dataclass(frozen=True)
class SimilarityOperation:
    """The nearest words of a static model (gensim's ``most_similar``), in one step."""

    runtime: SimilarityRuntime
    positive: tuple[str, ...]
    negative: tuple[str, ...]
    top_k: int

    @property
    def words(self) -> int:
        return len(self.positive) + len(self.negative)

    @classmethod
    def checked(
        cls, served: ServedModel, positive: Sequence[str], negative: Sequence[str], top_k: int
    ) -> SimilarityOperation:
        spec = served.spec
        if served.direct is None or not spec.supports("most_similar"):
            raise InvalidArgument(
                f"model {spec.name} has no most_similar capability (architecture "
                f"{spec.architecture}, capabilities {list(spec.capabilities)}); ask a word2vec "
                "model exported with its similarity graph"
            )
        runtime: SimilarityRuntime = served.runtime  # type: ignore[assignment]
        k = checked_top_k(top_k, DEFAULT_SIMILAR_TOP_K)
        return cls(runtime, tuple(positive), tuple(negative), k)

    def run(self) -> list[Neighbor]:
        return self.runtime.most_similar(self.positive, self.negative, self.top_k)
