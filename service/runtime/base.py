"""The runtime protocol every architecture implements, and the pooling they share.

A runtime owns a model version's ONNX sessions. Its contract with the server is small:
``prepare_*`` (tokenize and check, any thread) and one batched step per operation, run on the
model's inference thread for batched runtimes or at once for static ones: ``embed_batch``
(embeddings, mixed, pooled and normalised for the whole padded batch as a few array operations
by ``pool_batch``, the one implementation of pooling), ``run_fill_mask`` + ``finish_fill_mask``
(a masked-LM head) and ``most_similar`` (static word vectors). Each architecture declares next
to its runtime what it supports (``embed_support``) and whether it is batched; the runtimes are
registered in one place (``service.runtime.registry``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, cast

import numpy as np

from modelrepo import ModelSpec
from service.domain import (
    EmbeddingResult,
    EmbedOptions,
    EmbedSupport,
    MaskFill,
    Neighbor,
    Pooling,
    TokenizedText,
)

# One text's token vectors, one (tokens, dim) array per layer the text asked for.
LayerStates = tuple[np.ndarray, ...]


class PooledEmbedding(NamedTuple):
    """One text's finished embedding from ``embed_batch``, and how long its batch's pooling
    took (the text waited for all of it; reported as the request's post-processing time)."""

    result: EmbeddingResult
    pooling_s: float


@dataclass(frozen=True)
class EmbedItem:
    """One text ready for the encoder."""

    ids: np.ndarray
    tokens: tuple[str, ...]
    truncated: bool
    options: EmbedOptions
    unknown_tokens: tuple[str, ...] = ()
    """Left out (static models with skip_unknown), or embedded as the unknown token (BERT)."""
    unknown_offsets: tuple[tuple[int, int], ...] = ()
    """Where each unknown token lies in the text, where the runtime reports it."""
    pool_start: int = 0
    """Tokens before this one are not pooled (a prompt the model pools without)."""


@dataclass(frozen=True)
class FillMaskItem:
    """One text with its mask positions, ready for the fill-mask graph."""

    text: str
    ids: np.ndarray
    mask_positions: tuple[int, ...]
    top_k: int
    truncated: bool = False
    """Cut to a window around the masks."""


class Runtime(Protocol):
    """What the server needs of a loaded model version."""

    spec: ModelSpec
    device: str
    graph_roles: dict[str, str]
    """Per operation (``embed``, ``fill_mask``, ``most_similar``), the graph that computes it."""
    embed_support: EmbedSupport
    """What the architecture's embeddings refuse (declared with the runtime)."""
    batched: bool
    """Batches go through a queue on an inference thread of the model's own; False for static
    lookups, which cost less than a queue and run at once."""

    @property
    def dim(self) -> int: ...

    def tokenize(self, texts: Sequence[str]) -> list[TokenizedText]: ...

    def prepare_embed(self, texts: Sequence[str], options: EmbedOptions) -> list[EmbedItem]: ...

    def embed_batch(self, items: Sequence[EmbedItem]) -> list[PooledEmbedding]:
        """One padded batch through the graph, every item pooled as its options ask."""
        ...

    def warmup(self) -> None: ...

    def close(self) -> None: ...


class SimilarityRuntime(Protocol):
    """The extra step of a static model with a similarity graph (word2vec)."""

    def most_similar(
        self, positive: Sequence[str], negative: Sequence[str], top_k: int
    ) -> list[Neighbor]: ...


class FillMaskRuntime(Protocol):
    """The extra steps of a model with a masked-LM head."""

    def prepare_fill_mask(
        self, texts: Sequence[str], top_k: int, truncate: bool = False
    ) -> list[FillMaskItem]: ...

    def run_fill_mask(self, items: Sequence[FillMaskItem]) -> Sequence[np.ndarray]: ...

    def finish_fill_mask(self, item: FillMaskItem, logits: np.ndarray) -> list[list[MaskFill]]: ...


def item_length(item: EmbedItem | FillMaskItem) -> int:
    """An item's token length, as the batcher pads it."""
    return len(item.ids)


def layers_to_fetch(options: EmbedOptions, num_layers: int) -> tuple[int, ...]:
    """The layers an item's states hold, in the order ``mix_layers`` reads them: every layer
    (0..``num_layers``) for a scalar mix, else the layers the item chose."""
    if options.layer_weights:
        return tuple(range(num_layers + 1))
    return options.layers


def mix_layers(states: LayerStates, options: EmbedOptions, gamma: float = 1.0) -> np.ndarray:
    """Per-layer (tokens, dim) arrays → (tokens, dim): average of layers or a scalar mix.

    ``states`` holds the layers the item asked for, in ``options.layers`` order, or every
    layer when ``options.layer_weights`` is set (mixed with softmax-normalised weights and
    the scale ``gamma``, as ELMo's scalar mix).
    """
    if options.layer_weights:
        weights = np.asarray(options.layer_weights, dtype=np.float64)
        weights = np.exp(weights - weights.max())
        weights /= weights.sum()
        mixed = np.tensordot(weights.astype(np.float32), np.stack(states), axes=1)
        return np.asarray(gamma * mixed, dtype=np.float32)
    if len(states) == 1:
        return states[0]
    return np.asarray(np.mean(np.stack(states), axis=0, dtype=np.float32))


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit length along the last axis; a zero vector stays zero."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.asarray(np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0))


def _result(item: EmbedItem, vectors: np.ndarray) -> EmbeddingResult:
    return EmbeddingResult(
        vectors=vectors,
        tokens=item.tokens,
        truncated=item.truncated,
        unknown_tokens=item.unknown_tokens,
        unknown_offsets=item.unknown_offsets,
    )


Head = Callable[[np.ndarray], np.ndarray]
"""What a model applies to its pooled (texts, dim) vectors before normalising (Dense layers)."""


def _masked_pool(
    mixed: np.ndarray, lengths: np.ndarray, starts: np.ndarray, pooling: Pooling
) -> np.ndarray:
    """(texts, padded tokens, dim) → (texts, dim), each text over its tokens ``starts`` to
    ``lengths`` (sums in float64; MEAN_SQRT_LEN divides by the root of the count). CLS is the
    first pooled token: the first token, or the first after a prompt left out of pooling (as
    sentence-transformers takes it). Without padding or starts (one text, or texts of one
    length) no mask is built: the common case of one short request costs a plain reduction."""
    if pooling is Pooling.CLS:
        if not starts.any():
            return np.ascontiguousarray(mixed[:, 0])
        return np.ascontiguousarray(mixed[np.arange(len(starts)), starts])
    counts = (lengths - starts)[:, None]
    divisor = np.sqrt(counts) if pooling is Pooling.MEAN_SQRT_LEN else counts
    if not starts.any() and bool((lengths == mixed.shape[1]).all()):
        if pooling is Pooling.MAX:
            return np.asarray(mixed.max(axis=1), np.float32)
        sums = np.add.reduce(mixed, axis=1, dtype=np.float64)
        return np.asarray(sums / divisor, dtype=np.float32)
    positions = np.arange(mixed.shape[1])[None, :]
    real = (positions < lengths[:, None]) & (positions >= starts[:, None])
    if pooling is Pooling.MAX:
        return np.asarray(np.where(real[..., None], mixed, -np.inf).max(axis=1), np.float32)
    sums = np.einsum("btd,bt->bd", mixed, real.astype(mixed.dtype), dtype=np.float64)
    return np.asarray(sums / divisor, dtype=np.float32)


def _finish(vectors: np.ndarray, options: EmbedOptions) -> np.ndarray:
    """The first ``dimensions`` values (Matryoshka), then L2-normalised if asked: truncated
    first, so the served vector has unit length."""
    if options.dimensions:
        vectors = vectors[..., : options.dimensions]
    if options.normalize:
        vectors = l2_normalize(vectors)
    return np.ascontiguousarray(vectors, dtype=np.float32)


def pool_batch(
    items: Sequence[EmbedItem],
    layers: Mapping[int, np.ndarray],
    lengths: np.ndarray,
    num_layers: int,
    gamma: float = 1.0,
    head: Head | None = None,
) -> list[PooledEmbedding]:
    """Every item's embedding from the padded batch outputs, one vectorised pass per distinct
    set of options (a batch nearly always has one).

    ``layers`` maps a layer to its (texts, padded tokens, dim) output, whose first
    ``lengths[row]`` tokens are row's; ``POOLING_NONE`` items keep their tokens, text by text.
    A pooled vector goes through the model's ``head`` (its Dense layers), is cut to the
    request's ``dimensions`` and normalised if asked.
    """
    started = time.perf_counter()
    finished: list[EmbeddingResult | None] = [None] * len(items)
    groups: dict[EmbedOptions, list[int]] = {}
    for row, item in enumerate(items):
        groups.setdefault(item.options, []).append(row)
    for options, rows in groups.items():
        fetched = layers_to_fetch(options, num_layers)
        if options.pooling is Pooling.NONE:  # each text keeps its tokens
            for row in rows:
                states = tuple(layers[layer][row, : lengths[row]] for layer in fetched)
                tokens = _finish(mix_layers(states, options, gamma), options)
                finished[row] = _result(items[row], tokens)
            continue
        index = np.asarray(rows)
        whole = len(rows) == len(items)  # the usual case: no copy of the batch's outputs
        chosen = tuple(layers[layer] if whole else layers[layer][index] for layer in fetched)
        mixed = mix_layers(chosen, options, gamma)
        starts = np.fromiter((items[row].pool_start for row in rows), np.int64, len(rows))
        vectors = _masked_pool(mixed, lengths[index], starts, options.pooling)
        if head is not None:
            vectors = head(vectors)
        vectors = _finish(vectors, options)
        for position, row in enumerate(rows):
            finished[row] = _result(items[row], vectors[position])
    seconds = time.perf_counter() - started
    assert all(result is not None for result in finished), "every row is in one group"
    return [PooledEmbedding(cast(EmbeddingResult, result), seconds) for result in finished]


def warm_up_embeddings(runtime: Runtime) -> None:
    """Embed a short and a longer text, two at a time and one, so the first request is not
    the slow one (with ``skip_unknown``: a vocabulary without the warm-up word still warms)."""
    options = EmbedOptions(
        Pooling.MEAN, layers=runtime.spec.default_layers, truncate=True, skip_unknown=True
    )
    for words in (4, 32):
        items = runtime.prepare_embed([" ".join(["warm"] * words)] * 2, options)
        runtime.embed_batch(items)
        runtime.embed_batch(items[:1])
