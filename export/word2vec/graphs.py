"""The two word2vec graphs, declared and built directly as ONNX (no framework to trace).

* ``lookup``: ``input_ids`` (int64, ``[batch_size, sequence_length]``) → ``vectors`` (float32,
  ``[batch_size, sequence_length, dim]``), one ``Gather`` from the embedding matrix: exact.
* ``similarity`` (optional): ``query`` (float32 unit vectors, ``[batch_size, dim]``) →
  ``scores`` (``[batch_size, vocab_size]``), one ``Gemm`` against the row-normalised matrix:
  the cosine of the query with every word, what gensim's ``most_similar`` ranks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from export.spec import BATCH, SEQUENCE, ExportSpec, GraphExportSpec
from modelrepo import TensorSpec

OPSET = 17
# Largest |ONNX - gensim| accepted for similarity scores; lookups must be identical (0).
TOLERANCE = 1e-5
LOOKUP_TOLERANCE = 0.0
# Matrices above this size go to an external data file next to the graph (protobuf's 2 GiB).
EXTERNAL_DATA_BYTES = 1 << 30

INPUT_IDS = TensorSpec(name="input_ids", dtype="int64", shape=(BATCH, SEQUENCE))


def word2vec_export_spec(vocab_size: int, dim: int, with_similarity: bool = True) -> ExportSpec:
    """Declared graphs of a ``vocab_size`` × ``dim`` model (similarity graph optional)."""
    lookup = GraphExportSpec(
        role="lookup",
        file="lookup.onnx",
        inputs=(INPUT_IDS,),
        outputs=(TensorSpec(name="vectors", dtype="float32", shape=(BATCH, SEQUENCE, dim)),),
    )
    graphs = [lookup]
    if with_similarity:
        graphs.append(
            GraphExportSpec(
                role="similarity",
                file="similarity.onnx",
                inputs=(TensorSpec(name="query", dtype="float32", shape=(BATCH, dim)),),
                outputs=(TensorSpec(name="scores", dtype="float32", shape=(BATCH, vocab_size)),),
            )
        )
    return ExportSpec(
        architecture="word2vec", opset=OPSET, tolerance=TOLERANCE, graphs=tuple(graphs)
    )


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm, as gensim's ``get_normed_vectors``; zero rows stay 0."""
    norms = np.linalg.norm(matrix, axis=1)
    unit = np.zeros_like(matrix)
    np.divide(matrix, norms[:, None], out=unit, where=norms[:, None] > 0)
    return unit


def _value_info(tensor: TensorSpec) -> onnx.ValueInfoProto:
    types = {"int64": TensorProto.INT64, "float32": TensorProto.FLOAT}
    return helper.make_tensor_value_info(tensor.name, types[tensor.dtype], list(tensor.shape))


def _model(
    graph: GraphExportSpec, node: onnx.NodeProto, weights: onnx.TensorProto
) -> onnx.ModelProto:
    body = helper.make_graph(
        [node],
        f"word2vec_{graph.role}",
        [_value_info(tensor) for tensor in graph.inputs],
        [_value_info(tensor) for tensor in graph.outputs],
        initializer=[weights],
    )
    model = helper.make_model(
        body, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="embedding-service"
    )
    model.ir_version = 8  # what ONNX Runtime accepts for opset 17
    return model


def lookup_model(graph: GraphExportSpec, matrix: np.ndarray) -> onnx.ModelProto:
    """``vectors = matrix[input_ids]``."""
    weights = numpy_helper.from_array(np.ascontiguousarray(matrix, np.float32), "embeddings")
    node = helper.make_node(
        "Gather", ["embeddings", graph.input_names[0]], graph.output_names, axis=0
    )
    return _model(graph, node, weights)


def similarity_model(graph: GraphExportSpec, unit_matrix: np.ndarray) -> onnx.ModelProto:
    """``scores = query @ unit_matrix.T``: cosine similarity with every word."""
    weights = numpy_helper.from_array(
        np.ascontiguousarray(unit_matrix, np.float32), "unit_embeddings"
    )
    node = helper.make_node(
        "Gemm", [graph.input_names[0], "unit_embeddings"], graph.output_names, transB=1
    )
    return _model(graph, node, weights)


def save_model(model: onnx.ModelProto, path: Path) -> None:
    """Save (large matrices as ``<file>.data`` next to it) and run the ONNX checker."""
    size = sum(len(tensor.raw_data) for tensor in model.graph.initializer)
    external = size > EXTERNAL_DATA_BYTES
    onnx.save_model(
        model,
        str(path),
        save_as_external_data=external,
        all_tensors_to_one_file=True,
        location=f"{path.name}.data",
    )
    onnx.checker.check_model(str(path), full_check=True)
