"""Training word2vec with gensim: the flags choose the objective, a run is reproducible, and the
trained vectors reach the repository through the C binary file unchanged."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from gensim.models import KeyedVectors
from rich.console import Console

from export.__main__ import parse
from export.commands import DefaultsRequest
from export.registry import ARCHITECTURES
from export.word2vec.cli import Word2VecTrainRequest, train_and_import
from export.word2vec.inference import OnnxWord2Vec
from export.word2vec.train import Word2VecTrainingConfig, save_vectors, train_word2vec
from modelrepo import load_checked
from tests.word2vec_files import tiny_sentences


@pytest.fixture(scope="module")
def sentences() -> list[str]:
    return tiny_sentences()[:1500]


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (Word2VecTrainingConfig(), {"sg": 1, "hs": 0, "negative": 5}),
        (Word2VecTrainingConfig(cbow=True), {"sg": 0, "hs": 0, "negative": 5}),
        (Word2VecTrainingConfig(hierarchical_softmax=True), {"sg": 1, "hs": 1, "negative": 0}),
    ],
)
def test_flags_choose_the_objective(config: Word2VecTrainingConfig, expected: dict[str, int]):
    arguments = config.gensim_arguments()
    assert {key: arguments[key] for key in expected} == expected
    assert arguments["min_count"] == 1 and arguments["workers"] == 1
    assert arguments["vector_size"] == 100 and arguments["window"] == 5


def test_training_is_reproducible_and_keeps_every_word(sentences: list[str]) -> None:
    config = Word2VecTrainingConfig(dim=16, epochs=2)
    first = train_word2vec(sentences, config, show_progress=False)
    second = train_word2vec(sentences, config, show_progress=True)
    assert np.array_equal(first.vectors, second.vectors)
    assert first.vectors.shape[1] == 16
    assert set(first.index_to_key) == {word for sentence in sentences for word in sentence.split()}


def test_cbow_with_hierarchical_softmax_trains_other_vectors(sentences: list[str]) -> None:
    skip_gram = train_word2vec(sentences, Word2VecTrainingConfig(dim=16, epochs=1), False)
    cbow = train_word2vec(
        sentences,
        Word2VecTrainingConfig(dim=16, epochs=1, cbow=True, hierarchical_softmax=True),
        False,
    )
    assert skip_gram.index_to_key == cbow.index_to_key
    assert not np.allclose(skip_gram.vectors, cbow.vectors)


def test_saved_binary_file_round_trips(sentences: list[str], tmp_path: Path) -> None:
    vectors = train_word2vec(sentences, Word2VecTrainingConfig(dim=8, epochs=1), False)
    loaded = KeyedVectors.load_word2vec_format(str(save_vectors(vectors, tmp_path)), binary=True)
    assert loaded.index_to_key == vectors.index_to_key
    assert np.array_equal(loaded.vectors, vectors.vectors)


def test_train_and_import(sentences: list[str], tmp_path: Path) -> None:
    request = parse(
        [
            "word2vec",
            "--train",
            "--cbow",
            "--dim",
            "12",
            "--epochs",
            "1",
            "--models-dir",
            str(tmp_path / "models"),
            "--checkpoint-dir",
            str(tmp_path / "checkpoint"),
            "--no-progress",
            "--name",
            "trained",
        ]
    ).request
    assert isinstance(request, Word2VecTrainRequest)
    target = train_and_import(request, sentences, Console(quiet=True))
    spec = load_checked(target)
    assert spec.hidden_size == 12 and spec.source.startswith("word2vec-binary:")
    training = spec.extra["training"]
    assert training["objective"] == "cbow with negative sampling" and training["epochs"] == 1
    saved = KeyedVectors.load_word2vec_format(
        str(tmp_path / "checkpoint" / "vectors.bin"), binary=True
    )
    served = OnnxWord2Vec(target)
    assert np.array_equal(served.vectors(saved.index_to_key), saved.vectors)


def test_defaults_command_arguments_train_the_default_recipe(
    sentences: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``python -m export defaults`` has none of the word2vec flags: the recipe's values apply."""
    defaults = parse(["defaults", "--models-dir", str(tmp_path / "models")]).request
    assert isinstance(defaults, DefaultsRequest)
    request = ARCHITECTURES["word2vec"].default_training(defaults.workspace, "word2vec")
    monkeypatch.chdir(tmp_path)  # the default checkpoint directory is relative
    target = train_and_import(request, sentences[:200], Console(quiet=True))
    training = load_checked(target).extra["training"]
    assert training["objective"] == "skip-gram with negative sampling"
    assert (training["dim"], training["epochs"], training["window"]) == (100, 5, 5)
    assert (tmp_path / "build" / "checkpoints" / "word2vec" / "vectors.bin").is_file()
