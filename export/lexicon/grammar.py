"""The grammar: seeded sampling of sentences from the lexicon, and of the two corpus splits.

A clause is "the [adjective] person verb" followed by one to three noun phrases whose nouns all
go with the verb; a sentence is one or two clauses of one topic, mostly with a place of its
first noun. A polysemous noun has its topic on both sides (see ``_sentence``). The held-out
split comes from the same grammar and shares no sentence with the training split.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from export.lexicon.entries import POLYSEMOUS_WORDS, Noun, Place, Topic, load_topics

# Bump when the grammar below changes: cached corpora with another version are regenerated.
GENERATOR_VERSION = 3
PUNCTUATION: frozenset[str] = frozenset((".", ","))


def _noun_phrase(noun: Noun, rng: random.Random) -> list[str]:
    adjective = rng.choice(noun.adjectives)
    article = "an" if adjective[0] in "aeiou" else "a"
    if rng.random() < 0.6:
        article = "the"
    return [article, adjective, noun.name]


def _location(place: Place, rng: random.Random) -> list[str]:
    return [place.preposition, "the", rng.choice(place.adjectives), place.name]


def _clause(topic: Topic, rng: random.Random) -> tuple[list[str], Noun]:
    """Tokens "the [adjective] person verb" plus one to three objects, and the first object.

    A polysemous first object stands alone, so the place of its sense can follow it directly
    (``wanted`` is still drawn, so the random stream does not depend on which noun came first).
    """
    noun = rng.choices(topic.nouns, topic.noun_weights)[0]
    verb = rng.choice(noun.verbs)
    person = topic.person_of_verb[verb]
    others = [other for other in topic.nouns_of_verb[verb] if other is not noun]
    wanted = rng.choices((0, 1, 2), (5, 3, 2))[0]
    extra = 0 if noun.name in POLYSEMOUS_WORDS else min(len(others), wanted)
    phrases = [_noun_phrase(item, rng) for item in (noun, *rng.sample(others, extra))]
    tokens = ["the"]
    if rng.random() < 0.4:
        tokens.append(rng.choice(person.adjectives))
    tokens += [person.name, verb, *phrases[0]]
    for index, phrase in enumerate(phrases[1:], start=2):
        last = index == len(phrases)
        tokens += [rng.choice(("and", "with")) if last else ",", *phrase]
    return tokens, noun


def _sentence(topic: Topic, rng: random.Random) -> list[str]:
    """One or two clauses of ``topic``, with a place of the first object, ending in ".".

    A polysemous noun has its topic on both sides: a polysemous first object is followed
    directly by one of its own places, and no sentence ends on a polysemous noun (one of its
    own places is appended, which may repeat a place named earlier).
    """
    clause, noun = _clause(topic, rng)
    location = _location(topic.place_named[rng.choice(noun.places)], rng)
    polysemous = noun.name in POLYSEMOUS_WORDS
    roll = rng.random()
    if roll < 0.25 and not polysemous:
        tokens = [*location, ",", *clause]
    elif roll < 0.7 or len(clause) < 7 or polysemous:
        tokens = [*clause, *location]
    else:
        tokens = clause
    if rng.random() < 0.35:
        second, other = _clause(topic, rng)
        tokens += [",", rng.choice(("and", "then")), *second]
        places = [name for name in other.places if name not in tokens]
        if places and (rng.random() < 0.3 or other.name in POLYSEMOUS_WORDS):
            tokens += _location(topic.place_named[rng.choice(places)], rng)
    if tokens[-1] in POLYSEMOUS_WORDS:
        last = topic.noun_named[tokens[-1]]
        tokens += _location(topic.place_named[rng.choice(last.places)], rng)
    return [*tokens, "."]


@dataclass(frozen=True)
class SenseOccurrence:
    sentence_index: int  # index into the split's sentences
    token_index: int  # index into sentence.split()
    word: str  # e.g. "apple"
    sense: str  # e.g. "food" (the topic name that fixes the sense)


@dataclass(frozen=True)
class CorpusSplit:
    sentences: list[str]  # each a space-separated, lowercase sentence ending with " ."
    topics: list[str]  # topic of each sentence
    senses: list[SenseOccurrence]  # every occurrence of a polysemous word in this split


@dataclass(frozen=True)
class Corpus:
    seed: int
    train: CorpusSplit
    heldout: CorpusSplit

    def vocabulary(self) -> list[str]:
        """Sorted distinct tokens of the training split."""
        return sorted({token for sentence in self.train.sentences for token in sentence.split()})


@dataclass(frozen=True)
class CorpusConfig:
    seed: int = 13
    train_tokens: int = 1_000_000  # generate sentences until at least this many tokens
    heldout_sentences: int = 2_000


DEFAULT_CONFIG = CorpusConfig()
"""The default corpus's config: the default of ``generate_corpus`` and ``load_or_generate``."""


class _SplitBuilder:
    """Accumulates sentences of one split with their topics and polysemous occurrences."""

    def __init__(self) -> None:
        self.sentences: list[str] = []
        self.topics: list[str] = []
        self.senses: list[SenseOccurrence] = []
        self.tokens = 0

    def add(self, topic: str, tokens: list[str]) -> None:
        index = len(self.sentences)
        self.senses += [
            SenseOccurrence(index, position, token, topic)
            for position, token in enumerate(tokens)
            if token in POLYSEMOUS_WORDS
        ]
        self.sentences.append(" ".join(tokens))
        self.topics.append(topic)
        self.tokens += len(tokens)

    def build(self) -> CorpusSplit:
        return CorpusSplit(self.sentences, self.topics, self.senses)


def generate_corpus(config: CorpusConfig = DEFAULT_CONFIG) -> Corpus:
    """The corpus of ``config``: identical for identical configs, on every machine."""
    topics = load_topics()
    rng = random.Random(config.seed)
    train = _SplitBuilder()
    while train.tokens < config.train_tokens:
        topic = rng.choice(topics)
        train.add(topic.name, _sentence(topic, rng))
    seen = set(train.sentences)
    rng = random.Random(f"heldout-{config.seed}")
    heldout = _SplitBuilder()
    for _ in range(100 * config.heldout_sentences + 1000):
        if len(heldout.sentences) >= config.heldout_sentences:
            break
        topic = rng.choice(topics)
        tokens = _sentence(topic, rng)
        sentence = " ".join(tokens)
        if sentence not in seen:
            seen.add(sentence)
            heldout.add(topic.name, tokens)
    else:
        raise RuntimeError("could not draw enough held-out sentences unseen in training")
    return Corpus(config.seed, train.build(), heldout.build())
