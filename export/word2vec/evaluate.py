"""Quality of an exported word2vec model on the default corpus's topics.

* neighbour purity: for each content word that is not polysemous, the fraction of its top-k
  neighbours (by cosine, over the whole vocabulary) that belong to its own topic; a polysemous
  neighbour counts for both its topics, function words and punctuation for none. ``chance`` is
  the same fraction for k words drawn at random from the vocabulary.
* polysemy: a static model has one vector per word, so a polysemous word's neighbours come
  from both its senses' topics, every held-out occurrence gets the identical vector (checked
  bit for bit), and the polysemy gap (``export.evaluate.polysemy_gap``, the measure the
  contextual models are judged by) is 0 up to float32 rounding of those identical cosines.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from export.corpus import POLYSEMOUS_WORDS, CorpusSplit, word_topics
from export.evaluate import polysemy_gap
from export.word2vec.inference import OnnxWord2Vec

OTHER = "other"


def topics_of(word: str, topics: dict[str, str]) -> frozenset[str]:
    """The topics a word belongs to: one, two for a polysemous word, none for the others."""
    if word in POLYSEMOUS_WORDS:
        return frozenset(POLYSEMOUS_WORDS[word])
    return frozenset((topics[word],)) if word in topics else frozenset()


@dataclass
class PurityReport:
    k: int
    per_topic: dict[str, float] = field(default_factory=dict)
    per_word: dict[str, float] = field(default_factory=dict)
    chance: float = 0.0
    missing: list[str] = field(default_factory=list)  # content words the model lacks

    @property
    def mean(self) -> float:
        return float(np.mean(list(self.per_word.values()))) if self.per_word else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "k": self.k,
            "mean": self.mean,
            "chance": self.chance,
            "evaluated": len(self.per_word),
            "per_topic": self.per_topic,
            "missing": self.missing,
        }


def neighbour_purity(model: OnnxWord2Vec, k: int = 10) -> PurityReport:
    """Fraction of each topic word's ``k`` nearest neighbours from its own topic."""
    topics = word_topics()
    report = PurityReport(k=k, missing=sorted(word for word in topics if word not in model.index))
    words = sorted(word for word in topics if word in model.index)
    vocabulary_topics = [topics_of(word, topics) for word in model.words]
    by_topic: dict[str, list[float]] = {}
    chances = []
    for word, neighbours in zip(words, model.neighbours(words, k), strict=True):
        topic = topics[word]
        hits = sum(topic in topics_of(neighbour, topics) for neighbour in neighbours)
        report.per_word[word] = hits / k
        by_topic.setdefault(topic, []).append(hits / k)
        in_topic = sum(topic in found for found in vocabulary_topics) - 1  # not the word itself
        chances.append(in_topic / max(1, len(model.words) - 1))
    report.per_topic = {topic: float(np.mean(values)) for topic, values in sorted(by_topic.items())}
    report.chance = float(np.mean(chances)) if chances else 0.0
    return report


def polysemous_neighbours(model: OnnxWord2Vec, k: int = 10) -> dict[str, dict[str, Any]]:
    """Each polysemous word's ``k`` nearest neighbours, counted by the topics of its senses."""
    topics = word_topics()
    words = [word for word in sorted(POLYSEMOUS_WORDS) if word in model.index]
    result: dict[str, dict[str, Any]] = {}
    for word, neighbours in zip(words, model.neighbours(words, k), strict=True):
        senses = POLYSEMOUS_WORDS[word]
        counts: Counter[str] = Counter()
        for neighbour in neighbours:
            found = [sense for sense in senses if sense in topics_of(neighbour, topics)]
            counts.update(found or [OTHER])
        result[word] = {
            "senses": list(senses),
            "counts": {name: counts[name] for name in (*senses, OTHER)},
            "both_senses": all(counts[sense] > 0 for sense in senses),
            "neighbours": neighbours,
        }
    return result


def identical_occurrences(model: OnnxWord2Vec, heldout: CorpusSplit) -> dict[str, dict[str, Any]]:
    """Polysemous word → its held-out occurrences and whether all get the identical vector."""
    occurrences: dict[str, list[str]] = {}
    for occurrence in heldout.senses:
        words = heldout.sentences[occurrence.sentence_index].split()
        occurrences.setdefault(occurrence.word, []).append(words[occurrence.token_index])
    result = {}
    for word, tokens in sorted(occurrences.items()):
        if word in model.index:
            vectors = model.vectors(tokens)
            identical = bool((vectors == vectors[0]).all())
            result[word] = {"occurrences": len(tokens), "identical": identical}
    return result


def evaluate_word2vec(model: OnnxWord2Vec, heldout: CorpusSplit, k: int = 10) -> dict[str, Any]:
    """Purity, polysemous neighbours and the polysemy gap on the held-out sentences."""

    def vectors_of(sentences: Sequence[Sequence[str]], positions: Sequence[int]) -> np.ndarray:
        return model.vectors([words[p] for words, p in zip(sentences, positions, strict=True)])

    gap = polysemy_gap(heldout, vectors_of).to_dict()
    gap["max_abs_gap"] = max((abs(row["gap"]) for row in gap["per_word"].values()), default=0.0)
    return {
        "neighbours": neighbour_purity(model, k).to_dict(),
        "polysemous_neighbours": polysemous_neighbours(model, k),
        "identical_occurrences": identical_occurrences(model, heldout),
        "polysemy": gap,
    }


def print_word2vec_evaluation(console: Console, results: dict[str, Any]) -> None:
    """Tables of topic purity and of the polysemous words' neighbours."""
    purity = results.get("neighbours")
    if isinstance(purity, dict):
        console.print(
            f"neighbour purity (share of a word's top-{purity['k']} neighbours from its own "
            f"topic): {purity['mean']:.3f} over {purity['evaluated']} topic words, chance "
            f"{purity['chance']:.3f}"
        )
        table = Table(title="neighbour purity by topic")
        table.add_column("topic")
        table.add_column("purity")
        for topic, value in purity["per_topic"].items():
            table.add_row(topic, f"{value:.3f}")
        console.print(table)
        if purity["missing"]:
            console.print(f"not in the vocabulary: {', '.join(purity['missing'][:20])}")
    polysemous = results.get("polysemous_neighbours")
    if isinstance(polysemous, dict):
        both = sum(row["both_senses"] for row in polysemous.values())
        console.print(
            f"polysemous words: {both}/{len(polysemous)} have nearest neighbours from both "
            "senses' topics (one vector serves every sense)"
        )
        table = Table(
            title=f"top-{len(next(iter(polysemous.values()))['neighbours'])} "
            "neighbours of each polysemous word by topic"
        )
        for column in ("word", "sense 1", "sense 2", OTHER, "nearest neighbours"):
            table.add_column(column)
        for word, row in polysemous.items():
            first, second = row["senses"]
            table.add_row(
                word,
                f"{first} {row['counts'][first]}",
                f"{second} {row['counts'][second]}",
                str(row["counts"][OTHER]),
                ", ".join(row["neighbours"][:6]),
            )
        console.print(table)
    identical = results.get("identical_occurrences")
    gap = results.get("polysemy")
    if isinstance(identical, dict) and isinstance(gap, dict):
        same = [row for row in identical.values() if row["identical"]]
        console.print(
            f"{len(same)}/{len(identical)} polysemous words have the identical vector at every "
            f"held-out occurrence ({sum(row['occurrences'] for row in same)} occurrences): the "
            f"polysemy gap below is 0 up to float32 rounding (max |gap| "
            f"{gap['max_abs_gap']:.1e})"
        )
