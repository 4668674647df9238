"""The word2vec runtime on a hand-written model whose answers can be worked out by hand."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.word2vec.exporter import import_word2vec
from modelrepo import SpecError, load_checked
from service.domain import EmbeddingResult, EmbedOptions, Pooling
from service.errors import InvalidArgument
from service.runtime.session import SessionOptions
from service.runtime.word2vec import Word2VecRuntime

# a and b point almost the same way, c and d are orthogonal to them, z has no direction
C_TEXT = """5 3
a 1 0 0
b 0.9 0.1 0
c 0 1 0
d 0 0 2
z 0 0 0
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hand")
    (root / "hand.txt").write_text(C_TEXT)
    return import_word2vec(root / "hand.txt", False, root / "models", "hand")


@pytest.fixture(scope="module")
def runtime(exported: Path) -> Word2VecRuntime:
    return Word2VecRuntime(exported, load_checked(exported), SessionOptions(device="cpu"))


def test_nearest_words_exclude_the_query_and_break_ties_by_row(runtime: Word2VecRuntime):
    neighbours = runtime.most_similar(["a"], [], 10)
    assert [n.word for n in neighbours] == ["b", "c", "d", "z"]
    assert neighbours[0].score == pytest.approx(0.9 / np.hypot(0.9, 0.1), abs=1e-6)
    assert [n.score for n in neighbours[1:]] == [0.0, 0.0, 0.0]  # a zero vector scores 0
    assert [n.word for n in runtime.most_similar(["a"], [], 2)] == ["b", "c"]


def test_analogy_is_the_unit_mean_of_signed_unit_vectors(runtime: Word2VecRuntime) -> None:
    # unit(c) - unit(a) + unit(d) = (-1, 1, 1): cosine with b is (-0.9 + 0.1) / (|b| sqrt 3)
    neighbours = {n.word: n.score for n in runtime.most_similar(["c", "d"], ["a"], 10)}
    assert set(neighbours) == {"b", "z"}
    assert neighbours["b"] == pytest.approx(-0.8 / (np.hypot(0.9, 0.1) * np.sqrt(3)), abs=1e-6)


@pytest.mark.parametrize(
    ("positive", "negative", "message"),
    [
        ([], ["a"], "positive is empty"),
        (["z"], [], "zero vector"),
        (["a"], ["a"], "cancel out"),
        (["a", "A", "e"], [], "'A', 'e'"),
    ],
)
def test_queries_without_an_answer(runtime: Word2VecRuntime, positive, negative, message):
    with pytest.raises(InvalidArgument, match=message):
        runtime.most_similar(positive, negative, 10)


def test_whitespace_split_matches_str_split(runtime: Word2VecRuntime) -> None:
    text = " a\u00a0b\u2003c\x1fd\n\tA "
    (tokenized,) = runtime.tokenize([text])
    assert list(tokenized.tokens) == text.split() == ["a", "b", "c", "d", "A"]
    assert [text[start:end] for start, end in tokenized.offsets] == text.split()
    assert tokenized.ids == (0, 1, 2, 3, -1)


def embedded(
    runtime: Word2VecRuntime, texts: list[str], options: EmbedOptions
) -> list[EmbeddingResult]:
    """What the server runs for a static model: ``prepare_embed``, then ``embed_batch``."""
    return [pooled.result for pooled in runtime.embed_batch(runtime.prepare_embed(texts, options))]


def test_embed_batch_pools_known_words(runtime: Word2VecRuntime) -> None:
    mean = EmbedOptions(Pooling.MEAN, layers=(0,), skip_unknown=True)
    (result,) = embedded(runtime, ["a X d"], mean)
    assert result.tokens == ("a", "d") and result.unknown_tokens == ("X",)
    assert np.array_equal(result.vectors, np.array([0.5, 0, 1], dtype=np.float32))
    (none,) = embedded(runtime, ["d a"], EmbedOptions(Pooling.NONE, layers=(0,)))
    assert np.array_equal(none.vectors, np.array([[0, 0, 2], [1, 0, 0]], dtype=np.float32))


@pytest.mark.parametrize("pooling", [Pooling.MEAN, Pooling.MAX, Pooling.NONE])
def test_a_padded_batch_pools_each_text_as_alone(
    runtime: Word2VecRuntime, pooling: Pooling
) -> None:
    """Texts of different lengths share one lookup, padded with row 0: the padding never
    reaches a text's vectors."""
    options = EmbedOptions(pooling, layers=(0,))
    texts = ["d", "a b c d", "c a"]
    together = embedded(runtime, texts, options)
    for text, result in zip(texts, together, strict=True):
        (alone,) = embedded(runtime, [text], options)
        assert result.tokens == alone.tokens
        np.testing.assert_allclose(result.vectors, alone.vectors, rtol=1e-6)


def test_vocabulary_must_match_the_spec(exported: Path) -> None:
    spec = load_checked(exported)
    wrong = spec.model_copy(update={"extra": {**spec.extra, "vocab_size": 4}})
    with pytest.raises(SpecError, match=r"has 5 words but spec\.json declares vocab_size 4"):
        Word2VecRuntime(exported, wrong, SessionOptions(device="cpu"))
