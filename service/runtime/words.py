"""Texts as whitespace words: the one guard against texts without a word, and word offsets.

Every runtime refuses a text that is empty or only whitespace with the same message, and the
runtimes that split at whitespace (ELMo, word2vec) report where each word lies in the text.
The rule is Python's ``str.split()``: ``\\s`` in a ``str`` pattern is exactly ``str.isspace()``,
so the spans of ``\\S+`` are the words ``str.split()`` returns, in order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from service.errors import InvalidArgument

_WORD = re.compile(r"\S+")
NAMED_AT_MOST = 10
"""Unknown words or pieces an error message names; the rest are counted."""


def require_words(texts: Sequence[str]) -> None:
    """Refuse the request at its first text that has no word (empty or whitespace only)."""
    for index, text in enumerate(texts):
        if not text or text.isspace():
            raise InvalidArgument(f"texts[{index}] is empty; every text needs some words")


def whitespace_offsets(text: str) -> tuple[tuple[int, int], ...]:
    """Character (start, end) of every word ``str.split()`` finds, in order."""
    return tuple(match.span() for match in _WORD.finditer(text))


def quoted(pieces: Sequence[str]) -> str:
    """Distinct pieces of text for an error message: the first few quoted, the rest counted."""
    distinct = list(dict.fromkeys(pieces))
    named = ", ".join(repr(piece) for piece in distinct[:NAMED_AT_MOST])
    more = len(distinct) - NAMED_AT_MOST
    return named + (f" and {more} more" if more > 0 else "")
