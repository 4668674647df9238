"""ELMo over a real channel: the AllenNLP reference biLM, imported through the real exporter and
served, returns the reference outputs.

Only the first reference call (``sentences[k][0]``) is stateless, so it is the one the server
(zero initial states for every request) can reproduce; the stateful replay of all 10 calls runs
on the published graph in ``tests/unit/export/elmo/test_exporter.py``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest

from export.elmo.exporter import import_elmo
from proto.embedding.v1 import embedding_pb2 as pb
from service.client import EmbeddingClient
from tests.integration.harness import ServerThread, running_server
from tests.unit.export.elmo.reference import REFERENCE_SETS

REFERENCE = REFERENCE_SETS[0]  # allennlp: the biLM with residual connections
MODEL = "elmo"
DIM = 32
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def elmo_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp("elmo-serving") / "models"
    import_elmo(REFERENCE.options_path, REFERENCE.weights_path, models, MODEL)
    return models


@pytest.fixture(scope="module")
def elmo_server(elmo_models: Path) -> Iterator[ServerThread]:
    with running_server(elmo_models) as running:
        yield running


@pytest.fixture
def client(elmo_server: ServerThread) -> Iterator[EmbeddingClient]:
    with EmbeddingClient(elmo_server.target, timeout=60) as connected:
        yield connected


def per_token(response: pb.EmbedResponse) -> list[np.ndarray]:
    """Every embedding as (num_tokens, dim), also for one-word texts."""
    return [
        np.asarray(embedding.values, dtype=np.float32).reshape(embedding.num_tokens, response.dim)
        for embedding in response.embeddings
    ]


def pooled(response: pb.EmbedResponse) -> list[np.ndarray]:
    return [np.asarray(embedding.values, dtype=np.float32) for embedding in response.embeddings]


def first_call() -> list[str]:
    sentences = REFERENCE.sentences()
    return [sentences[row][0] for row in range(3)]


def mixed_texts() -> list[str]:
    """Reference sentences of 3 to 53 words plus very short texts, in no particular order."""
    sentences = REFERENCE.sentences()
    texts = [sentences[row][call] for row, call in ((0, 3), (1, 2), (2, 0), (0, 0), (1, 9))]
    return [*texts, "a", "the cat sat", sentences[2][1], "•"]


def test_first_reference_call_top_layer(client: EmbeddingClient) -> None:
    texts = first_call()
    response = client.embed(texts, MODEL, pooling="none", layers=[2])
    assert response.dim == DIM
    for row, (text, embedding, got) in enumerate(
        zip(texts, response.embeddings, per_token(response), strict=True)
    ):
        expected = REFERENCE.expected_top_layer(row, 0)
        assert tuple(embedding.tokens) == tuple(text.split())
        assert embedding.num_tokens == len(text.split()) == expected.shape[0]
        assert not embedding.truncated
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= TOLERANCE


def test_each_reference_sentence_alone_matches_too(client: EmbeddingClient) -> None:
    for row, text in enumerate(first_call()):
        (got,) = per_token(client.embed([text], MODEL, pooling="none", layers=[2]))
        assert np.abs(got - REFERENCE.expected_top_layer(row, 0)).max() <= TOLERANCE


def test_batched_equals_single_requests(client: EmbeddingClient) -> None:
    texts = mixed_texts()
    assert len({len(text.split()) for text in texts}) >= 7
    batched = per_token(client.embed(texts, MODEL, pooling="none"))
    for text, together in zip(texts, batched, strict=True):
        (alone,) = per_token(client.embed([text], MODEL, pooling="none"))
        assert together.shape == alone.shape == (len(text.split()), DIM)
        assert np.abs(together - alone).max() <= TOLERANCE


def test_layer0_is_the_token_embedding_duplicated(client: EmbeddingClient) -> None:
    """Each vocabulary word alone: layer 0 is its char-CNN vector, in both halves."""
    words = REFERENCE.vocabulary()
    expected = REFERENCE.expected_token_embeddings()
    assert len(words) == expected.shape[0] == 458
    response = client.embed(words, MODEL, pooling="none", layers=[0])
    for word, embedding, got, row in zip(
        words, response.embeddings, per_token(response), expected, strict=True
    ):
        assert tuple(embedding.tokens) == (word,)
        assert np.abs(got[0] - np.concatenate([row, row])).max() <= TOLERANCE, word


def test_layer0_does_not_depend_on_context(client: EmbeddingClient) -> None:
    words = REFERENCE.vocabulary()
    expected = REFERENCE.expected_token_embeddings()
    text = " ".join(words[100:140])
    (got,) = per_token(client.embed([text], MODEL, pooling="none", layers=[0]))
    want = np.concatenate([expected[100:140], expected[100:140]], axis=1)
    assert np.abs(got - want).max() <= TOLERANCE


def test_default_is_the_equal_weight_scalar_mix(client: EmbeddingClient) -> None:
    texts = mixed_texts()
    layers = [per_token(client.embed(texts, MODEL, pooling="none", layers=[j])) for j in range(3)]
    default = per_token(client.embed(texts, MODEL, pooling="none"))
    zero_weights = per_token(client.embed(texts, MODEL, pooling="none", layer_weights=[0, 0, 0]))
    weights = np.array([1.0, -2.0, 0.5])
    mixed = per_token(client.embed(texts, MODEL, pooling="none", layer_weights=list(weights)))
    pair = per_token(client.embed(texts, MODEL, pooling="none", layers=[0, 2]))
    softmax = np.exp(weights) / np.exp(weights).sum()
    for index in range(len(texts)):
        per_layer = np.stack([layers[j][index] for j in range(3)])
        mean = per_layer.mean(axis=0)
        assert np.abs(default[index] - mean).max() <= 1e-6
        assert np.abs(zero_weights[index] - mean).max() <= 1e-6
        want = np.tensordot(softmax, per_layer, axes=1)
        assert np.abs(mixed[index] - want).max() <= 1e-6
        assert np.abs(pair[index] - (per_layer[0] + per_layer[2]) / 2).max() <= 1e-6


def test_pooling_mean_is_the_default_and_max_and_normalize(client: EmbeddingClient) -> None:
    texts = mixed_texts()
    tokens = per_token(client.embed(texts, MODEL, pooling="none"))
    default = pooled(client.embed(texts, MODEL))
    mean = pooled(client.embed(texts, MODEL, pooling="mean"))
    largest = pooled(client.embed(texts, MODEL, pooling="max", normalize=True))
    for index, states in enumerate(tokens):
        assert default[index].shape == (DIM,)
        assert np.abs(default[index] - states.mean(axis=0)).max() <= 1e-6
        assert np.abs(mean[index] - default[index]).max() == 0
        expected = states.max(axis=0)
        assert np.abs(largest[index] - expected / np.linalg.norm(expected)).max() <= 1e-6


def test_model_info(client: EmbeddingClient) -> None:
    info = client.get_model(MODEL)
    assert info.architecture == "elmo"
    assert (info.dim, info.num_layers, info.max_sequence_length) == (DIM, 2, 512)
    assert list(info.default_layers) == [0, 1, 2]
    assert info.default_pooling == pb.POOLING_MEAN
    assert list(info.capabilities) == ["embed"]


def test_tokenize_is_the_whitespace_rule(client: EmbeddingClient) -> None:
    text = "  The\tU.S.  •\u3000centers ,\n"
    (result,) = client.tokenize([text], MODEL).results
    assert list(result.tokens) == text.split() == ["The", "U.S.", "•", "centers", ","]
    assert list(result.ids) == []
    bounds = list(result.offsets)
    spans = [text[bounds[i] : bounds[i + 1]] for i in range(0, len(bounds), 2)]
    assert spans == text.split()


def test_long_text_is_refused_or_truncated(client: EmbeddingClient) -> None:
    words = (REFERENCE.vocabulary() * 2)[:600]
    with pytest.raises(grpc.RpcError) as raised:
        client.embed([" ".join(words)], MODEL)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "600 words, more than elmo's maximum of 510" in raised.value.details()
    response = client.embed([" ".join(words)], MODEL, pooling="none", truncate=True)
    (embedding,) = response.embeddings
    assert embedding.truncated
    assert embedding.num_tokens == 510 and list(embedding.tokens) == words[:510]
    (cut,) = per_token(response)
    (kept,) = per_token(client.embed([" ".join(words[:510])], MODEL, pooling="none"))
    assert np.abs(cut - kept).max() <= TOLERANCE


@pytest.mark.parametrize(
    ("options", "texts", "message"),
    [
        ({"layers": [3]}, ["a b"], "choose layers from 0 (embeddings) to 2"),
        ({"layers": [-1]}, ["a b"], "layer -1 does not exist"),
        ({"layer_weights": [1.0, 1.0]}, ["a b"], "needs 3 weights"),
        ({"layer_weights": [1.0, 1.0, 1.0, 1.0]}, ["a b"], "needs 3 weights"),
        ({}, ["fine", " \t\n"], "texts[1] is empty"),
        ({}, [""], "texts[0] is empty"),
        ({"pooling": "cls"}, ["a b"], "pooling CLS is not defined"),
    ],
)
def test_invalid_requests(
    client: EmbeddingClient, options: dict[str, Any], texts: list[str], message: str
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        client.embed(texts, MODEL, **options)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in raised.value.details()
