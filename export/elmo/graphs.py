"""The ELMo graph we export and its declared tensors (the ``ExportSpec`` of ``elmo``).

One graph, role ``bilm`` (file ``bilm.onnx``): the whole biLM, char CNN to top LSTM layer, with
the LSTM state as explicit inputs and outputs so that a caller may carry it across calls the way
bilm-tf does (the server always passes zeros: every request is independent). Its signature is
``export.elmo.onnx_export.onnx_signature``; the tensors here are built from it, so the declared
spec and the exported graph cannot drift apart.
"""

from __future__ import annotations

from typing import Literal

from export.elmo.onnx_export import INPUT_NAMES, OUTPUT_NAMES, onnx_signature
from export.elmo.options import ElmoOptions
from export.spec import ExportSpec, GraphExportSpec
from modelrepo import TensorSpec

OPSET = 17
TOLERANCE = 1e-4
"""Largest |ONNX Runtime - PyTorch| accepted at validation, over valid positions of every output.

Both run the same float32 operations, but rounding grows with the size of the values and the
length of the recurrence. Measured at the validation shapes, zero and random initial states: the
two reference biLMs at most 1.4e-6 (``layers``); the default trained biLMs, whose token layer
reaches values of 16, up to 1.4e-5 (``layers``) and 2.0e-5 (``final_c``). 1e-4, as for BERT,
passes both with a margin; the fixture outputs themselves are matched to 1e-6 by the tests."""

ROLE = "bilm"
FILE = "bilm.onnx"

DType = Literal["int64", "float32", "bool"]
DTYPES: dict[str, DType] = {
    "char_ids": "int64",
    "initial_c": "float32",
    "initial_h": "float32",
    "layers": "float32",
    "mask": "bool",
    "final_c": "float32",
    "final_h": "float32",
}


def elmo_export_spec(options: ElmoOptions) -> ExportSpec:
    """Declared graph of the biLM that ``options`` describes."""
    signature = onnx_signature(options)

    def tensor(name: str) -> TensorSpec:
        return TensorSpec(name=name, dtype=DTYPES[name], shape=signature[name])

    graph = GraphExportSpec(
        role=ROLE,
        file=FILE,
        inputs=tuple(tensor(name) for name in INPUT_NAMES),
        outputs=tuple(tensor(name) for name in OUTPUT_NAMES),
    )
    return ExportSpec(architecture="elmo", opset=OPSET, tolerance=TOLERANCE, graphs=(graph,))
