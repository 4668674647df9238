"""The binary value format: exact round trips, and every kind of damage detected."""

from __future__ import annotations

import numpy as np
import pytest

from service.cache.values import (
    CorruptValue,
    decode_embedding,
    decode_fill_mask,
    encode_embedding,
    encode_fill_mask,
)
from service.domain import EmbeddingResult, FillMaskResult, MaskFill

rng = np.random.default_rng(0)
POOLED = EmbeddingResult(
    vectors=rng.standard_normal(32).astype(np.float32),
    tokens=("[CLS]", "the", "bank", "[SEP]"),
    truncated=True,
)
TOKENS = EmbeddingResult(
    vectors=rng.standard_normal((3, 8)).astype(np.float32),
    tokens=("naïve", "café", "😀\u200f"),
    unknown_tokens=("zzz", "\x00"),
)
FILLS = FillMaskResult(
    masks=(
        (MaskFill("apple", 0.5, 7, "the apple ."), MaskFill("pear", 0.25, 9, "the pear .")),
        (MaskFill("##s", 0.125, 3, "cats"), MaskFill("x", 0.0625, 4, "cat x")),
    )
)


@pytest.mark.parametrize("result", [POOLED, TOKENS], ids=["pooled", "per-token"])
def test_embedding_round_trip_is_exact(result: EmbeddingResult) -> None:
    decoded = decode_embedding(encode_embedding(result))
    assert decoded.vectors.tobytes() == result.vectors.tobytes()
    assert decoded.vectors.shape == result.vectors.shape
    assert decoded.tokens == result.tokens
    assert decoded.truncated == result.truncated
    assert decoded.unknown_tokens == result.unknown_tokens
    assert decoded.cached and not result.cached


def test_fill_mask_round_trip() -> None:
    decoded = decode_fill_mask(encode_fill_mask(FILLS))
    assert decoded.cached
    assert decoded.masks == FILLS.masks  # scores are exact in float32


def damaged(value: bytes) -> list[bytes]:
    flipped = bytearray(value)
    flipped[-5] ^= 0x01
    header = bytearray(value)
    header[5] = 2  # kind
    return [b"", value[:10], value[:-1], value + b"x", bytes(flipped), bytes(header), b"EMBC" * 9]


@pytest.mark.parametrize("index", range(7))
def test_damaged_values_are_detected(index: int) -> None:
    with pytest.raises(CorruptValue):
        decode_embedding(damaged(encode_embedding(TOKENS))[index])


def test_kinds_are_not_confused() -> None:
    with pytest.raises(CorruptValue):
        decode_fill_mask(encode_embedding(POOLED))
    with pytest.raises(CorruptValue):
        decode_embedding(encode_fill_mask(FILLS))
