"""``vectors(response)`` reads every encoding the server sends, as the server built it."""

from __future__ import annotations

import numpy as np
import pytest

from proto.embedding.v1 import embedding_pb2 as pb
from service.client import ENCODINGS, embed_request, vectors
from service.domain import EmbeddingResult, EmbedOutcome
from service.transport import codec

DIM = 16
RNG = np.random.default_rng(3)
POOLED = RNG.standard_normal(DIM).astype(np.float32)
PER_TOKEN = RNG.standard_normal((4, DIM)).astype(np.float32)


def over_the_wire(encoding: str) -> pb.EmbedResponse:
    """A pooled and a per-token embedding as the server answers a request with ``encoding``,
    serialised and parsed again."""
    results = [
        EmbeddingResult(vectors=POOLED, tokens=("a", "b", "c")),
        EmbeddingResult(vectors=PER_TOKEN, tokens=("a", "b", "c", "d")),
    ]
    outcome = EmbedOutcome(results=results, dim=DIM, model="m", version=1)
    request = embed_request(["x"], "m", encoding=encoding)
    response = codec.embed_response(outcome, codec.vector_encoding(request))
    return pb.EmbedResponse.FromString(response.SerializeToString())


@pytest.mark.parametrize("encoding", ["float", "float32"])
def test_float_and_float32_read_back_exactly(encoding: str) -> None:
    pooled, per_token = vectors(over_the_wire(encoding))
    assert pooled.dtype == np.float32 and pooled.shape == (DIM,)
    assert per_token.shape == (4, DIM)
    assert np.array_equal(pooled, POOLED) and np.array_equal(per_token, PER_TOKEN)


def test_float16_reads_back_as_float32_to_half_precision() -> None:
    pooled, per_token = vectors(over_the_wire("float16"))
    assert pooled.dtype == np.float32 and per_token.shape == (4, DIM)
    np.testing.assert_allclose(pooled, POOLED, rtol=2**-11, atol=1e-7)
    np.testing.assert_allclose(per_token, PER_TOKEN, rtol=2**-11, atol=1e-7)


def test_decoded_vectors_are_writable_copies() -> None:
    response = over_the_wire("float32")
    pooled, _ = vectors(response)
    pooled[:] = 0  # np.frombuffer alone would be a read-only view of the message's bytes
    assert np.array_equal(vectors(response)[0], POOLED)


def test_float16_halves_the_bytes_float32_matches_packed_floats() -> None:
    """float32 bytes save CPU, not bytes (packed floats are 4 bytes each too)."""
    sizes = {name: over_the_wire(name).ByteSize() for name in ENCODINGS}
    payload = (DIM + 4 * DIM) * 4  # the floats of both embeddings as float32
    assert abs(sizes["float32"] - sizes["float"]) < 8
    assert sizes["float"] - sizes["float16"] == pytest.approx(payload / 2, abs=8)


def test_encoding_names_map_to_the_proto_values() -> None:
    assert embed_request(["x"], "m").encoding == pb.VECTOR_ENCODING_UNSPECIFIED
    assert embed_request(["x"], "m", encoding="float16").encoding == pb.VECTOR_ENCODING_FLOAT16
    with pytest.raises(ValueError, match="encoding must be one of"):
        embed_request(["x"], "m", encoding="int8")


def test_an_encoding_unknown_to_the_client_is_refused() -> None:
    response = pb.EmbedResponse(dim=2, encoding=7)  # type: ignore[arg-type]
    response.embeddings.add(raw_values=b"\x00" * 8, num_tokens=1)
    with pytest.raises(ValueError, match="encoding 7 of the response is unknown"):
        vectors(response)
