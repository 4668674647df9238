"""The default corpus: seeded, deterministic English-like sentences drawn from twelve topics.

Every content word is strongly predictable from its neighbours because the lexicon is made of
fixed collocations. Each topic has:

* persons, each with two dedicated adjectives and five verbs of its own ("the grumpy chef
  sliced ...": a verb names its person);
* places, each with a preposition and two dedicated adjectives ("in the steamy kitchen");
* nouns, each with two dedicated adjectives, the verbs it goes with and the places it occurs in
  ("banana: yellow mushy | peeled devoured displayed | market kitchen").

A clause is "the [adjective] person verb" followed by one to three noun phrases whose nouns all
go with the verb; a sentence is one or two clauses of one topic, mostly with a place of its
first noun.
Polysemous words are nouns of two topics, with other verbs and places per topic and no
adjectives of their own: they take any adjective of the ordinary nouns of their topic ("a mushy
apple", "a sleek apple"). No adjective belongs to a polysemous word, so what fixes its sense is
the topic of the sentence around it, not a collocation of its own, and that topic is on both
sides of it: words of its topic come before it (the person and the verb) and after it (a place
of that topic, or more of the sentence); no sentence ends on a polysemous noun. The held-out
split comes from the same grammar and shares no sentence with the training split.

The generator lives in ``export.lexicon``: ``entries`` reads the lexicon from package data
(``export/lexicon/lexicon.toml`` and ``topics/*.txt``), ``grammar`` samples the sentences and
``writer`` writes, reads and caches corpora. This module is their public face.
"""

from __future__ import annotations

from export.lexicon.entries import (
    FUNCTION_WORDS,
    POLYSEMOUS_WORDS,
    Noun,
    Person,
    Place,
    Topic,
    content_words,
    lexicon_json,
    lexicon_problems,
    load_topics,
    word_topics,
)
from export.lexicon.grammar import (
    PUNCTUATION,
    Corpus,
    CorpusConfig,
    CorpusSplit,
    SenseOccurrence,
    generate_corpus,
)
from export.lexicon.writer import (
    generator_fingerprint,
    load_or_generate,
    read_corpus,
    write_corpus,
)

TOPICS: tuple[str, ...] = tuple(topic.name for topic in load_topics())

__all__ = [
    "FUNCTION_WORDS",
    "POLYSEMOUS_WORDS",
    "PUNCTUATION",
    "TOPICS",
    "Corpus",
    "CorpusConfig",
    "CorpusSplit",
    "Noun",
    "Person",
    "Place",
    "SenseOccurrence",
    "Topic",
    "content_words",
    "generate_corpus",
    "generator_fingerprint",
    "lexicon_json",
    "lexicon_problems",
    "load_or_generate",
    "load_topics",
    "read_corpus",
    "word_topics",
    "write_corpus",
]
