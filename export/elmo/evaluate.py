"""Polysemy gap of an exported ELMo, for the served layer mix and for each layer alone.

Layer 0 is the char-CNN token vector, the same in every context, so its gap is 0 up to
rounding: the contextual layers 1..n are what separates the senses.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from export.corpus import CorpusSplit
from export.elmo.inference import OnnxElmo
from export.evaluate import WordVectors, polysemy_gap


class _AllLayers:
    """Every layer's vectors at the requested words, computed once per batch.

    ``polysemy_gap`` samples the same sentences for the same seed, so the five gaps reuse one
    pass of the biLM per batch.
    """

    def __init__(self, model: OnnxElmo) -> None:
        self.model = model
        self._cache: dict[tuple[tuple[tuple[str, ...], ...], tuple[int, ...]], np.ndarray] = {}

    def __call__(self, sentences: Sequence[Sequence[str]], positions: Sequence[int]) -> np.ndarray:
        """``(n_layers + 1, len(positions), dim)``."""
        key = (tuple(tuple(words) for words in sentences), tuple(positions))
        if key not in self._cache:
            layers, _ = self.model.layers(sentences)
            rows = np.arange(len(positions))
            self._cache[key] = layers[:, rows, np.asarray(positions)]
        return self._cache[key]

    def mix(self, layers: Sequence[int]) -> WordVectors:
        chosen = list(layers)

        def vectors_of(sentences: Sequence[Sequence[str]], positions: Sequence[int]) -> np.ndarray:
            return self.model.mix(self(sentences, positions), chosen)

        return vectors_of


def evaluate_elmo(model: OnnxElmo, heldout: CorpusSplit) -> dict[str, Any]:
    """``polysemy`` (the default layer mix) and ``polysemy_layer{k}`` for every layer k."""
    vectors = _AllLayers(model)
    results: dict[str, Any] = {
        "polysemy": polysemy_gap(heldout, vectors.mix(model.default_layers)).to_dict()
    }
    results["polysemy"]["layers"] = list(model.default_layers)
    for layer in range(model.spec.num_layers + 1):
        results[f"polysemy_layer{layer}"] = polysemy_gap(heldout, vectors.mix([layer])).to_dict()
    return results
