"""The generator's output is pinned byte for byte: a change to the lexicon files, the grammar or
the writer that alters any written file (or the fingerprint that keys cached corpora) fails here.

The hashes were recorded from the generator before its lexicon became package data. Change them
only together with a deliberate change of the corpus (and a bump of the generator version).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from export.corpus import CorpusConfig, generate_corpus, generator_fingerprint, write_corpus

FINGERPRINT = "4303cc5d614bd601151e9a2260083f1fbebd5ff7350dea1e037f167937067cbb"
LEXICON_JSON = "5c77633c67b528f5239dcd17a8148fcceb70be1a9fc6c8c96f82a1ee166d8a1d"

SMALL = CorpusConfig(seed=7, train_tokens=20_000, heldout_sentences=200)
DEFAULT = CorpusConfig()

FILES: dict[CorpusConfig, dict[str, str]] = {
    SMALL: {
        "heldout.txt": "9a2c9bb9f4ea48fe26cc45fa33fbf9fdb9422af6eb8c26fa780df3eadbb57bf5",
        "heldout_topics.txt": "0f4199c0fe8fe40f6498dc7fb070eef17716ad6a872ba018d919e2fd6b4004e0",
        "lexicon.json": LEXICON_JSON,
        "meta.json": "766d83c7d8dce6254501809385039cac17fa85fdf9b13f067b2b76dea1c0606b",
        "senses_heldout.jsonl": "ae7a1a66fff2a07a1240b3e0f15153bda3156518c48c0b0ccdc1b2989e8fe5e0",
        "senses_train.jsonl": "4a507852a776cb6356e1a58ec1707fbce42d3455657977ac8e0a6c3105100f1e",
        "train.txt": "adcf810dabec05507a1901e8ba2bde21ce9ffd612c4f87d2cba70983b70ebd7d",
        "train_topics.txt": "df75e48c988da1a47930ae817eb7cc7db01f58a040eb331a6df06ff3cc0019e5",
    },
    DEFAULT: {
        "heldout.txt": "fb2d369fc968a45503bb9ca83b9312b63212d57d3da034a4a039e214805d7829",
        "heldout_topics.txt": "97f282ce2966b7d142443193d7476411126f5ad63e8d123246ea0c3bbeffc0a8",
        "lexicon.json": LEXICON_JSON,
        "meta.json": "85208f9f8cefd9d673a7c59e8377f88bd3aa657a79371db3ab3fc870934dc87d",
        "senses_heldout.jsonl": "e41b5d17a52b9d833d5f35999b309ba0cad24004f4eb82a13cab71f48cc189d0",
        "senses_train.jsonl": "89e378202b09c89b2ff3e8d07c10e952b6bb9794370ac1d34f0b17c527442b62",
        "train.txt": "af766b4621014975c8d130fb17a452c097dfcd94432ca6efec967bb47f18d698",
        "train_topics.txt": "e5ab945f29707f8752a423c55f46ede917e07ee6cf3f3dbaefe7f425fc1b2e97",
    },
}


@pytest.fixture(scope="module", params=[SMALL, DEFAULT], ids=["small", "default"])
def written(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[CorpusConfig, Path]:
    """A config and the directory ``write_corpus`` filled with its corpus."""
    config: CorpusConfig = request.param
    directory = tmp_path_factory.mktemp("corpus")
    write_corpus(generate_corpus(config), directory)
    return config, directory


def test_written_corpus_is_byte_identical(written: tuple[CorpusConfig, Path]) -> None:
    config, directory = written
    hashes = {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest() for path in directory.iterdir()
    }
    assert hashes == FILES[config]


def test_generator_fingerprint_is_unchanged(written: tuple[CorpusConfig, Path]) -> None:
    _, directory = written
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    assert meta["generator"] == FINGERPRINT
    assert generator_fingerprint() == FINGERPRINT
