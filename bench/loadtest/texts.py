"""The texts of the load: held-out sentences of the default corpus, written for the locustfile,
which must not import ``export`` itself (its process holds Locust and nothing heavy)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from statistics import mean

CORPUS_DIR = Path("build/corpus")


def write_heldout(path: Path, corpus_dir: Path = CORPUS_DIR) -> Path:
    """The default corpus' held-out sentences, one per line (the corpus is generated once)."""
    from export.corpus import CorpusConfig, load_or_generate

    corpus = load_or_generate(corpus_dir, CorpusConfig())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(corpus.heldout.sentences) + "\n", encoding="utf-8")
    return path


def read_texts(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def long_texts(sentences: list[str], per_text: int, count: int) -> list[str]:
    """Long texts as the locustfile makes them: ``per_text`` consecutive sentences."""
    total = len(sentences)
    return [
        " ".join(sentences[(start * per_text + i) % total] for i in range(per_text))
        for start in range(count)
    ]


@dataclass(frozen=True)
class Lengths:
    """Words, and tokens where the server could tell, of a sample of texts."""

    words: float
    words_max: int
    tokens: float | None
    tokens_max: int | None

    def describe(self) -> str:
        text = f"{self.words:.1f} words (max {self.words_max})"
        if self.tokens is not None:
            text += f", {self.tokens:.1f} tokens (max {self.tokens_max})"
        return text


def lengths(texts: list[str], tokens: list[int] | None) -> Lengths:
    words = [len(text.split()) for text in texts] or [0]
    return Lengths(
        words=mean(words),
        words_max=max(words),
        tokens=mean(tokens) if tokens else None,
        tokens_max=max(tokens) if tokens else None,
    )
