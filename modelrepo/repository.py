"""The on-disk model repository: ``<root>/<name>/<version>/`` with ``spec.json``, ONNX graphs,
tokenizer or vocabulary files and ``validation.json``.

This one module reads, writes and checks the format for both the export side and the serving
side, so it imports neither torch nor transformers (nor onnxruntime): only pydantic and the
standard library. See ``models/README.md`` for the format.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from modelrepo.rebuild import rebuild_command
from modelrepo.sentence import SentenceHead
from modelrepo.validation import ValidationReport, upgrade_v1

FORMAT_VERSION = 1
SPEC_FILE = "spec.json"
VALIDATION_FILE = "validation.json"

Architecture = Literal["bert", "elmo", "word2vec"]
TensorDType = Literal["int64", "int32", "float32", "float16", "bool"]
Capability = Literal["embed", "fill_mask", "most_similar"]

_NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
_AXIS_PATTERN = re.compile(r"^[a-z][a-z0-9_]*$")


class SpecError(Exception):
    """A model directory does not match the repository format; the message says what and where."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TensorSpec(_Frozen):
    """One graph input or output: its name, element type and shape.

    Each shape entry is either a fixed size or the name of a dynamic axis
    (``batch_size``, ``sequence_length``, ...).
    """

    name: str = Field(min_length=1)
    dtype: TensorDType
    shape: tuple[int | str, ...]

    @field_validator("shape")
    @classmethod
    def _axes_are_sizes_or_names(cls, shape: tuple[int | str, ...]) -> tuple[int | str, ...]:
        for axis in shape:
            if isinstance(axis, int) and axis < 0:
                raise ValueError(f"fixed axis sizes must be >= 0, got {axis}")
            if isinstance(axis, str) and not _AXIS_PATTERN.match(axis):
                raise ValueError(f"dynamic axis names must be snake_case, got {axis!r}")
        return shape


class GraphSpec(_Frozen):
    """One ONNX graph of a model version and the tensors it declares."""

    file: str = Field(min_length=1)
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    def input(self, name: str) -> TensorSpec:
        return _find(self.inputs, name, f"input of {self.file}")

    def output(self, name: str) -> TensorSpec:
        return _find(self.outputs, name, f"output of {self.file}")


class ModelSpec(_Frozen):
    """Everything the server needs to know about a model version, written by the exporter."""

    format_version: int = FORMAT_VERSION
    name: str
    version: int = Field(ge=1)
    architecture: Architecture
    capabilities: tuple[Capability, ...]
    graphs: dict[str, GraphSpec]
    hidden_size: int = Field(ge=1)
    num_layers: int = Field(ge=0, description="layers a request may choose besides layer 0")
    default_layers: tuple[int, ...]
    default_pooling: Literal["cls", "mean", "max", "mean_sqrt_len", "none"]
    max_sequence_length: int = Field(ge=1, description="tokens per text, special tokens included")
    special_tokens: dict[str, str] = Field(default_factory=dict)
    special_token_ids: dict[str, int] = Field(default_factory=dict)
    tokenizer_files: tuple[str, ...] = ()
    opset: int = Field(ge=1)
    tolerance: float = Field(gt=0, description="largest |ONNX - source| accepted at validation")
    precision: Literal["fp32", "fp16", "int8"] = Field(
        default="fp32",
        description="weights of the served graphs: int8 (CPU) and fp16 (CUDA) are made from the "
        "validated fp32 export and checked against it by cosine (validation.json)",
    )
    source: str = Field(description="where the weights came from (training run or import path)")
    source_checksum: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")
    file_checksums: dict[str, str] = Field(
        default_factory=dict, description="sha256 of every artifact file, by relative path"
    )
    sentence: SentenceHead = Field(
        default_factory=SentenceHead,
        description="the embedding beyond pooling (sentence-transformers' pipeline, if any)",
    )
    extra: dict[str, Any] = Field(default_factory=dict)

    @property
    def output_dim(self) -> int:
        """The dimension of the vectors this model serves (after its Dense layers, if any)."""
        return self.sentence.output_dim(self.hidden_size)

    @field_validator("name")
    @classmethod
    def _name_is_path_safe(cls, name: str) -> str:
        if not _NAME_PATTERN.match(name):
            raise ValueError(
                f"model name {name!r} must be 1-64 lowercase letters, digits, '.', '_' or '-'"
            )
        return name

    @model_validator(mode="after")
    def _consistent(self) -> ModelSpec:
        if self.format_version != FORMAT_VERSION:
            raise ValueError(
                f"format_version {self.format_version} is not supported (this build reads "
                f"{FORMAT_VERSION}); re-export the model with this version of the exporter"
            )
        if not self.graphs:
            raise ValueError("a model needs at least one graph")
        for layer in self.default_layers:
            if not 0 <= layer <= self.num_layers:
                raise ValueError(f"default layer {layer} is outside 0..{self.num_layers}")
        dense = self.sentence.dense
        if dense and dense[0].in_features != self.hidden_size:
            raise ValueError(
                f"the first Dense layer takes {dense[0].in_features} values, but the encoder "
                f"gives {self.hidden_size}"
            )
        return self

    def graph(self, role: str) -> GraphSpec:
        """The graph playing ``role`` (``encoder``, ``fill_mask``, ...)."""
        try:
            return self.graphs[role]
        except KeyError:
            raise SpecError(
                f"{self.name}/{self.version}: spec.json declares no {role!r} graph "
                f"(it has {sorted(self.graphs)})"
            ) from None

    def supports(self, capability: Capability) -> bool:
        return capability in self.capabilities


def _find(tensors: Iterable[TensorSpec], name: str, what: str) -> TensorSpec:
    for tensor in tensors:
        if tensor.name == name:
            return tensor
    raise SpecError(f"no {what} named {name!r}")


def sha256_of(path: Path) -> str:
    """``sha256:<hex>`` of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def sha256_of_files(paths: Sequence[Path]) -> str:
    """One checksum over several files (names and contents, in the given order)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.name.encode())
        digest.update(sha256_of(path).encode())
    return f"sha256:{digest.hexdigest()}"


def version_dir(root: Path, name: str, version: int) -> Path:
    return root / name / str(version)


def write_spec(directory: Path, spec: ModelSpec) -> None:
    """Write ``spec.json``, filling in the checksum of every artifact already in ``directory``."""
    files = sorted(
        path.relative_to(directory).as_posix()
        for path in directory.rglob("*")
        if path.is_file() and path.name not in (SPEC_FILE, VALIDATION_FILE)
    )
    checksums = {name: sha256_of(directory / name) for name in files}
    final = spec.model_copy(update={"file_checksums": checksums})
    ModelSpec.model_validate(final.model_dump())  # re-check after the update
    (directory / SPEC_FILE).write_text(final.model_dump_json(indent=2) + "\n")


def write_validation(directory: Path, report: ValidationReport) -> None:
    """Write ``validation.json`` (always the current format)."""
    (directory / VALIDATION_FILE).write_text(report.model_dump_json(indent=2) + "\n")


def read_spec(directory: Path) -> ModelSpec:
    """Parse ``spec.json`` of one version directory, with a clear message when it is wrong."""
    path = directory / SPEC_FILE
    if not path.is_file():
        raise SpecError(f"{path}: missing; every model version directory needs a spec.json")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: not valid JSON ({error}); re-export the model") from None
    try:
        return ModelSpec.model_validate(raw)
    except ValidationError as error:
        raise SpecError(f"{path}: {problems_of(error, 'spec')}") from None


def problems_of(error: ValidationError, whole: str) -> str:
    """Each problem pydantic found as ``field.path: message`` (``whole`` for the object)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in issue['loc']) or whole}: {issue['msg']}"
        for issue in error.errors()
    )


def read_validation(directory: Path) -> ValidationReport:
    """Parse ``validation.json``; files of format 1 (no ``format_version``) are upgraded."""
    path = directory / VALIDATION_FILE
    if not path.is_file():
        raise SpecError(f"{path}: missing; the model was never validated, re-export it")
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise SpecError(f"{path}: not valid JSON ({error})") from None
    try:
        if isinstance(raw, dict) and "format_version" not in raw:
            raw = upgrade_v1(raw)
        return ValidationReport.model_validate(raw)
    except (ValidationError, ValueError, KeyError, TypeError) as error:
        raise SpecError(f"{path}: not a validation report ({error}); re-export the model") from None


def load_checked(directory: Path, verify_checksums: bool = True) -> ModelSpec:
    """Read a version directory and check it against its own spec before anything is served.

    Checks: the spec parses; name and version match the directory; every declared graph,
    tokenizer and Dense weight file exists; every artifact matches its recorded checksum; the
    validation report exists and says the export passed.
    """
    spec = read_spec(directory)
    where = directory / SPEC_FILE
    if directory.name != str(spec.version) or directory.parent.name != spec.name:
        raise SpecError(
            f"{where}: declares {spec.name}/{spec.version} but lives in "
            f"{directory.parent.name}/{directory.name}"
        )
    rebuild = f"rebuild it with `{rebuild_command(spec, directory)}`"
    declared = [
        *(graph.file for graph in spec.graphs.values()),
        *spec.tokenizer_files,
        *spec.sentence.files,
    ]
    for relative in declared:
        if not (directory / relative).is_file():
            expected = spec.file_checksums.get(relative, "none recorded")
            raise SpecError(
                f"{where}: declares {relative!r}, which is missing from {directory} (expected "
                f"checksum {expected}, actual: no file); {rebuild}"
            )
        if relative not in spec.file_checksums:
            raise SpecError(f"{where}: no checksum recorded for {relative!r}; {rebuild}")
    if verify_checksums:
        for relative, expected in spec.file_checksums.items():
            path = directory / relative
            if not path.is_file():
                raise SpecError(
                    f"{where}: lists {relative!r}, which is missing (expected checksum "
                    f"{expected}, actual: no file); {rebuild}"
                )
            actual = sha256_of(path)
            if actual != expected:
                raise SpecError(
                    f"{path}: checksum {actual} does not match {expected} recorded in "
                    f"spec.json ({path.stat().st_size} bytes); the file was changed or corrupted "
                    f"after export, {rebuild}"
                )
    report = read_validation(directory)
    if not report.passed:
        raise SpecError(
            f"{directory / VALIDATION_FILE}: the export did not pass validation; "
            "see the report and re-export"
        )
    return spec


def check_tensors(
    declared: Sequence[TensorSpec],
    actual: Sequence[tuple[str, str, Sequence[int | str | None]]],
    what: str,
) -> None:
    """Compare declared tensors with what a loaded graph reports as (name, dtype, shape).

    Dynamic axes match any symbolic or unknown dimension; fixed sizes must be equal.
    """
    declared_names = [tensor.name for tensor in declared]
    actual_names = [name for name, _, _ in actual]
    if sorted(declared_names) != sorted(actual_names):
        raise SpecError(
            f"{what}: spec.json declares {declared_names} but the graph has {actual_names}"
        )
    by_name = {name: (dtype, shape) for name, dtype, shape in actual}
    for tensor in declared:
        dtype, shape = by_name[tensor.name]
        if dtype != tensor.dtype:
            raise SpecError(
                f"{what}: {tensor.name} is {dtype} in the graph but {tensor.dtype} in spec.json"
            )
        if len(shape) != len(tensor.shape):
            raise SpecError(
                f"{what}: {tensor.name} has rank {len(shape)} in the graph but "
                f"{len(tensor.shape)} in spec.json"
            )
        for axis, (want, got) in enumerate(zip(tensor.shape, shape, strict=True)):
            if isinstance(want, int) and isinstance(got, int) and want != got:
                raise SpecError(
                    f"{what}: {tensor.name} axis {axis} is {got} in the graph but {want} in "
                    "spec.json"
                )
            if isinstance(want, str) and isinstance(got, int):
                raise SpecError(
                    f"{what}: {tensor.name} axis {axis} should be the dynamic axis {want!r} "
                    f"but the graph fixes it to {got}"
                )


class ModelRepository:
    """A repository root: lists model names and numbered versions, resolves "newest"."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            path.name
            for path in self.root.iterdir()
            if path.is_dir() and _NAME_PATTERN.match(path.name) and self.versions(path.name)
        )

    def versions(self, name: str) -> list[int]:
        directory = self.root / name
        if not directory.is_dir():
            return []
        return sorted(
            int(path.name)
            for path in directory.iterdir()
            if path.is_dir() and path.name.isdigit() and (path / SPEC_FILE).is_file()
        )

    def newest(self, name: str) -> int | None:
        versions = self.versions(name)
        return versions[-1] if versions else None

    def next_version(self, name: str) -> int:
        newest = self.newest(name)
        return 1 if newest is None else newest + 1

    def path(self, name: str, version: int) -> Path:
        return version_dir(self.root, name, version)

    def has(self, name: str, version: int | None = None) -> bool:
        versions = self.versions(name)
        return bool(versions) if version is None else version in versions
