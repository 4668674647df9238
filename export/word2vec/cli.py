"""The ``python -m export word2vec`` command: its arguments, training and import.

python -m export word2vec --train [--cbow] [--hs] [--dim N] [--epochs N] [--window N]
python -m export word2vec --from-file PATH [--binary] --name NAME [--version N]

gensim is imported only when a command runs, so building the parser stays cheap.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console

from export.checkpoints import training_checkpoint_dir

_TRAINING_FLAGS = ("cbow", "hs", "dim", "epochs", "window", "checkpoint_dir")


def add_word2vec_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], None],
) -> None:
    """The ``word2vec`` subcommand; ``common`` adds the options every subcommand shares."""
    parser = commands.add_parser(
        "word2vec", help="train word2vec with gensim or import the C formats, and export it"
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
    parser.add_argument("--name", default="word2vec", help="model name in the repository")
    parser.add_argument("--version", type=int, help="version number (default: next free)")
    parser.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="where training saves the C binary vectors (default: build/checkpoints/NAME)",
    )
    common(parser)


def check_arguments(args: argparse.Namespace) -> None:
    """Refuse flags that do not go with the chosen source."""
    if args.train and args.binary:
        raise SystemExit("--binary describes the file of --from-file; it does not go with --train")
    if not args.train:
        given = [f"--{flag.replace('_', '-')}" for flag in _TRAINING_FLAGS if getattr(args, flag)]
        if given:
            raise SystemExit(f"{', '.join(given)} only go with --train")


def train_and_import(
    args: argparse.Namespace,
    sentences: Sequence[str],
    name: str,
    version: int | None,
    console: Console,
) -> Path:
    """Train on ``sentences``, save the C binary file, import it (also for ``defaults``)."""
    from dataclasses import replace

    from export.word2vec.exporter import import_word2vec
    from export.word2vec.train import Word2VecTrainingConfig, save_vectors, train_word2vec

    config = Word2VecTrainingConfig(
        seed=args.seed,
        cbow=getattr(args, "cbow", False),
        hierarchical_softmax=getattr(args, "hs", False),
    )
    for flag in ("dim", "epochs", "window"):
        if getattr(args, flag, None):
            config = replace(config, **{flag: getattr(args, flag)})
    checkpoint = training_checkpoint_dir(args, name)
    started = time.perf_counter()
    vectors = train_word2vec(sentences, config, show_progress=not args.no_progress)
    path = save_vectors(vectors, checkpoint)
    console.print(
        f"trained {config.describe()['objective']} in "
        f"{time.perf_counter() - started:.1f} s → {path}"
    )
    return import_word2vec(
        path,
        True,
        args.models_dir,
        name,
        version,
        with_similarity=not getattr(args, "no_similarity", False),
        extra={"training": config.describe(), "corpus_seed": args.seed},
    )


def import_from_file(args: argparse.Namespace) -> Path:
    """``--from-file PATH [--binary]``."""
    from export.word2vec.exporter import import_word2vec

    return import_word2vec(
        args.from_file,
        args.binary,
        args.models_dir,
        args.name,
        args.version,
        with_similarity=not args.no_similarity,
    )
