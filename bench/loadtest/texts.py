"""Long texts as the locustfile makes them, and the lengths of the texts the summary reports.
The texts themselves are the held-out sentences ``bench.common.texts`` writes (the locustfile
must not import ``export`` itself: its process holds Locust and nothing heavy)."""

from __future__ import annotations

from dataclasses import dataclass
from statistics import mean


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
