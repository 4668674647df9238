"""The texts a load sends: short (one sentence) and long (consecutive sentences), fresh or repeated.

A repeat ratio ``r`` makes that share of texts one this process sent before (a hit in the
server's cache while it still holds it); the others are fresh. Fresh texts walk the sentences
in order from a random start; for a model with a cache they also carry a suffix unique to this
process and call (", case <tag> <n> ."), so a fresh text is one no cache has seen, however
long the run and however many processes run it.

The load does not ask FillMask to truncate (a cut text is another question, and servers
before FillMaskRequest.truncate lack it), so a text longer than the model's limit would be
refused as INVALID_ARGUMENT: the load's mistake, not the server's. ``fit_masks`` keeps for
FillMask only the sentences whose masked form, suffix included, the model's own tokenizer (the
server's Tokenize) counts within the limit. The count ``n`` grows during the run; it is not measured
but bounded: a number costs at most one token per digit and one for a word-start piece.
"""

from __future__ import annotations

import random
import zlib
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
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


@dataclass
class _MaskFit:
    """The sentences FillMask may use, with their measured tokens (count excluded)."""

    sentences: list[str]
    tokens: list[int]
    limit: int
    next: int


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
        self._fit: _MaskFit | None = None

    def short(self) -> str:
        return self._text("short", 1, "")

    def long(self) -> str:
        return self._text("long", self.long_sentences, "")

    def fill_mask(self, mask_token: str) -> str:
        """A short text with one word masked (within the limit once ``fit_masks`` ran)."""
        return self._text("mask", 1, mask_token)

    def mask_template(self, sentence: str, mask_token: str) -> str:
        """A fresh FillMask text of ``sentence`` without its count: what ``fit_masks`` counts."""
        text = masked(sentence, mask_token)
        return f"{text} , case {self._tag} ." if self.unique else text

    def fit_masks(self, tokens: Sequence[int], limit: int) -> int:
        """Keep for FillMask the sentences whose ``mask_template`` has ``tokens`` (one count per
        sentence, in order) that leave room for the count within ``limit``; how many do."""
        if len(tokens) != len(self.sentences):
            raise ValueError(f"{len(tokens)} token counts for {len(self.sentences)} sentences")
        room = limit - self._count_tokens()
        kept = [(text, n) for text, n in zip(self.sentences, tokens, strict=True) if n <= room]
        start = self.rng.randrange(len(kept)) if kept else 0
        self._fit = _MaskFit([text for text, _ in kept], [n for _, n in kept], limit, start)
        return len(kept)

    def _count_tokens(self) -> int:
        """At most what the next fresh text's count costs (0 without the suffix)."""
        return len(str(self._count + 1)) + 1 if self.unique else 0

    def _fresh_mask(self, mask_token: str) -> str:
        fit = self._fit
        if fit is None:
            return masked(self._fresh(1), mask_token)
        room = fit.limit - self._count_tokens()
        for _ in range(len(fit.sentences)):
            index, fit.next = fit.next, (fit.next + 1) % len(fit.sentences)
            if fit.tokens[index] <= room:
                return masked(fit.sentences[index], mask_token)
        # The count has outgrown every text's room (a very long run): send the shortest; if
        # the server refuses it, that is counted as the load's own mistake, apart.
        shortest = min(range(len(fit.sentences)), key=fit.tokens.__getitem__, default=None)
        if shortest is None:
            raise ValueError(f"no text fits the model's {fit.limit} tokens for FillMask")
        return masked(fit.sentences[shortest], mask_token)

    def _text(self, kind: str, count: int, mask_token: str) -> str:
        recent = self._recent.setdefault(kind, deque(maxlen=RECENT))
        if recent and self.rng.random() < self.repeat_ratio:
            return self.rng.choice(recent)
        text = self._fresh_mask(mask_token) if mask_token else self._fresh(count)
        if self.unique:
            self._count += 1
            text = f"{text} , case {self._tag} {self._count} ."
        recent.append(text)
        return text

    def _fresh(self, count: int) -> str:
        start, total = self._next, len(self.sentences)
        self._next = (start + count) % total
        return " ".join(self.sentences[(start + i) % total] for i in range(count))
