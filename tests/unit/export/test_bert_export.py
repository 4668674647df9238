"""Imported BERT checkpoints: the ONNX graphs compute what transformers computes (1e-4),
at shapes other than the export example, with and without an MLM head."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from transformers import AutoTokenizer, BertForMaskedLM, BertModel

from export.bert.exporter import import_bert
from modelrepo import load_checked
from tests.checkpoints import save_encoder_checkpoint, save_mlm_checkpoint

SHAPES = [(1, 8), (3, 33), (5, 96)]
pytestmark = [pytest.mark.slow, pytest.mark.validates_architecture("bert")]


def padded_batch(batch: int, sequence: int, vocab: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(batch, sequence), dtype=np.int64)
    mask = np.ones_like(ids)
    for row in range(1, batch):
        length = int(rng.integers(2, sequence + 1))
        ids[row, length:] = 0
        mask[row, length:] = 0
    ids[:, 0] = 2  # [CLS]
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def mlm_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("mlm")
    checkpoint = save_mlm_checkpoint(root / "checkpoint")
    return checkpoint, import_bert(checkpoint, root / "models", "tiny-mlm")


@pytest.fixture(scope="module")
def encoder_import(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("encoder")
    checkpoint = save_encoder_checkpoint(root / "checkpoint")
    return checkpoint, import_bert(checkpoint, root / "models", "tiny-encoder")


def test_mlm_encoder_matches_transformers(mlm_import: tuple[Path, Path]) -> None:
    checkpoint, directory = mlm_import
    reference = BertForMaskedLM.from_pretrained(checkpoint).eval()  # default (SDPA) attention
    encoder = session(directory / "encoder.onnx")
    for seed, (batch, sequence) in enumerate(SHAPES):
        inputs = padded_batch(batch, sequence, reference.config.vocab_size, seed)
        with torch.no_grad():
            expected = reference.bert(
                **{k: torch.from_numpy(v) for k, v in inputs.items()}, output_hidden_states=True
            ).hidden_states
        names = [f"hidden_state_{layer}" for layer in range(len(expected))]
        actual = encoder.run(names, inputs)
        valid = inputs["attention_mask"].astype(bool)
        for got, want in zip(actual, expected, strict=True):
            assert got.shape == (batch, sequence, 32)
            assert np.abs(got[valid] - want.numpy()[valid]).max() <= 1e-4


def test_fill_mask_graph_matches_the_full_mlm_head(mlm_import: tuple[Path, Path]) -> None:
    checkpoint, directory = mlm_import
    reference = BertForMaskedLM.from_pretrained(checkpoint).eval()
    fill_mask = session(directory / "fill_mask.onnx")
    for seed, (batch, sequence) in enumerate(SHAPES):
        inputs = padded_batch(batch, sequence, reference.config.vocab_size, seed)
        lengths = inputs["attention_mask"].sum(axis=1)
        positions = np.array([(row, max(1, int(lengths[row]) // 2)) for row in range(batch)])
        inputs["input_ids"][positions[:, 0], positions[:, 1]] = 4  # [MASK]
        with torch.no_grad():
            full = reference(**{k: torch.from_numpy(v) for k, v in inputs.items()}).logits.numpy()
        expected = full[positions[:, 0], positions[:, 1]]
        (actual,) = fill_mask.run(["logits"], {**inputs, "mask_positions": positions})
        assert actual.shape == expected.shape
        assert np.abs(actual - expected).max() <= 1e-4
        top5 = np.argsort(-actual, axis=1)[:, :5]
        assert np.array_equal(top5, np.argsort(-expected, axis=1)[:, :5])


def test_checkpoint_without_mlm_head_exports_encoder_only(
    encoder_import: tuple[Path, Path],
) -> None:
    checkpoint, directory = encoder_import
    spec = load_checked(directory)
    assert spec.capabilities == ("embed",)
    assert set(spec.graphs) == {"encoder"}
    assert not (directory / "fill_mask.onnx").exists()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = BertModel.from_pretrained(checkpoint).eval()
    encoder = session(directory / "encoder.onnx")
    inputs = padded_batch(3, 33, reference.config.vocab_size, 7)
    with torch.no_grad():
        expected = reference(
            **{k: torch.from_numpy(v) for k, v in inputs.items()}
        ).last_hidden_state
    (actual,) = encoder.run(["hidden_state_2"], inputs)
    valid = inputs["attention_mask"].astype(bool)
    assert np.abs(actual[valid] - expected.numpy()[valid]).max() <= 1e-4


def test_tokenizer_rebuilt_from_vocab_txt_matches_transformers(
    encoder_import: tuple[Path, Path],
) -> None:
    checkpoint, directory = encoder_import
    from tokenizers import Tokenizer

    ours = Tokenizer.from_file(str(directory / "tokenizer.json"))
    theirs = AutoTokenizer.from_pretrained(checkpoint)
    for text in [
        "The river bank, flows!",
        "Children play FOOTBALL after school",
        "xyz unknownword",
    ]:
        assert ours.encode(text).ids == theirs(text)["input_ids"]


def test_validation_report_records_both_graph_forms(mlm_import: tuple[Path, Path]) -> None:
    _, directory = mlm_import
    report = json.loads((directory / "validation.json").read_text())
    assert report["passed"] is True
    for role in ("encoder", "fill_mask"):
        graph = report["graphs"][role]
        unoptimized = graph["variants"]["unoptimized"]
        assert unoptimized["passed"] is True
        shapes = [(run["batch_size"], run["sequence_length"]) for run in unoptimized["runs"]]
        assert shapes == SHAPES
        assert max(unoptimized["max_abs_diff"].values()) <= 1e-4
    fill_runs = report["graphs"]["fill_mask"]["variants"]["unoptimized"]["runs"]
    assert all(run["checks"]["top5_identical"]["passed"] for run in fill_runs)


def test_existing_version_is_never_overwritten(mlm_import: tuple[Path, Path]) -> None:
    checkpoint, directory = mlm_import
    with pytest.raises(FileExistsError, match="already exists"):
        import_bert(checkpoint, directory.parent.parent, "tiny-mlm", version=1)
