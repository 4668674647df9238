"""The exported graph: signature, a real ``Loop`` recurrence, and shapes other than the example."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from export.elmo.model import ElmoBiLm
from export.elmo.onnx_export import INPUT_NAMES, OUTPUT_NAMES, example_inputs, onnx_signature

ELEM_TYPES = {
    "char_ids": onnx.TensorProto.INT64,
    "initial_c": onnx.TensorProto.FLOAT,
    "initial_h": onnx.TensorProto.FLOAT,
    "layers": onnx.TensorProto.FLOAT,
    "mask": onnx.TensorProto.BOOL,
    "final_c": onnx.TensorProto.FLOAT,
    "final_h": onnx.TensorProto.FLOAT,
}


def test_signature(reference_model: ElmoBiLm, reference_onnx_path: Path) -> None:
    graph = onnx.load(str(reference_onnx_path)).graph
    assert [value.name for value in graph.input] == list(INPUT_NAMES)
    assert [value.name for value in graph.output] == list(OUTPUT_NAMES)
    expected = onnx_signature(reference_model.options)
    assert expected["layers"] == (3, "batch_size", "sequence_length", 32)
    for value in [*graph.input, *graph.output]:
        tensor_type = value.type.tensor_type
        dims = tuple(dim.dim_param or dim.dim_value for dim in tensor_type.shape.dim)
        assert dims == expected[value.name], value.name
        assert tensor_type.elem_type == ELEM_TYPES[value.name], value.name


def test_recurrence_is_a_loop(reference_onnx_path: Path) -> None:
    """Four Loops (2 directions x 2 layers), each stepping the LSTM cell; nothing unrolled."""
    graph = onnx.load(str(reference_onnx_path)).graph
    loops = [node for node in graph.node if node.op_type == "Loop"]
    assert len(loops) == 4
    for loop in loops:
        body = next(attr.g for attr in loop.attribute if attr.name == "body")
        body_ops = [node.op_type for node in body.node]
        assert body_ops.count("MatMul") == 2  # gates and output projection
        assert {"Sigmoid", "Tanh", "Clip", "Where", "Split"} <= set(body_ops)
    assert sum(node.op_type == "MatMul" for node in graph.node) < 10


@pytest.mark.parametrize("batch_size", [1, 3, 5])
@pytest.mark.parametrize("seq_len", [3, 17, 60])
def test_other_shapes_match_pytorch(
    reference_model: ElmoBiLm,
    reference_onnx: ort.InferenceSession,
    batch_size: int,
    seq_len: int,
) -> None:
    torch.manual_seed(batch_size * 100 + seq_len)
    char_ids, initial_c, initial_h = example_inputs(reference_model, batch_size, seq_len)
    if batch_size > 2:
        char_ids[1, 2:] = 0  # a second, shorter row
    initial_c = torch.randn_like(initial_c)
    initial_h = torch.randn_like(initial_h)
    with torch.no_grad():
        expected = [t.numpy() for t in reference_model(char_ids, initial_c, initial_h)]
    feeds = {
        "char_ids": char_ids.numpy(),
        "initial_c": initial_c.numpy(),
        "initial_h": initial_h.numpy(),
    }
    actual = reference_onnx.run(None, feeds)
    for name, got, want in zip(OUTPUT_NAMES, actual, expected, strict=True):
        assert got.shape == want.shape, name
        assert got.dtype == want.dtype, name
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=name)
