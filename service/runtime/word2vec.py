"""word2vec behind the runtime protocol: exact vector lookups and most-similar words.

Static lookups are cheap, so this runtime is not ``batched``: the server runs its
``prepare_embed`` + ``embed_batch`` and its ``most_similar`` at once, never through a queue.

* Tokenization: a text is split at whitespace (``str.split()``); each word is looked up exactly
  as written, like gensim's ``KeyedVectors``: case and punctuation are part of the word
  ("Apple" and "apple," are not "apple"; the default corpus is lowercase with "." and ","
  as separate words).
* Unknown words: by default the request fails with INVALID_ARGUMENT naming them; with
  ``skip_unknown`` they are left out and reported in ``unknown_tokens``. A text with no known
  word fails either way: a zero vector is never mixed into a result.
* Pooling: ``MEAN`` and ``MAX`` over the text's known words, ``NONE`` one vector per known
  word; ``CLS`` has no meaning here (no [CLS] token) and is refused, as is a mix of layers:
  there is layer 0 only (declared here in ``EMBED_SUPPORT``, checked by
  ``service.domain.resolve_embed_options``).
* ``most_similar``: gensim's semantics: each query word's vector is unit-normalised, they are
  averaged with weight +1 (positive) and -1 (negative), the mean is unit-normalised and scored
  against every unit-normalised word vector by the ``similarity`` graph; query words are
  excluded from the answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from modelrepo import ModelSpec, SpecError
from modelrepo.vocabulary import VOCABULARY_FILE, read_vocabulary
from service.domain import EmbedOptions, EmbedSupport, Neighbor, Pooling, TokenizedText
from service.errors import InvalidArgument
from service.runtime.base import EmbedItem, PooledEmbedding, pool_batch
from service.runtime.session import GraphSession, SessionOptions
from service.runtime.words import quoted, require_words, whitespace_offsets

UNKNOWN_ID = -1  # the id Tokenize reports for a word the vocabulary lacks
PAD_ID = 0  # any row: padded positions are never read
EMBED_SUPPORT = EmbedSupport(
    refused_poolings={
        Pooling.CLS: "{name} is a word2vec model: it has no [CLS] token, so POOLING_CLS "
        "has no meaning; use POOLING_MEAN, POOLING_MAX or POOLING_NONE"
    },
    refused_layer_weights="{name} is a word2vec model with a single layer (0); leave "
    "layer_weights empty",
)


@dataclass(frozen=True)
class _Text:
    """One text split into words, known and unknown."""

    words: tuple[str, ...]
    ids: tuple[int, ...]  # UNKNOWN_ID where the vocabulary lacks the word
    truncated: bool


class Word2VecRuntime:
    """A word2vec model version: lookups by word, pooled or not, and nearest words."""

    embed_support = EMBED_SUPPORT
    batched = False

    def __init__(self, directory: Path, spec: ModelSpec, options: SessionOptions) -> None:
        self.spec = spec
        self.label = f"{spec.name}/{spec.version}"
        self.words = read_vocabulary(directory / VOCABULARY_FILE)
        self.index = {word: row for row, word in enumerate(self.words)}
        if spec.extra.get("vocab_size") != len(self.words):
            raise SpecError(
                f"{directory}: {VOCABULARY_FILE} has {len(self.words)} words but spec.json "
                f"declares vocab_size {spec.extra.get('vocab_size')}; re-export the model"
            )
        lookup = spec.graph("lookup")
        self.lookup = GraphSession(directory / lookup.file, lookup, options, f"{self.label} lookup")
        self.similarity: GraphSession | None = None
        if spec.supports("most_similar"):
            graph = spec.graph("similarity")
            if graph.output("scores").shape[-1] != len(self.words):
                raise SpecError(f"{directory}: the similarity graph does not score every word")
            self.similarity = GraphSession(
                directory / graph.file, graph, options, f"{self.label} similarity"
            )
        self.device = self.lookup.device
        self.graph_roles = {"embed": "lookup"}
        if self.similarity is not None:
            self.graph_roles["most_similar"] = "similarity"

    @property
    def dim(self) -> int:
        return self.spec.hidden_size

    # -- tokenization ---------------------------------------------------------------------
    def tokenize(self, texts: Sequence[str]) -> list[TokenizedText]:
        require_words(texts)
        results = []
        for text in texts:
            offsets = whitespace_offsets(text)
            words = tuple(text[start:end] for start, end in offsets)
            results.append(
                TokenizedText(
                    tokens=words,
                    ids=tuple(self.index.get(word, UNKNOWN_ID) for word in words),
                    offsets=offsets,
                )
            )
        return results

    def _split(self, index: int, text: str, truncate: bool) -> _Text:
        words = text.split()
        limit = self.spec.max_sequence_length
        truncated = len(words) > limit
        if truncated and not truncate:
            raise InvalidArgument(
                f"texts[{index}] has {len(words)} words, more than {self.spec.name}'s maximum "
                f"of {limit}; shorten it or set truncate"
            )
        words = words[:limit]
        lookup = self.index.get
        ids = tuple([lookup(word, UNKNOWN_ID) for word in words])
        return _Text(tuple(words), ids, truncated)

    # -- embeddings -----------------------------------------------------------------------
    def prepare_embed(self, texts: Sequence[str], options: EmbedOptions) -> list[EmbedItem]:
        """Split and look up every text; unknown words fail the request unless skipped."""
        require_words(texts)
        split = [self._split(index, text, options.truncate) for index, text in enumerate(texts)]
        if not any(UNKNOWN_ID in text.ids for text in split):  # the common case: all known
            return [
                EmbedItem(
                    ids=np.asarray(text.ids, dtype=np.int64),
                    tokens=text.words,
                    truncated=text.truncated,
                    options=options,
                )
                for text in split
            ]
        unknown = [
            (index, word)
            for index, text in enumerate(split)
            for word, row in zip(text.words, text.ids, strict=True)
            if row == UNKNOWN_ID
        ]
        if unknown and not options.skip_unknown:
            where = sorted({index for index, _ in unknown})
            raise InvalidArgument(
                f"{len({word for _, word in unknown})} word(s) not in the vocabulary of "
                f"{self.label}: {quoted([word for _, word in unknown])} (in texts {where[:10]}); "
                "words are matched exactly, case and punctuation included; set skip_unknown to "
                "leave unknown words out"
            )
        items = []
        for index, text in enumerate(split):
            known = [
                (word, row) for word, row in zip(text.words, text.ids, strict=True) if row >= 0
            ]
            missing = tuple(word for word, row in zip(text.words, text.ids, strict=True) if row < 0)
            if not known:
                raise InvalidArgument(
                    f"texts[{index}] has no word in the vocabulary of {self.label} (unknown: "
                    f"{quoted(missing)}); there is nothing to embed"
                )
            items.append(
                EmbedItem(
                    ids=np.asarray([row for _, row in known], dtype=np.int64),
                    tokens=tuple(word for word, _ in known),
                    truncated=text.truncated,
                    options=options,
                    unknown_tokens=missing,
                )
            )
        return items

    def _vectors(self, ids: np.ndarray) -> np.ndarray:
        """(n,) row ids → (n, dim) vectors from the lookup graph (an exact Gather)."""
        (found,) = self.lookup.run(["vectors"], {"input_ids": ids.reshape(1, -1)})
        return np.asarray(found[0])

    def embed_batch(self, items: Sequence[EmbedItem]) -> list[PooledEmbedding]:
        """Every item's words in one lookup of the padded batch, pooled as each item asks."""
        lengths = np.fromiter((len(item.ids) for item in items), np.int64, len(items))
        if len(items) == 1:  # one text per request is the common case: nothing to pad
            ids = items[0].ids.reshape(1, -1)
        else:
            ids = np.full((len(items), int(lengths.max())), PAD_ID, dtype=np.int64)
            for row, item in enumerate(items):
                ids[row, : len(item.ids)] = item.ids
        (vectors,) = self.lookup.run(["vectors"], {"input_ids": ids})
        return pool_batch(items, {0: vectors}, lengths, self.spec.num_layers)

    # -- most similar ---------------------------------------------------------------------
    def _query(
        self, positive: Sequence[str], negative: Sequence[str]
    ) -> tuple[np.ndarray, set[int]]:
        """gensim's query vector: unit mean of ±unit word vectors; and the query words' rows."""
        if not positive:
            raise InvalidArgument("positive is empty; give at least one word")
        words = [*positive, *negative]
        unknown = [word for word in words if word not in self.index]
        if unknown:
            raise InvalidArgument(
                f"word(s) not in the vocabulary of {self.label}: {quoted(unknown)}; words are "
                "matched exactly, case and punctuation included"
            )
        rows = np.asarray([self.index[word] for word in words], dtype=np.int64)
        vectors = self._vectors(rows)
        norms = np.linalg.norm(vectors, axis=1)
        if not norms.all():
            zero = [word for word, norm in zip(words, norms, strict=True) if norm == 0]
            raise InvalidArgument(
                f"zero vector, which has no direction: {quoted(zero)}; leave it out of the query"
            )
        units = (vectors / norms[:, None]).astype(np.float64)
        weights = np.concatenate([np.ones(len(positive)), -np.ones(len(negative))])
        mean = weights @ units / len(words)
        length = np.linalg.norm(mean)
        if length < 1e-6:
            raise InvalidArgument("the positive and negative words cancel out: no direction left")
        return (mean / length).astype(np.float32), {int(row) for row in rows}

    def most_similar(
        self, positive: Sequence[str], negative: Sequence[str], top_k: int
    ) -> list[Neighbor]:
        """The ``top_k`` words closest to the query by cosine, query words excluded."""
        if self.similarity is None:
            raise InvalidArgument(f"{self.label} was exported without its similarity graph")
        query, excluded = self._query(positive, negative)
        (scores,) = self.similarity.run(["scores"], {"query": query[None]})
        row = np.array(scores[0], dtype=np.float32)
        row[list(excluded)] = -np.inf
        k = min(top_k, len(row) - len(excluded))
        if k <= 0:
            return []
        best = np.argpartition(-row, k - 1)[:k]
        best = best[np.lexsort((best, -row[best]))]  # by score; ties by row, deterministically
        return [Neighbor(self.words[i], float(row[i])) for i in best]

    # -- lifecycle ------------------------------------------------------------------------
    def warmup(self) -> None:
        """Run each graph once so the first request is not the slow one."""
        self._vectors(np.arange(min(8, len(self.words)), dtype=np.int64))
        if self.similarity is not None:
            query = np.zeros((1, self.dim), dtype=np.float32)
            query[0, 0] = 1.0
            self.similarity.run(["scores"], {"query": query})

    def close(self) -> None:
        self.similarity = None
