"""Small word2vec models trained with gensim in seconds, saved in both C formats."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from gensim.models import KeyedVectors, Word2Vec

from export.corpus import CorpusConfig, generate_corpus

# A slice of the default grammar: every topic and polysemous word, ~2,200 distinct words.
TINY_CORPUS = CorpusConfig(seed=5, train_tokens=60_000, heldout_sentences=200)


def tiny_sentences() -> list[str]:
    return generate_corpus(TINY_CORPUS).train.sentences


def train_tiny_vectors(dim: int = 24, seed: int = 3) -> KeyedVectors:
    """Skip-gram vectors of the tiny corpus (deterministic: one worker, fixed seed)."""
    tokenized = [sentence.split() for sentence in tiny_sentences()]
    model = Word2Vec(
        tokenized, vector_size=dim, window=4, min_count=1, epochs=10, seed=seed, workers=1
    )
    vectors: KeyedVectors = model.wv
    return vectors


def save_c_formats(vectors: KeyedVectors, directory: Path) -> dict[str, Path]:
    """The same vectors as ``text`` and ``binary`` C word2vec files."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"text": directory / "vectors.txt", "binary": directory / "vectors.bin"}
    for kind, path in paths.items():
        vectors.save_word2vec_format(str(path), binary=kind == "binary")
    return paths


def assert_same_neighbours(
    got: Sequence[tuple[str, float]], want: Sequence[tuple[str, float]], tolerance: float = 1e-5
) -> None:
    """``got`` (k pairs) is gensim's top k: same words in the same order, scores within
    ``tolerance``. Only words whose gensim scores are within ``tolerance`` of each other (a
    float32 near-tie) may trade places; ``want`` holds a few more than k of gensim's answers so
    that a tie at the k-th place is recognised too."""
    assert len(got) <= len(want)
    expected = dict(want)
    for index, (word, score) in enumerate(got):
        place_word, place_score = want[index]
        assert abs(score - place_score) <= tolerance, (index, word, score, place_score)
        if word != place_word:
            assert word in expected, f"{word!r} is not among gensim's top {len(want)}"
            assert abs(expected[word] - place_score) <= tolerance, (word, place_word)
