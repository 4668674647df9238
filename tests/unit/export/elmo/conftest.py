"""Models loaded from the reference fixtures, and their ONNX graphs (exported once per session)."""

from __future__ import annotations

from pathlib import Path

import onnxruntime as ort
import pytest

from export.elmo.model import ElmoBiLm
from export.elmo.onnx_export import export_elmo_onnx
from export.elmo.options import ElmoOptions
from export.elmo.weights import load_hdf5_weights
from tests.unit.export.elmo.reference import REFERENCE_SETS, ReferenceSet


def _load(reference: ReferenceSet) -> ElmoBiLm:
    if not reference.weights_path.is_file():
        pytest.fail(
            f"ELMo reference fixtures not found at {reference.directory}: they live in "
            f"../shared/reference/elmo next to the repository (or set ELMO_REFERENCE_DIR)"
        )
    model = ElmoBiLm(ElmoOptions.from_json(reference.options_path)).eval()
    load_hdf5_weights(model, reference.weights_path)
    return model


@pytest.fixture(scope="session", params=REFERENCE_SETS, ids=lambda reference: reference.name)
def reference(request: pytest.FixtureRequest) -> ReferenceSet:
    selected: ReferenceSet = request.param
    return selected


@pytest.fixture(scope="session")
def reference_model(reference: ReferenceSet) -> ElmoBiLm:
    return _load(reference)


@pytest.fixture(scope="session")
def allennlp_model() -> ElmoBiLm:
    """The fixture model with skip connections, for tests that need any real weights."""
    return _load(REFERENCE_SETS[0])


@pytest.fixture(scope="session")
def reference_onnx_path(
    reference: ReferenceSet, reference_model: ElmoBiLm, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    directory = tmp_path_factory.mktemp(f"elmo-{reference.name}")
    return export_elmo_onnx(reference_model, directory / "model.onnx")


@pytest.fixture(scope="session")
def reference_onnx(reference_onnx_path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(reference_onnx_path), providers=["CPUExecutionProvider"])
