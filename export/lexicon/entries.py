"""The lexicon as typed entries, read from this package's data files and checked once.

``lexicon.toml`` lists the topics, the function words and the polysemous words;
``topics/<topic>.txt`` holds a topic's persons, places and nouns (line shapes in
``lexicon.toml``). The data ships inside the package, so an installed package generates the same
corpus as a checkout.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import cache
from importlib import resources
from typing import Any

_DATA = resources.files("export.lexicon")

# Sampling weight of a polysemous noun relative to an ordinary noun of its topic.
_POLYSEMOUS_WEIGHT = 10.0


def _string_list(value: object, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ValueError(f"lexicon.toml: {what} must be a list of strings, not {value!r}")
    return value


def _read_manifest() -> tuple[tuple[str, ...], frozenset[str], dict[str, tuple[str, str]]]:
    """(topics in order, function words, polysemous word -> its two topics) of lexicon.toml."""
    manifest = tomllib.loads(_DATA.joinpath("lexicon.toml").read_text(encoding="utf-8"))
    topics = tuple(_string_list(manifest.get("topics"), "topics"))
    function_words = frozenset(_string_list(manifest.get("function_words"), "function_words"))
    table = manifest.get("polysemous")
    if not isinstance(table, dict):
        raise ValueError("lexicon.toml: [polysemous] must be a table of word = [topic, topic]")
    polysemous: dict[str, tuple[str, str]] = {}
    for word, value in table.items():
        senses = _string_list(value, f"polysemous.{word}")
        if len(senses) != 2:
            raise ValueError(f"lexicon.toml: polysemous.{word} must name two topics: {senses}")
        polysemous[word] = (senses[0], senses[1])
    return topics, function_words, polysemous


# FUNCTION_WORDS: the words no topic may own (articles, conjunctions, prepositions).
# POLYSEMOUS_WORDS: word -> (topic of sense 1, topic of sense 2).
_TOPIC_NAMES, FUNCTION_WORDS, POLYSEMOUS_WORDS = _read_manifest()


@dataclass(frozen=True)
class Person:
    name: str
    adjectives: tuple[str, ...]
    verbs: tuple[str, ...]


@dataclass(frozen=True)
class Place:
    name: str
    preposition: str
    adjectives: tuple[str, ...]


@dataclass(frozen=True)
class Noun:
    name: str
    adjectives: tuple[str, ...]
    verbs: tuple[str, ...]
    places: tuple[str, ...]


@dataclass(frozen=True)
class Topic:
    """The lexicon of one topic, with the look-ups the grammar needs."""

    name: str
    persons: tuple[Person, ...]
    places: tuple[Place, ...]
    nouns: tuple[Noun, ...]
    person_of_verb: dict[str, Person] = field(init=False, repr=False, compare=False)
    nouns_of_verb: dict[str, tuple[Noun, ...]] = field(init=False, repr=False, compare=False)
    place_named: dict[str, Place] = field(init=False, repr=False, compare=False)
    noun_named: dict[str, Noun] = field(init=False, repr=False, compare=False)
    noun_weights: tuple[float, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        person_of_verb = {verb: person for person in self.persons for verb in person.verbs}
        nouns_of_verb = {
            verb: tuple(noun for noun in self.nouns if verb in noun.verbs)
            for verb in person_of_verb
        }
        weights = tuple(
            _POLYSEMOUS_WEIGHT if noun.name in POLYSEMOUS_WORDS else 1.0 for noun in self.nouns
        )
        object.__setattr__(self, "person_of_verb", person_of_verb)
        object.__setattr__(self, "nouns_of_verb", nouns_of_verb)
        object.__setattr__(self, "place_named", {place.name: place for place in self.places})
        object.__setattr__(self, "noun_named", {noun.name: noun for noun in self.nouns})
        object.__setattr__(self, "noun_weights", weights)

    def entries(self) -> Iterator[tuple[str, str]]:
        """(word, role) for every word of the topic, in lexicon order."""
        for person in self.persons:
            yield person.name, "person"
            yield from ((word, "person adjective") for word in person.adjectives)
            yield from ((word, "verb") for word in person.verbs)
        for place in self.places:
            yield place.name, "place"
            yield from ((word, "place adjective") for word in place.adjectives)
        for noun in self.nouns:
            yield noun.name, "noun"
            if noun.name not in POLYSEMOUS_WORDS:  # a polysemous noun's adjectives are borrowed
                yield from ((word, "adjective") for word in noun.adjectives)


def parse_topic(name: str, text: str) -> Topic:
    """The topic ``name`` from the lines of its file (shapes in ``lexicon.toml``)."""
    persons: list[Person] = []
    places: list[Place] = []
    nouns: list[Noun] = []
    for number, line in enumerate((line.strip() for line in text.splitlines()), start=1):
        if not line:
            continue
        head, _, body = line.partition(":")
        fields = [tuple(part.split()) for part in body.split("|")]
        if len(fields) == 1 and len(head.split()) == 2:
            preposition, place = head.split()
            places.append(Place(place, preposition, fields[0]))
        elif len(fields) == 2:
            persons.append(Person(head, fields[0], fields[1]))
        elif len(fields) == 3:
            nouns.append(Noun(head, fields[0], fields[1], fields[2]))
        else:
            raise ValueError(f"topics/{name}.txt line {number}: no entry shape fits {line!r}")
    return Topic(name, tuple(persons), tuple(places), _borrow_adjectives(nouns))


def _ordinary_adjectives(nouns: Sequence[Noun]) -> set[str]:
    """Every adjective of the ordinary (not polysemous) nouns among ``nouns``."""
    return {word for noun in nouns if noun.name not in POLYSEMOUS_WORDS for word in noun.adjectives}


def _borrow_adjectives(nouns: Sequence[Noun]) -> tuple[Noun, ...]:
    """Polysemous nouns take the adjectives of every ordinary noun of their topic."""
    borrowed = tuple(sorted(_ordinary_adjectives(nouns)))
    resolved = []
    for noun in nouns:
        if noun.name in POLYSEMOUS_WORDS:
            if noun.adjectives:
                raise ValueError(f"polysemous {noun.name!r} must not list adjectives of its own")
            noun = Noun(noun.name, borrowed, noun.verbs, noun.places)  # noqa: PLW2901
        resolved.append(noun)
    return tuple(resolved)


def lexicon_problems(topics: Sequence[Topic]) -> list[str]:
    """Everything that breaks the lexicon's rules (an empty list for a sound lexicon)."""
    problems: list[str] = []
    uses: dict[str, list[tuple[str, str]]] = {}
    for topic in topics:
        verbs, places = set(topic.person_of_verb), set(topic.place_named)
        for noun in topic.nouns:
            for missing in sorted((set(noun.verbs) - verbs) | (set(noun.places) - places)):
                problems.append(f"{topic.name}: {noun.name} refers to unknown {missing!r}")
            if not (noun.adjectives and noun.verbs and noun.places):
                problems.append(f"{topic.name}: {noun.name} lacks adjectives, verbs or places")
        ordinary = _ordinary_adjectives(topic.nouns)
        for noun in topic.nouns:
            if noun.name in POLYSEMOUS_WORDS and set(noun.adjectives) != ordinary:
                problems.append(
                    f"{topic.name}: polysemous {noun.name} must take exactly the adjectives of "
                    "the topic's ordinary nouns"
                )
        for verb, nouns in topic.nouns_of_verb.items():
            if not nouns:
                problems.append(f"{topic.name}: no noun goes with the verb {verb!r}")
        for word, role in topic.entries():
            uses.setdefault(word, []).append((topic.name, role))
    for word, where in uses.items():
        if not re.fullmatch(r"[a-z]+", word) or word in FUNCTION_WORDS:
            problems.append(f"{word!r} is not a lowercase content word")
        expected = [(topic, "noun") for topic in POLYSEMOUS_WORDS.get(word, ())]
        if len(where) > 1 and sorted(where) != sorted(expected):
            problems.append(f"{word!r} is used more than once: {where}")
    for word, senses in POLYSEMOUS_WORDS.items():
        if sorted(uses.get(word, [])) != sorted((topic, "noun") for topic in senses):
            problems.append(f"polysemous {word!r} must be a noun of exactly {senses}")
    return problems


@cache
def load_topics() -> tuple[Topic, ...]:
    """Every topic of the lexicon, in ``lexicon.toml``'s order (read and checked once)."""
    topics = tuple(
        parse_topic(name, _DATA.joinpath("topics", f"{name}.txt").read_text(encoding="utf-8"))
        for name in _TOPIC_NAMES
    )
    problems = lexicon_problems(topics)
    if problems:
        raise ValueError("inconsistent corpus lexicon:\n" + "\n".join(problems))
    return topics


def content_words() -> frozenset[str]:
    """Every lexicon word (polysemous words included): the words evaluation may mask."""
    return frozenset(word for topic in load_topics() for word, _ in topic.entries())


def word_topics() -> dict[str, str]:
    """Every content word that is not polysemous -> the one topic it belongs to."""
    return {
        word: topic.name
        for topic in load_topics()
        for word, _ in topic.entries()
        if word not in POLYSEMOUS_WORDS
    }


def lexicon_json() -> dict[str, Any]:
    """The lexicon as plain data (written to lexicon.json)."""
    return {
        "topics": {
            topic.name: {
                "persons": [asdict(person) for person in topic.persons],
                "places": [asdict(place) for place in topic.places],
                "nouns": [asdict(noun) for noun in topic.nouns],
            }
            for topic in load_topics()
        },
        "polysemous_words": {word: list(senses) for word, senses in POLYSEMOUS_WORDS.items()},
        "function_words": sorted(FUNCTION_WORDS),
    }
