"""ELMo behind the runtime protocol: whitespace words → character ids → biLM graph → layers.

Tokenization: a text is split on runs of Unicode whitespace (Python's ``str.split()``), the rule
the bilm-tf / AllenNLP reference outputs were made with; there is no subword step and no
vocabulary, so every word has a vector. Each word is spelled as its UTF-8 bytes (at most 48 are
kept; the character CNN sees 50 slots with begin/end-of-word) by ``modelrepo.elmo_characters``,
the same encoder the exporter validated the graph with. The literal words ``<S>`` and ``</S>``
are the sentence markers, as in bilm-tf and AllenNLP.

The graph runs on ``[<S>, words…, </S>]`` and the server passes zero initial LSTM states, so
every text is independent of every other (the stateful carry-over of the original biLM is not
used). Results are per word: the <S>/</S> positions are dropped.

Layers: 0 is the context-free token layer (the char-CNN vector, duplicated to both halves),
1..N the biLSTM layers (forward and backward halves side by side). ``layers`` averages the chosen
layers; ``layer_weights`` is ELMo's scalar mix ``γ · Σ softmax(w)_j · layer_j`` over all layers
(γ from the spec, 1 for imported biLMs). The default is every layer with equal weight, i.e. the
scalar mix with w = 0 and γ = 1, which is the mean of the layers.

Pooling: MEAN (default), MAX or NONE (one vector per word). CLS is refused (declared here in
``EMBED_SUPPORT``, checked by ``service.domain.resolve_embed_options``): ELMo has no sentence
token. ``max_sequence_length``
counts <S> and </S>, so a text may have that many words minus two; longer texts are refused,
or cut to the limit with ``truncate``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modelrepo import ModelSpec, SpecError
from modelrepo.elmo_characters import char_ids, tokenize
from service.domain import EmbedOptions, EmbedSupport, Pooling, TokenizedText
from service.errors import InvalidArgument
from service.runtime.base import EmbedItem, PooledEmbedding, pool_batch, warm_up_embeddings
from service.runtime.session import GraphSession, SessionOptions
from service.runtime.words import require_words, whitespace_offsets

GRAPH = "bilm"
MARKERS = 2  # the <S> and </S> positions around every text
TOKENIZATION = "whitespace"  # spec.extra["tokenization"]: str.split(), see the module docstring
EMBED_SUPPORT = EmbedSupport(
    refused_poolings={
        Pooling.CLS: "pooling CLS is not defined for {name}: ELMo has no sentence token, "
        "its vectors are per word; use POOLING_MEAN (the default), POOLING_MAX or POOLING_NONE"
    }
)


def _fixed(spec: ModelSpec, name: str, axis: int) -> int:
    """A fixed axis of one of the biLM graph's inputs (the states' and characters' widths)."""
    size = spec.graph(GRAPH).input(name).shape[axis]
    if not isinstance(size, int):
        raise SpecError(
            f"{spec.name}/{spec.version}: input {name} axis {axis} must be a fixed size, "
            f"got {size!r}"
        )
    return size


class ElmoRuntime:
    """An ELMo biLM version: contextual word vectors from any layer or a scalar mix of them."""

    embed_support = EMBED_SUPPORT
    batched = True

    def __init__(self, directory: Path, spec: ModelSpec, options: SessionOptions) -> None:
        self.spec = spec
        rule = spec.extra.get("tokenization", TOKENIZATION)
        if rule != TOKENIZATION:
            raise SpecError(
                f"{spec.name}/{spec.version}: tokenization {rule!r} is not supported by this "
                f"build (it splits on {TOKENIZATION})"
            )
        graph = spec.graph(GRAPH)
        self.bilm = GraphSession(
            directory / graph.file, graph, options, f"{spec.name}/{spec.version} {GRAPH}"
        )
        self.device = self.bilm.device
        self.graph_roles = {"embed": GRAPH}
        self.max_chars = _fixed(spec, "char_ids", 2)
        self.states = _fixed(spec, "initial_c", 0)
        self.cell_dim = _fixed(spec, "initial_c", 2)
        self.hidden_dim = _fixed(spec, "initial_h", 2)
        self.max_words = spec.max_sequence_length - MARKERS
        if self.max_words < 1:
            raise SpecError(
                f"{spec.name}/{spec.version}: max_sequence_length {spec.max_sequence_length} "
                f"leaves no room for words besides <S> and </S>"
            )
        self.gamma = float(spec.extra.get("scalar_mix_gamma", 1.0))

    @property
    def dim(self) -> int:
        return self.spec.hidden_size

    # -- tokenization ---------------------------------------------------------------------
    def _words(self, texts: Sequence[str]) -> list[list[str]]:
        require_words(texts)
        return [tokenize(text) for text in texts]

    def tokenize(self, texts: Sequence[str]) -> list[TokenizedText]:
        """The whitespace words of each text and their character offsets (no ids: ELMo reads
        characters, not a vocabulary)."""
        return [
            TokenizedText(tuple(tokens), (), whitespace_offsets(text))
            for text, tokens in zip(texts, self._words(texts), strict=True)
        ]

    def _fit(self, index: int, words: list[str], truncate: bool) -> tuple[list[str], bool]:
        if len(words) <= self.max_words:
            return words, False
        if not truncate:
            raise InvalidArgument(
                f"texts[{index}] has {len(words)} words, more than {self.spec.name}'s maximum of "
                f"{self.max_words} ({self.spec.max_sequence_length} positions with <S> and </S>); "
                "shorten it or set truncate"
            )
        return words[: self.max_words], True

    # -- embeddings -----------------------------------------------------------------------
    def prepare_embed(self, texts: Sequence[str], options: EmbedOptions) -> list[EmbedItem]:
        items = []
        for index, words in enumerate(self._words(texts)):
            kept, truncated = self._fit(index, words, options.truncate)
            items.append(
                EmbedItem(
                    ids=char_ids(kept, self.max_chars),
                    tokens=tuple(kept),
                    truncated=truncated,
                    options=options,
                )
            )
        return items

    def _inputs(self, items: Sequence[EmbedItem]) -> dict[str, np.ndarray]:
        """Char ids padded with zero rows, and zero initial states (every text independent)."""
        batch = len(items)
        width = max(len(item.ids) for item in items)
        ids = np.zeros((batch, width, self.max_chars), dtype=np.int64)
        for row, item in enumerate(items):
            ids[row, : len(item.ids)] = item.ids
        return {
            "char_ids": ids,
            "initial_c": np.zeros((self.states, batch, self.cell_dim), dtype=np.float32),
            "initial_h": np.zeros((self.states, batch, self.hidden_dim), dtype=np.float32),
        }

    def encode_batch(self, items: Sequence[EmbedItem]) -> dict[int, np.ndarray]:
        """One padded batch through the biLM: every layer → (texts, padded words, dim), each
        text's words from the position after its sentence-start marker."""
        (layers,) = self.bilm.run(["layers"], self._inputs(items))
        return {layer: layers[layer, :, 1:] for layer in range(len(layers))}

    def embed_batch(self, items: Sequence[EmbedItem]) -> list[PooledEmbedding]:
        lengths = np.fromiter((len(item.tokens) for item in items), np.int64, len(items))
        by_layer = self.encode_batch(items)
        return pool_batch(items, by_layer, lengths, self.spec.num_layers, self.gamma)

    # -- lifecycle ------------------------------------------------------------------------
    def warmup(self) -> None:
        """Run the graph once at a few lengths so the first request is not the slow one."""
        warm_up_embeddings(self)

    def close(self) -> None:
        """Nothing to release beyond the session, which goes with the runtime."""
