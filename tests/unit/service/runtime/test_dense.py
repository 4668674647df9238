"""A model's Dense layers in numpy equal torch's ``Linear`` and activation, as
sentence-transformers' ``Dense`` applies them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from modelrepo import DenseLayer, SpecError
from modelrepo.sentence import Activation
from service.runtime.dense import DenseHead

TORCH: dict[Activation, torch.nn.Module] = {
    "identity": torch.nn.Identity(),
    "tanh": torch.nn.Tanh(),
    "relu": torch.nn.ReLU(),
    "sigmoid": torch.nn.Sigmoid(),
    "gelu": torch.nn.GELU(),
}


def save_layer(directory: Path, name: str, weight: np.ndarray, bias: np.ndarray) -> None:
    np.savez(directory / name, weight=weight, bias=bias)


@pytest.mark.parametrize("activation", sorted(TORCH))
def test_each_activation_equals_torch(tmp_path: Path, activation: Activation) -> None:
    rng = np.random.default_rng(0)
    weight = rng.normal(size=(6, 10)).astype(np.float32)
    bias = rng.normal(size=6).astype(np.float32)
    save_layer(tmp_path, "dense_0.npz", weight, bias)
    head = DenseHead(
        tmp_path,
        [DenseLayer(file="dense_0.npz", in_features=10, out_features=6, activation=activation)],
    )
    pooled = (rng.normal(size=(4, 10)) * 3).astype(np.float32)
    linear = torch.nn.Linear(10, 6)
    with torch.no_grad():
        linear.weight.copy_(torch.from_numpy(weight))
        linear.bias.copy_(torch.from_numpy(bias))
        expected = TORCH[activation](linear(torch.from_numpy(pooled))).numpy()
    got = head(pooled)
    assert got.dtype == np.float32 and got.shape == (4, 6)
    np.testing.assert_allclose(got, expected, rtol=0, atol=2e-6)


def test_layers_chain_in_order(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    first, second = rng.normal(size=(5, 3)), rng.normal(size=(2, 5))
    save_layer(tmp_path, "a.npz", first.astype(np.float32), np.zeros(5, np.float32))
    save_layer(tmp_path, "b.npz", second.astype(np.float32), np.ones(2, np.float32))
    head = DenseHead(
        tmp_path,
        [
            DenseLayer(file="a.npz", in_features=3, out_features=5, activation="relu"),
            DenseLayer(file="b.npz", in_features=5, out_features=2, activation="identity"),
        ],
    )
    pooled = rng.normal(size=(3, 3)).astype(np.float32)
    expected = np.maximum(pooled @ first.T, 0) @ second.T + 1
    np.testing.assert_allclose(head(pooled), expected, rtol=1e-5, atol=1e-5)


def test_weights_that_do_not_match_the_spec_are_refused(tmp_path: Path) -> None:
    save_layer(tmp_path, "dense_0.npz", np.zeros((4, 3), np.float32), np.zeros(4, np.float32))
    layer = DenseLayer(file="dense_0.npz", in_features=4, out_features=3, activation="tanh")
    with pytest.raises(SpecError, match=r"weight \(4, 3\) and bias \(4,\) do not match 4 -> 3"):
        DenseHead(tmp_path, [layer])
