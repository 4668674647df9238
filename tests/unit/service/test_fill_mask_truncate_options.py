"""FillMask's truncate, carried from the wire to the operation: it reaches the query, the
client's request and the cache key (a cut text's fills are not the whole text's)."""

from __future__ import annotations

from proto.embedding.v1 import embedding_pb2 as pb
from service.cache.keys import fill_mask_options, options_digest
from service.client.messages import fill_mask_request
from service.transport.codec import fill_mask_query


def test_the_codec_carries_truncate() -> None:
    assert fill_mask_query(pb.FillMaskRequest(model="m", texts=["a"], truncate=True)).truncate
    assert not fill_mask_query(pb.FillMaskRequest(model="m", texts=["a"])).truncate


def test_the_client_request_says_truncate() -> None:
    assert fill_mask_request(["a [MASK]"], "m", truncate=True).truncate
    assert not fill_mask_request(["a [MASK]"], "m").truncate


def test_truncate_changes_the_fill_mask_key() -> None:
    whole = options_digest(fill_mask_options(top_k=5, truncate=False))
    assert options_digest(fill_mask_options(top_k=5, truncate=True)) != whole
    assert options_digest(fill_mask_options(top_k=6, truncate=False)) != whole
