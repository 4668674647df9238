"""``options.json`` parsing and validation."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from export.elmo.options import ElmoOptions, ElmoOptionsError
from tests.unit.export.elmo.reference import REFERENCE_SETS, ReferenceSet

FIXTURE_OPTIONS: dict[str, Any] = {
    "lstm": {
        "cell_clip": 3,
        "use_skip_connections": True,
        "n_layers": 2,
        "proj_clip": 3,
        "projection_dim": 16,
        "dim": 64,
    },
    "char_cnn": {
        "embedding": {"dim": 4},
        "filters": [[1, 4], [2, 8], [3, 16], [4, 32], [5, 64]],
        "n_highway": 2,
        "n_characters": 262,
        "max_characters_per_token": 50,
        "activation": "relu",
    },
}


def _with(section: str, key: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(FIXTURE_OPTIONS)
    data[section][key] = value
    return data


@pytest.mark.parametrize("reference_set", REFERENCE_SETS, ids=lambda reference: reference.name)
def test_reference_options(reference_set: ReferenceSet) -> None:
    options = ElmoOptions.from_json(reference_set.options_path)
    assert options.use_skip_connections is reference_set.use_skip_connections
    assert options.filters == ((1, 4), (2, 8), (3, 16), (4, 32), (5, 64))
    assert options.n_filters == 124
    assert (options.lstm_dim, options.projection_dim, options.output_dim) == (64, 16, 32)
    assert (options.cell_clip, options.proj_clip) == (3.0, 3.0)


def test_to_dict_round_trip(tmp_path: Path) -> None:
    options = ElmoOptions.from_dict(FIXTURE_OPTIONS)
    assert options.to_dict() == FIXTURE_OPTIONS
    path = tmp_path / "options.json"
    path.write_text(json.dumps(options.to_dict()))
    assert ElmoOptions.from_json(path) == options


def test_training_keys_are_ignored_and_clips_may_be_null() -> None:
    data = copy.deepcopy(FIXTURE_OPTIONS)
    data.update(n_epochs=10, batch_size=128, bidirectional=True, dropout=0.1)
    data["lstm"]["cell_clip"] = None
    del data["lstm"]["proj_clip"]
    options = ElmoOptions.from_dict(data)
    assert options.cell_clip is None
    assert options.proj_clip is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_with("char_cnn", "n_characters", 261), "must be 262.*training-time value"),
        (_with("char_cnn", "activation", "gelu"), "activation must be one of"),
        (_with("char_cnn", "filters", [[1, 4, 5]]), r"list of \[width, count\] pairs"),
        (_with("char_cnn", "filters", [[51, 4]]), "width <= max_characters_per_token"),
        (_with("char_cnn", "filters", []), "filters must not be empty"),
        (_with("char_cnn", "max_characters_per_token", 2), "at least 3"),
        (_with("lstm", "dim", 0), "lstm.dim must be positive"),
        (_with("lstm", "n_layers", 2.5), "lstm.n_layers must be an integer"),
        (_with("lstm", "projection_dim", True), "lstm.projection_dim must be an integer"),
        (_with("lstm", "cell_clip", -1), "lstm.cell_clip must be positive"),
        (_with("lstm", "use_skip_connections", "yes"), "must be true or false"),
        ({"lstm": FIXTURE_OPTIONS["lstm"]}, "missing key char_cnn"),
        ({**FIXTURE_OPTIONS, "bidirectional": False}, "only bidirectional"),
    ],
)
def test_invalid_options_are_refused(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ElmoOptionsError, match=message):
        ElmoOptions.from_dict(data)


def test_error_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "options.json"
    path.write_text(json.dumps(_with("char_cnn", "n_characters", 261)))
    with pytest.raises(ElmoOptionsError, match=r"options\.json: char_cnn\.n_characters"):
        ElmoOptions.from_json(path)
    path.write_text("{not json")
    with pytest.raises(ElmoOptionsError, match="not valid JSON"):
        ElmoOptions.from_json(path)
