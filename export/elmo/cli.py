"""The ``python -m export elmo`` command: its arguments, training, import and evaluation.

python -m export elmo --train [--steps N] [--max-sequence-length N]
python -m export elmo --options FILE --weights FILE --name NAME [--version N]

torch and h5py are imported only when a command runs, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from export.checkpoints import training_checkpoint_dir
from export.console import console, report_export
from export.corpus import Corpus, load_or_generate
from export.requests import Commands, Target, TargetOptions, Workspace, add_workspace_options
from export.spec import ExportSpec

TARGET = TargetOptions("elmo", "writes options.json and the weights")


@dataclass(frozen=True)
class ElmoTrainRequest:
    """Train the default small biLM on the generated corpus, then import it."""

    workspace: Workspace
    target: Target
    max_sequence_length: int | None = None  # None: the exporter's default


@dataclass(frozen=True)
class ElmoImportRequest:
    """Import a bilm-tf / AllenNLP biLM: its options.json and HDF5 weights."""

    workspace: Workspace
    target: Target
    options: Path
    weights: Path
    max_sequence_length: int | None = None


ElmoRequest = ElmoTrainRequest | ElmoImportRequest


def add_command(commands: Commands) -> None:
    parser = commands.add_parser(
        "elmo",
        allow_abbrev=False,
        help="train an ELMo biLM or import bilm-tf / AllenNLP weights, and export it",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--train", action="store_true", help="train the default small biLM on the corpus"
    )
    source.add_argument(
        "--options", type=Path, metavar="FILE", help="the biLM's options.json (needs --weights)"
    )
    parser.add_argument(
        "--weights", type=Path, metavar="FILE", help="the biLM's HDF5 weights (bilm-tf layout)"
    )
    TARGET.add(parser)
    parser.add_argument(
        "--max-sequence-length",
        type=int,
        default=None,
        help="positions per text served, <S> and </S> included (default: 512)",
    )
    add_workspace_options(parser)
    parser.set_defaults(build=request_from, func=run)


def request_from(args: argparse.Namespace, workspace: Workspace) -> ElmoRequest:
    target = TARGET.read(args)
    if args.train:
        if args.weights is not None:
            raise SystemExit("--weights goes with --options, not with --train")
        return ElmoTrainRequest(workspace, target, args.max_sequence_length)
    if args.weights is None:
        raise SystemExit("--options needs --weights (the biLM's HDF5 weight file)")
    return ElmoImportRequest(
        workspace, target, args.options, args.weights, args.max_sequence_length
    )


def run(request: ElmoRequest) -> Path:
    started = time.perf_counter()
    if isinstance(request, ElmoTrainRequest):
        return report_export(train(request), started)
    return report_export(import_weights(request), started)


def default_training(workspace: Workspace, name: str) -> ElmoTrainRequest:
    return ElmoTrainRequest(workspace, Target(name))


def _limits(max_sequence_length: int | None) -> dict[str, int]:
    return {} if max_sequence_length is None else {"max_sequence_length": max_sequence_length}


def train(request: ElmoTrainRequest) -> Path:
    """Train the recipe (``--steps`` overrides its steps), save the biLM files, import them."""
    from export.elmo.exporter import import_elmo
    from export.elmo.train import ElmoTrainingConfig, train_elmo

    workspace, target = request.workspace, request.target
    corpus = load_or_generate(workspace.corpus_dir, workspace.corpus_config)
    config = ElmoTrainingConfig(seed=workspace.seed, steps=target.steps or ElmoTrainingConfig.steps)
    checkpoint = training_checkpoint_dir(target)
    started = time.perf_counter()
    options, weights = train_elmo(
        corpus.train.sentences,
        config,
        checkpoint,
        workspace.show_progress,
        workspace.progress_interval_s,
    )
    console.print(f"trained in {time.perf_counter() - started:.0f} s → {checkpoint}")
    return import_elmo(
        options,
        weights,
        workspace.models_dir,
        target.name,
        target.version,
        **_limits(request.max_sequence_length),
    )


def import_weights(request: ElmoImportRequest) -> Path:
    from export.elmo.exporter import import_elmo

    return import_elmo(
        request.options,
        request.weights,
        request.workspace.models_dir,
        request.target.name,
        request.target.version,
        **_limits(request.max_sequence_length),
    )


def evaluate(directory: Path, corpus: Corpus) -> dict[str, object]:
    """The polysemy gap of the layer mix and of each layer."""
    from export.elmo.evaluate import evaluate_elmo
    from export.elmo.inference import OnnxElmo

    return dict(evaluate_elmo(OnnxElmo(directory), corpus.heldout))


def export_spec_factory() -> Callable[..., ExportSpec]:
    from export.elmo.graphs import elmo_export_spec

    return elmo_export_spec
