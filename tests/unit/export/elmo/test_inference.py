"""The evaluation runs the exported graph: same numbers as PyTorch, layer 0 has no polysemy gap."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from export.corpus import CorpusSplit, SenseOccurrence
from export.elmo.evaluate import evaluate_elmo
from export.elmo.exporter import import_elmo
from export.elmo.inference import OnnxElmo
from export.elmo.model import ElmoBiLm, remove_sentence_boundaries
from export.elmo.train import TrainedBiLm, fit_bilm, save_trained
from modelrepo.elmo_characters import batch_char_ids
from tests.unit.export.elmo.test_train import TINY, _sentences


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[TrainedBiLm, Path]:
    directory = tmp_path_factory.mktemp("elmo-inference")
    trained = fit_bilm(_sentences(), replace(TINY, steps=10), show_progress=False)
    options, weights = save_trained(trained, TINY, directory / "checkpoint")
    return trained, import_elmo(options, weights, directory / "models", "elmo-tiny")


def _torch_layers(model: ElmoBiLm, sentences: list[list[str]]) -> np.ndarray:
    with torch.no_grad():
        ids = torch.from_numpy(batch_char_ids(sentences))
        layers, mask, _, _ = model(ids, *model.zero_state(len(sentences)))
        inner, _ = remove_sentence_boundaries(layers, mask)
    return inner.numpy()


def test_layers_and_word_vectors_match_pytorch(exported: tuple[TrainedBiLm, Path]) -> None:
    trained, directory = exported
    elmo = OnnxElmo(directory)
    sentences = [s.split() for s in _sentences(5, seed=4)]
    expected = _torch_layers(trained.trainer.bilm, sentences)
    layers, mask = elmo.layers(sentences)
    assert layers.shape == expected.shape
    assert mask.sum(axis=1).tolist() == [len(words) for words in sentences]
    np.testing.assert_allclose(layers, expected, atol=1e-5)
    positions = [len(words) - 2 for words in sentences]
    rows = np.arange(len(sentences))
    mixed = elmo.word_vectors(sentences, positions)
    np.testing.assert_allclose(mixed, expected[:, rows, positions].mean(axis=0), atol=1e-5)
    top = elmo.word_vectors(sentences, positions, layers=[2])
    np.testing.assert_allclose(top, expected[2, rows, positions], atol=1e-5)
    with pytest.raises(ValueError, match="layers"):
        elmo.word_vectors(sentences, positions, layers=[3])
    with pytest.raises(ValueError, match="outside"):
        elmo.word_vectors(sentences, [9] * len(sentences))


def test_evaluation_reports_every_layer_and_no_gap_at_layer_0(
    exported: tuple[TrainedBiLm, Path],
) -> None:
    _, directory = exported
    sentences = [
        *(f"the chef sliced the {adjective} bat ." for adjective in ("ripe", "red", "old")),
        *(f"the coder clicked the {adjective} bat ." for adjective in ("new", "big", "old")),
    ]
    senses = [
        SenseOccurrence(index, 5, "bat", "food" if index < 3 else "technology")
        for index in range(len(sentences))
    ]
    split = CorpusSplit(sentences=sentences, topics=["x"] * len(sentences), senses=senses)
    results = evaluate_elmo(OnnxElmo(directory), split)
    assert set(results) == {f"polysemy{suffix}" for suffix in ("", "_layer0", "_layer1", "_layer2")}
    assert results["polysemy"]["layers"] == [0, 1, 2]
    assert abs(results["polysemy_layer0"]["mean_gap"]) < 1e-5
    assert list(results["polysemy"]["per_word"]) == ["bat"]
