"""ELMo character ids exactly as bilm-tf's Batcher and AllenNLP's character mapper build them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from modelrepo.elmo_characters import batch_char_ids, char_ids, token_char_ids, tokenize

BOW, EOW, PAD = 259, 260, 261
BOS_CHAR, EOS_CHAR = 257, 258


def _expected(*body: int) -> list[int]:
    return [BOW, *body, EOW] + [PAD] * (50 - len(body) - 2)


def test_the() -> None:
    assert token_char_ids("The").tolist() == [259, 85, 105, 102, 260] + [261] * 45


def test_sentence_markers() -> None:
    assert token_char_ids("<S>").tolist() == [259, 257, 260] + [261] * 47
    assert token_char_ids("</S>").tolist() == [259, 258, 260] + [261] * 47


def test_multibyte_token_is_spelled_in_utf8_bytes() -> None:
    assert token_char_ids("•").tolist() == _expected(0xE2 + 1, 0x80 + 1, 0xA2 + 1)


def test_long_token_keeps_48_bytes_and_may_cut_a_character() -> None:
    assert token_char_ids("a" * 60).tolist() == _expected(*[ord("a") + 1] * 48)
    ids = token_char_ids("a" + "é" * 30)  # 61 bytes; byte 48 is the first half of an "é"
    assert ids[1] == ord("a") + 1
    assert ids[48] == 0xC3 + 1
    assert ids[49] == EOW


def test_unencodable_characters_are_dropped() -> None:
    assert token_char_ids("a\ud800b").tolist() == _expected(ord("a") + 1, ord("b") + 1)


def test_unk_is_spelled_literally() -> None:
    assert token_char_ids("<UNK>").tolist() == _expected(*(b + 1 for b in b"<UNK>"))


def test_shorter_max_chars() -> None:
    assert token_char_ids("abcdef", max_chars=5).tolist() == [BOW, 98, 99, 100, EOW]
    with pytest.raises(ValueError, match="at least 3"):
        token_char_ids("a", max_chars=2)


def test_sentence_adds_markers() -> None:
    ids = char_ids(["The", "cat"])
    assert ids.shape == (4, 50)
    assert ids.dtype == np.int64
    assert ids[0].tolist() == token_char_ids("<S>").tolist()
    assert ids[1].tolist() == token_char_ids("The").tolist()
    assert ids[3].tolist() == token_char_ids("</S>").tolist()


def test_sentence_rejects_a_plain_string() -> None:
    with pytest.raises(TypeError, match="tokenize"):
        char_ids("The cat")


def test_batch_pads_with_zero_rows() -> None:
    batch = batch_char_ids([["a", "b", "c"], ["d"], []])
    assert batch.shape == (3, 5, 50)
    assert batch.dtype == np.int64
    np.testing.assert_array_equal(batch[1, :3], char_ids(["d"]))
    assert not batch[1, 3:].any()
    np.testing.assert_array_equal(batch[2, :2], char_ids([]))
    assert not batch[2, 2:].any()
    assert (batch[0] > 0).all()


def test_empty_batch() -> None:
    assert batch_char_ids([]).shape == (0, 2, 50)


def test_tokenize_splits_on_any_whitespace() -> None:
    assert tokenize("  The\tU.S.\n  Centers ,\u3000x ") == ["The", "U.S.", "Centers", ",", "x"]
    assert tokenize("") == []


def test_module_imports_no_inference_or_training_framework() -> None:
    code = (
        "import sys, modelrepo.elmo_characters; "
        "assert not {'torch', 'onnx', 'onnxruntime'} & set(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[3])
