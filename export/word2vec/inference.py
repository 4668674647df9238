"""Run an exported word2vec version with ONNX Runtime, for evaluation of what is served."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from export.validate import cpu_session
from export.word2vec.graphs import unit_rows
from modelrepo import load_checked
from modelrepo.vocabulary import VOCABULARY_FILE, read_vocabulary


class OnnxWord2Vec:
    """Vectors by word and cosine scores against the whole vocabulary, from the graphs."""

    def __init__(self, directory: Path) -> None:
        self.spec = load_checked(directory)
        self.words = read_vocabulary(directory / VOCABULARY_FILE)
        self.index = {word: row for row, word in enumerate(self.words)}
        self.lookup = cpu_session(directory / self.spec.graph("lookup").file)
        self.similarity = (
            cpu_session(directory / self.spec.graph("similarity").file)
            if self.spec.supports("most_similar")
            else None
        )
        self._unit: np.ndarray | None = None

    def vectors(self, words: Sequence[str]) -> np.ndarray:
        """(len(words), dim): the lookup graph's vectors (KeyError for an unknown word)."""
        ids = np.asarray([[self.index[word] for word in words]], dtype=np.int64)
        (found,) = self.lookup.run(["vectors"], {"input_ids": ids})
        return np.asarray(found[0])

    def scores(self, queries: np.ndarray) -> np.ndarray:
        """(n, vocab) cosine of each unit query with every word (numpy without a similarity
        graph)."""
        if self.similarity is not None:
            (found,) = self.similarity.run(["scores"], {"query": queries.astype(np.float32)})
            return np.asarray(found)
        if self._unit is None:
            self._unit = unit_rows(self.vectors(self.words))
        return np.asarray(queries @ self._unit.T)

    def neighbours(self, words: Sequence[str], k: int, batch: int = 64) -> list[list[str]]:
        """The ``k`` nearest words of each word by cosine, the word itself excluded."""
        result: list[list[str]] = []
        for start in range(0, len(words), batch):
            chunk = list(words[start : start + batch])
            scores = self.scores(unit_rows(self.vectors(chunk)))
            rows = [self.index[word] for word in chunk]
            scores[np.arange(len(chunk)), rows] = -np.inf
            best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
            result += [[self.words[i] for i in row] for row in best]
        return result
