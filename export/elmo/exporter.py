"""Import a bilm-tf / AllenNLP biLM (``options.json`` + HDF5 weights) into the model repository.

The biLM is loaded into PyTorch, exported to one ONNX graph (``bilm.onnx``, recurrence as ONNX
``Loop``), validated against PyTorch with the shared ``validate_graph`` at shapes other than the
export example, once with zero and once with random initial LSTM states, and published
atomically with ``spec.json``, ``validation.json`` and the original ``options.json``.
"""

from __future__ import annotations

import shutil
import string
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from export.elmo.graphs import FILE, ROLE, elmo_export_spec
from export.elmo.model import ElmoBiLm
from export.elmo.onnx_export import export_elmo_onnx
from export.elmo.options import ElmoOptions
from export.elmo.weights import load_hdf5_weights
from export.publish import publish_version
from export.spec import ExportSpec, GraphExportSpec
from export.validate import (
    Arrays,
    Reference,
    ValidationFailed,
    ValidMask,
    validate_graph,
)
from modelrepo import (
    GraphValidation,
    ModelSpec,
    ValidationReport,
    VariantReport,
    sha256_of_files,
)
from modelrepo.elmo_characters import BOS_TOKEN, EOS_TOKEN, batch_char_ids
from modelrepo.validation import merged_max

OPTIONS_FILE = "options.json"
DEFAULT_MAX_SEQUENCE_LENGTH = 512
"""Positions per text, <S> and </S> included (so 510 words). The recurrence has no length limit
of its own; this bounds a request's cost, and longer texts are refused or truncated."""

SCALAR_MIX_GAMMA = 1.0
"""The γ of the server-side scalar mix: an imported biLM has no task-specific mix, so the mix of
``layer_weights`` is ``Σ softmax(w)_j · layer_j`` and the default (equal weights) is the mean."""

# Validation sentences are random words over this alphabet (ASCII and multibyte characters).
_ALPHABET = tuple(string.ascii_letters + string.digits + ".,;:!?'-()" + "éüßñ•€中")
_LONG_TOKEN_SHARE = 0.05


@dataclass
class LoadedElmo:
    """A biLM in PyTorch, ready to export, and where it came from."""

    options: ElmoOptions
    model: ElmoBiLm
    options_path: Path
    source_checksum: str


def load_elmo(options_path: Path, weights_path: Path) -> LoadedElmo:
    """Read ``options.json`` and fill a fresh ``ElmoBiLm`` from the HDF5 weights (eval mode)."""
    for path, what in ((options_path, "options"), (weights_path, "weights")):
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no such {what} file")
    options = ElmoOptions.from_json(options_path)
    model = ElmoBiLm(options)
    load_hdf5_weights(model, weights_path)
    model.eval()
    return LoadedElmo(
        options=options,
        model=model,
        options_path=options_path,
        source_checksum=sha256_of_files([options_path, weights_path]),
    )


class ElmoInputs:
    """Seeded random batches for validation: char ids of random sentences, and initial states.

    Row 0 fills the whole sequence (``sequence - 2`` words between <S> and </S>); the other rows
    are shorter, so padding is exercised. Some words are longer than the 48 bytes the encoding
    keeps. States are zeros (a fresh biLM, what the server sends) or random.
    """

    def __init__(self, options: ElmoOptions, seed: int, random_state: bool) -> None:
        self.options = options
        self.seed = seed
        self.random_state = random_state

    def _word(self, rng: np.random.Generator) -> str:
        long = rng.random() < _LONG_TOKEN_SHARE
        length = int(rng.integers(49, 70) if long else rng.integers(1, 12))
        return "".join(_ALPHABET[int(i)] for i in rng.integers(0, len(_ALPHABET), size=length))

    def __call__(self, batch: int, sequence: int) -> Arrays:
        if sequence < 2:
            raise ValueError(f"an ELMo sequence holds at least <S> and </S>, got {sequence}")
        rng = np.random.default_rng([self.seed, batch, sequence])
        lengths = [sequence] + [
            int(rng.integers(min(3, sequence), sequence + 1)) for _ in range(batch - 1)
        ]
        sentences = [[self._word(rng) for _ in range(length - 2)] for length in lengths]
        char_ids = batch_char_ids(sentences, self.options.max_characters_per_token)
        states = 2 * self.options.n_layers
        c_shape = (states, batch, self.options.lstm_dim)
        h_shape = (states, batch, self.options.projection_dim)
        if self.random_state:
            initial_c = rng.uniform(-1.0, 1.0, size=c_shape).astype(np.float32)
            initial_h = rng.uniform(-1.0, 1.0, size=h_shape).astype(np.float32)
        else:
            initial_c = np.zeros(c_shape, dtype=np.float32)
            initial_h = np.zeros(h_shape, dtype=np.float32)
        return {"char_ids": char_ids, "initial_c": initial_c, "initial_h": initial_h}


def _reference(model: ElmoBiLm, graph: GraphExportSpec) -> Reference:
    """The PyTorch biLM (eager, not scripted) on the same inputs: the source of truth."""

    def run(inputs: Arrays) -> Arrays:
        with torch.no_grad():
            outputs = model(*(torch.from_numpy(inputs[name]) for name in graph.input_names))
        return {
            name: output.numpy() for name, output in zip(graph.output_names, outputs, strict=True)
        }

    return run


def _valid_positions(options: ElmoOptions) -> ValidMask:
    """``layers`` is compared at <S>, words and </S> only (padded positions carry no meaning);
    the mask and the final states are compared everywhere."""

    def valid(name: str, inputs: Arrays) -> np.ndarray | None:
        if name != "layers":
            return None
        positions = inputs["char_ids"].max(axis=2) > 0  # (batch, time)
        shape = (options.n_layers + 1, *positions.shape, options.output_dim)
        return np.asarray(np.broadcast_to(positions[None, :, :, None], shape))

    return valid


def _validate(
    path: Path,
    graph: GraphExportSpec,
    loaded: LoadedElmo,
    spec: ExportSpec,
    shapes: Sequence[tuple[int, int]],
) -> dict[str, VariantReport]:
    """The shared validation twice: zero initial states (what the server sends) and random."""
    reference = _reference(loaded.model, graph)
    return {
        state: validate_graph(
            path,
            graph,
            ElmoInputs(loaded.options, seed=seed, random_state=state == "random"),
            reference,
            spec.tolerance,
            shapes,
            _valid_positions(loaded.options),
        )
        for seed, state in enumerate(("zeros", "random"))
    }


def export_elmo(
    loaded: LoadedElmo,
    models_dir: Path,
    name: str,
    version: int | None,
    source: str,
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
) -> Path:
    """Export, validate and publish ``models/<name>/<version>``; refuse if validation fails."""
    if max_sequence_length < 3:
        raise ValueError(
            f"max_sequence_length counts <S> and </S>; it must be at least 3, "
            f"got {max_sequence_length}"
        )
    spec = elmo_export_spec(loaded.options)
    graph = spec.graph(ROLE)
    shapes = [(b, min(s, max_sequence_length)) for b, s in spec.validation_shapes]

    def build(staging: Path, number: int) -> tuple[ModelSpec, ValidationReport]:
        path = staging / FILE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            export_elmo_onnx(loaded.model, path, spec.opset)
        reports = _validate(path, graph, loaded, spec, shapes)
        problems = [
            f"{state} initial state: {problem}"
            for state, report in reports.items()
            for problem in report.problems
        ]
        if problems:
            raise ValidationFailed(f"{ROLE}: " + "; ".join(problems))
        shutil.copyfile(loaded.options_path, staging / OPTIONS_FILE)
        model_spec = _model_spec(loaded, spec, name, number, source, max_sequence_length)
        graph_report = GraphValidation(
            file=graph.file,
            passed=True,
            tolerance=spec.tolerance,
            optimized=False,
            max_abs_diff=merged_max(reports),  # one file serves from any initial state
            variants=reports,
        )
        return model_spec, ValidationReport(
            passed=True, tolerance=spec.tolerance, graphs={ROLE: graph_report}
        )

    return publish_version(models_dir, name, version, build)


def _model_spec(
    loaded: LoadedElmo,
    spec: ExportSpec,
    name: str,
    version: int,
    source: str,
    max_sequence_length: int,
) -> ModelSpec:
    options = loaded.options
    return ModelSpec(
        name=name,
        version=version,
        architecture="elmo",
        capabilities=("embed",),
        graphs={graph.role: graph.to_graph_spec() for graph in spec.graphs},
        hidden_size=options.output_dim,
        num_layers=options.n_layers,
        default_layers=tuple(range(options.n_layers + 1)),
        default_pooling="mean",
        max_sequence_length=max_sequence_length,
        special_tokens={"bos": BOS_TOKEN, "eos": EOS_TOKEN},
        tokenizer_files=(),
        opset=spec.opset,
        tolerance=spec.tolerance,
        source=source,
        source_checksum=loaded.source_checksum,
        extra={
            "options_file": OPTIONS_FILE,
            "tokenization": "whitespace",
            "max_characters_per_token": options.max_characters_per_token,
            "scalar_mix_gamma": SCALAR_MIX_GAMMA,
            "state_layout": "index d * num_layers + l: direction d (0 forward, 1 backward), "
            "layer l",
            "lstm_dim": options.lstm_dim,
            "projection_dim": options.projection_dim,
            "use_skip_connections": options.use_skip_connections,
        },
    )


def import_elmo(
    options_path: Path,
    weights_path: Path,
    models_dir: Path,
    name: str,
    version: int | None = None,
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH,
) -> Path:
    """``python -m export elmo --options F --weights F``: load, export, validate, publish."""
    loaded = load_elmo(options_path, weights_path)
    return export_elmo(
        loaded,
        models_dir,
        name,
        version,
        source=f"bilm-hdf5:{weights_path.resolve()}",
        max_sequence_length=max_sequence_length,
    )
