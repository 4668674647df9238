"""The raw engine's synthetic inputs follow each architecture's declared graph."""

from __future__ import annotations

import numpy as np

from bench.common.raw import ELMO_CHARACTERS, _inputs, embed_graph, embed_output
from modelrepo import GraphSpec, TensorSpec
from tests.unit.modelrepo.test_repository import make_spec


def elmo_graph() -> GraphSpec:
    return GraphSpec(
        file="bilm.onnx",
        inputs=(
            TensorSpec(name="char_ids", dtype="int64", shape=("batch_size", "sequence_length", 50)),
            TensorSpec(name="initial_c", dtype="float32", shape=(4, "batch_size", 512)),
            TensorSpec(name="initial_h", dtype="float32", shape=(4, "batch_size", 128)),
        ),
        outputs=(
            TensorSpec(
                name="layers", dtype="float32", shape=(3, "batch_size", "sequence_length", 256)
            ),
            TensorSpec(name="final_h", dtype="float32", shape=(4, "batch_size", 128)),
        ),
    )


def test_bert_inputs_are_ids_mask_and_segments() -> None:
    spec = make_spec()
    feed = _inputs((3, 7), spec, np.random.default_rng(0))
    assert embed_graph(spec) is spec.graph("encoder")
    assert embed_output(spec) == spec.graph("encoder").outputs[-1].name
    assert set(feed) == {tensor.name for tensor in spec.graph("encoder").inputs}
    for array in feed.values():
        assert array.shape == (3, 7) and array.dtype == np.int64


def test_elmo_inputs_are_characters_and_zero_states() -> None:
    spec = make_spec().model_copy(update={"graphs": {"bilm": elmo_graph()}})
    feed = _inputs((2, 9), spec, np.random.default_rng(0))
    assert embed_output(spec) == "layers"
    assert feed["char_ids"].shape == (2, 9, 50)
    assert feed["char_ids"].min() >= 1 and feed["char_ids"].max() < ELMO_CHARACTERS
    assert feed["initial_c"].shape == (4, 2, 512) and not feed["initial_c"].any()
    assert feed["initial_h"].shape == (4, 2, 128) and feed["initial_h"].dtype == np.float32
