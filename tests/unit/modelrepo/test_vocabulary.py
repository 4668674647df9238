"""The vocabulary file of word2vec models: any word without a newline survives unchanged."""

from __future__ import annotations

from pathlib import Path

import pytest

from modelrepo import SpecError
from modelrepo.vocabulary import read_vocabulary, vocabulary_problems, write_vocabulary

ODD_WORDS = ["the", "Apple", "apple,", ".", "a\tb", "x\ry", "line\u2028sep", "naïve", "日本", " "]


def test_round_trip_keeps_every_word_and_its_row(tmp_path: Path) -> None:
    path = tmp_path / "vocab.txt"
    write_vocabulary(path, ODD_WORDS)
    assert read_vocabulary(path) == ODD_WORDS


@pytest.mark.parametrize(
    ("words", "problem"),
    [
        (["a", ""], "row 1: the word is empty"),
        (["a\nb"], "contains a newline"),
        (["a", "b", "a"], "row 2: the word 'a' appears twice"),
    ],
)
def test_refuses_words_a_line_cannot_hold(tmp_path: Path, words: list[str], problem: str):
    assert any(problem in found for found in vocabulary_problems(words))
    with pytest.raises(ValueError, match=problem):
        write_vocabulary(tmp_path / "vocab.txt", words)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty or truncated"),
        (b"a\nb", "empty or truncated"),
        (b"a\n\xff\n", "not UTF-8"),
        (b"a\na\n", "appears twice"),
    ],
)
def test_reading_a_damaged_file_fails_clearly(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "vocab.txt"
    path.write_bytes(content)
    with pytest.raises(SpecError, match=message):
        read_vocabulary(path)
