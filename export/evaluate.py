"""Quality of an exported model on the default corpus's held-out split.

* fill-mask: one content word of each held-out sentence masked; top-1 and top-5 accuracy;
* polysemy: for each polysemous word, the mean cosine similarity of its contextual vectors
  within a sense and across senses; the gap (within − across) says how well context separates
  the senses (a static vector has a gap of 0).
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from export.corpus import Corpus, CorpusSplit, content_words

# (sentences as word lists, word positions) → one vector per (sentence, position)
WordVectors = Callable[[Sequence[Sequence[str]], Sequence[int]], np.ndarray]


@dataclass
class PolysemyReport:
    per_word: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def mean_gap(self) -> float:
        return float(np.mean([row["gap"] for row in self.per_word.values()]))

    def to_dict(self) -> dict[str, Any]:
        return {"mean_gap": self.mean_gap, "per_word": self.per_word}


@dataclass
class FillMaskReport:
    top1: float
    top5: float
    evaluated: int
    skipped_multi_piece: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "top1": self.top1,
            "top5": self.top5,
            "evaluated": self.evaluated,
            "skipped_multi_piece": self.skipped_multi_piece,
        }


def _mean_cosine(a: np.ndarray, b: np.ndarray, same: bool) -> float:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    similarities = a @ b.T
    if same:
        upper = np.triu_indices(len(a), k=1)
        return float(similarities[upper].mean())
    return float(similarities.mean())


def polysemy_gap(
    split: CorpusSplit, vectors_of: WordVectors, per_sense: int = 40, batch: int = 64, seed: int = 0
) -> PolysemyReport:
    """Within-sense minus cross-sense mean cosine of each polysemous word's vectors."""
    rng = random.Random(seed)
    occurrences: dict[str, dict[str, list[tuple[int, int]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for occurrence in split.senses:
        occurrences[occurrence.word][occurrence.sense].append(
            (occurrence.sentence_index, occurrence.token_index)
        )
    report = PolysemyReport()
    for word in sorted(occurrences):
        senses = occurrences[word]
        if len(senses) < 2:
            continue
        vectors: dict[str, np.ndarray] = {}
        for sense, places in sorted(senses.items()):
            chosen = rng.sample(places, min(per_sense, len(places)))
            sentences = [split.sentences[i].split() for i, _ in chosen]
            positions = [position for _, position in chosen]
            vectors[sense] = np.concatenate(
                [
                    vectors_of(sentences[i : i + batch], positions[i : i + batch])
                    for i in range(0, len(chosen), batch)
                ]
            )
        names = sorted(vectors)
        within = float(np.mean([_mean_cosine(vectors[s], vectors[s], True) for s in names]))
        across = _mean_cosine(vectors[names[0]], vectors[names[1]], False)
        report.per_word[word] = {"within": within, "across": across, "gap": within - across}
    return report


def masked_sentences(split: CorpusSplit, seed: int, limit: int) -> list[tuple[list[str], int, str]]:
    """(words, masked position, original word) for up to ``limit`` held-out sentences."""
    rng = random.Random(seed)
    maskable = content_words()
    chosen = []
    for sentence in split.sentences[:limit]:
        words = sentence.split()
        positions = [i for i, word in enumerate(words) if word in maskable]
        if positions:
            position = rng.choice(positions)
            chosen.append((words, position, words[position]))
    return chosen


def fill_mask_accuracy(
    corpus: Corpus,
    logits_of: Callable[[Sequence[Sequence[str]]], np.ndarray],
    token_id_of: Callable[[str], int | None],
    mask_token: str,
    limit: int = 2000,
    batch: int = 64,
    seed: int = 0,
) -> FillMaskReport:
    """Top-1 / top-5 accuracy at one masked content word per held-out sentence."""
    examples = []
    skipped = 0
    for words, position, target in masked_sentences(corpus.heldout, seed, limit):
        target_id = token_id_of(target)
        if target_id is None:
            skipped += 1
            continue
        masked = [*words[:position], mask_token, *words[position + 1 :]]
        examples.append((masked, target_id))
    top1 = top5 = 0
    for start in range(0, len(examples), batch):
        chunk = examples[start : start + batch]
        logits = logits_of([words for words, _ in chunk])
        best = np.argsort(-logits, axis=1)[:, :5]
        for (_, target_id), row in zip(chunk, best, strict=True):
            top1 += int(row[0] == target_id)
            top5 += int(target_id in row)
    count = max(1, len(examples))
    return FillMaskReport(top1 / count, top5 / count, len(examples), skipped)
