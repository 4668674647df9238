"""What every export command is asked to do, as frozen values, and the options they come from.

The command line is parsed once into these values (``Workspace`` for where and how, ``Target``
for which model version to publish); nothing below ``__main__`` sees ``argparse.Namespace``. The
two option groups are declared here once, for every subcommand that takes them.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

from export.corpus import CorpusConfig

# the ``add_subparsers()`` object each subcommand registers with
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

DEFAULT_PROGRESS_INTERVAL_S = 30.0
"""Without a terminal, seconds between two progress lines of a training run."""


@dataclass(frozen=True)
class Workspace:
    """Where models and the corpus live, the seed of corpus and training, and progress: a bar
    on a terminal, else a line every ``progress_interval_s``."""

    models_dir: Path = Path("models")
    corpus_dir: Path = Path("build/corpus")
    seed: int = 13
    show_progress: bool = True
    progress_interval_s: float = DEFAULT_PROGRESS_INTERVAL_S

    @property
    def corpus_config(self) -> CorpusConfig:
        return CorpusConfig(seed=self.seed)


@dataclass(frozen=True)
class Target:
    """The model version a command publishes, and where its training writes the checkpoint."""

    name: str
    version: int | None = None
    steps: int | None = None  # None: the recipe's
    checkpoint_dir: Path | None = None  # None: build/checkpoints/NAME


def add_workspace_options(parser: argparse.ArgumentParser) -> None:
    """``--models-dir --corpus-dir --seed --no-progress --progress-interval-s``, shared by every
    subcommand."""
    parser.add_argument("--models-dir", type=Path, default=Path("models"), help="repository root")
    parser.add_argument(
        "--corpus-dir", type=Path, default=Path("build/corpus"), help="generated corpus cache"
    )
    parser.add_argument("--seed", type=int, default=13, help="seed of the corpus and of training")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars or lines")
    parser.add_argument(
        "--progress-interval-s",
        type=_positive_seconds,
        default=DEFAULT_PROGRESS_INTERVAL_S,
        metavar="SECONDS",
        help="without a terminal (a log file, a container, CI), print training progress (step, "
        "loss, tokens/s, time left) every SECONDS instead of a live bar (default: %(default)g)",
    )


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not seconds > 0 or seconds == float("inf"):
        raise argparse.ArgumentTypeError(f"{text} must be a positive number of seconds")
    return seconds


def read_workspace(args: argparse.Namespace) -> Workspace:
    return Workspace(
        models_dir=args.models_dir,
        corpus_dir=args.corpus_dir,
        seed=args.seed,
        show_progress=not args.no_progress,
        progress_interval_s=args.progress_interval_s,
    )


@dataclass(frozen=True)
class TargetOptions:
    """``--name --version [--steps] --checkpoint-dir`` of one architecture's subcommand."""

    default_name: str
    checkpoint_help: str  # what training writes there
    with_steps: bool = True  # word2vec counts epochs, not steps

    def add(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "--name", default=self.default_name, help="model name in the repository"
        )
        parser.add_argument("--version", type=int, help="version number (default: next free)")
        if self.with_steps:
            parser.add_argument("--steps", type=int, help="training steps (default: the recipe's)")
        parser.add_argument(
            "--checkpoint-dir",
            type=Path,
            help=f"where training {self.checkpoint_help} (default: build/checkpoints/NAME)",
        )

    def read(self, args: argparse.Namespace) -> Target:
        return Target(
            name=args.name,
            version=args.version,
            steps=args.steps if self.with_steps else None,
            checkpoint_dir=args.checkpoint_dir,
        )
