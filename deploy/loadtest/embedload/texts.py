"""The texts a load sends: short (one sentence) and long (consecutive sentences), fresh or repeated.

A repeat ratio ``r`` makes that share of texts one this process sent before (a hit in the
server's cache while it still holds it); the others are fresh. Fresh texts walk the sentences
in order from a random start; for a model with a cache they also carry a suffix unique to this
process and call (", case <tag> <n> ."), so a fresh text is one no cache has seen, however
long the run and however many processes run it.
"""

from __future__ import annotations

import random
import zlib
from collections import deque
from collections.abc import Sequence
from pathlib import Path

FALLBACK = (
    "the trainer tamed the bottlenose dolphin at the metropolitan zoo .",
    "the acclaimed designer draped the stretchy fabric in the vintage emporium .",
    "in the parisian atelier , the seamstress embroidered a waxed thread .",
    "the singer hummed the stirring pitch at the prestigious conservatory .",
    "the porter carried an overweight suitcase , the tacky souvenir with the bulky backpack .",
    "in the airy office , the user downloaded the compressed file .",
    "the scruffy musician strummed a battered guitar and the bluesy riff .",
    "the pathologist stained the venous cell in the public hospital .",
    "the banker financed the unsecured loan at the suburban branch .",
    "the shopper picked the musky perfume in the plush salon .",
    "the musician strummed the rowdy bass on the spotlit stage .",
    "at the bureaucratic agency , the investor funded an underfunded pension .",
)
"""Held-out sentences of the default corpus, for when no text file is given."""

FUNCTION_WORDS = frozenset(
    ("the", "a", "an", "in", "of", "and", "with", "to", "at", "on", "from", "by", "then", ",", ".")
)
RECENT = 1024
"""Texts of each kind remembered for repeats."""


def load_sentences(path: str | None) -> list[str]:
    """One text per non-empty line of ``path``; the built-in sentences without a path."""
    if not path:
        return list(FALLBACK)
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    sentences = [line for line in lines if line]
    if not sentences:
        raise ValueError(f"{path} holds no text")
    return sentences


def content_words(sentences: Sequence[str], limit: int = 4096) -> list[str]:
    """Distinct words of the sentences other than function words (MostSimilar queries)."""
    words = dict.fromkeys(
        word for sentence in sentences for word in sentence.split() if word not in FUNCTION_WORDS
    )
    return list(words)[:limit] or ["the"]


def masked(text: str, mask_token: str) -> str:
    """``text`` with one content word replaced by the mask token, the same word each time (so a
    repeated text is the same request); the first word if there is no content word."""
    words = text.split()
    candidates = [i for i, word in enumerate(words) if word not in FUNCTION_WORDS] or [0]
    words[candidates[zlib.crc32(text.encode()) % len(candidates)]] = mask_token
    return " ".join(words)


class TextSource:
    """Short and long texts for one process, shared by its users."""

    def __init__(
        self,
        sentences: Sequence[str],
        repeat_ratio: float,
        long_sentences: int,
        unique: bool,
        rng: random.Random | None = None,
    ) -> None:
        if not 0.0 <= repeat_ratio <= 1.0:
            raise ValueError(f"the repeat ratio must be within [0, 1], got {repeat_ratio}")
        if long_sentences < 1:
            raise ValueError(f"a long text needs at least one sentence, got {long_sentences}")
        self.sentences = list(sentences)
        self.repeat_ratio = repeat_ratio
        self.long_sentences = long_sentences
        self.unique = unique
        self.rng = rng or random.Random()
        self._next = self.rng.randrange(len(self.sentences))
        # From the OS, not ``rng``: processes forked from one parent must still differ.
        self._tag = random.SystemRandom().randrange(10**9)
        self._count = 0
        self._recent: dict[str, deque[str]] = {}

    def short(self) -> str:
        return self._text("short", 1, "")

    def long(self) -> str:
        return self._text("long", self.long_sentences, "")

    def fill_mask(self, mask_token: str) -> str:
        """A short text with one word masked."""
        return self._text("mask", 1, mask_token)

    def _text(self, kind: str, count: int, mask_token: str) -> str:
        recent = self._recent.setdefault(kind, deque(maxlen=RECENT))
        if recent and self.rng.random() < self.repeat_ratio:
            return self.rng.choice(recent)
        text = self._fresh(count)
        if mask_token:
            text = masked(text, mask_token)
        if self.unique:
            self._count += 1
            text = f"{text} , case {self._tag} {self._count} ."
        recent.append(text)
        return text

    def _fresh(self, count: int) -> str:
        start, total = self._next, len(self.sentences)
        self._next = (start + count) % total
        return " ".join(self.sentences[(start + i) % total] for i in range(count))
