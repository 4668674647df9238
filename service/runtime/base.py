"""The runtime protocol every architecture implements, and the pieces they share.

A runtime owns a model version's ONNX sessions. Work that can be batched is split into three
steps, so that tokenization and per-text post-processing never hold up inference of the next
batch: ``prepare`` (tokenize and check, any thread), ``run`` (one padded batch, the model's
inference thread) and ``finish`` (pool / pick top-k, any thread). Embeddings are served by
``embed_batch`` instead of ``run`` + ``finish``: it pools and normalises the whole padded batch
as a few array operations on the inference thread (``pool_batch``), which costs the next batch
less than finishing text by text cost the event loop (tens of µs a text).
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol, cast, runtime_checkable

import numpy as np

from modelrepo import ModelSpec
from service.domain import (
    EmbeddingResult,
    EmbedOptions,
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
    unknown_tokens: tuple[str, ...] = ()  # left out (static models with skip_unknown)


@dataclass(frozen=True)
class FillMaskItem:
    """One text with its mask positions, ready for the fill-mask graph."""

    text: str
    ids: np.ndarray
    mask_positions: tuple[int, ...]
    top_k: int


class Runtime(Protocol):
    """What the server needs of a loaded model version."""

    spec: ModelSpec
    device: str
    graph_roles: dict[str, str]
    """Per operation (``embed``, ``fill_mask``, ``most_similar``), the graph that computes it."""

    @property
    def dim(self) -> int: ...

    def tokenize(self, texts: Sequence[str]) -> list[TokenizedText]: ...

    def prepare_embed(self, texts: Sequence[str], options: EmbedOptions) -> list[EmbedItem]: ...

    def run_embed(self, items: Sequence[EmbedItem]) -> Sequence[LayerStates]: ...

    def finish_embed(self, item: EmbedItem, states: LayerStates) -> EmbeddingResult: ...

    def embed_batch(self, items: Sequence[EmbedItem]) -> list[PooledEmbedding]:
        """``run_embed`` and ``finish_embed`` for a whole batch, pooled as one operation."""
        ...

    def warmup(self) -> None: ...

    def close(self) -> None: ...


@runtime_checkable
class DirectRuntime(Protocol):
    """A static model (word2vec): lookups are cheap, so they run at once, never batched.

    Besides ``Runtime``'s attributes and ``tokenize``/``warmup``/``close``, it has these; its
    ``prepare_embed``/``run_embed``/``finish_embed`` are not used.
    """

    def embed_now(self, texts: Sequence[str], options: EmbedOptions) -> list[EmbeddingResult]: ...

    def most_similar(
        self, positive: Sequence[str], negative: Sequence[str], top_k: int
    ) -> list[Neighbor]: ...


class FillMaskRuntime(Protocol):
    """The extra steps of a model with a masked-LM head."""

    def prepare_fill_mask(self, texts: Sequence[str], top_k: int) -> list[FillMaskItem]: ...

    def run_fill_mask(self, items: Sequence[FillMaskItem]) -> Sequence[np.ndarray]: ...

    def finish_fill_mask(self, item: FillMaskItem, logits: np.ndarray) -> list[list[MaskFill]]: ...


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


def pool(tokens: np.ndarray, pooling: Pooling) -> np.ndarray:
    """(tokens, dim) → (dim,) or the tokens themselves for ``Pooling.NONE``."""
    if pooling is Pooling.CLS:
        return np.asarray(tokens[0])
    if pooling is Pooling.MEAN:  # ``mean(dtype=float64)`` bit for bit, without its wrapper
        return np.asarray(np.add.reduce(tokens, axis=0, dtype=np.float64) / len(tokens), np.float32)
    if pooling is Pooling.MAX:
        return np.asarray(tokens.max(axis=0))
    return tokens


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Unit length along the last axis; a zero vector stays zero."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return np.asarray(np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0))


def pooled_result(item: EmbedItem, tokens: np.ndarray) -> EmbeddingResult:
    """A text's (tokens, dim) vectors pooled and normalised as its options ask."""
    vectors = pool(tokens, item.options.pooling)
    if item.options.normalize:
        vectors = l2_normalize(vectors)
    return EmbeddingResult(
        vectors=np.ascontiguousarray(vectors, dtype=np.float32),
        tokens=item.tokens,
        truncated=item.truncated,
        unknown_tokens=item.unknown_tokens,
    )


def _masked_pool(mixed: np.ndarray, lengths: np.ndarray, pooling: Pooling) -> np.ndarray:
    """(texts, padded tokens, dim) → (texts, dim), each text over its first ``lengths`` tokens:
    what ``pool`` computes text by text (MEAN summed in float64, as ``pool`` does)."""
    if pooling is Pooling.CLS:
        return np.ascontiguousarray(mixed[:, 0])
    real = np.arange(mixed.shape[1])[None, :] < lengths[:, None]
    if pooling is Pooling.MAX:
        return np.asarray(np.where(real[..., None], mixed, -np.inf).max(axis=1), np.float32)
    sums = np.einsum("btd,bt->bd", mixed, real.astype(mixed.dtype), dtype=np.float64)
    return np.asarray(sums / lengths[:, None], dtype=np.float32)


def pool_batch(
    items: Sequence[EmbedItem],
    layers: Mapping[int, np.ndarray],
    lengths: np.ndarray,
    num_layers: int,
    gamma: float = 1.0,
) -> list[PooledEmbedding]:
    """Every item's embedding from the padded batch outputs, one vectorised pass per distinct
    set of options (a batch nearly always has one).

    ``layers`` maps a layer to its (texts, padded tokens, dim) output, whose first
    ``lengths[row]`` tokens are row's; ``POOLING_NONE`` items keep their tokens, text by text.
    """
    started = time.perf_counter()
    finished: list[EmbeddingResult | None] = [None] * len(items)
    groups: dict[EmbedOptions, list[int]] = {}
    for row, item in enumerate(items):
        groups.setdefault(item.options, []).append(row)
    for options, rows in groups.items():
        fetched = layers_to_fetch(options, num_layers)
        if options.pooling is Pooling.NONE:
            for row in rows:
                states = tuple(layers[layer][row, : lengths[row]] for layer in fetched)
                finished[row] = pooled_result(items[row], mix_layers(states, options, gamma))
            continue
        index = np.asarray(rows)
        whole = len(rows) == len(items)  # the usual case: no copy of the batch's outputs
        chosen = tuple(layers[layer] if whole else layers[layer][index] for layer in fetched)
        mixed = mix_layers(chosen, options, gamma)
        vectors = _masked_pool(mixed, lengths[index], options.pooling)
        if options.normalize:
            vectors = l2_normalize(vectors)
        for position, row in enumerate(rows):
            item = items[row]
            finished[row] = EmbeddingResult(
                vectors=vectors[position],
                tokens=item.tokens,
                truncated=item.truncated,
                unknown_tokens=item.unknown_tokens,
            )
    seconds = time.perf_counter() - started
    assert all(result is not None for result in finished), "every row is in one group"
    return [PooledEmbedding(cast(EmbeddingResult, result), seconds) for result in finished]


def warm_up_embeddings(runtime: Runtime) -> None:
    """Embed a short and a longer text twice, so the first request is not the slow one."""
    options = EmbedOptions(Pooling.MEAN, layers=runtime.spec.default_layers, truncate=True)
    for words in (4, 32):
        items = runtime.prepare_embed([" ".join(["warm"] * words)] * 2, options)
        runtime.embed_batch(items)  # the path requests take
        for item, states in zip(items, runtime.run_embed(items), strict=True):
            runtime.finish_embed(item, states)
