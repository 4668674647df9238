"""Validation shared by every architecture: output names → declared axes → shapes → values.

The exported graph runs in ONNX Runtime at shapes other than the export example, next to the
source framework, and the largest absolute difference is reported per output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from export.spec import BATCH, SEQUENCE, GraphExportSpec
from modelrepo import CheckResult, ShapeRun, VariantReport
from service.runtime.session import CPU_FP32, open_session

Arrays = dict[str, np.ndarray]
InputFactory = Callable[[int, int], Arrays]
Reference = Callable[[Arrays], Arrays]
# Optional extra check per run: returns (name, passed, detail) entries, e.g. "top-5 identical".
ExtraCheck = Callable[[Arrays, Arrays, Arrays], list[tuple[str, bool, str]]]
# Which positions of an output to compare (e.g. non-padded tokens only); None = all.
ValidMask = Callable[[str, Arrays], np.ndarray | None]


class ValidationFailed(Exception):
    """The exported graph does not compute what the source framework computes."""


def raise_unless_passed(report: VariantReport) -> None:
    """Refuse to publish a graph whose validation found problems."""
    if not report.passed:
        raise ValidationFailed(f"{report.graph}: " + "; ".join(report.problems))


def cpu_session(path: Path) -> ort.InferenceSession:
    """The server's session on CPU: the reference numbers are CPU fp32."""
    return open_session(path, CPU_FP32)


def check_declared_axes(model_path: Path, spec: GraphExportSpec) -> list[str]:
    """Names and named dynamic axes in the ONNX file must be those the spec declares."""
    graph = onnx.load(str(model_path), load_external_data=False).graph
    problems: list[str] = []
    for kind, declared, actual in (
        ("input", spec.inputs, graph.input),
        ("output", spec.outputs, graph.output),
    ):
        found = {value.name: value for value in actual}
        if [tensor.name for tensor in declared] != [value.name for value in actual]:
            problems.append(
                f"{kind} names: declared {[t.name for t in declared]}, "
                f"graph has {[value.name for value in actual]}"
            )
            continue
        for tensor in declared:
            dims = found[tensor.name].type.tensor_type.shape.dim
            if len(dims) != len(tensor.shape):
                problems.append(f"{tensor.name}: rank {len(dims)}, declared {len(tensor.shape)}")
                continue
            for index, (dim, want) in enumerate(zip(dims, tensor.shape, strict=True)):
                if isinstance(want, str) and dim.HasField("dim_value"):
                    problems.append(
                        f"{tensor.name} axis {index}: fixed to {dim.dim_value}, "
                        f"declared dynamic {want!r}"
                    )
                elif isinstance(want, str) and dim.dim_param != want:
                    problems.append(
                        f"{tensor.name} axis {index}: named {dim.dim_param!r}, declared {want!r}"
                    )
    return problems


def _check_shape(
    name: str, shape: Sequence[int], declared: Sequence[int | str], sizes: dict[str, int]
) -> str | None:
    """Resolve declared axes against the run's sizes; unknown named axes must be consistent."""
    if len(shape) != len(declared):
        return f"{name}: rank {len(shape)}, declared {len(declared)}"
    for index, (got, want) in enumerate(zip(shape, declared, strict=True)):
        expected = sizes.setdefault(want, got) if isinstance(want, str) else want
        if got != expected:
            return f"{name} axis {index}: size {got}, expected {expected} ({want})"
    return None


def validate_graph(
    model_path: Path,
    spec: GraphExportSpec,
    make_inputs: InputFactory,
    reference: Reference,
    tolerance: float,
    shapes: Sequence[tuple[int, int]],
    valid_mask: ValidMask | None = None,
    extra_check: ExtraCheck | None = None,
) -> VariantReport:
    """Run the four checks at every shape and report the largest difference per output."""
    problems = check_declared_axes(model_path, spec)
    largest: dict[str, float] = {}
    runs: list[ShapeRun] = []
    if problems:
        return _report(spec, tolerance, largest, runs, problems)
    session = cpu_session(model_path)
    for batch, sequence in shapes:
        inputs = make_inputs(batch, sequence)
        actual = dict(zip(spec.output_names, session.run(spec.output_names, inputs), strict=True))
        expected = reference(inputs)
        run_diffs: dict[str, float] = {}
        run_checks: dict[str, CheckResult] = {}
        sizes: dict[str, int] = {BATCH: batch, SEQUENCE: sequence}
        for tensor in spec.outputs:
            problem = _check_shape(tensor.name, actual[tensor.name].shape, tensor.shape, sizes)
            if problem is None and actual[tensor.name].shape != expected[tensor.name].shape:
                problem = (
                    f"{tensor.name}: ONNX shape {actual[tensor.name].shape}, source "
                    f"{expected[tensor.name].shape}"
                )
            if problem is not None:
                problems.append(f"batch {batch}, sequence {sequence}: {problem}")
                continue
            diff = _max_abs_diff(tensor.name, actual, expected, inputs, valid_mask)
            run_diffs[tensor.name] = diff
            largest[tensor.name] = max(largest.get(tensor.name, 0.0), diff)
            if not diff <= tolerance:
                problems.append(
                    f"batch {batch}, sequence {sequence}: {tensor.name} differs by {diff:.3g} "
                    f"> tolerance {tolerance:g}"
                )
        if extra_check is not None:
            for name, passed, detail in extra_check(inputs, actual, expected):
                run_checks[name] = CheckResult(passed=passed, detail=detail)
                if not passed:
                    problems.append(f"batch {batch}, sequence {sequence}: {name}: {detail}")
        runs.append(
            ShapeRun(
                batch_size=batch,
                sequence_length=sequence,
                max_abs_diff=run_diffs,
                checks=run_checks,
            )
        )
    return _report(spec, tolerance, largest, runs, problems)


def _report(
    spec: GraphExportSpec,
    tolerance: float,
    largest: dict[str, float],
    runs: list[ShapeRun],
    problems: list[str],
) -> VariantReport:
    return VariantReport(
        graph=spec.role,
        tolerance=tolerance,
        passed=not problems,
        max_abs_diff=largest,
        runs=tuple(runs),
        problems=tuple(problems),
    )


def _max_abs_diff(
    name: str,
    actual: Mapping[str, np.ndarray],
    expected: Mapping[str, np.ndarray],
    inputs: Arrays,
    valid_mask: ValidMask | None,
) -> float:
    difference = np.abs(actual[name].astype(np.float64) - expected[name].astype(np.float64))
    mask = valid_mask(name, inputs) if valid_mask is not None else None
    if mask is not None:
        difference = difference[mask]
    if difference.size == 0:
        return 0.0
    if not np.all(np.isfinite(difference)):
        return float("inf")
    return float(difference.max())
