"""The generated corpus: determinism, size, topics and senses, held-out split, files."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from export.corpus import (
    FUNCTION_WORDS,
    POLYSEMOUS_WORDS,
    TOPICS,
    Corpus,
    CorpusConfig,
    Noun,
    Person,
    Place,
    Topic,
    content_words,
    generate_corpus,
    lexicon_problems,
    load_or_generate,
    load_topics,
    read_corpus,
    word_topics,
    write_corpus,
)
from export.lexicon import writer as corpus_writer

SMALL = CorpusConfig(seed=7, train_tokens=50_000, heldout_sentences=300)


@pytest.fixture(scope="module")
def small() -> Corpus:
    return generate_corpus(SMALL)


def test_same_config_gives_the_same_corpus(small: Corpus) -> None:
    assert generate_corpus(SMALL) == small


def test_another_seed_gives_other_sentences(small: Corpus) -> None:
    other = generate_corpus(CorpusConfig(seed=8, train_tokens=50_000, heldout_sentences=300))
    assert other.train.sentences[:50] != small.train.sentences[:50]
    assert len(set(other.train.sentences) & set(small.train.sentences)) < len(small.train.sentences)


def test_default_corpus_meets_its_size_guarantees() -> None:
    started = time.perf_counter()
    corpus = generate_corpus()
    assert time.perf_counter() - started < 15
    tokens = sum(len(sentence.split()) for sentence in corpus.train.sentences)
    assert tokens >= 1_000_000
    assert len(corpus.vocabulary()) >= 2_000
    assert len(corpus.heldout.sentences) == 2_000
    assert len(POLYSEMOUS_WORDS) >= 8
    for split in (corpus.train, corpus.heldout):
        senses = {(occurrence.word, occurrence.sense) for occurrence in split.senses}
        for word, (first, second) in POLYSEMOUS_WORDS.items():
            assert {(word, first), (word, second)} <= senses, word


def test_at_least_eight_topics_each_with_sentences(small: Corpus) -> None:
    assert len(TOPICS) >= 8
    assert set(small.train.topics) == set(TOPICS)
    for first, second in POLYSEMOUS_WORDS.values():
        assert first != second
        assert {first, second} <= set(TOPICS)


def test_heldout_is_disjoint_from_train(small: Corpus) -> None:
    assert len(small.heldout.sentences) == SMALL.heldout_sentences
    assert not set(small.heldout.sentences) & set(small.train.sentences)
    assert len(set(small.heldout.sentences)) == len(small.heldout.sentences)


def test_sense_occurrences_point_at_their_word_and_topic(small: Corpus) -> None:
    for split in (small.train, small.heldout):
        assert len(split.topics) == len(split.sentences)
        for occurrence in split.senses:
            words = split.sentences[occurrence.sentence_index].split()
            assert words[occurrence.token_index] == occurrence.word
            assert occurrence.sense == split.topics[occurrence.sentence_index]
            assert occurrence.sense in POLYSEMOUS_WORDS[occurrence.word]
        polysemous = sum(
            word in POLYSEMOUS_WORDS for sentence in split.sentences for word in sentence.split()
        )
        assert len(split.senses) == polysemous


def test_every_content_word_belongs_to_the_sentence_topic(small: Corpus) -> None:
    topic_of = word_topics()
    for sentence, topic in zip(small.train.sentences, small.train.topics, strict=True):
        for word in sentence.split():
            if word in POLYSEMOUS_WORDS:
                assert topic in POLYSEMOUS_WORDS[word]
            elif word in topic_of:
                assert topic_of[word] == topic, (word, sentence)


def test_tokens_are_lowercase_words_or_punctuation(small: Corpus) -> None:
    for split in (small.train, small.heldout):
        for sentence in split.sentences:
            assert sentence.endswith(" .")
            assert 8 <= len(sentence.split()) <= 50, sentence
            for word in sentence.split():
                assert re.fullmatch(r"[a-z]+", word) or word in {".", ","}, word


def test_lexicon_words_are_classified() -> None:
    words = content_words()
    topic_of = word_topics()
    assert set(topic_of) == words - set(POLYSEMOUS_WORDS)
    assert set(POLYSEMOUS_WORDS) <= words
    assert not words & FUNCTION_WORDS
    assert set(topic_of.values()) == set(TOPICS)
    assert all(re.fullmatch(r"[a-z]+", word) for word in words)


def test_no_adjective_belongs_to_a_polysemous_word(small: Corpus) -> None:
    """The adjective before a polysemous noun is one its topic's ordinary nouns also take: the
    word has no collocation of its own, only the topic around it tells its sense."""
    ordinary_adjectives: dict[str, set[str]] = {}
    for topic in load_topics():
        for noun in topic.nouns:
            if noun.name not in POLYSEMOUS_WORDS:
                ordinary_adjectives.setdefault(topic.name, set()).update(noun.adjectives)
    seen = 0
    for occurrence in small.train.senses:
        words = small.train.sentences[occurrence.sentence_index].split()
        adjective = words[occurrence.token_index - 1]
        if adjective in content_words():
            assert adjective in ordinary_adjectives[occurrence.sense], (adjective, words)
            seen += 1
    assert seen > 100


def test_lexicon_problems_finds_reused_and_unknown_words() -> None:
    person = Person("cook", ("busy",), ("boiled",))
    place = Place("kitchen", "in", ("warm",))
    nouns = (
        Noun("egg", ("warm",), ("boiled",), ("kitchen",)),
        Noun("rice", ("white",), ("fried",), ("pantry",)),
        Noun("apple", ("zany",), ("boiled",), ("kitchen",)),
    )
    problems = lexicon_problems([Topic("food", (person,), (place,), nouns)])
    assert any("polysemous apple must take exactly" in problem for problem in problems)
    assert any("'warm' is used more than once" in problem for problem in problems)
    assert any("unknown 'fried'" in problem for problem in problems)
    assert any("unknown 'pantry'" in problem for problem in problems)


def test_vocabulary_is_sorted_distinct_train_tokens(small: Corpus) -> None:
    words = {word for sentence in small.train.sentences for word in sentence.split()}
    assert small.vocabulary() == sorted(words)


def test_write_and_read_round_trip(small: Corpus, tmp_path: Path) -> None:
    write_corpus(small, tmp_path)
    names = {path.name for path in tmp_path.iterdir()}
    assert {
        "train.txt",
        "heldout.txt",
        "train_topics.txt",
        "heldout_topics.txt",
        "senses_train.jsonl",
        "senses_heldout.jsonl",
        "lexicon.json",
        "meta.json",
    } <= names
    assert read_corpus(tmp_path) == small


def test_load_or_generate_reuses_matching_files(
    small: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_or_generate(tmp_path, SMALL) == small

    def no_generation(config: CorpusConfig) -> Corpus:
        raise AssertionError("should have reused the files")

    with monkeypatch.context() as patch:
        patch.setattr(corpus_writer, "generate_corpus", no_generation)
        assert load_or_generate(tmp_path, SMALL) == small

    other = CorpusConfig(seed=SMALL.seed, train_tokens=20_000, heldout_sentences=100)
    regenerated = load_or_generate(tmp_path, other)
    assert regenerated == generate_corpus(other)
    assert read_corpus(tmp_path) == regenerated


def test_a_polysemous_noun_has_its_topic_on_both_sides(small: Corpus) -> None:
    """Words of the sense's topic come before and after every polysemous occurrence, so both
    directions of a language model can tell the sense; no sentence ends on a polysemous noun."""
    topic_of = word_topics()
    for split in (small.train, small.heldout):
        for occurrence in split.senses:
            words = split.sentences[occurrence.sentence_index].split()
            before = {topic_of.get(word) for word in words[: occurrence.token_index]}
            after = {topic_of.get(word) for word in words[occurrence.token_index + 1 :]}
            assert occurrence.sense in before, words
            assert occurrence.sense in after, words


def test_a_polysemous_first_object_is_followed_by_one_of_its_places(small: Corpus) -> None:
    topics = {topic.name: topic for topic in load_topics()}
    verbs = {verb for topic in topics.values() for verb in topic.person_of_verb}
    seen = 0
    for occurrence in small.train.senses:
        words = small.train.sentences[occurrence.sentence_index].split()
        index = occurrence.token_index
        if words[index - 3] not in verbs:  # "verb the adjective noun": a clause's first object
            continue
        topic = topics[occurrence.sense]
        preposition, article, adjective, place = words[index + 1 : index + 5]
        assert place in topic.noun_named[occurrence.word].places, words
        assert preposition == topic.place_named[place].preposition, words
        assert article == "the", words
        assert adjective in topic.place_named[place].adjectives, words
        seen += 1
    assert seen > 100
