"""Read and write ``ElmoBiLm`` weights in the bilm-tf/AllenNLP HDF5 layout.

Dataset names and shapes (``n_i`` filters of width ``w_i``, ``F = sum n_i``):

* ``char_embed`` (261, char_dim): no row for the padding id 0 (the model's row 0 is zero);
* ``CNN/W_cnn_{i}`` (1, w_i, char_dim, n_i) TensorFlow HWIO kernel, ``CNN/b_cnn_{i}`` (n_i,);
* ``CNN_high_{k}/{W,b}_{carry,transform}`` (F, F) / (F,), row-vector convention;
* ``CNN_proj/W_proj`` (F, proj), ``CNN_proj/b_proj`` (proj,) when ``F != proj``;
* ``RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell/{W_0,B,W_P_0}`` for direction ``d`` (0 forward,
  1 backward) and layer ``l``: (proj + proj, 4 * cell), (4 * cell,), (cell, proj). ``B`` does not
  include the forget bias +1; the model adds it at run time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt
import torch

from export.elmo.model import Dense, ElmoBiLm, Highway, LstmCellWithProjection

Array = npt.NDArray[np.float32]


class ElmoWeightsError(ValueError):
    """A weight file that does not match the model's options."""


@dataclass(frozen=True)
class _Entry:
    """One HDF5 dataset and the model parameter it fills."""

    name: str
    parameter: torch.Tensor
    to_model: Callable[[Array], Array]
    to_file: Callable[[Array], Array]

    @property
    def file_shape(self) -> tuple[int, ...]:
        placeholder = np.broadcast_to(np.float32(0), tuple(self.parameter.shape))
        return tuple(self.to_file(placeholder).shape)


def _same(array: Array) -> Array:
    return array


def _add_padding_row(array: Array) -> Array:
    return np.concatenate([np.zeros((1, array.shape[1]), dtype=array.dtype), array])


def _drop_padding_row(array: Array) -> Array:
    return array[1:]


def _conv_from_hwio(array: Array) -> Array:
    """TensorFlow (1, width, in, out) → PyTorch Conv1d (out, in, width)."""
    return np.transpose(array[0], (2, 1, 0))


def _conv_to_hwio(array: Array) -> Array:
    return np.transpose(array, (2, 1, 0))[np.newaxis]


def _dense(prefix: str, dense: Dense, weight: str, bias: str) -> Iterator[_Entry]:
    yield _Entry(f"{prefix}/{weight}", dense.weight, _same, _same)
    yield _Entry(f"{prefix}/{bias}", dense.bias, _same, _same)


def _layout(model: ElmoBiLm) -> Iterator[_Entry]:
    embedder = model.token_embedder
    yield _Entry("char_embed", embedder.char_embedding.weight, _add_padding_row, _drop_padding_row)
    for i, convolution in enumerate(embedder.convolutions):
        assert isinstance(convolution, torch.nn.Conv1d)
        assert convolution.bias is not None
        yield _Entry(f"CNN/W_cnn_{i}", convolution.weight, _conv_from_hwio, _conv_to_hwio)
        yield _Entry(f"CNN/b_cnn_{i}", convolution.bias, _same, _same)
    for k, highway in enumerate(embedder.highways):
        assert isinstance(highway, Highway)
        yield from _dense(f"CNN_high_{k}", highway.carry, "W_carry", "b_carry")
        yield from _dense(f"CNN_high_{k}", highway.transform, "W_transform", "b_transform")
    if isinstance(embedder.projection, Dense):
        yield from _dense("CNN_proj", embedder.projection, "W_proj", "b_proj")
    for direction, stack in enumerate((model.forward_lstm, model.backward_lstm)):
        for layer, cell in enumerate(stack.cells):
            assert isinstance(cell, LstmCellWithProjection)
            prefix = f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"
            yield _Entry(f"{prefix}/W_0", cell.weight, _same, _same)
            yield _Entry(f"{prefix}/B", cell.bias, _same, _same)
            yield _Entry(f"{prefix}/W_P_0", cell.projection, _same, _same)


def load_hdf5_weights(model: ElmoBiLm, path: str | Path) -> None:
    """Fill ``model`` from a bilm-tf ``lm_weights.hdf5``; every dataset must exist and fit.

    Nothing is modified unless the whole file matches. Extra datasets are ignored.
    """
    values: list[tuple[_Entry, Array]] = []
    with h5py.File(path, "r") as weights:
        for entry in _layout(model):
            dataset = weights.get(entry.name)
            if not isinstance(dataset, h5py.Dataset):
                raise ElmoWeightsError(
                    f"{path}: dataset '{entry.name}' is missing "
                    f"(expected shape {entry.file_shape} for these options)"
                )
            if tuple(dataset.shape) != entry.file_shape:
                raise ElmoWeightsError(
                    f"{path}: dataset '{entry.name}' has shape {tuple(dataset.shape)}, "
                    f"expected {entry.file_shape} for these options"
                )
            values.append((entry, np.asarray(dataset[...], dtype=np.float32)))
    with torch.no_grad():
        for entry, value in values:
            entry.parameter.copy_(torch.from_numpy(np.ascontiguousarray(entry.to_model(value))))


def save_hdf5_weights(model: ElmoBiLm, path: str | Path) -> None:
    """Write ``model`` in the layout ``load_hdf5_weights`` reads (float32 datasets)."""
    with h5py.File(path, "w") as weights:
        for entry in _layout(model):
            value = entry.parameter.detach().cpu().to(torch.float32).numpy()
            weights.create_dataset(entry.name, data=entry.to_file(value))
