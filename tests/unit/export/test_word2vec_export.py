"""Imported C word2vec files: the ONNX graphs give exactly gensim's vectors and gensim's
cosine scores, for the text and the binary format; the repository entry is complete."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from gensim.models import KeyedVectors

from export.__main__ import main
from export.word2vec.exporter import import_word2vec
from export.word2vec.graphs import unit_rows
from export.word2vec.inference import OnnxWord2Vec
from modelrepo import load_checked, sha256_of
from modelrepo.vocabulary import read_vocabulary
from tests.word2vec_files import assert_same_neighbours, save_c_formats, train_tiny_vectors

pytestmark = pytest.mark.validates_architecture("word2vec")
FORMATS = ("text", "binary")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_c_formats(train_tiny_vectors(), tmp_path_factory.mktemp("c-files"))


@pytest.fixture(scope="module")
def imported(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    models = tmp_path_factory.mktemp("models")
    return {
        kind: import_word2vec(path, kind == "binary", models, f"w2v-{kind}")
        for kind, path in files.items()
    }


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("kind", FORMATS)
def test_every_lookup_equals_gensim_exactly(
    kind: str, files: dict[str, Path], imported: dict[str, Path]
) -> None:
    reference = KeyedVectors.load_word2vec_format(str(files[kind]), binary=kind == "binary")
    directory = imported[kind]
    words = read_vocabulary(directory / "vocab.txt")
    assert words == list(reference.index_to_key)
    ids = np.arange(len(words), dtype=np.int64)
    (vectors,) = session(directory / "lookup.onnx").run(["vectors"], {"input_ids": ids[None]})
    assert vectors.dtype == np.float32 and np.array_equal(vectors[0], reference.vectors)
    batch = np.array([[3, 0, 7], [len(words) - 1, 5, 5]], dtype=np.int64)
    (found,) = session(directory / "lookup.onnx").run(["vectors"], {"input_ids": batch})
    for row, column in np.ndindex(batch.shape):
        assert np.array_equal(found[row, column], reference[words[batch[row, column]]])


@pytest.mark.parametrize("kind", FORMATS)
def test_similarity_scores_equal_gensim_most_similar(
    kind: str, files: dict[str, Path], imported: dict[str, Path]
) -> None:
    reference = KeyedVectors.load_word2vec_format(str(files[kind]), binary=kind == "binary")
    queries = [(["apple"], []), (["bank", "river"], ["loan"]), (["court"], ["lawyer", "judge"])]
    vectors = np.stack(
        [
            reference.get_mean_vector(
                [*positive, *negative],
                [1.0] * len(positive) + [-1.0] * len(negative),
                pre_normalize=True,
                post_normalize=True,
            )
            for positive, negative in queries
        ]
    )
    (scores,) = session(imported[kind] / "similarity.onnx").run(["scores"], {"query": vectors})
    for row, (positive, negative) in zip(scores, queries, strict=True):
        expected = reference.most_similar(positive=positive, negative=negative, topn=None)
        assert np.abs(row - expected).max() <= 1e-5


def test_text_and_binary_files_give_the_same_model(imported: dict[str, Path]) -> None:
    text, binary = (OnnxWord2Vec(imported[kind]) for kind in FORMATS)
    assert text.words == binary.words
    assert np.array_equal(text.vectors(text.words), binary.vectors(binary.words))


@pytest.mark.parametrize("kind", FORMATS)
def test_repository_entry(kind: str, files: dict[str, Path], imported: dict[str, Path]) -> None:
    directory = imported[kind]
    spec = load_checked(directory)
    assert spec.architecture == "word2vec" and spec.name == f"w2v-{kind}" and spec.version == 1
    assert spec.capabilities == ("embed", "most_similar")
    assert set(spec.graphs) == {"lookup", "similarity"}
    assert spec.tokenizer_files == ("vocab.txt",) and spec.num_layers == 0
    assert spec.hidden_size == 24 and spec.default_pooling == "mean"
    assert spec.extra["vocab_size"] == len(read_vocabulary(directory / "vocab.txt"))
    assert spec.extra["source_format"] == kind
    # one source file: the checksum over [file] hashes its name and its checksum
    assert spec.source_checksum.startswith("sha256:") and str(files[kind].resolve()) in spec.source
    assert spec.file_checksums["vocab.txt"] == sha256_of(directory / "vocab.txt")
    report = json.loads((directory / "validation.json").read_text())
    assert report["passed"] is True
    lookup = report["graphs"]["lookup"]
    assert lookup["variants"]["unoptimized"]["max_abs_diff"]["vectors"] == 0.0
    every_row = lookup["checks"]["all_rows_identical"]
    assert every_row["passed"] is True
    assert every_row["detail"] == f"{spec.extra['vocab_size']} rows compared"
    similarity = report["graphs"]["similarity"]["variants"]["unoptimized"]
    assert similarity["max_abs_diff"]["scores"] <= 1e-5
    runs = lookup["variants"]["unoptimized"]["runs"]
    shapes = [(r["batch_size"], r["sequence_length"]) for r in runs]
    assert shapes == [(1, 8), (3, 33), (5, 96)]


def test_source_checksum_follows_the_file(files: dict[str, Path], tmp_path: Path) -> None:
    copy = tmp_path / "copy.bin"
    copy.write_bytes(files["binary"].read_bytes())
    first = load_checked(import_word2vec(copy, True, tmp_path / "models", "a"))
    with copy.open("ab") as handle:  # a trailing byte gensim ignores still changes the source
        handle.write(b"\n")
    second = load_checked(import_word2vec(copy, True, tmp_path / "models", "a"))
    assert second.version == 2 and first.source_checksum != second.source_checksum


def test_lookup_only_export(files: dict[str, Path], tmp_path: Path) -> None:
    directory = import_word2vec(
        files["binary"], True, tmp_path / "models", "plain", with_similarity=False
    )
    spec = load_checked(directory)
    assert spec.capabilities == ("embed",) and set(spec.graphs) == {"lookup"}
    assert not (directory / "similarity.onnx").exists()
    model = OnnxWord2Vec(directory)  # neighbours then come from numpy over the lookup graph
    reference = KeyedVectors.load_word2vec_format(str(files["binary"]), binary=True)
    words = ["apple", "bank"]
    scores = model.scores(unit_rows(model.vectors(words)))
    for row, word, neighbours in zip(scores, words, model.neighbours(words, 5), strict=True):
        got = [(found, float(row[model.index[found]])) for found in neighbours]
        assert_same_neighbours(got, reference.most_similar(word, topn=10))


def test_neighbours_match_gensim(files: dict[str, Path], imported: dict[str, Path]) -> None:
    reference = KeyedVectors.load_word2vec_format(str(files["binary"]), binary=True)
    model = OnnxWord2Vec(imported["binary"])
    words = model.words[::97]
    scores = model.scores(unit_rows(model.vectors(words)))  # the similarity graph
    for row, word, neighbours in zip(scores, words, model.neighbours(words, 10), strict=True):
        got = [(found, float(row[model.index[found]])) for found in neighbours]
        assert_same_neighbours(got, reference.most_similar(word, topn=15))


def test_refuses_vectors_that_are_not_finite(tmp_path: Path) -> None:
    source = tmp_path / "nan.txt"
    source.write_text("2 3\nfine 0.1 0.2 0.3\nbroken 0.1 nan 0.3\n")
    with pytest.raises(ValueError, match=r"NaN or infinite values \(e\.g\. of \['broken'\]\)"):
        import_word2vec(source, False, tmp_path / "models", "nan")
    assert not (tmp_path / "models" / "nan" / "1").exists()


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        import_word2vec(tmp_path / "absent.bin", True, tmp_path / "models", "x")


def test_command_line_import(files: dict[str, Path], tmp_path: Path) -> None:
    models = tmp_path / "models"
    argv = ["word2vec", "--from-file", str(files["binary"]), "--binary", "--name", "cli"]
    assert main([*argv, "--models-dir", str(models), "--version", "3"]) == 0
    assert load_checked(models / "cli" / "3").extra["source_format"] == "binary"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--train", "--binary"], "--binary describes the file of --from-file"),
        (["--from-file", "x.bin", "--epochs", "3"], "--epochs only go with --train"),
    ],
)
def test_command_line_refuses_flags_of_the_other_source(
    argv: list[str], message: str, tmp_path: Path
) -> None:
    with pytest.raises(SystemExit, match=message):
        main(["word2vec", *argv, "--models-dir", str(tmp_path)])


def test_large_matrices_go_to_external_data_files(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("export.word2vec.graphs.EXTERNAL_DATA_BYTES", 0)
    directory = import_word2vec(files["binary"], True, tmp_path / "models", "external")
    spec = load_checked(directory)
    assert {"lookup.onnx.data", "similarity.onnx.data"} <= set(spec.file_checksums)
    assert (directory / "lookup.onnx").stat().st_size < 10_000  # the matrix is not inside
    reference = KeyedVectors.load_word2vec_format(str(files["binary"]), binary=True)
    model = OnnxWord2Vec(directory)
    assert np.array_equal(model.vectors(model.words), reference.vectors)
