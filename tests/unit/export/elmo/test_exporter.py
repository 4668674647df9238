"""Importing the reference biLMs (with and without residuals) into the model repository.

The shared validation runs at shapes other than the export example with zero and random initial
states; the published graph then reproduces all 30 reference sentences when its states are
carried across the 10 reference calls, exactly as the raw export does.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

import export.elmo.exporter as elmo_exporter
from export.__main__ import main
from export.elmo.exporter import import_elmo
from export.elmo.graphs import TOLERANCE, elmo_export_spec
from export.elmo.options import ElmoOptions
from export.elmo.weights import ElmoWeightsError
from export.spec import ExportSpec
from export.validate import ValidationFailed
from modelrepo import load_checked, sha256_of_files
from modelrepo.elmo_characters import batch_char_ids
from tests.unit.export.elmo.reference import (
    REFERENCE_SETS,
    ReferenceSet,
    describe_failures,
    replay,
)

pytestmark = [pytest.mark.slow, pytest.mark.validates_architecture("elmo")]

OUTPUTS = ("layers", "mask", "final_c", "final_h")


@pytest.fixture(scope="module")
def imported(reference: ReferenceSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    models = tmp_path_factory.mktemp(f"elmo-import-{reference.name}") / "models"
    return import_elmo(reference.options_path, reference.weights_path, models, "elmo")


def test_published_version_is_complete_and_checked(imported: Path, reference: ReferenceSet) -> None:
    spec = load_checked(imported)
    options = ElmoOptions.from_json(reference.options_path)
    assert (spec.name, spec.version, spec.architecture) == ("elmo", 1, "elmo")
    assert spec.capabilities == ("embed",)
    assert set(spec.graphs) == {"bilm"}
    assert spec.graphs["bilm"] == elmo_export_spec(options).graph("bilm").to_graph_spec()
    assert (spec.hidden_size, spec.num_layers) == (32, 2)
    assert spec.default_layers == (0, 1, 2)
    assert spec.default_pooling == "mean"
    assert spec.max_sequence_length == 512
    assert spec.tolerance == TOLERANCE == 1e-4
    assert spec.extra["scalar_mix_gamma"] == 1.0
    assert spec.extra["use_skip_connections"] is reference.use_skip_connections
    assert spec.source_checksum == sha256_of_files([reference.options_path, reference.weights_path])
    # the original options.json is kept verbatim, and checksummed like every artifact
    assert (imported / "options.json").read_bytes() == reference.options_path.read_bytes()
    assert set(spec.file_checksums) == {"bilm.onnx", "options.json"}


def test_validation_report(imported: Path) -> None:
    report = json.loads((imported / "validation.json").read_text())
    assert report["passed"] is True
    graph = report["graphs"]["bilm"]
    assert set(graph["variants"]) == {"zeros", "random"}
    for state in graph["variants"].values():
        assert state["passed"] is True and state["problems"] == []
        shapes = [(run["batch_size"], run["sequence_length"]) for run in state["runs"]]
        assert shapes == [(1, 8), (3, 33), (5, 96)]
        for run in state["runs"]:
            assert set(run["max_abs_diff"]) == set(OUTPUTS)
    assert set(graph["max_abs_diff"]) == set(OUTPUTS)
    assert max(graph["max_abs_diff"].values()) <= 1e-5  # the reference biLMs: well inside
    assert graph["max_abs_diff"]["mask"] == 0.0


def test_published_graph_reproduces_the_reference_statefully(
    imported: Path, reference: ReferenceSet
) -> None:
    session = ort.InferenceSession(str(imported / "bilm.onnx"), providers=["CPUExecutionProvider"])

    def run(char_ids: Any, c: Any, h: Any) -> Any:
        feeds = {"char_ids": char_ids, "initial_c": c, "initial_h": h}
        layers, mask, final_c, final_h = session.run(list(OUTPUTS), feeds)
        return layers, mask, final_c, final_h

    zero = (np.zeros((4, 3, 64), np.float32), np.zeros((4, 3, 16), np.float32))
    comparisons = list(replay(reference, run, zero))
    assert len(comparisons) == 30
    assert all(c.close for c in comparisons), describe_failures(comparisons)


def test_failed_validation_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def strict(options: ElmoOptions) -> ExportSpec:
        spec = elmo_export_spec(options)
        return ExportSpec(spec.architecture, spec.opset, 1e-12, spec.graphs)

    monkeypatch.setattr(elmo_exporter, "elmo_export_spec", strict)
    reference = REFERENCE_SETS[1]
    models = tmp_path / "models"
    with pytest.raises(ValidationFailed, match=r"bilm: .*initial state.*tolerance 1e-12"):
        import_elmo(reference.options_path, reference.weights_path, models, "strict")
    assert list((models / "strict").iterdir()) == []  # no version, no staging folder left


def test_weights_that_do_not_fit_the_options_are_refused(tmp_path: Path) -> None:
    reference = REFERENCE_SETS[0]
    options = json.loads(reference.options_path.read_text())
    options["lstm"]["projection_dim"] = 32
    path = tmp_path / "options.json"
    path.write_text(json.dumps(options))
    expected = r"'CNN_proj/W_proj' has shape \(124, 16\), expected \(124, 32\)"
    with pytest.raises(ElmoWeightsError, match=expected):
        import_elmo(path, reference.weights_path, tmp_path / "models", "wrong")
    assert not (tmp_path / "models").exists()


def test_cli_import_with_a_shorter_limit(tmp_path: Path) -> None:
    reference = REFERENCE_SETS[1]
    models = tmp_path / "models"
    argv = [
        "elmo",
        "--options",
        str(reference.options_path),
        "--weights",
        str(reference.weights_path),
        "--name",
        "bilm-tf",
        "--max-sequence-length",
        "40",
        "--models-dir",
        str(models),
        "--no-progress",
    ]
    assert main(argv) == 0
    spec = load_checked(models / "bilm-tf" / "1")
    assert spec.max_sequence_length == 40
    report = json.loads((models / "bilm-tf" / "1" / "validation.json").read_text())
    runs = report["graphs"]["bilm"]["variants"]["zeros"]["runs"]
    assert [(run["batch_size"], run["sequence_length"]) for run in runs] == [
        (1, 8),
        (3, 33),
        (5, 40),
    ]
    # the graph serves every length: the limit is the server's, not the graph's
    session = ort.InferenceSession(str(models / "bilm-tf" / "1" / "bilm.onnx"))
    ids = batch_char_ids([["word"] * 60])
    layers = session.run(
        ["layers"],
        {
            "char_ids": ids,
            "initial_c": np.zeros((4, 1, 64), np.float32),
            "initial_h": np.zeros((4, 1, 16), np.float32),
        },
    )[0]
    assert layers.shape == (3, 1, 62, 32)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--options", "o.json"], "--options needs --weights"),
        (["--train", "--weights", "w.hdf5"], "--weights goes with --options"),
    ],
)
def test_cli_argument_errors(extra: list[str], message: str) -> None:
    with pytest.raises(SystemExit, match=message):
        main(["elmo", *extra, "--no-progress"])


def test_cli_needs_a_source(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["elmo", "--name", "x"])
    assert "one of the arguments --train --options is required" in capsys.readouterr().err
