"""The ``python -m export word2vec`` command: its arguments, training, import and evaluation.

python -m export word2vec --train [--cbow] [--hs] [--dim N] [--epochs N] [--window N]
python -m export word2vec --from-file PATH [--binary] --name NAME [--version N]

gensim is imported only when a command runs, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from export.checkpoints import training_checkpoint_dir
from export.console import console, report_export
from export.corpus import Corpus, load_or_generate
from export.requests import Commands, Target, TargetOptions, Workspace, add_workspace_options
from export.spec import ExportSpec

TARGET = TargetOptions("word2vec", "saves the C binary vectors", with_steps=False)


@dataclass(frozen=True)
class Word2VecTrainRequest:
    """Train with gensim on the generated corpus; ``None`` keeps the recipe's value."""

    workspace: Workspace
    target: Target
    cbow: bool = False
    hierarchical_softmax: bool = False
    dim: int | None = None
    epochs: int | None = None
    window: int | None = None
    with_similarity: bool = True


@dataclass(frozen=True)
class Word2VecImportRequest:
    """Import vectors in the C word2vec text or binary format."""

    workspace: Workspace
    target: Target
    path: Path
    binary: bool = False
    with_similarity: bool = True


Word2VecRequest = Word2VecTrainRequest | Word2VecImportRequest


def add_command(commands: Commands) -> None:
    parser = commands.add_parser(
        "word2vec",
        allow_abbrev=False,
        help="train word2vec with gensim or import the C formats, and export it",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--train", action="store_true", help="train skip-gram with negative sampling (default)"
    )
    source.add_argument(
        "--from-file", type=Path, metavar="PATH", help="vectors in the C word2vec format"
    )
    parser.add_argument("--binary", action="store_true", help="PATH is the C binary format")
    parser.add_argument("--cbow", action="store_true", help="train CBOW instead of skip-gram")
    parser.add_argument(
        "--hs", action="store_true", help="hierarchical softmax instead of negative sampling"
    )
    parser.add_argument("--dim", type=int, help="vector size (default 100)")
    parser.add_argument("--epochs", type=int, help="passes over the corpus (default 5)")
    parser.add_argument("--window", type=int, help="context words on each side (default 5)")
    parser.add_argument(
        "--no-similarity",
        action="store_true",
        help="export the lookup graph only (no MostSimilar; halves the size)",
    )
    TARGET.add(parser)
    add_workspace_options(parser)
    parser.set_defaults(build=request_from, func=run)


def request_from(args: argparse.Namespace, workspace: Workspace) -> Word2VecRequest:
    """Refuse flags that do not go with the chosen source."""
    target = TARGET.read(args)
    with_similarity = not args.no_similarity
    if args.train:
        if args.binary:
            raise SystemExit(
                "--binary describes the file of --from-file; it does not go with --train"
            )
        return Word2VecTrainRequest(
            workspace,
            target,
            cbow=args.cbow,
            hierarchical_softmax=args.hs,
            dim=args.dim,
            epochs=args.epochs,
            window=args.window,
            with_similarity=with_similarity,
        )
    training_only = {
        "--cbow": args.cbow,
        "--hs": args.hs,
        "--dim": args.dim,
        "--epochs": args.epochs,
        "--window": args.window,
        "--checkpoint-dir": args.checkpoint_dir,
    }
    given = [flag for flag, value in training_only.items() if value]
    if given:
        raise SystemExit(f"{', '.join(given)} only go with --train")
    return Word2VecImportRequest(workspace, target, args.from_file, args.binary, with_similarity)


def run(request: Word2VecRequest) -> Path:
    started = time.perf_counter()
    if isinstance(request, Word2VecTrainRequest):
        return report_export(train(request), started)
    return report_export(import_from_file(request), started)


def default_training(workspace: Workspace, name: str) -> Word2VecTrainRequest:
    return Word2VecTrainRequest(workspace, Target(name))


def train(request: Word2VecTrainRequest) -> Path:
    """Train on the generated corpus's training split and import the result."""
    workspace = request.workspace
    corpus = load_or_generate(workspace.corpus_dir, workspace.corpus_config)
    return train_and_import(request, corpus.train.sentences, console)


def train_and_import(
    request: Word2VecTrainRequest, sentences: Sequence[str], console: Console
) -> Path:
    """Train on ``sentences``, save the C binary file, import it."""
    from export.word2vec.exporter import import_word2vec
    from export.word2vec.train import Word2VecTrainingConfig, save_vectors, train_word2vec

    workspace, target = request.workspace, request.target
    recipe = Word2VecTrainingConfig()
    config = Word2VecTrainingConfig(
        seed=workspace.seed,
        cbow=request.cbow,
        hierarchical_softmax=request.hierarchical_softmax,
        dim=request.dim or recipe.dim,
        epochs=request.epochs or recipe.epochs,
        window=request.window or recipe.window,
    )
    checkpoint = training_checkpoint_dir(target)
    started = time.perf_counter()
    vectors = train_word2vec(
        sentences, config, workspace.show_progress, workspace.progress_interval_s
    )
    path = save_vectors(vectors, checkpoint)
    console.print(
        f"trained {config.describe()['objective']} in "
        f"{time.perf_counter() - started:.1f} s → {path}"
    )
    return import_word2vec(
        path,
        True,
        workspace.models_dir,
        target.name,
        target.version,
        with_similarity=request.with_similarity,
        extra={"training": config.describe(), "corpus_seed": workspace.seed},
    )


def import_from_file(request: Word2VecImportRequest) -> Path:
    """``--from-file PATH [--binary]``."""
    from export.word2vec.exporter import import_word2vec

    return import_word2vec(
        request.path,
        request.binary,
        request.workspace.models_dir,
        request.target.name,
        request.target.version,
        with_similarity=request.with_similarity,
    )


def evaluate(directory: Path, corpus: Corpus) -> dict[str, object]:
    """Neighbour topic purity, polysemous neighbours, identical occurrences, polysemy gap."""
    from export.word2vec.evaluate import evaluate_word2vec
    from export.word2vec.inference import OnnxWord2Vec

    return dict(evaluate_word2vec(OnnxWord2Vec(directory), corpus.heldout))


def export_spec_factory() -> Callable[..., ExportSpec]:
    from export.word2vec.graphs import word2vec_export_spec

    return word2vec_export_spec
