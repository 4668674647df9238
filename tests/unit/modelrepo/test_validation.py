"""``validation.json``: one type for every architecture, written and read back unchanged; the
three layouts written before it (BERT, ELMo, word2vec) still load; the table shows every output."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path

import pytest
from rich.console import Console

from modelrepo import (
    VALIDATION_FILE,
    CheckResult,
    GraphValidation,
    ShapeRun,
    SpecError,
    ValidationReport,
    VariantReport,
    read_validation,
    validation_table,
    write_validation,
)

# validation.json files written by the exporters before the typed report (format 1), one per
# architecture, kept verbatim
FORMAT_1 = Path(__file__).parent / "validation_v1"


def validation_report(passed: bool = True) -> ValidationReport:
    """A one-graph report (optimized form served); ``passed=False`` records a problem."""
    problems = () if passed else ("batch 3, sequence 33: hidden_state_1 differs by 0.2",)
    run = ShapeRun(
        batch_size=3,
        sequence_length=33,
        max_abs_diff={"hidden_state_1": 2e-6},
        checks={"top5_identical": CheckResult(passed=True, detail="3/3 masks")},
    )
    variants = {
        name: VariantReport(
            graph="encoder",
            tolerance=1e-4,
            passed=passed,
            max_abs_diff={"hidden_state_1": diff},
            runs=(run,),
            problems=problems,
        )
        for name, diff in (("unoptimized", 2e-6), ("optimized", 3e-6))
    }
    graph = GraphValidation(
        file="encoder.onnx",
        passed=passed,
        tolerance=1e-4,
        optimized=True,
        max_abs_diff={"hidden_state_1": 3e-6},
        variants=variants,
        checks={"all_rows_identical": CheckResult(passed=True, detail="9 rows compared")},
    )
    return ValidationReport(passed=passed, tolerance=1e-4, graphs={"encoder": graph})


def rendered(report: ValidationReport) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(validation_table(report, "validation"))
    return console.export_text()


def old_file(tmp_path: Path, architecture: str) -> Path:
    directory = tmp_path / architecture
    directory.mkdir()
    (directory / VALIDATION_FILE).write_text((FORMAT_1 / f"{architecture}.json").read_text())
    return directory


def test_round_trip(tmp_path: Path) -> None:
    report = validation_report()
    write_validation(tmp_path, report)
    assert read_validation(tmp_path) == report
    assert json.loads((tmp_path / VALIDATION_FILE).read_text())["format_version"] == 2


def test_a_difference_that_is_not_finite_round_trips(tmp_path: Path) -> None:
    graph = validation_report().graphs["encoder"]
    failed = VariantReport(
        graph="encoder",
        tolerance=1e-4,
        passed=False,
        max_abs_diff={"hidden_state_1": math.inf},
        problems=("hidden_state_1 differs by inf",),
    )
    variants = {**graph.variants, "optimized": failed}
    served = graph.model_copy(update={"optimized": False, "variants": variants})
    report = ValidationReport(passed=True, tolerance=1e-4, graphs={"encoder": served})
    write_validation(tmp_path, report)
    assert read_validation(tmp_path).graphs["encoder"].variants["optimized"].max_abs_diff == {
        "hidden_state_1": math.inf
    }


def test_reports_are_frozen() -> None:
    report = validation_report()
    with pytest.raises(ValueError, match="frozen"):
        report.graphs["encoder"].variants["optimized"].passed = False  # type: ignore[misc]


def test_passed_must_agree_with_problems() -> None:
    with pytest.raises(ValueError, match="contradicts problems"):
        VariantReport(graph="encoder", tolerance=1e-4, passed=True, problems=("bad",))
    graph = validation_report(passed=False).graphs["encoder"]
    with pytest.raises(ValueError, match=r"graphs \['encoder'\] failed"):
        ValidationReport(passed=True, tolerance=1e-4, graphs={"encoder": graph})


def test_bert_format_1_loads(tmp_path: Path) -> None:
    report = read_validation(old_file(tmp_path, "bert"))
    assert report.passed and set(report.graphs) == {"encoder", "fill_mask"}
    raw = json.loads((FORMAT_1 / "bert.json").read_text())
    for role, graph in report.graphs.items():
        old = raw["graphs"][role]
        assert graph.file == old["file"] and graph.optimized is old["optimized"]
        assert graph.variants["unoptimized"].max_abs_diff == old["unoptimized"]["max_abs_diff"]
        served = old["optimized_report"] if old["optimized"] else old["unoptimized"]
        assert graph.max_abs_diff == served["max_abs_diff"]
        assert ("optimized" in graph.variants) is (old["optimized_report"] is not None)
        shapes = [
            (run.batch_size, run.sequence_length) for run in graph.variants["unoptimized"].runs
        ]
        assert shapes == [(1, 8), (3, 33), (5, 96)]
    for run in report.graphs["fill_mask"].variants["unoptimized"].runs:
        assert run.checks["top5_identical"].passed


def test_elmo_format_1_loads(tmp_path: Path) -> None:
    report = read_validation(old_file(tmp_path, "elmo"))
    graph = report.graphs["bilm"]
    raw = json.loads((FORMAT_1 / "elmo.json").read_text())["graphs"]["bilm"]
    assert set(graph.variants) == {"zeros", "random"} and not graph.optimized
    assert graph.max_abs_diff == raw["max_abs_diff"]
    for state, variant in graph.variants.items():
        assert variant.passed and variant.problems == ()
        assert variant.max_abs_diff == raw["initial_state"][state]["max_abs_diff"]
        assert set(variant.runs[0].max_abs_diff) == {"layers", "mask", "final_c", "final_h"}


def test_word2vec_format_1_loads(tmp_path: Path) -> None:
    report = read_validation(old_file(tmp_path, "word2vec"))
    raw = json.loads((FORMAT_1 / "word2vec.json").read_text())["graphs"]
    lookup = report.graphs["lookup"]
    assert lookup.variants["unoptimized"].max_abs_diff == {"vectors": 0.0}
    assert lookup.checks["all_rows_identical"] == CheckResult(
        passed=True, detail=f"{raw['lookup']['rows']} rows compared"
    )
    assert set(report.graphs["similarity"].variants) == {"unoptimized"}
    assert report.graphs["similarity"].checks == {}


@pytest.mark.parametrize("architecture", ["bert", "elmo", "word2vec"])
def test_format_1_is_rewritten_as_the_current_format(tmp_path: Path, architecture: str) -> None:
    report = read_validation(old_file(tmp_path, architecture))
    write_validation(tmp_path, report)
    assert read_validation(tmp_path) == report


@pytest.mark.parametrize("architecture", ["bert", "elmo", "word2vec"])
def test_the_table_has_a_row_per_graph_variant_and_output(
    tmp_path: Path, architecture: str
) -> None:
    report = read_validation(old_file(tmp_path, architecture))
    lines = rendered(report).splitlines()
    for role, graph in report.graphs.items():
        for name, variant in graph.variants.items():
            for output, diff in variant.max_abs_diff.items():
                row = [line for line in lines if f" {role} " in line and f" {name} " in line]
                assert any(f" {output} " in line and f"{diff:.2e}" in line for line in row), (
                    role,
                    name,
                    output,
                )
        for check in graph.checks:
            assert any(f" {check} " in line and "passed" in line for line in lines)


def test_the_table_shows_problems() -> None:
    text = rendered(validation_report(passed=False))
    assert "hidden_state_1 differs by 0.2" in text


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"format_version": 2, "passed": true}', "not a validation report"),
        (
            validation_report().model_copy(update={"format_version": 9}).model_dump_json(),
            "validation format_version 9 is not supported",
        ),
        ('{"passed": true}', "needs a 'graphs' mapping"),
    ],
)
def test_a_broken_file_is_refused_with_its_path(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / VALIDATION_FILE).write_text(content)
    with pytest.raises(SpecError, match=message) as raised:
        read_validation(tmp_path)
    assert str(tmp_path / VALIDATION_FILE) in str(raised.value)


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="never validated"):
        read_validation(tmp_path)
