"""The repository format refuses corrupted or mismatched model directories with clear messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modelrepo import (
    DenseLayer,
    GraphSpec,
    ModelRepository,
    ModelSpec,
    SentenceHead,
    SpecError,
    TensorSpec,
    check_tensors,
    load_checked,
    write_spec,
    write_validation,
)
from tests.unit.modelrepo.test_validation import validation_report

IDS = TensorSpec(name="input_ids", dtype="int64", shape=("batch_size", "sequence_length"))
OUT = TensorSpec(name="hidden_state_1", dtype="float32", shape=("batch_size", "sequence_length", 8))


def make_spec(name: str = "tiny", version: int = 1) -> ModelSpec:
    return ModelSpec(
        name=name,
        version=version,
        architecture="bert",
        capabilities=("embed",),
        graphs={"encoder": GraphSpec(file="encoder.onnx", inputs=(IDS,), outputs=(OUT,))},
        hidden_size=8,
        num_layers=1,
        default_layers=(1,),
        default_pooling="mean",
        max_sequence_length=16,
        tokenizer_files=("tokenizer.json",),
        opset=17,
        tolerance=1e-4,
        source="test",
        source_checksum="sha256:" + "0" * 64,
    )


def publish(root: Path, spec: ModelSpec, passed: bool = True) -> Path:
    directory = root / spec.name / str(spec.version)
    directory.mkdir(parents=True)
    (directory / "encoder.onnx").write_bytes(b"graph bytes")
    (directory / "tokenizer.json").write_text("{}")
    write_spec(directory, spec)
    write_validation(directory, validation_report(passed))
    return directory


def test_a_well_formed_version_loads(tmp_path: Path) -> None:
    directory = publish(tmp_path, make_spec())
    spec = load_checked(directory)
    assert spec.file_checksums.keys() == {"encoder.onnx", "tokenizer.json"}
    assert ModelRepository(tmp_path).names() == ["tiny"]
    assert ModelRepository(tmp_path).newest("tiny") == 1
    assert ModelRepository(tmp_path).next_version("tiny") == 2


def test_invalid_json_is_refused(tmp_path: Path) -> None:
    directory = publish(tmp_path, make_spec())
    (directory / "spec.json").write_text("{not json")
    with pytest.raises(SpecError, match="not valid JSON"):
        load_checked(directory)


def test_missing_field_names_the_field(tmp_path: Path) -> None:
    directory = publish(tmp_path, make_spec())
    raw = json.loads((directory / "spec.json").read_text())
    del raw["hidden_size"]
    (directory / "spec.json").write_text(json.dumps(raw))
    with pytest.raises(SpecError, match="hidden_size: Field required"):
        load_checked(directory)


def test_unknown_format_version_is_refused(tmp_path: Path) -> None:
    directory = publish(tmp_path, make_spec())
    raw = json.loads((directory / "spec.json").read_text())
    raw["format_version"] = 99
    (directory / "spec.json").write_text(json.dumps(raw))
    with pytest.raises(SpecError, match="format_version 99 is not supported"):
        load_checked(directory)


def test_spec_in_the_wrong_directory_is_refused(tmp_path: Path) -> None:
    directory = publish(tmp_path, make_spec())
    raw = json.loads((directory / "spec.json").read_text())
    raw["version"] = 2
    (directory / "spec.json").write_text(json.dumps(raw))
    with pytest.raises(SpecError, match="declares tiny/2 but lives in tiny/1"):
        load_checked(directory)


def test_changed_artifact_fails_its_checksum(tmp_path: Path) -> None:
    directory = publish(tmp_path, make_spec())
    (directory / "encoder.onnx").write_bytes(b"tampered")
    with pytest.raises(SpecError, match=r"encoder.onnx: checksum .* does not match"):
        load_checked(directory)


def test_missing_graph_file_is_refused(tmp_path: Path) -> None:
    directory = publish(tmp_path, make_spec())
    (directory / "encoder.onnx").unlink()
    with pytest.raises(SpecError, match=r"'encoder\.onnx', which is missing"):
        load_checked(directory)


def test_failed_validation_is_refused(tmp_path: Path) -> None:
    directory = publish(tmp_path, make_spec(), passed=False)
    with pytest.raises(SpecError, match="did not pass validation"):
        load_checked(directory)


def test_bad_default_layer_is_refused(tmp_path: Path) -> None:
    directory = publish(tmp_path, make_spec())
    raw = json.loads((directory / "spec.json").read_text())
    raw["default_layers"] = [5]
    (directory / "spec.json").write_text(json.dumps(raw))
    with pytest.raises(SpecError, match=r"default layer 5 is outside 0\.\.1"):
        load_checked(directory)


def test_graph_tensors_must_match_the_declaration() -> None:
    declared = (IDS,)
    check_tensors(declared, [("input_ids", "int64", ["batch", "seq"])], "ok")
    with pytest.raises(SpecError, match=r"declares \['input_ids'\] but the graph has \['ids'\]"):
        check_tensors(declared, [("ids", "int64", ["batch", "seq"])], "graph")
    with pytest.raises(SpecError, match="input_ids is int32 in the graph but int64"):
        check_tensors(declared, [("input_ids", "int32", ["batch", "seq"])], "graph")
    with pytest.raises(SpecError, match="should be the dynamic axis 'sequence_length'"):
        check_tensors(declared, [("input_ids", "int64", ["batch", 16])], "graph")
    with pytest.raises(SpecError, match="rank 1 in the graph but 2"):
        check_tensors(declared, [("input_ids", "int64", ["batch"])], "graph")


def test_unsafe_model_names_are_refused() -> None:
    with pytest.raises(ValueError, match="lowercase letters"):
        make_spec(name="../etc")


def test_a_sentence_head_must_fit_the_encoder_and_its_weights_must_be_there(
    tmp_path: Path,
) -> None:
    def head(in_features: int) -> SentenceHead:
        layer = DenseLayer(
            file="dense_0.npz", in_features=in_features, out_features=4, activation="tanh"
        )
        return SentenceHead(normalize=True, dense=(layer,))

    raw = make_spec().model_dump()
    with pytest.raises(
        ValueError, match="the first Dense layer takes 6 values, but the encoder gives 8"
    ):
        ModelSpec.model_validate(raw | {"sentence": head(6).model_dump()})
    spec = ModelSpec.model_validate(raw | {"sentence": head(8).model_dump()})
    assert spec.output_dim == 4 and spec.sentence.files == ("dense_0.npz",)
    directory = publish(tmp_path, spec)  # the Dense weights were never written
    with pytest.raises(SpecError, match=r"declares 'dense_0\.npz', which is missing"):
        load_checked(directory)
