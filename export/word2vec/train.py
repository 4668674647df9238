"""Train word2vec with gensim on the default corpus (or any whitespace-tokenized sentences).

Defaults: skip-gram with negative sampling (5 noise words), 100 dimensions, window 5, every
corpus word kept (``min_count=1``), 5 epochs. One worker thread and a fixed seed make a run
reproducible bit for bit (gensim with several workers is not deterministic); on 2 CPU cores
the default corpus (1M tokens) trains in about 20-30 s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gensim.models import KeyedVectors, Word2Vec
from gensim.models.callbacks import CallbackAny2Vec

from export.progress import TrainingProgress, training_progress
from export.requests import DEFAULT_PROGRESS_INTERVAL_S

VECTORS_FILE = "vectors.bin"


@dataclass(frozen=True)
class Word2VecTrainingConfig:
    """The gensim settings of a run (``cbow``/``hierarchical_softmax`` switch the objective)."""

    dim: int = 100
    window: int = 5
    min_count: int = 1
    epochs: int = 5
    cbow: bool = False
    hierarchical_softmax: bool = False
    negative: int = 5  # noise words per example; unused (0) with hierarchical softmax
    sample: float = 1e-3  # down-sampling threshold of frequent words
    seed: int = 13
    workers: int = 1

    def gensim_arguments(self) -> dict[str, Any]:
        """Keyword arguments of ``gensim.models.Word2Vec``."""
        return {
            "vector_size": self.dim,
            "window": self.window,
            "min_count": self.min_count,
            "epochs": self.epochs,
            "sg": 0 if self.cbow else 1,
            "hs": 1 if self.hierarchical_softmax else 0,
            "negative": 0 if self.hierarchical_softmax else self.negative,
            "sample": self.sample,
            "seed": self.seed,
            "workers": self.workers,
        }

    def describe(self) -> dict[str, Any]:
        """What goes into the model's spec (``extra.training``)."""
        return {
            **asdict(self),
            "objective": (
                f"{'cbow' if self.cbow else 'skip-gram'} with "
                f"{'hierarchical softmax' if self.hierarchical_softmax else 'negative sampling'}"
            ),
        }


class _EpochProgress(CallbackAny2Vec):  # type: ignore[misc]  # gensim is untyped
    """Advances the progress after every epoch with that epoch's training loss and the
    corpus's words (what one epoch trains on, before gensim's subsampling)."""

    def __init__(self, progress: TrainingProgress) -> None:
        super().__init__()
        self.progress = progress
        self.previous = 0.0

    def on_epoch_end(self, model: Word2Vec) -> None:
        total = float(model.get_latest_training_loss())  # cumulative within one train() call
        self.progress.advance(tokens=int(model.corpus_total_words), loss=total - self.previous)
        self.previous = total


def train_word2vec(
    sentences: Sequence[str],
    config: Word2VecTrainingConfig,
    show_progress: bool = True,
    progress_interval_s: float = DEFAULT_PROGRESS_INTERVAL_S,
) -> KeyedVectors:
    """Train on whitespace-tokenized ``sentences``; returns the word vectors. Each epoch is one
    step of the progress."""
    tokenized = [sentence.split() for sentence in sentences]
    model = Word2Vec(**config.gensim_arguments())
    model.build_vocab(tokenized)
    with training_progress(
        "word2vec", config.epochs, ("loss",), show_progress, progress_interval_s
    ) as progress:
        model.train(
            tokenized,
            total_examples=model.corpus_count,
            epochs=config.epochs,
            compute_loss=True,
            callbacks=[_EpochProgress(progress)],
        )
    vectors: KeyedVectors = model.wv
    return vectors


def save_vectors(vectors: KeyedVectors, directory: Path) -> Path:
    """Save in the C binary format (what ``--from-file --binary`` imports); returns the file."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / VECTORS_FILE
    vectors.save_word2vec_format(str(path), binary=True)
    return path
