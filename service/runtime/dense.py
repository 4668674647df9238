"""A model's Dense layers after pooling (sentence-transformers' ``Dense`` modules), in numpy.

Each layer is ``activation(x @ weight.T + bias)`` in float32, read from the ``.npz`` the import
wrote (``weight``: out x in, ``bias``: out). GELU is the exact one (erf-based, as torch's
``nn.GELU()``), with erf from Abramowitz and Stegun 7.1.26 (error below 1.5e-7).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from modelrepo import DenseLayer, SpecError

_ERF = (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)
_ERF_P = 0.3275911


def _erf(x: np.ndarray) -> np.ndarray:
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + _ERF_P * a)
    poly = t * (_ERF[0] + t * (_ERF[1] + t * (_ERF[2] + t * (_ERF[3] + t * _ERF[4]))))
    return np.asarray(sign * (1.0 - poly * np.exp(-a * a)))


ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "identity": lambda x: x,
    "tanh": np.tanh,
    "relu": lambda x: np.maximum(x, 0),
    "sigmoid": lambda x: 0.5 * (1.0 + np.tanh(0.5 * x)),  # no overflow for large |x|
    "gelu": lambda x: 0.5 * x * (1.0 + _erf(x / np.sqrt(2.0))),
}


class DenseHead:
    """The model's Dense layers, applied in order to (texts, dim) pooled vectors."""

    def __init__(self, directory: Path, layers: Sequence[DenseLayer]) -> None:
        self.layers: list[tuple[np.ndarray, np.ndarray, Callable[[np.ndarray], np.ndarray]]] = []
        for layer in layers:
            with np.load(directory / layer.file, allow_pickle=False) as arrays:
                weight = np.asarray(arrays["weight"], dtype=np.float32)
                bias = np.asarray(arrays["bias"], dtype=np.float32)
            if weight.shape != (layer.out_features, layer.in_features) or bias.shape != (
                layer.out_features,
            ):
                raise SpecError(
                    f"{directory / layer.file}: weight {weight.shape} and bias {bias.shape} do "
                    f"not match {layer.in_features} -> {layer.out_features} in spec.json"
                )
            self.layers.append(
                (np.ascontiguousarray(weight.T), bias, ACTIVATIONS[layer.activation])
            )

    def __call__(self, vectors: np.ndarray) -> np.ndarray:
        for weight_t, bias, activation in self.layers:
            vectors = np.asarray(activation(vectors @ weight_t + bias), dtype=np.float32)
        return vectors
