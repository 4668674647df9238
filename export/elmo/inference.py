"""Run an exported ELMo version as the server does, for evaluation of what is actually served.

The vectors come from the served ``ElmoRuntime`` itself: a sentence is the server's text of its
words joined by spaces, every text starts the biLM from zero LSTM states (requests are
independent), the ``<S>``/``</S>`` positions are dropped, and the chosen layers are mixed by the
server's own ``mix_layers`` (the mean of the layers, as a request naming those layers gets).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from modelrepo import load_checked
from service.runtime import EmbedOptions, Pooling
from service.runtime.base import mix_layers
from service.runtime.elmo import ElmoRuntime
from service.runtime.session import CPU_FP32


class OnnxElmo:
    """Per-word vectors (any layer or mix of layers) from a repository version's biLM graph."""

    def __init__(self, directory: Path) -> None:
        self.spec = load_checked(directory)
        if self.spec.architecture != "elmo":
            raise ValueError(f"{directory} holds a {self.spec.architecture} model, not ELMo")
        self.runtime = ElmoRuntime(directory, self.spec, CPU_FP32)

    @property
    def default_layers(self) -> tuple[int, ...]:
        return self.spec.default_layers

    def layers(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """All layers without <S>/</S>: ``(n_layers + 1, B, max words, 2 * proj)`` and the
        ``(B, max words)`` mask of real words (vectors past a sentence's end are zero)."""
        if not sentences:
            raise ValueError("no sentences")
        every = tuple(range(self.spec.num_layers + 1))
        texts = [" ".join(words) for words in sentences]
        items = self.runtime.prepare_embed(texts, EmbedOptions(Pooling.NONE, layers=every))
        encoded = self.runtime.encode_batch(items)  # the graph step of the served embed_batch
        width = max(len(item.tokens) for item in items)
        layers = np.zeros((len(every), len(items), width, self.spec.hidden_size), np.float32)
        mask = np.zeros((len(items), width), dtype=bool)
        for row, item in enumerate(items):
            for layer in every:
                layers[layer, row, : len(item.tokens)] = encoded[layer][row, : len(item.tokens)]
            mask[row, : len(item.tokens)] = True
        return layers, mask

    def mix(self, per_layer: np.ndarray, layers: Sequence[int]) -> np.ndarray:
        """``(n_layers + 1, n, dim)`` vectors → ``(n, dim)``: ``layers`` mixed as served."""
        chosen = tuple(layers)
        options = EmbedOptions(Pooling.NONE, layers=chosen)
        return mix_layers(tuple(per_layer[layer] for layer in chosen), options, self.runtime.gamma)

    def word_vectors(
        self,
        sentences: Sequence[Sequence[str]],
        positions: Sequence[int],
        layers: Sequence[int] | None = None,
    ) -> np.ndarray:
        """The vector of word ``positions[i]`` of sentence i, ``layers`` mixed as served
        (default: the spec's default layers, i.e. the served default)."""
        if len(positions) != len(sentences):
            raise ValueError(f"{len(sentences)} sentences but {len(positions)} positions")
        chosen = list(self.default_layers if layers is None else layers)
        if not chosen or not all(0 <= layer <= self.spec.num_layers for layer in chosen):
            raise ValueError(f"layers must be within 0..{self.spec.num_layers}, got {chosen}")
        for sentence, position in zip(sentences, positions, strict=True):
            if not 0 <= position < len(sentence):
                raise ValueError(f"position {position} is outside a {len(sentence)}-word sentence")
        texts = [" ".join(words) for words in sentences]
        items = self.runtime.prepare_embed(texts, EmbedOptions(Pooling.NONE, layers=tuple(chosen)))
        embedded = self.runtime.embed_batch(items)
        return np.stack(
            [
                pooled.result.vectors[position]
                for pooled, position in zip(embedded, positions, strict=True)
            ]
        )
