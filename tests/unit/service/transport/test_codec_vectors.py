"""How ``codec.embed_response`` puts vectors on the wire: repeated float or little-endian bytes."""

from __future__ import annotations

import numpy as np
import pytest

from proto.embedding.v1 import embedding_pb2 as pb
from service.domain import EmbeddingResult, EmbedOutcome
from service.errors import InvalidArgument
from service.transport import codec

DIM = 768
RNG = np.random.default_rng(7)
POOLED = RNG.standard_normal(DIM).astype(np.float32)
PER_TOKEN = RNG.standard_normal((5, DIM)).astype(np.float32)  # POOLING_NONE: 5 tokens


def result(vectors: np.ndarray) -> EmbeddingResult:
    """A pooled vector from 3 tokens, or one row per token."""
    count = len(vectors) if vectors.ndim == 2 else 3
    return EmbeddingResult(vectors=vectors, tokens=tuple(f"t{i}" for i in range(count)))


def outcome(*vectors: np.ndarray) -> EmbedOutcome:
    return EmbedOutcome(results=[result(v) for v in vectors], dim=DIM, model="m", version=1)


def test_unset_encoding_sends_repeated_floats() -> None:
    response = codec.embed_response(outcome(POOLED, PER_TOKEN))
    assert response.encoding == pb.VECTOR_ENCODING_UNSPECIFIED
    pooled, per_token = response.embeddings
    assert np.array_equal(np.asarray(pooled.values, dtype=np.float32), POOLED)
    assert np.array_equal(np.asarray(per_token.values, dtype=np.float32), PER_TOKEN.ravel())
    assert pooled.raw_values == b"" and per_token.num_tokens == 5


@pytest.mark.parametrize("rows", [0, 1, 40, 1100])  # lengths of 1 to 4 varint bytes
def test_repeated_floats_are_what_a_list_of_floats_would_give(rows: int) -> None:
    """The float form is merged in as packed wire bytes: the message must be the one built
    from Python floats, field for field and byte for byte."""
    per_token = RNG.standard_normal((rows, DIM)).astype(np.float32)
    response = codec.embed_response(outcome(per_token))
    (embedding,) = response.embeddings
    from_list = pb.Embedding(
        values=per_token.ravel().tolist(), num_tokens=rows, tokens=[f"t{i}" for i in range(rows)]
    )
    assert embedding == from_list
    assert embedding.SerializeToString() == from_list.SerializeToString()
    parsed = pb.EmbedResponse.FromString(response.SerializeToString())
    assert len(parsed.embeddings[0].values) == rows * DIM


def test_float32_bytes_are_the_float_values_exactly() -> None:
    floats = codec.embed_response(outcome(POOLED, PER_TOKEN))
    raw = codec.embed_response(outcome(POOLED, PER_TOKEN), pb.VECTOR_ENCODING_FLOAT32)
    assert raw.encoding == pb.VECTOR_ENCODING_FLOAT32
    for as_floats, as_bytes in zip(floats.embeddings, raw.embeddings, strict=True):
        assert len(as_bytes.values) == 0
        decoded = np.frombuffer(as_bytes.raw_values, dtype="<f4")
        assert np.array_equal(decoded, np.asarray(as_floats.values, dtype=np.float32))
        assert (as_bytes.num_tokens, list(as_bytes.tokens)) == (
            as_floats.num_tokens,
            list(as_floats.tokens),
        )


def test_float16_bytes_hold_the_values_to_half_precision() -> None:
    raw = codec.embed_response(outcome(POOLED, PER_TOKEN), pb.VECTOR_ENCODING_FLOAT16)
    pooled, per_token = raw.embeddings
    assert len(pooled.raw_values) == DIM * 2
    assert np.array_equal(np.frombuffer(pooled.raw_values, "<f2"), POOLED.astype("<f2"))
    decoded = np.frombuffer(per_token.raw_values, "<f2").astype(np.float32)
    # float16 keeps 11 significant bits: a relative error of at most 2**-11.
    np.testing.assert_allclose(decoded, PER_TOKEN.ravel(), rtol=2**-11, atol=1e-7)


def test_per_token_bytes_are_one_row_major_buffer() -> None:
    """POOLING_NONE: num_tokens x dim values in one buffer, like the float form; a
    non-contiguous (transposed) array still goes out row-major."""
    column_major = np.asfortranarray(PER_TOKEN)
    raw = codec.embed_response(outcome(column_major), pb.VECTOR_ENCODING_FLOAT32)
    (embedding,) = raw.embeddings
    assert embedding.num_tokens == 5 and len(embedding.raw_values) == 5 * DIM * 4
    rows = np.frombuffer(embedding.raw_values, "<f4").reshape(embedding.num_tokens, raw.dim)
    assert np.array_equal(rows, PER_TOKEN)


def test_any_computed_dtype_goes_out_as_little_endian_float32() -> None:
    big_endian = POOLED.astype(">f8")
    raw = codec.embed_response(outcome(big_endian), pb.VECTOR_ENCODING_FLOAT32)
    assert raw.embeddings[0].raw_values == POOLED.astype("<f4").tobytes()


def test_float16_overflows_to_infinity_without_a_warning() -> None:
    huge = np.full(DIM, 1e6, dtype=np.float32)
    with np.errstate(over="raise"):
        raw = codec.embed_response(outcome(huge), pb.VECTOR_ENCODING_FLOAT16)
    assert np.isposinf(np.frombuffer(raw.embeddings[0].raw_values, "<f2")).all()


@pytest.mark.parametrize(
    "encoding",
    [pb.VECTOR_ENCODING_UNSPECIFIED, pb.VECTOR_ENCODING_FLOAT32, pb.VECTOR_ENCODING_FLOAT16],
)
def test_known_encodings_pass_the_check(encoding: pb.VectorEncoding) -> None:
    assert codec.vector_encoding(pb.EmbedRequest(encoding=encoding)) == encoding


def test_an_unknown_encoding_is_an_invalid_argument() -> None:
    request = pb.EmbedRequest(model="m", texts=["x"], encoding=9)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match="encoding 9 is unknown; use VECTOR_ENCODING_FLOAT32"):
        codec.vector_encoding(request)


def test_the_encoding_is_not_part_of_the_query() -> None:
    """The cache keys come from the query's options: every encoding shares one entry."""
    plain = pb.EmbedRequest(model="m", texts=["x"], pooling=pb.POOLING_MEAN)
    raw = pb.EmbedRequest(
        model="m", texts=["x"], pooling=pb.POOLING_MEAN, encoding=pb.VECTOR_ENCODING_FLOAT16
    )
    assert codec.embed_query(plain) == codec.embed_query(raw)
