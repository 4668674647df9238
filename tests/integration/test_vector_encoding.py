"""Vectors as repeated float or raw little-endian bytes, over a real channel to a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import grpc
import numpy as np
import pytest

from proto.embedding.v1 import embedding_pb2 as pb
from service.client import EmbeddingClient, embed_request, vectors
from tests.integration.harness import ServerThread, running_server

ROOT = Path(__file__).resolve().parents[2]
MODEL = "tiny-mlm"
TEXTS = ["the river bank is muddy", "a cat", "the bank raised its rates again this year"]


def assert_half_close(actual: object, expected: object) -> None:
    """Equal to float16 precision: 11 significant bits."""
    np.testing.assert_allclose(np.asarray(actual), np.asarray(expected), rtol=2**-11, atol=1e-6)


@pytest.mark.parametrize("pooling", ["mean", "cls", "none"])
def test_every_encoding_carries_the_same_vectors(client: EmbeddingClient, pooling: str) -> None:
    floats = client.embed(TEXTS, MODEL, pooling=pooling)
    raw32 = client.embed(TEXTS, MODEL, pooling=pooling, encoding="float32")
    raw16 = client.embed(TEXTS, MODEL, pooling=pooling, encoding="float16")
    assert (floats.encoding, raw32.encoding, raw16.encoding) == (
        pb.VECTOR_ENCODING_UNSPECIFIED,
        pb.VECTOR_ENCODING_FLOAT32,
        pb.VECTOR_ENCODING_FLOAT16,
    )
    assert all(len(e.values) == 0 and e.raw_values for e in raw32.embeddings)
    for as_floats, as_32, as_16 in zip(
        vectors(floats), vectors(raw32), vectors(raw16), strict=True
    ):
        assert np.array_equal(as_floats, as_32)
        assert_half_close(as_16, as_floats)
        assert as_16.dtype == np.float32


def test_pooling_none_bytes_are_num_tokens_by_dim(client: EmbeddingClient) -> None:
    response = client.embed(TEXTS, MODEL, pooling="none", encoding="float16")
    for embedding, vector in zip(response.embeddings, vectors(response), strict=True):
        assert embedding.num_tokens == len(embedding.tokens) > 1
        assert len(embedding.raw_values) == embedding.num_tokens * response.dim * 2
        assert vector.shape == (embedding.num_tokens, response.dim)


def test_a_stream_carries_the_encoding_of_each_message(client: EmbeddingClient) -> None:
    requests = [
        embed_request(TEXTS[:1], MODEL, encoding="float32"),
        embed_request(TEXTS[:1], MODEL),
        embed_request(TEXTS[:1], MODEL, encoding="float16"),
    ]
    first, second, third = client.embed_stream(requests)
    assert [r.encoding for r in (first, second, third)] == [1, 0, 2]
    assert np.array_equal(vectors(first)[0], vectors(second)[0])
    assert_half_close(vectors(third)[0], vectors(second)[0])


@pytest.mark.parametrize("value", [3, 42, -1])
def test_an_unknown_encoding_is_invalid_argument(client: EmbeddingClient, value: int) -> None:
    request = pb.EmbedRequest(model=MODEL, texts=["x"], encoding=value)  # type: ignore[arg-type]
    with pytest.raises(grpc.RpcError) as raised:
        client.stub.Embed(request)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"encoding {value} is unknown; use VECTOR_ENCODING_FLOAT32" in raised.value.details()


def test_the_cache_serves_every_encoding_from_one_entry(imported: dict[str, Path]) -> None:
    """The cache holds float32 results; the encoding is applied to the reply, not the key."""
    with (
        running_server(imported["models"], cache="on") as server,
        EmbeddingClient(server.target, timeout=30) as client,
    ):
        computed = client.embed(TEXTS, MODEL, encoding="float16")
        hit = client.embed(TEXTS, MODEL, encoding="float32")
        again = client.embed(TEXTS, MODEL)
    assert not any(e.cached for e in computed.embeddings)
    assert all(e.cached for e in hit.embeddings) and all(e.cached for e in again.embeddings)
    for as_16, as_32, as_floats in zip(
        vectors(computed), vectors(hit), vectors(again), strict=True
    ):
        assert np.array_equal(as_32, as_floats)
        assert_half_close(as_16, as_32)


def test_the_console_command_takes_an_encoding(server: ServerThread) -> None:
    def embed_json(*extra: str) -> list[list[float]]:
        command = [sys.executable, "-m", "service.client", "--target", server.target]
        done = subprocess.run(
            [*command, "embed", "--model", MODEL, "--json", *extra, *TEXTS[:2]],
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        loaded: list[list[float]] = json.loads(done.stdout)
        return loaded

    floats, halves = embed_json(), embed_json("--encoding", "float16")
    assert len(floats) == len(halves) == 2
    for as_floats, as_16 in zip(floats, halves, strict=True):
        assert_half_close(as_16, as_floats)
