"""Architectures the exporter can produce: for each, its export contract, its command, how it
trains, imports and is evaluated.

The command line, ``defaults`` and ``evaluate`` all look an architecture up here, so adding one
is one entry (and its ``cli`` module). Adding an architecture without a test marked
``validates_architecture("<name>")`` fails the test suite (``tests/unit/export/test_registry.py``).

Every entry points at light ``cli`` modules: torch, transformers and gensim are imported only
when a command runs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from export.bert import cli as bert
from export.corpus import Corpus
from export.elmo import cli as elmo
from export.requests import Commands, Workspace
from export.spec import ExportSpec
from export.word2vec import cli as word2vec

TrainRequest = TypeVar("TrainRequest")
ImportRequest = TypeVar("ImportRequest")


@dataclass(frozen=True)
class Architecture(Generic[TrainRequest, ImportRequest]):
    """One architecture, from its command line to its quality evaluation."""

    name: str
    export_spec_factory: Callable[[], Callable[..., ExportSpec]]  # imported on first use
    add_command: Callable[[Commands], None]  # ``python -m export NAME ...``
    default_training: Callable[[Workspace, str], TrainRequest]  # what ``defaults`` trains
    trainer: Callable[[TrainRequest], Path]
    importer: Callable[[ImportRequest], Path]
    evaluator: Callable[[Path, Corpus], dict[str, object]]

    @property
    def export_spec(self) -> Callable[..., ExportSpec]:
        """The factory of its ``ExportSpec`` (arguments depend on the architecture)."""
        return self.export_spec_factory()

    def train_default(self, workspace: Workspace, name: str) -> Path:
        return self.trainer(self.default_training(workspace, name))


# name → architecture; the order is the order of the subcommands in ``--help``
ARCHITECTURES: dict[str, Architecture[Any, Any]] = {
    "bert": Architecture(
        name="bert",
        export_spec_factory=bert.export_spec_factory,
        add_command=bert.add_command,
        default_training=bert.default_training,
        trainer=bert.train,
        importer=bert.import_checkpoint,
        evaluator=bert.evaluate,
    ),
    "elmo": Architecture(
        name="elmo",
        export_spec_factory=elmo.export_spec_factory,
        add_command=elmo.add_command,
        default_training=elmo.default_training,
        trainer=elmo.train,
        importer=elmo.import_weights,
        evaluator=elmo.evaluate,
    ),
    "word2vec": Architecture(
        name="word2vec",
        export_spec_factory=word2vec.export_spec_factory,
        add_command=word2vec.add_command,
        default_training=word2vec.default_training,
        trainer=word2vec.train,
        importer=word2vec.import_from_file,
        evaluator=word2vec.evaluate,
    ),
}


def architecture(name: str) -> Architecture[Any, Any]:
    """The registered architecture ``name``, with a message that lists the known ones."""
    try:
        return ARCHITECTURES[name]
    except KeyError:
        raise SystemExit(
            f"no exporter for architecture {name!r} (known: {', '.join(ARCHITECTURES)})"
        ) from None
