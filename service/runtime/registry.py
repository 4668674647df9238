"""Every architecture this build serves, in one place: its runtime class, which declares next to
its code what its embeddings support and whether it is batched. Adding an architecture is a
runtime module and one line here (``modelrepo`` names the architectures a spec may declare; a
test checks that each has an entry)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from modelrepo import ModelSpec
from service.domain import EmbedSupport
from service.runtime.base import Runtime
from service.runtime.bert import BertRuntime
from service.runtime.elmo import ElmoRuntime
from service.runtime.session import SessionOptions
from service.runtime.word2vec import Word2VecRuntime


class RuntimeClass(Protocol):
    """A runtime class: it opens a version directory, and declares its embeddings' support."""

    embed_support: EmbedSupport

    def __call__(self, directory: Path, spec: ModelSpec, options: SessionOptions) -> Runtime: ...


RUNTIMES: Mapping[str, RuntimeClass] = {
    "bert": BertRuntime,
    "elmo": ElmoRuntime,
    "word2vec": Word2VecRuntime,
}


def embed_support(architecture: str) -> EmbedSupport:
    """What the architecture's embeddings refuse, as its runtime declares it."""
    return RUNTIMES[architecture].embed_support
