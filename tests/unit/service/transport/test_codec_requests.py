"""Embed requests read from the wire: normalisation as the newer tri-state or the older bool,
and the sentence-model options carried as given."""

from __future__ import annotations

import pytest

from proto.embedding.v1 import embedding_pb2 as pb
from service.errors import InvalidArgument
from service.transport.codec import embed_query


@pytest.mark.parametrize(
    ("fields", "normalize"),
    [
        ({}, None),  # the model's default
        ({"normalization": pb.NORMALIZATION_ON}, True),
        ({"normalization": pb.NORMALIZATION_OFF}, False),
        ({"normalize": True}, True),  # an older client
        ({"normalize": True, "normalization": pb.NORMALIZATION_OFF}, False),  # the newer wins
        ({"normalize": False}, None),  # false never said "off"
    ],
)
def test_normalisation_reads_both_fields(fields: dict[str, object], normalize: bool | None) -> None:
    request = pb.EmbedRequest(model="m", texts=["a"], **fields)  # type: ignore[arg-type]
    assert embed_query(request).normalize is normalize


def test_an_unknown_normalisation_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="normalization 7 is unknown"):
        embed_query(pb.EmbedRequest(model="m", texts=["a"], normalization=7))  # type: ignore[arg-type]


def test_prompt_name_dimensions_and_mean_sqrt_len_are_carried() -> None:
    request = pb.EmbedRequest(
        model="m",
        texts=["a"],
        pooling=pb.POOLING_MEAN_SQRT_LEN,
        prompt_name="query",
        dimensions=64,
    )
    query = embed_query(request)
    assert (query.pooling.value if query.pooling else None) == "mean_sqrt_len"
    assert (query.prompt_name, query.dimensions) == ("query", 64)
