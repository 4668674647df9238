"""``validation.json``: what the exporter proved about each graph before it published a version.

One type for every architecture. A model's report has one entry per graph; each graph was
validated in one or more *variants*: the unoptimized and the ONNX Runtime-optimized form of a
BERT graph, the zero and the random initial states of the ELMo biLM, the one form of a word2vec
graph. Each variant ran at several shapes and records the largest difference per output.

Files written before this type existed (format 1, three layouts: BERT, ELMo, word2vec) are read
by ``upgrade_v1`` into the same type, so models already on disk keep loading.

Only pydantic and rich (both serving dependencies): the server reads these files too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from rich.table import Table

VALIDATION_FORMAT = 2

# Variant names the exporters write.
UNOPTIMIZED = "unoptimized"
OPTIMIZED = "optimized"

Precision = Literal["fp32", "fp16", "int8"]


class _Frozen(BaseModel):
    # a difference that is not finite is written as Infinity/NaN (as json.dumps does), not null
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")


class CheckResult(_Frozen):
    """An extra check beyond the element-wise difference, e.g. "top-5 identical"."""

    passed: bool
    detail: str


class ShapeRun(_Frozen):
    """One run of a variant at one (batch, sequence) shape."""

    batch_size: int = Field(ge=1)
    sequence_length: int = Field(ge=1)
    max_abs_diff: dict[str, float] = Field(default_factory=dict)
    checks: dict[str, CheckResult] = Field(default_factory=dict)


class VariantReport(_Frozen):
    """One validation of one form of a graph over every shape; passed means no problems."""

    graph: str = Field(description="the graph's role (encoder, fill_mask, bilm, lookup, ...)")
    tolerance: float = Field(ge=0, description="0: exact")
    passed: bool
    max_abs_diff: dict[str, float] = Field(default_factory=dict)
    runs: tuple[ShapeRun, ...] = ()
    problems: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _passed_means_no_problems(self) -> VariantReport:
        if self.passed == bool(self.problems):
            raise ValueError(f"passed={self.passed} contradicts problems {list(self.problems)}")
        return self


class PrecisionCheck(_Frozen):
    """A reduced-precision graph against the validated fp32 graph it was made from.

    It cannot meet the fp32 export's element-wise tolerance, so what is checked is what a
    client sees: the cosine between the two graphs' served outputs (mean-pooled embeddings, or
    the logits at each mask) on held-out texts; ``passed`` means the smallest reached the
    threshold. ``top1_agreement`` (fill-mask only) is the share of masks predicted the same.
    """

    precision: Literal["fp16", "int8"]
    output: str = Field(description="what was compared, e.g. mean-pooled hidden_state_2")
    texts: int = Field(ge=1)
    threshold: float = Field(gt=0, le=1)
    min_cosine: float
    mean_cosine: float
    passed: bool
    top1_agreement: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _passed_means_threshold_reached(self) -> PrecisionCheck:
        if self.passed != (self.min_cosine >= self.threshold):
            raise ValueError(
                f"passed={self.passed} contradicts min cosine {self.min_cosine} against "
                f"threshold {self.threshold}"
            )
        return self


class GraphValidation(_Frozen):
    """One graph of a model version: every variant validated, and what is served."""

    file: str = Field(min_length=1)
    passed: bool
    tolerance: float = Field(ge=0, description="0: exact")
    optimized: bool = Field(description="the served file is ONNX Runtime's optimized form")
    max_abs_diff: dict[str, float] = Field(
        description="largest difference per output over the variants that describe the served file"
    )
    variants: dict[str, VariantReport] = Field(min_length=1)
    checks: dict[str, CheckResult] = Field(
        default_factory=dict, description="checks of the whole graph (e.g. every row compared)"
    )
    precision: PrecisionCheck | None = Field(
        default=None,
        description="the served file is this reduced-precision form of the validated fp32 graph",
    )

    @model_validator(mode="after")
    def _passed_needs_precision_passed(self) -> GraphValidation:
        if self.passed and self.precision is not None and not self.precision.passed:
            raise ValueError(
                f"{self.file}: passed=True but its {self.precision.precision} check failed"
            )
        return self


class ValidationReport(_Frozen):
    """The whole ``validation.json`` of a model version."""

    format_version: int = VALIDATION_FORMAT
    passed: bool
    tolerance: float = Field(ge=0, description="0: exact")
    graphs: dict[str, GraphValidation] = Field(min_length=1)

    @model_validator(mode="after")
    def _consistent(self) -> ValidationReport:
        if self.format_version != VALIDATION_FORMAT:
            raise ValueError(
                f"validation format_version {self.format_version} is not supported (this build "
                f"reads {VALIDATION_FORMAT} and upgrades 1)"
            )
        failed = sorted(role for role, graph in self.graphs.items() if not graph.passed)
        if self.passed and failed:
            raise ValueError(f"passed=True but graphs {failed} failed")
        return self


def merged_max(variants: Mapping[str, VariantReport]) -> dict[str, float]:
    """The largest difference per output over several variants."""
    merged: dict[str, float] = {}
    for variant in variants.values():
        for output, diff in variant.max_abs_diff.items():
            merged[output] = max(merged.get(output, 0.0), diff)
    return merged


def upgrade_v1(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A format-1 report (no ``format_version``; BERT, ELMo or word2vec layout) as format 2."""
    graphs = raw.get("graphs")
    if not isinstance(graphs, Mapping):
        raise ValueError("a format-1 validation report needs a 'graphs' mapping")
    return {
        "format_version": VALIDATION_FORMAT,
        "passed": raw.get("passed"),
        "tolerance": raw.get("tolerance"),
        "graphs": {role: _upgrade_graph(graph) for role, graph in graphs.items()},
    }


def _upgrade_graph(graph: Mapping[str, Any]) -> dict[str, Any]:
    if "initial_state" in graph:  # ELMo: one file, validated from zero and random states
        variants = {state: _upgrade_variant(v) for state, v in graph["initial_state"].items()}
        return {
            "file": graph["file"],
            "passed": graph["passed"],
            "tolerance": graph["tolerance"],
            "optimized": False,
            "max_abs_diff": graph["max_abs_diff"],
            "variants": variants,
        }
    # BERT and word2vec: the unoptimized form, and the optimized one where it was tried
    variants = {UNOPTIMIZED: _upgrade_variant(graph[UNOPTIMIZED])}
    if graph.get("optimized_report") is not None:
        variants[OPTIMIZED] = _upgrade_variant(graph["optimized_report"])
    served = variants[OPTIMIZED if graph["optimized"] else UNOPTIMIZED]
    checks: dict[str, Any] = {}
    if "all_rows_identical" in graph:  # word2vec's lookup: every row compared with gensim
        checks["all_rows_identical"] = {
            "passed": graph["all_rows_identical"],
            "detail": f"{graph['rows']} rows compared",
        }
    return {
        "file": graph["file"],
        "passed": served["passed"],
        "tolerance": served["tolerance"],
        "optimized": graph["optimized"],
        "max_abs_diff": served["max_abs_diff"],
        "variants": variants,
        "checks": checks,
    }


_RUN_FIELDS = ("batch_size", "sequence_length", "max_abs_diff")


def _upgrade_variant(variant: Mapping[str, Any]) -> dict[str, Any]:
    runs = [
        {
            **{key: run[key] for key in _RUN_FIELDS},
            "checks": {key: value for key, value in run.items() if key not in _RUN_FIELDS},
        }
        for run in variant["runs"]
    ]
    return {**variant, "runs": runs}


def validation_table(report: ValidationReport, title: str) -> Table:
    """Every graph, variant and output with its largest difference, then the extra checks."""
    table = Table(title=f"{title} (tolerance {report.tolerance:g})")
    for column in ("graph", "served form", "variant", "output", "max |diff|"):
        table.add_column(column)
    for role, graph in report.graphs.items():
        served = OPTIMIZED if graph.optimized else UNOPTIMIZED
        for name, variant in graph.variants.items():
            for output, diff in variant.max_abs_diff.items():
                table.add_row(role, served, name, output, f"{diff:.2e}")
            for problem in variant.problems:
                table.add_row(role, served, name, "problem", problem)
        for check, result in graph.checks.items():
            verdict = "passed" if result.passed else "FAILED"
            table.add_row(role, served, "whole graph", check, f"{verdict}: {result.detail}")
        if graph.precision is not None:
            table.add_row(
                role, served, graph.precision.precision, *_precision_cells(graph.precision)
            )
    return table


def _precision_cells(check: PrecisionCheck) -> tuple[str, str]:
    verdict = "passed" if check.passed else "FAILED"
    agreement = "" if check.top1_agreement is None else f", top-1 {check.top1_agreement:.1%}"
    return (
        f"cosine to fp32, {check.output}",
        f"{verdict}: min {check.min_cosine:.4f} mean {check.mean_cosine:.4f} >= "
        f"{check.threshold:g} over {check.texts} texts{agreement}",
    )
