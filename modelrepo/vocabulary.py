"""The vocabulary file of static word-vector models (word2vec): ``vocab.txt``.

One word per line, UTF-8, ``\\n`` after every word (none inside one), in the order of the rows
of the model's embedding matrix: line *i* is the word whose vector is row *i*. Words are stored
exactly as the source had them (case, punctuation and any non-newline character kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from modelrepo.repository import SpecError

VOCABULARY_FILE = "vocab.txt"


def vocabulary_problems(words: Sequence[str]) -> list[str]:
    """Why ``words`` cannot be stored as a vocabulary file (empty list: they can)."""
    problems = []
    seen: set[str] = set()
    for row, word in enumerate(words):
        if not word:
            problems.append(f"row {row}: the word is empty")
        elif "\n" in word:
            problems.append(f"row {row}: the word {word!r} contains a newline")
        elif word in seen:
            problems.append(f"row {row}: the word {word!r} appears twice")
        seen.add(word)
    return problems


def write_vocabulary(path: Path, words: Sequence[str]) -> None:
    """Write ``words`` in row order; refuses empty, duplicate or multi-line words."""
    problems = vocabulary_problems(words)
    if problems:
        raise ValueError(f"{path}: cannot store this vocabulary: {'; '.join(problems[:5])}")
    path.write_bytes("".join(f"{word}\n" for word in words).encode("utf-8"))


def read_vocabulary(path: Path) -> list[str]:
    """The words of a vocabulary file in row order, checked as ``write_vocabulary`` wrote them."""
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as error:
        raise SpecError(f"{path}: not UTF-8 ({error}); re-export the model") from None
    if not text.endswith("\n"):
        raise SpecError(f"{path}: empty or truncated (no newline after the last word)")
    words = text[:-1].split("\n")  # not splitlines(): a word may hold "\r" or "\u2028"
    problems = vocabulary_problems(words)
    if problems:
        raise SpecError(f"{path}: {'; '.join(problems[:5])}")
    return words
