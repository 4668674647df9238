"""Reduced-precision BERT exports: int8 and fp16 graphs made from the validated fp32 export,
checked by cosine against it on held-out sentences, and published only when that check holds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from rich.console import Console

from export.bert.exporter import import_bert
from export.bert.precision import (
    PrecisionCheckFailed,
    PrecisionPlan,
    ReducedPrecision,
    check_precision,
)
from export.corpus import CorpusConfig, load_or_generate
from modelrepo import ModelRepository, load_checked, read_spec
from modelrepo.validation import PrecisionCheck, ValidationReport, validation_table
from service.domain import EmbedOptions, Pooling
from service.runtime.bert import BertRuntime
from service.runtime.session import CPU_FP32
from tests.checkpoints import save_mlm_checkpoint
from tests.sentence_checkpoints import (
    ARCHITECTURES,
    save_family_checkpoint,
    save_sentence_transformer,
)

pytestmark = pytest.mark.slow

GRAPHS = ("encoder.onnx", "fill_mask.onnx")


@pytest.fixture(scope="module")
def heldout(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, ...]:
    config = CorpusConfig(train_tokens=2_000, heldout_sentences=200)
    corpus = load_or_generate(tmp_path_factory.mktemp("corpus"), config)
    return tuple(corpus.heldout.sentences)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory, heldout: tuple[str, ...]) -> dict[str, Path]:
    """The same tiny checkpoint published three times: fp32, int8 and fp16."""
    root = tmp_path_factory.mktemp("precision")
    checkpoint = save_mlm_checkpoint(root / "checkpoint")
    models = root / "models"
    return {
        "checkpoint": checkpoint,
        "fp32": import_bert(checkpoint, models, "tiny"),
        "int8": import_bert(
            checkpoint, models, "tiny-int8", precision=PrecisionPlan("int8", heldout)
        ),
        "fp16": import_bert(
            checkpoint, models, "tiny-fp16", precision=PrecisionPlan("fp16", heldout[:48])
        ),
    }


def report_of(directory: Path) -> ValidationReport:
    return ValidationReport.model_validate_json((directory / "validation.json").read_text())


def op_types(path: Path) -> set[str]:
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def served(directory: Path) -> BertRuntime:
    return BertRuntime(directory, load_checked(directory), CPU_FP32)


def mean_pooled(runtime: BertRuntime, texts: list[str]) -> np.ndarray:
    options = EmbedOptions(Pooling.MEAN, layers=(runtime.spec.num_layers,), truncate=True)
    items = runtime.prepare_embed(texts, options)
    return np.stack([pooled.result.vectors for pooled in runtime.embed_batch(items)])


@pytest.mark.parametrize(("precision", "texts"), [("int8", 200), ("fp16", 48)])
def test_reduced_export_records_its_precision_and_cosine(
    exports: dict[str, Path], precision: str, texts: int
) -> None:
    directory = exports[precision]
    assert load_checked(directory).precision == precision
    assert sorted(path.name for path in directory.iterdir()) == sorted(
        path.name for path in exports["fp32"].iterdir()
    )  # the fp32 graphs it was checked against are not published
    report = report_of(directory)
    assert report.passed
    for role in ("encoder", "fill_mask"):
        check = report.graphs[role].precision
        assert check is not None
        assert check.precision == precision
        assert check.passed and check.threshold == 0.99
        assert 0.99 <= check.min_cosine <= check.mean_cosine <= 1.0 + 1e-9
        assert texts - 2 <= check.texts <= texts  # fill-mask skips texts too long to mask
    fill_mask = report.graphs["fill_mask"].precision
    assert fill_mask is not None and fill_mask.top1_agreement is not None
    assert fill_mask.top1_agreement >= 0.8


@pytest.mark.parametrize(("precision", "largest_share"), [("int8", 0.6), ("fp16", 0.65)])
def test_reduced_graphs_are_smaller(
    exports: dict[str, Path], precision: str, largest_share: float
) -> None:
    for graph in GRAPHS:
        reduced = (exports[precision] / graph).stat().st_size
        assert reduced < largest_share * (exports["fp32"] / graph).stat().st_size


def test_int8_graphs_are_dynamically_quantized(exports: dict[str, Path]) -> None:
    for graph in GRAPHS:
        kinds = op_types(exports["int8"] / graph)
        assert "DynamicQuantizeLinear" in kinds or "DynamicQuantizeMatMul" in kinds
        assert "DynamicQuantizeLinear" not in op_types(exports["fp32"] / graph)


def test_fp16_graphs_compute_in_half_precision_behind_float32_io(
    exports: dict[str, Path],
) -> None:
    model = onnx.load(str(exports["fp16"] / "encoder.onnx"))
    types = {initializer.data_type for initializer in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    assert onnx.TensorProto.FLOAT not in types
    outputs = {value.type.tensor_type.elem_type for value in model.graph.output}
    assert outputs == {onnx.TensorProto.FLOAT}  # as the spec declares: the server reads float32


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_served_runtime_opens_reduced_versions_and_stays_close(
    exports: dict[str, Path], heldout: tuple[str, ...], precision: str
) -> None:
    reference, reduced = served(exports["fp32"]), served(exports[precision])
    assert reduced.device == "cpu"
    texts = list(heldout[:16])
    expected, actual = mean_pooled(reference, texts), mean_pooled(reduced, texts)
    assert actual.shape == expected.shape == (16, 32)
    cosine = (expected * actual).sum(1) / np.linalg.norm(expected, axis=1)
    cosine /= np.linalg.norm(actual, axis=1)
    assert cosine.min() >= 0.99
    assert not np.array_equal(expected, actual)  # it is not the fp32 graph under another name
    items = reduced.prepare_fill_mask([f"the river {reduced.mask_token} flows"], top_k=3)
    fills = reduced.finish_fill_mask(items[0], reduced.run_fill_mask(items)[0])
    assert len(fills[0]) == 3
    assert fills[0][0].score >= fills[0][1].score >= fills[0][2].score


def test_unreachable_threshold_fails_the_export_and_publishes_nothing(
    exports: dict[str, Path], heldout: tuple[str, ...], tmp_path: Path
) -> None:
    models = tmp_path / "models"
    with pytest.raises(PrecisionCheckFailed, match=r"int8 graphs drift .* min cosine .* < 1"):
        import_bert(
            exports["checkpoint"],
            models,
            "tiny-int8",
            precision=PrecisionPlan("int8", heldout[:32], threshold=1.0),
        )
    assert ModelRepository(models).newest("tiny-int8") is None
    assert list((models / "tiny-int8").iterdir()) == []  # no staging folder left behind


def test_corrupted_int8_graph_fails_the_check(
    exports: dict[str, Path], heldout: tuple[str, ...], tmp_path: Path
) -> None:
    corrupted = tmp_path / "corrupted"
    shutil.copytree(exports["int8"], corrupted)
    model = onnx.load(str(corrupted / "encoder.onnx"))
    rng = np.random.default_rng(0)
    # every quantized weight and embedding table shuffled: the random tiny model's layers add
    # little to its residual stream, so its embedding tables are what its vectors are made of
    quantized = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)
    for initializer in model.graph.initializer:
        if initializer.data_type in quantized:
            weights = onnx.numpy_helper.to_array(initializer)
            scrambled = rng.permutation(weights.reshape(-1)).reshape(weights.shape)
            initializer.CopyFrom(onnx.numpy_helper.from_array(scrambled, initializer.name))
    onnx.save(model, str(corrupted / "encoder.onnx"))
    fp32_spec = load_checked(exports["fp32"])
    with pytest.raises(PrecisionCheckFailed, match=r"encoder: mean-pooled hidden_state_2"):
        check_precision(exports["fp32"], fp32_spec, corrupted, PrecisionPlan("int8", heldout))


def test_fp32_export_records_no_precision_check(exports: dict[str, Path]) -> None:
    assert load_checked(exports["fp32"]).precision == "fp32"
    report = report_of(exports["fp32"])
    assert all(graph.precision is None for graph in report.graphs.values())


def test_spec_written_without_precision_loads_as_fp32(
    exports: dict[str, Path], tmp_path: Path
) -> None:
    raw = json.loads((exports["int8"] / "spec.json").read_text())
    del raw["precision"]
    (tmp_path / "spec.json").write_text(json.dumps(raw))
    assert read_spec(tmp_path).precision == "fp32"


def test_validation_table_prints_the_cosine_check(exports: dict[str, Path]) -> None:
    console = Console(record=True, width=200)
    console.print(validation_table(report_of(exports["int8"]), "tiny-int8"))
    text = console.export_text()
    assert "cosine to fp32, mean-pooled hidden_state_2" in text
    assert "passed: min 0.99" in text and "over 200 texts" in text
    assert "top-1" in text


def test_precision_check_cannot_pass_below_its_threshold() -> None:
    fields = {"precision": "int8", "output": "x", "texts": 3, "threshold": 0.99}
    with pytest.raises(ValueError, match="contradicts min cosine"):
        PrecisionCheck(**fields, min_cosine=0.9, mean_cosine=0.95, passed=True)
    assert not PrecisionCheck(**fields, min_cosine=0.9, mean_cosine=0.95, passed=False).passed


@pytest.mark.parametrize("precision", ["fp32", "int8", "fp16"])
def test_model_info_reports_the_precision(exports: dict[str, Path], precision: str) -> None:
    """What GetModel and ListModels answer for each version."""
    from service.registry.registry import ModelView
    from service.registry.states import ModelState
    from service.transport.codec import model_info

    runtime = served(exports[precision])
    view = ModelView(runtime.spec.name, (runtime.spec.version,), ModelState.READY, "", runtime)
    assert model_info(view).precision == precision


@pytest.mark.parametrize("architecture", ARCHITECTURES)
@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_every_family_member_exports_reduced_and_passes_its_check(
    tmp_path: Path, heldout: tuple[str, ...], architecture: str, precision: ReducedPrecision
) -> None:
    """int8 and fp16 of each architecture (its tokenizer, its inputs, its head) and of a
    sentence-transformers folder with a Dense layer, whose weights come along."""
    checkpoint = save_family_checkpoint(architecture, tmp_path / "checkpoint")
    plan = PrecisionPlan(precision, heldout[:48])
    reduced = import_bert(checkpoint, tmp_path / "models", "reduced", precision=plan)
    assert load_checked(reduced).precision == precision
    report = report_of(reduced)
    assert report.passed and set(report.graphs) == {"encoder", "fill_mask"}
    assert all(graph.precision is not None for graph in report.graphs.values())
    folder = save_sentence_transformer(
        tmp_path / "sentence",
        architecture=architecture,
        pooling="mean",
        normalize=True,
        dense_out=8,
    )
    sentence = import_bert(folder, tmp_path / "models", "sentence", precision=plan)
    spec = load_checked(sentence)
    assert spec.precision == precision and spec.sentence.files == ("dense_0.npz",)
    runtime = served(sentence)
    options = EmbedOptions(Pooling.MEAN, layers=spec.default_layers, normalize=True)
    vectors = [p.result.vectors for p in runtime.embed_batch(runtime.prepare_embed(["a"], options))]
    assert vectors[0].shape == (8,)
