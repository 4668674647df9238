"""The key layout: every part that changes a result changes the key, nothing else does."""

from __future__ import annotations

import dataclasses
import hashlib
import re

import pytest

from service.cache.keys import (
    KeyScope,
    embed_options,
    fingerprint,
    match_pattern,
    options_digest,
)
from service.domain import EmbedOptions, Pooling

CHECKSUMS = {"encoder.onnx": "sha256:" + "a" * 64, "tokenizer.json": "sha256:" + "b" * 64}


def scope(**changes: object) -> KeyScope:
    base = KeyScope("bert", 1, "embed", fingerprint(CHECKSUMS, CHECKSUMS), "0" * 16)
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_the_documented_layout() -> None:
    key = scope().key("the bank of the river")
    text_hash = hashlib.sha256(b"the bank of the river").hexdigest()
    assert re.fullmatch(rf"emb:v2:bert:1:embed:[0-9a-f]{{16}}:0{{16}}:{text_hash}", key), key


@pytest.mark.parametrize(
    "change",
    [
        {"model": "bert-2"},
        {"version": 2},
        {"operation": "fill_mask"},
        {"fingerprint": "f" * 16},
        {"options": "1" * 16},
    ],
)
def test_every_part_of_the_scope_changes_the_key(change: dict[str, object]) -> None:
    assert scope(**change).key("text") != scope().key("text")


def test_texts_differ_by_any_character() -> None:
    assert scope().key("apple") != scope().key("apple ")
    assert scope().key("apple") != scope().key("Apple")


def test_fingerprint_covers_the_graph_checksum() -> None:
    int8 = {**CHECKSUMS, "encoder.onnx": "sha256:" + "c" * 64}
    assert fingerprint(int8, CHECKSUMS) != fingerprint(CHECKSUMS, CHECKSUMS)
    assert fingerprint(CHECKSUMS, ["tokenizer.json", "encoder.onnx"]) == fingerprint(
        CHECKSUMS, ["encoder.onnx", "tokenizer.json"]
    )
    with pytest.raises(KeyError):
        fingerprint(CHECKSUMS, ["model_int8.onnx"])


OPTIONS = EmbedOptions(Pooling.MEAN, layers=(4,))


@pytest.mark.parametrize(
    "change",
    [
        {"pooling": Pooling.CLS},
        {"layers": (3,)},
        {"layers": (3, 4)},
        {"layers": (), "layer_weights": (0.0, 1.0, 0.0, 0.0, 0.0)},
        {"normalize": True},
        {"truncate": True},
        {"skip_unknown": True},
    ],
)
def test_every_embed_option_changes_the_digest(change: dict[str, object]) -> None:
    changed = dataclasses.replace(OPTIONS, **change)  # type: ignore[arg-type]
    assert options_digest(embed_options(changed)) != options_digest(embed_options(OPTIONS))


def test_every_field_of_embed_options_is_in_the_key() -> None:
    assert set(embed_options(OPTIONS)) == {field.name for field in dataclasses.fields(OPTIONS)}
    assert options_digest(embed_options(OPTIONS)) == options_digest(
        embed_options(EmbedOptions(Pooling.MEAN, layers=(4,)))
    )


def test_flush_patterns() -> None:
    assert match_pattern() == "emb:v2:*"
    assert match_pattern("bert") == "emb:v2:bert:*"
    assert scope().key("x").startswith(match_pattern("bert")[:-1])
    assert not scope(model="bert-large").key("x").startswith(match_pattern("bert")[:-1])
