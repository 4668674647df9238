"""Where a text's unknown tokens lie, and whether a fill-mask text was cut, reach the wire and
survive the cache's value format."""

from __future__ import annotations

import numpy as np

from proto.embedding.v1 import embedding_pb2 as pb
from service.cache.values import (
    decode_embedding,
    decode_fill_mask,
    encode_embedding,
    encode_fill_mask,
)
from service.domain import (
    EmbeddingResult,
    EmbedOutcome,
    FillMaskOutcome,
    FillMaskResult,
    MaskFill,
)
from service.transport.codec import embed_response, fill_mask_response

UNKNOWN = EmbeddingResult(
    vectors=np.ones(4, dtype=np.float32),
    tokens=("[CLS]", "the", "[UNK]", "[UNK]", "[SEP]"),
    unknown_tokens=("世", "界"),
    unknown_offsets=((4, 5), (5, 6)),
)
CUT = FillMaskResult(masks=((MaskFill("apple", 0.5, 7, "the apple"),),), truncated=True)


def test_unknown_offsets_are_flattened_as_tokenize_offsets() -> None:
    (embedding,) = embed_response(EmbedOutcome([UNKNOWN], 4, "bert", 1)).embeddings
    assert list(embedding.unknown_tokens) == ["世", "界"]
    assert list(embedding.unknown_offsets) == [4, 5, 5, 6]


def test_a_cut_fill_mask_text_says_so() -> None:
    (result,) = fill_mask_response(FillMaskOutcome([CUT], "bert", 1)).results
    assert result.truncated
    assert isinstance(result, pb.FillMaskResult)


def test_the_cache_keeps_unknown_offsets_and_truncation() -> None:
    decoded = decode_embedding(encode_embedding(UNKNOWN))
    assert decoded.unknown_offsets == UNKNOWN.unknown_offsets
    assert decoded.unknown_tokens == UNKNOWN.unknown_tokens
    fills = decode_fill_mask(encode_fill_mask(CUT))
    assert fills.truncated and fills.masks == CUT.masks
