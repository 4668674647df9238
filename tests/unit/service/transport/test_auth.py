"""Token files and bearer metadata: parsing, constant-time matching, rotation, failing closed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.transport.auth import TokenFile, accepted, bearer_token, parse_tokens


def test_token_files_skip_blank_lines_and_comments() -> None:
    text = "# ops tokens\n\n  alpha  \n#beta\nga#mma\n"
    assert parse_tokens(text) == [b"alpha", b"ga#mma"]


def test_the_bearer_scheme_is_read_from_the_authorization_metadata() -> None:
    assert bearer_token((("x-request-id", "r"), ("authorization", "Bearer abc"))) == b"abc"
    assert bearer_token((("authorization", "bearer  abc "),)) == b"abc"
    assert bearer_token((("authorization", "Basic abc"),)) is None
    assert bearer_token((("authorization", "Bearer "),)) is None
    assert bearer_token(None) is None


def test_a_token_is_accepted_only_when_it_matches_one_exactly() -> None:
    tokens = [b"alpha", b"beta"]
    assert accepted(b"beta", tokens)
    assert not accepted(b"bet", tokens) and not accepted(b"betaa", tokens)
    assert not accepted(b"alpha", [])
    assert accepted("ünïcode".encode(), ["ünïcode".encode()])


def test_a_changed_file_is_re_read_and_an_unreadable_one_refuses_all(tmp_path: Path) -> None:
    path = tmp_path / "tokens"
    path.write_text("alpha\n")
    tokens = TokenFile(path, poll_interval_s=0)
    assert tokens.tokens() == [b"alpha"]
    path.write_text("beta\ngamma\n")
    assert tokens.tokens() == [b"beta", b"gamma"]
    os.remove(path)
    assert tokens.tokens() == []
    path.write_text("delta\n")
    assert tokens.tokens() == [b"delta"]


def test_a_token_file_must_exist_and_hold_a_token(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        TokenFile(tmp_path / "missing")
    empty = tmp_path / "empty"
    empty.write_text("# nothing yet\n\n")
    with pytest.raises(RuntimeError, match="holds no tokens"):
        TokenFile(empty)
