"""Run an exported word2vec version as the server does, for evaluation of what is served.

Vectors come from the served ``Word2VecRuntime``'s ``embed_batch`` and neighbours from its
``most_similar``, so an evaluation figure is a figure of the server's answers. A version
exported without its similarity graph has no served ``most_similar``: its neighbours are then
scored in numpy over the served vectors, by the same rule (cosine, the word itself excluded,
ties by row).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from export.word2vec.graphs import unit_rows
from modelrepo import load_checked
from service.runtime import EmbedOptions, Pooling
from service.runtime.session import CPU_FP32
from service.runtime.word2vec import Word2VecRuntime

ONE_WORD_EACH = EmbedOptions(Pooling.NONE, layers=(0,))


class OnnxWord2Vec:
    """Vectors by word and cosine scores against the whole vocabulary, from the graphs."""

    def __init__(self, directory: Path) -> None:
        self.spec = load_checked(directory)
        self.runtime = Word2VecRuntime(directory, self.spec, CPU_FP32)
        self.words = self.runtime.words
        self.index = self.runtime.index
        self._unit: np.ndarray | None = None

    def vectors(self, words: Sequence[str]) -> np.ndarray:
        """(len(words), dim): the served vectors (KeyError for an unknown word)."""
        for word in words:
            if word not in self.index:
                raise KeyError(word)
        if not words:
            return np.zeros((0, self.runtime.dim), dtype=np.float32)
        items = self.runtime.prepare_embed(list(words), ONE_WORD_EACH)
        results = [pooled.result for pooled in self.runtime.embed_batch(items)]
        for word, result in zip(words, results, strict=True):
            if result.tokens != (word,):
                raise ValueError(f"{word!r} is not one word to the server: {result.tokens}")
        return np.concatenate([result.vectors for result in results])

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """(n, vocab) cosine of each unit query with every word (numpy without a similarity
        graph)."""
        if self.runtime.similarity is not None:
            (found,) = self.runtime.similarity.run(
                ["scores"], {"query": queries.astype(np.float32)}
            )
            return np.asarray(found)
        if self._unit is None:
            self._unit = unit_rows(self.vectors(self.words))
        return np.asarray(queries @ self._unit.T)

    def neighbours(self, words: Sequence[str], k: int, batch: int = 64) -> list[list[str]]:
        """The ``k`` nearest words of each word by cosine, the word itself excluded."""
        if self.runtime.similarity is not None:
            return [
                [neighbour.word for neighbour in self.runtime.most_similar([word], [], k)]
                for word in words
            ]
        result: list[list[str]] = []
        for start in range(0, len(words), batch):
            chunk = list(words[start : start + batch])
            scores = self.scores(unit_rows(self.vectors(chunk)))
            rows = [self.index[word] for word in chunk]
            scores[np.arange(len(chunk)), rows] = -np.inf
            best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            result += [[self.words[i] for i in row] for row in best]
        return result
