"""Export ``ElmoBiLm`` to ONNX with batch size and sequence length dynamic.

The model is compiled with ``torch.jit.script`` and exported with the TorchScript exporter
(``dynamo=False``): its time loops become ONNX ``Loop`` nodes that run at any length (the dynamo
exporter would unroll them at the example length).

Graph signature (``S = 2 * n_layers`` states, ordered forward layers then backward layers):

========== ======= ==================================================================
name       dtype   shape
========== ======= ==================================================================
char_ids   int64   [batch_size, sequence_length, max_characters_per_token]
initial_c  float32 [S, batch_size, lstm_dim]     (zeros for a fresh biLM)
initial_h  float32 [S, batch_size, projection_dim]
layers     float32 [n_layers + 1, batch_size, sequence_length, 2 * projection_dim]
mask       bool    [batch_size, sequence_length] (True at <S>, tokens and </S>)
final_c    float32 [S, batch_size, lstm_dim]
final_h    float32 [S, batch_size, projection_dim]
========== ======= ==================================================================
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch

from export.elmo.model import ElmoBiLm
from export.elmo.options import ElmoOptions

INPUT_NAMES = ("char_ids", "initial_c", "initial_h")
OUTPUT_NAMES = ("layers", "mask", "final_c", "final_h")
BATCH_AXIS = "batch_size"
TIME_AXIS = "sequence_length"

Dims = tuple[int | str, ...]


def onnx_signature(options: ElmoOptions) -> dict[str, Dims]:
    """Shape of every graph input and output; strings are the named dynamic axes."""
    n_states = 2 * options.n_layers
    return {
        "char_ids": (BATCH_AXIS, TIME_AXIS, options.max_characters_per_token),
        "initial_c": (n_states, BATCH_AXIS, options.lstm_dim),
        "initial_h": (n_states, BATCH_AXIS, options.projection_dim),
        "layers": (options.n_layers + 1, BATCH_AXIS, TIME_AXIS, options.output_dim),
        "mask": (BATCH_AXIS, TIME_AXIS),
        "final_c": (n_states, BATCH_AXIS, options.lstm_dim),
        "final_h": (n_states, BATCH_AXIS, options.projection_dim),
    }


def _dynamic_axes(signature: dict[str, Dims]) -> dict[str, dict[int, str]]:
    return {
        name: {axis: dim for axis, dim in enumerate(dims) if isinstance(dim, str)}
        for name, dims in signature.items()
    }


def example_inputs(
    model: ElmoBiLm, batch_size: int = 2, seq_len: int = 5
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Random char ids and zero states; the last row is padded when batch_size > 1."""
    max_chars = model.options.max_characters_per_token
    char_ids = torch.randint(1, model.options.n_characters, (batch_size, seq_len, max_chars))
    if batch_size > 1 and seq_len > 2:
        char_ids[-1, seq_len - 1 :] = 0
    initial_c, initial_h = model.zero_state(batch_size)
    return char_ids, initial_c, initial_h


def export_elmo_onnx(model: ElmoBiLm, path: str | Path, opset: int = 17) -> Path:
    """Write ``model`` (switched to eval mode) as a single-file ONNX graph at ``path``."""
    path = Path(path)
    signature = onnx_signature(model.options)
    model.eval()
    scripted = torch.jit.script(model)
    with torch.no_grad():
        torch.onnx.export(
            scripted,
            example_inputs(model),
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=_dynamic_axes(signature),
            opset_version=opset,
            dynamo=False,
        )
    onnx_model = onnx.load(str(path))
    _declare_shapes(onnx_model, signature)
    onnx.checker.check_model(onnx_model, full_check=True)
    onnx.save(onnx_model, str(path))
    return path


def _declare_shapes(onnx_model: onnx.ModelProto, signature: dict[str, Dims]) -> None:
    """Write the full signature into the graph (the exporter loses static dims after a Loop)."""
    for value in [*onnx_model.graph.input, *onnx_model.graph.output]:
        dims = value.type.tensor_type.shape.dim
        declared = signature[value.name]
        if len(dims) != len(declared):
            raise RuntimeError(
                f"ONNX {value.name} has rank {len(dims)}, expected {len(declared)}: {declared}"
            )
        for dim, size in zip(dims, declared, strict=True):
            if isinstance(size, str):
                dim.dim_param = size
            else:
                dim.dim_value = size
