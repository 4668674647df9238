"""Evaluation scores what is served: the same inputs through ``export``'s evaluation classes and
through the real server over a real channel give identical vectors, logits and neighbours.

Each text goes to the server alone, so the server's batch is the evaluation's batch of one and
the padded shapes agree: the results must be equal bit for bit, not merely close. Batched
evaluation (several sentences padded together) is then held to the single-text answers within
float32 noise.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from export.bert.exporter import import_bert
from export.bert.inference import OnnxBert
from export.elmo.exporter import import_elmo
from export.elmo.inference import OnnxElmo
from export.word2vec.exporter import import_word2vec
from export.word2vec.inference import OnnxWord2Vec
from modelrepo import read_spec, write_spec
from service.client import EmbeddingClient, vectors
from tests.checkpoints import save_mlm_checkpoint
from tests.integration.harness import running_server
from tests.unit.export.elmo.reference import REFERENCE_SETS
from tests.word2vec_files import save_c_formats, train_tiny_vectors

BERT, ELMO, WORD2VEC = "bert", "elmo", "w2v"
SCALED = "elmo-scaled"  # the same biLM with a scalar-mix scale γ = 2
BATCH_TOLERANCE = 1e-5  # padding a sentence next to longer ones moves float32 sums only
SENTENCES = [
    "the river bank flows past green fields",
    "the bank in town lends money to farmers",
    "musicians tune a bass guitar before the evening concert begins",
    "children play football after school",
]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One repository with a tiny BERT, the reference ELMo and a tiny word2vec, each imported
    through the real exporter; the value per model is its version directory."""
    root = tmp_path_factory.mktemp("parity")
    repository = root / "models"
    reference = REFERENCE_SETS[0]
    binary = save_c_formats(train_tiny_vectors(), root / "word2vec")["binary"]
    elmo = import_elmo(reference.options_path, reference.weights_path, repository, ELMO)
    scaled = repository / SCALED / elmo.name
    shutil.copytree(elmo, scaled)
    spec = read_spec(scaled)
    extra = {**spec.extra, "scalar_mix_gamma": 2.0}
    write_spec(scaled, spec.model_copy(update={"name": SCALED, "extra": extra}))
    return {
        BERT: import_bert(save_mlm_checkpoint(root / "bert"), repository, BERT),
        ELMO: elmo,
        SCALED: scaled,
        WORD2VEC: import_word2vec(binary, True, repository, WORD2VEC),
        "repository": repository,
    }


@pytest.fixture(scope="module")
def client(models: dict[str, Path]) -> Iterator[EmbeddingClient]:
    with (
        running_server(models["repository"]) as server,
        EmbeddingClient(server.target, timeout=60) as connected,
    ):
        yield connected


def served_tokens(client: EmbeddingClient, text: str, model: str, **options: Any) -> np.ndarray:
    """The server's (tokens, dim) vectors of one text sent alone."""
    (tokens,) = vectors(client.embed([text], model, pooling="none", **options))
    return tokens.reshape(-1, tokens.shape[-1])


def served_word_pieces(client: EmbeddingClient, text: str, position: int) -> list[int]:
    """The token rows of word ``position`` of ``text``, from the server's Tokenize offsets."""
    (tokenized,) = client.tokenize([text], BERT).results
    offsets = np.asarray(tokenized.offsets).reshape(-1, 2)  # flattened (start, end) pairs
    start = sum(len(word) + 1 for word in text.split()[:position])
    end = start + len(text.split()[position])
    return [
        row
        for row, (first, last) in enumerate(offsets.tolist())
        if last > first and start <= first < end
    ]


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_bert_word_vectors_are_the_served_vectors(
    models: dict[str, Path], client: EmbeddingClient, layer: int
) -> None:
    bert = OnnxBert(models[BERT])
    for text in SENTENCES:
        words = text.split()
        served = served_tokens(client, text, BERT, layers=[layer])
        for position in range(len(words)):
            pieces = served_word_pieces(client, text, position)
            want = np.asarray(served[pieces].mean(axis=0, dtype=np.float64), dtype=np.float32)
            (got,) = bert.word_vectors([words], [position], layer=layer)
            assert np.array_equal(got, want), (text, position, layer)


def test_bert_batched_evaluation_matches_the_server(
    models: dict[str, Path], client: EmbeddingClient
) -> None:
    bert = OnnxBert(models[BERT])
    positions = [len(text.split()) - 1 for text in SENTENCES]
    batched = bert.word_vectors([text.split() for text in SENTENCES], positions)
    for text, position, got in zip(SENTENCES, positions, batched, strict=True):
        served = served_tokens(client, text, BERT)  # the default layer, the evaluation's too
        pieces = served_word_pieces(client, text, position)
        np.testing.assert_allclose(got, served[pieces].mean(axis=0), atol=BATCH_TOLERANCE)


def test_bert_mask_logits_give_the_served_fill_mask(
    models: dict[str, Path], client: EmbeddingClient
) -> None:
    bert = OnnxBert(models[BERT])
    mask = bert.spec.special_tokens["mask"]
    for text in SENTENCES:
        words = text.split()
        masked = [*words[:2], mask, *words[3:]]
        (logits,) = bert.mask_logits([masked])
        (result,) = client.fill_mask([" ".join(masked)], BERT, top_k=5).results
        (predictions,) = result.masks
        served_ids = [prediction.token_id for prediction in predictions.predictions]
        assert served_ids == np.argsort(-logits, kind="stable")[:5].tolist()
        shifted = np.exp(logits.astype(np.float64) - logits.max())
        probabilities = (shifted / shifted.sum()).astype(np.float32)
        assert [p.score for p in predictions.predictions] == probabilities[served_ids].tolist()


def test_elmo_word_vectors_are_the_served_vectors(
    models: dict[str, Path], client: EmbeddingClient
) -> None:
    elmo = OnnxElmo(models[ELMO])
    for text in SENTENCES:
        words = text.split()
        positions = list(range(len(words)))
        default = served_tokens(client, text, ELMO)  # the server's default mix
        got = elmo.word_vectors([words] * len(words), positions)  # the evaluation's default
        assert np.array_equal(got, default), text
        per_layer, _ = elmo.layers([words])
        for chosen in ([0], [2], [1, 2], [0, 1, 2]):
            served = served_tokens(client, text, ELMO, layers=chosen)
            for position in positions:
                (alone,) = elmo.word_vectors([words], [position], layers=chosen)
                assert np.array_equal(alone, served[position]), (text, position, chosen)
            mixed = elmo.mix(per_layer[:, 0, : len(words)], chosen)  # the evaluation's cache
            assert np.array_equal(mixed, served), (text, chosen)


def test_elmo_evaluation_mixes_as_the_server_where_gamma_is_not_1(
    models: dict[str, Path], client: EmbeddingClient
) -> None:
    """A request naming layers gets their plain mean (γ scales ``layer_weights`` mixes only),
    and so does the evaluation: a γ · mean of its own would score other vectors."""
    elmo = OnnxElmo(models[SCALED])
    assert elmo.runtime.gamma == 2.0
    for text in SENTENCES:
        words = text.split()
        positions = list(range(len(words)))
        served = served_tokens(client, text, SCALED)
        got = elmo.word_vectors([words] * len(words), positions)
        assert np.array_equal(got, served), text
        assert not np.allclose(2.0 * got, served)


def test_elmo_batched_evaluation_matches_the_server(
    models: dict[str, Path], client: EmbeddingClient
) -> None:
    elmo = OnnxElmo(models[ELMO])
    positions = [1] * len(SENTENCES)
    batched = elmo.word_vectors([text.split() for text in SENTENCES], positions)
    for text, got in zip(SENTENCES, batched, strict=True):
        np.testing.assert_allclose(got, served_tokens(client, text, ELMO)[1], atol=BATCH_TOLERANCE)


def test_word2vec_vectors_and_neighbours_are_the_served_ones(
    models: dict[str, Path], client: EmbeddingClient
) -> None:
    model = OnnxWord2Vec(models[WORD2VEC])
    words = model.words[::37]
    served = served_tokens(client, " ".join(words), WORD2VEC)
    assert np.array_equal(model.vectors(words), served)
    for word, neighbours in zip(words, model.neighbours(words, 10), strict=True):
        answer = client.most_similar(WORD2VEC, [word], top_k=10).neighbors
        assert neighbours == [neighbour.word for neighbour in answer], word
