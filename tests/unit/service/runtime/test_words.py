"""The whitespace rule shared by the runtimes: word offsets and the empty-text guard."""

from __future__ import annotations

import pytest

from service.errors import InvalidArgument
from service.runtime.words import require_words, whitespace_offsets


@pytest.mark.parametrize(
    "text",
    ["", "   ", "one", " a  b\tc\n", "x\u3000y\u00a0z\u2028w\x1cv\x85u", "• é中 ", "end"],
)
def test_offsets_follow_str_split(text: str) -> None:
    offsets = whitespace_offsets(text)
    assert [text[start:end] for start, end in offsets] == text.split()


def test_every_whitespace_character_separates_words() -> None:
    """``\\s`` and ``str.isspace()`` agree on every code point, so offsets match the split."""
    spaces = "".join(chr(point) for point in range(0x110000) if chr(point).isspace())
    text = "a".join(spaces) + "a"
    assert [text[start:end] for start, end in whitespace_offsets(text)] == text.split()


@pytest.mark.parametrize(("texts", "index"), [([""], 0), (["word", " \t\u3000\n"], 1)])
def test_a_text_without_words_is_refused(texts: list[str], index: int) -> None:
    with pytest.raises(InvalidArgument, match=rf"texts\[{index}\] is empty"):
        require_words(texts)


def test_texts_with_words_pass() -> None:
    require_words(["a", " b ", "\u00a0c"])
