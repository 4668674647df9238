"""Loading and saving the bilm-tf HDF5 weight layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from export.elmo.model import ElmoBiLm
from export.elmo.options import ElmoOptions
from export.elmo.weights import ElmoWeightsError, load_hdf5_weights, save_hdf5_weights
from tests.unit.export.elmo.reference import REFERENCE_SETS

REFERENCE = REFERENCE_SETS[0]
N_DATASETS = 33


def _datasets(path: Path) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}

    def collect(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset):
            found[name] = item[...]

    with h5py.File(path, "r") as weights:
        weights.visititems(collect)
    return found


def _assert_same_parameters(left: ElmoBiLm, right: ElmoBiLm) -> None:
    right_state = right.state_dict()
    for name, value in left.state_dict().items():
        torch.testing.assert_close(value, right_state[name], rtol=0, atol=0, msg=name)


def test_reference_file_round_trips_unchanged(allennlp_model: ElmoBiLm, tmp_path: Path) -> None:
    saved = tmp_path / "lm_weights.hdf5"
    save_hdf5_weights(allennlp_model, saved)
    original, written = _datasets(REFERENCE.weights_path), _datasets(saved)
    assert sorted(written) == sorted(original)
    assert len(written) == N_DATASETS
    for name, value in original.items():
        assert written[name].dtype == np.float32, name
        np.testing.assert_array_equal(written[name], value, err_msg=name)


def test_trained_model_round_trips(tmp_path: Path) -> None:
    torch.manual_seed(0)
    options = ElmoOptions.from_json(REFERENCE.options_path)
    trained = ElmoBiLm(options)
    saved = tmp_path / "trained.hdf5"
    save_hdf5_weights(trained, saved)
    reloaded = ElmoBiLm(options)
    load_hdf5_weights(reloaded, saved)
    _assert_same_parameters(trained, reloaded)


def test_char_embedding_gets_a_zero_padding_row(allennlp_model: ElmoBiLm) -> None:
    table = allennlp_model.token_embedder.char_embedding.weight.detach().numpy()
    assert table.shape == (262, 4)
    assert not table[0].any()
    with h5py.File(REFERENCE.weights_path, "r") as weights:
        np.testing.assert_array_equal(table[1:], weights["char_embed"][...])


def _corrupt_copy(tmp_path: Path, name: str, replacement: np.ndarray | None) -> Path:
    path = tmp_path / "lm_weights.hdf5"
    shutil.copyfile(REFERENCE.weights_path, path)
    with h5py.File(path, "r+") as weights:
        del weights[name]
        if replacement is not None:
            weights.create_dataset(name, data=replacement)
    return path


def test_missing_dataset_is_named(tmp_path: Path) -> None:
    path = _corrupt_copy(tmp_path, "CNN_high_1/W_carry", None)
    model = ElmoBiLm(ElmoOptions.from_json(REFERENCE.options_path))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    with pytest.raises(ElmoWeightsError, match=r"'CNN_high_1/W_carry' is missing.*\(124, 124\)"):
        load_hdf5_weights(model, path)
    for name, value in model.state_dict().items():
        assert torch.equal(value, before[name]), f"{name} changed by a failed load"


def test_misshaped_dataset_is_named_with_both_shapes(tmp_path: Path) -> None:
    name = "RNN_1/RNN/MultiRNNCell/Cell0/LSTMCell/W_0"
    path = _corrupt_copy(tmp_path, name, np.zeros((32, 128), dtype=np.float32))
    model = ElmoBiLm(ElmoOptions.from_json(REFERENCE.options_path))
    with pytest.raises(
        ElmoWeightsError, match=rf"'{name}' has shape \(32, 128\), expected \(32, 256\)"
    ):
        load_hdf5_weights(model, path)


def test_options_that_do_not_fit_the_file(tmp_path: Path) -> None:
    options = ElmoOptions.from_json(REFERENCE.options_path).to_dict()
    options["lstm"]["dim"] = 32
    model = ElmoBiLm(ElmoOptions.from_dict(options))
    with pytest.raises(ElmoWeightsError, match=r"W_0' has shape \(32, 256\), expected \(32, 128\)"):
        load_hdf5_weights(model, REFERENCE.weights_path)
