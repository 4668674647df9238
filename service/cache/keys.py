"""The one key layout of the cache, shared by every replica and by the flush command.

``emb:v2:<model>:<version>:<operation>:<fingerprint>:<options>:<text>``

- ``emb:v2``: the namespace and the format version of keys and values; a new format changes it,
  so replicas of two releases never read each other's entries.
- ``<model>:<version>``: the served model name and version number.
- ``<operation>``: ``embed`` or ``fill_mask``.
- ``<fingerprint>``: 16 hex digits of a SHA-256 over the checksums (``spec.json``'s
  ``file_checksums``) of the graph that computes the result, of the tokenizer files and of
  any Dense layer weights (an imported sentence-transformers head), and
  over the rest of ``spec.json`` (``spec_digest``). An int8 or fp16 graph of the same weights,
  or a re-export, gets other keys, so it never serves vectors of another graph. A change to how
  the server computes results from the same graph bumps ``KEY_FORMAT`` (v2: BERT-family
  embeddings report their unknown tokens and where they lie, and a text of nothing else is
  refused, so a v1 entry for such a text is not the answer any more).
- ``<options>``: 16 hex digits of a SHA-256 over every option that changes the result (pooling,
  layers, layer weights, normalize, truncate, skip_unknown, prompt name, dimensions; top_k and
  truncate for fill-mask).
- ``<text>``: the SHA-256 of the exact text (UTF-8), all 64 hex digits.

Keys carry no ``{hash tag}``, so on a Redis Cluster they spread over every shard.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from modelrepo import ModelSpec
from service.domain import EmbedOptions

NAMESPACE = "emb"
KEY_FORMAT = "v2"
PREFIX = f"{NAMESPACE}:{KEY_FORMAT}:"
_SHORT = 16
_GLOB_SPECIAL = str.maketrans({char: f"\\{char}" for char in "*?[]\\"})


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def fingerprint(checksums: Mapping[str, str], files: Iterable[str]) -> str:
    """The digest of the recorded checksums of ``files`` (names included, in sorted order).

    Raises ``KeyError`` for a file without a recorded checksum: a key must never be built for
    a graph whose contents are unknown.
    """
    listed = "\n".join(f"{name}={checksums[name]}" for name in sorted(set(files)))
    return _digest(listed)[:_SHORT]


def embed_options(options: EmbedOptions) -> dict[str, object]:
    """Every field of ``EmbedOptions`` (each one changes the result), as JSON-ready values; a
    field added to it later joins the key by itself."""
    fields: dict[str, object] = {}
    for field in dataclasses.fields(options):
        value = getattr(options, field.name)
        fields[field.name] = value.value if isinstance(value, enum.Enum) else value
    return fields


def fill_mask_options(top_k: int, truncate: bool) -> dict[str, object]:
    """Every option that changes a fill-mask result: a text cut around its masks is filled
    from its window only."""
    return {"top_k": top_k, "truncate": truncate}


def options_digest(options: Mapping[str, object]) -> str:
    """The digest of a result's options as canonical JSON (sorted keys, floats as repr)."""
    return _digest(json.dumps(options, sort_keys=True, separators=(",", ":")))[:_SHORT]


@dataclass(frozen=True)
class KeyScope:
    """Everything in a key except the text: one model version, operation, graph and options."""

    model: str
    version: int
    operation: str
    fingerprint: str
    options: str

    @property
    def prefix(self) -> str:
        return (
            f"{PREFIX}{self.model}:{self.version}:{self.operation}:"
            f"{self.fingerprint}:{self.options}:"
        )

    def key(self, text: str) -> str:
        return self.prefix + _digest(text)


def match_pattern(model: str | None = None) -> str:
    """The SCAN ``MATCH`` pattern of one model's entries, or of every entry when ``None``."""
    if model is None:
        return PREFIX + "*"
    return f"{PREFIX}{model.translate(_GLOB_SPECIAL)}:*"


def spec_digest(spec: ModelSpec) -> str:
    """A digest of every field of ``spec.json`` besides the file checksums (maximum length,
    special tokens, ``extra`` such as ELMo's scalar-mix gamma): settings that change results."""
    fields = spec.model_dump(mode="json", exclude={"file_checksums"})
    return _digest(json.dumps(fields, sort_keys=True, separators=(",", ":")))


def graph_fingerprint(spec: ModelSpec, graph_role: str) -> str:
    """The fingerprint of the graph ``graph_role`` of ``spec``, of its tokenizer files and
    Dense weights, and of the rest of its ``spec.json``."""
    files = [spec.graph(graph_role).file, *spec.tokenizer_files, *spec.sentence.files]
    return fingerprint(
        {**spec.file_checksums, "spec.json": spec_digest(spec)}, [*files, "spec.json"]
    )
