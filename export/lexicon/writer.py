"""Corpus files: writing and reading both splits, and the cache that skips regeneration.

A directory holds ``train.txt``/``heldout.txt`` (one sentence a line), their topics and
polysemous occurrences, ``lexicon.json`` and ``meta.json`` (written last). ``meta.json`` records
the config and the generator's fingerprint, so ``load_or_generate`` reuses files only when they
are what generating again would write.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from export.lexicon.entries import lexicon_json
from export.lexicon.grammar import (
    DEFAULT_CONFIG,
    GENERATOR_VERSION,
    Corpus,
    CorpusConfig,
    CorpusSplit,
    SenseOccurrence,
    generate_corpus,
)


def generator_fingerprint() -> str:
    """What a cached corpus must have been made by: the grammar's version and the lexicon."""
    lexicon = json.dumps(lexicon_json(), sort_keys=True)
    return hashlib.sha256(f"{GENERATOR_VERSION}:{lexicon}".encode()).hexdigest()


def _meta(corpus: Corpus) -> dict[str, Any]:
    train = corpus.train.sentences
    tokens = sum(len(sentence.split()) for sentence in train)
    last = len(train[-1].split()) if train else 0
    return {
        "seed": corpus.seed,
        "generator": generator_fingerprint(),
        "train_sentences": len(train),
        "train_tokens": tokens,
        # Generation stops at the first sentence that reaches the token target, so every
        # target in [train_tokens_min, train_tokens] yields exactly this training split.
        "train_tokens_min": tokens - last + 1,
        "heldout_sentences": len(corpus.heldout.sentences),
        "distinct_train_words": len(corpus.vocabulary()),
    }


def _write_lines(path: Path, lines: Sequence[str]) -> None:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def _read_lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


def write_corpus(corpus: Corpus, directory: Path) -> None:
    """Write both splits, their topics and senses, the lexicon and meta.json (last)."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, split in (("train", corpus.train), ("heldout", corpus.heldout)):
        _write_lines(directory / f"{name}.txt", split.sentences)
        _write_lines(directory / f"{name}_topics.txt", split.topics)
        _write_lines(
            directory / f"senses_{name}.jsonl", [json.dumps(asdict(s)) for s in split.senses]
        )
    (directory / "lexicon.json").write_text(json.dumps(lexicon_json(), indent=1), encoding="utf-8")
    (directory / "meta.json").write_text(json.dumps(_meta(corpus), indent=2), encoding="utf-8")


def _read_split(directory: Path, name: str) -> CorpusSplit:
    sentences = _read_lines(directory / f"{name}.txt")
    topics = _read_lines(directory / f"{name}_topics.txt")
    senses = [
        SenseOccurrence(**json.loads(line))
        for line in _read_lines(directory / f"senses_{name}.jsonl")
    ]
    if len(topics) != len(sentences):
        raise ValueError(
            f"{directory}: {name} has {len(sentences)} sentences, {len(topics)} topics"
        )
    return CorpusSplit(sentences, topics, senses)


def read_corpus(directory: Path) -> Corpus:
    """The corpus that ``write_corpus`` wrote to ``directory``."""
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    return Corpus(
        int(meta["seed"]), _read_split(directory, "train"), _read_split(directory, "heldout")
    )


def _matches(directory: Path, config: CorpusConfig) -> bool:
    try:
        meta: dict[str, Any] = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(
        meta.get("seed") == config.seed
        and meta.get("generator") == generator_fingerprint()
        and meta.get("heldout_sentences") == config.heldout_sentences
        and meta.get("train_tokens_min", 0) <= config.train_tokens <= meta.get("train_tokens", -1)
    )


def load_or_generate(directory: Path, config: CorpusConfig = DEFAULT_CONFIG) -> Corpus:
    """The corpus cached in ``directory`` if it was made from ``config``; else generate it."""
    if _matches(directory, config):
        return read_corpus(directory)
    corpus = generate_corpus(config)
    write_corpus(corpus, directory)
    return corpus
