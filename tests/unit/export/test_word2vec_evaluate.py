"""Evaluation of a word2vec model: topic purity of neighbours (checked against gensim), and the
polysemous words' single vector."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors

from export.__main__ import main
from export.corpus import POLYSEMOUS_WORDS, generate_corpus, word_topics
from export.word2vec.evaluate import evaluate_word2vec, neighbour_purity, topics_of
from export.word2vec.exporter import import_word2vec
from export.word2vec.inference import OnnxWord2Vec
from tests.word2vec_files import TINY_CORPUS, save_c_formats, train_tiny_vectors


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> tuple[KeyedVectors, Path]:
    root = tmp_path_factory.mktemp("evaluate")
    vectors = train_tiny_vectors()
    path = save_c_formats(vectors, root)["binary"]
    return vectors, import_word2vec(path, True, root / "models", "w2v")


def test_topics_of() -> None:
    topics = word_topics()
    assert topics_of("apple", topics) == frozenset(POLYSEMOUS_WORDS["apple"])
    assert topics_of("the", topics) == frozenset() and topics_of(".", topics) == frozenset()
    assert topics_of("mushy", topics) == frozenset({"food"})


def test_purity_equals_a_count_over_gensim_neighbours(model: tuple[KeyedVectors, Path]) -> None:
    vectors, directory = model
    report = neighbour_purity(OnnxWord2Vec(directory), k=10)
    topics = word_topics()
    expected = {
        word: np.mean(
            [topic in topics_of(n, topics) for n, _ in vectors.most_similar(word, topn=10)]
        )
        for word, topic in topics.items()
        if word in vectors
    }
    assert set(report.per_word) == set(expected)
    assert abs(report.mean - float(np.mean(list(expected.values())))) < 1e-3  # float32 near-ties
    assert report.missing == sorted(set(topics) - set(vectors.index_to_key))
    assert 0 < report.chance < 0.2 and set(report.per_topic) <= set(topics.values())


def test_polysemous_words_have_one_vector(model: tuple[KeyedVectors, Path]) -> None:
    _, directory = model
    heldout = generate_corpus(replace(TINY_CORPUS, heldout_sentences=2000)).heldout
    results = evaluate_word2vec(OnnxWord2Vec(directory), heldout)
    identical = results["identical_occurrences"]
    assert set(identical) == set(POLYSEMOUS_WORDS)
    assert all(row["identical"] and row["occurrences"] > 0 for row in identical.values())
    assert results["polysemy"]["max_abs_gap"] < 1e-6
    for word, row in results["polysemous_neighbours"].items():
        assert row["senses"] == list(POLYSEMOUS_WORDS[word])
        assert sum(row["counts"].values()) >= 10 and len(row["neighbours"]) == 10


def test_command_line_evaluation_writes_json(
    model: tuple[KeyedVectors, Path], tmp_path: Path
) -> None:
    _, directory = model
    out = tmp_path / "evaluation.json"
    corpus = ["--corpus-dir", str(tmp_path / "corpus")]
    models = ["--models-dir", str(directory.parents[1])]
    assert main(["evaluate", "w2v", *models, *corpus, "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    assert results["architecture"] == "word2vec" and results["model"] == "w2v/1"
    assert {"neighbours", "polysemous_neighbours", "identical_occurrences", "polysemy"} <= set(
        results
    )
