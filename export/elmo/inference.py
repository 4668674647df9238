"""Run an exported ELMo version with ONNX Runtime, for evaluation of what is actually served.

Every call starts the biLM from zero LSTM states (as the server does: requests are independent),
drops the ``<S>``/``</S>`` positions and mixes the chosen layers the way the server's default
does: ``γ · mean(layers)`` (equal scalar-mix weights; γ from the spec, 1 by default).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from export.validate import cpu_session
from modelrepo import load_checked
from modelrepo.elmo_characters import MAX_CHARACTERS_PER_TOKEN, batch_char_ids

ROLE = "bilm"


class OnnxElmo:
    """Per-word vectors (any layer or mix of layers) from a repository version's biLM graph."""

    def __init__(self, directory: Path) -> None:
        self.spec = load_checked(directory)
        if self.spec.architecture != "elmo":
            raise ValueError(f"{directory} holds a {self.spec.architecture} model, not ELMo")
        graph = self.spec.graph(ROLE)
        self.session = cpu_session(directory / graph.file)
        self.max_chars = int(
            self.spec.extra.get("max_characters_per_token", MAX_CHARACTERS_PER_TOKEN)
        )
        self.gamma = float(self.spec.extra.get("scalar_mix_gamma", 1.0))
        self.n_states = 2 * self.spec.num_layers
        self.lstm_dim = _fixed(graph.input("initial_c").shape[2], "initial_c")
        self.projection_dim = _fixed(graph.input("initial_h").shape[2], "initial_h")

    @property
    def default_layers(self) -> tuple[int, ...]:
        return self.spec.default_layers

    def layers(self, sentences: Sequence[Sequence[str]]) -> tuple[np.ndarray, np.ndarray]:
        """All layers without <S>/</S>: ``(n_layers + 1, B, max words, 2 * proj)`` and the
        ``(B, max words)`` mask of real words (vectors past a sentence's end are zero)."""
        if not sentences:
            raise ValueError("no sentences")
        char_ids = batch_char_ids(sentences, self.max_chars)
        batch = char_ids.shape[0]
        initial_c = np.zeros((self.n_states, batch, self.lstm_dim), dtype=np.float32)
        initial_h = np.zeros((self.n_states, batch, self.projection_dim), dtype=np.float32)
        layers, mask = self.session.run(
            ["layers", "mask"],
            {"char_ids": char_ids, "initial_c": initial_c, "initial_h": initial_h},
        )
        words = np.asarray(mask)[:, 2:]
        inner = np.asarray(layers)[:, :, 1:-1, :]
        return np.where(words[None, :, :, None], inner, np.float32(0)), words

    def word_vectors(
        self,
        sentences: Sequence[Sequence[str]],
        positions: Sequence[int],
        layers: Sequence[int] | None = None,
    ) -> np.ndarray:
        """The vector of word ``positions[i]`` of sentence i: ``γ · mean`` of ``layers``
        (default: the spec's default layers, i.e. the served equal-weight mix)."""
        if len(positions) != len(sentences):
            raise ValueError(f"{len(sentences)} sentences but {len(positions)} positions")
        chosen = list(self.default_layers if layers is None else layers)
        if not chosen or not all(0 <= layer <= self.spec.num_layers for layer in chosen):
            raise ValueError(f"layers must be within 0..{self.spec.num_layers}, got {chosen}")
        for sentence, position in zip(sentences, positions, strict=True):
            if not 0 <= position < len(sentence):
                raise ValueError(f"position {position} is outside a {len(sentence)}-word sentence")
        all_layers, _ = self.layers(sentences)
        mixed = self.gamma * all_layers[chosen].mean(axis=0)
        return np.asarray(mixed[np.arange(len(positions)), np.asarray(positions)])


def _fixed(dim: int | str, name: str) -> int:
    if not isinstance(dim, int):
        raise ValueError(f"{name}: the state width must be a fixed size, got axis {dim!r}")
    return dim
