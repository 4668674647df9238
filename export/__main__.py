"""``python -m export``: train or import models, export them to ONNX, validate, evaluate.

python -m export bert --train                     # default BERT on the generated corpus
python -m export bert --from-hf DIR --name NAME   # any local BERT checkpoint
python -m export elmo --train                     # default ELMo on the generated corpus
python -m export elmo --options F --weights F     # a bilm-tf / AllenNLP biLM (options.json, HDF5)
python -m export word2vec --train [--cbow] [--hs]  # default word2vec (gensim) on the corpus
python -m export word2vec --from-file PATH [--binary] --name NAME  # C text / binary vectors
python -m export evaluate NAME                    # quality on held-out sentences
python -m export evaluate --compare [NAME ...]    # polysemy gaps side by side
python -m export defaults                         # build every missing default model
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from export.commands import add_commands
from export.registry import ARCHITECTURES
from export.requests import read_workspace
from modelrepo.rebuild import DEFAULT_MODELS

__all__ = ["DEFAULT_MODELS", "Invocation", "build_parser", "main", "parse"]


def build_parser() -> argparse.ArgumentParser:
    """One subcommand per registered architecture, then ``evaluate`` and ``defaults``.

    Every subcommand sets ``build`` (arguments → its typed request) and ``func`` (what runs it).
    """
    parser = argparse.ArgumentParser(
        allow_abbrev=False,
        prog="python -m export",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for architecture in ARCHITECTURES.values():
        architecture.add_command(commands)
    add_commands(commands)
    return parser


@dataclass(frozen=True)
class Invocation:
    """A parsed command line: the typed request and the command that carries it out."""

    request: object
    run: Callable[[Any], object]

    def __call__(self) -> object:
        return self.run(self.request)


def parse(argv: list[str] | None = None) -> Invocation:
    """Parse once; nothing past this point sees ``argparse.Namespace``."""
    args = build_parser().parse_args(argv)
    return Invocation(request=args.build(args, read_workspace(args)), run=args.func)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    invocation = parse(argv)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        invocation()
    except KeyboardInterrupt:  # Ctrl-C, or `make serve` stopping: publishing is atomic
        print("interrupted; the model being built was not published", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
