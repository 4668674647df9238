"""One LSTM loop serves inference, ONNX export and training.

The values pinned here were recorded before training shared ``LstmStack``'s loop (it had a copy
of its own): the exported graph, the seeded module's weights and outputs, and the weights a
seeded short training run learns, with and without dropout, must stay what they were.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path

import onnx
import pytest
import torch
from torch import Tensor

from export.corpus import CorpusConfig, generate_corpus
from export.elmo.model import ElmoBiLm
from export.elmo.onnx_export import export_elmo_onnx
from export.elmo.options import ElmoOptions
from export.elmo.train import ElmoTrainingConfig, fit_bilm
from modelrepo.elmo_characters import batch_char_ids

CONFIG = ElmoTrainingConfig(
    seed=5,
    char_embedding_dim=4,
    filters=((1, 4), (2, 8), (3, 8)),
    lstm_dim=24,
    projection_dim=8,
    batch_size=8,
    steps=8,
    learning_rate=1e-2,
    warmup_steps=5,
    log_every=4,
)
OPTIONS: dict[str, ElmoOptions] = {
    "skip": CONFIG.options(),
    "plain": dataclasses.replace(
        CONFIG.options(), use_skip_connections=False, cell_clip=None, proj_clip=None
    ),
}

# sha256 of the state dict of ElmoBiLm(options) after torch.manual_seed(0) (both options sets
# have the same parameters).
STATE = "d2be1c0d642cd055eb94a1bd525a512f4a2fddf972c1619be354e6e5ac60296b"
# sha256 of the exported graph, names canonicalized (see canonical_graph_digest).
GRAPH = {
    "skip": "f55b6096502501f989ca5e8cf387a10ac92e7ec8d0bf3488ca188e76bc394ab7",
    "plain": "41d70d541796b03dbd7ed8a563481213364e4b972c93f82087386658c47e8756",
}
# (random projection, norm) of the seeded module's outputs (see module_outputs).
OUTPUTS = {
    "skip": (-7.085873588909723, 12.248390457282152),
    "plain": (-5.763799388998185, 11.714947093075256),
}
# (random projection, norm) of every weight after CONFIG's training run, by dropout.
TRAINED = {
    0.0: (-66.77083745693832, 114.41015877741646),
    0.3: (-70.24196996243344, 114.40013814865382),
}


@pytest.fixture(scope="module", autouse=True)
def one_thread() -> Iterator[None]:
    """Tiny matrices: one thread, and the same reduction order on every run."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def seeded_model(options: ElmoOptions) -> ElmoBiLm:
    torch.manual_seed(0)
    return ElmoBiLm(options).eval()


def state_digest(module: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def canonical_graph_digest(path: Path) -> str:
    """sha256 of the ONNX model with node, value and symbolic dimension names replaced by their
    order of first appearance (the exporter derives them from scope names, which change from one
    export to the next within a process)."""
    model = onnx.load(str(path))
    names: dict[str, str] = {}
    dims: dict[str, str] = {}

    def rename(name: str) -> str:
        if not name:
            return name
        return names.setdefault(name, f"v{len(names)}")

    def rename_dims(value_type: onnx.TypeProto) -> None:
        while value_type.HasField("sequence_type"):
            value_type = value_type.sequence_type.elem_type
        for dim in value_type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.dim_param = dims.setdefault(dim.dim_param, f"d{len(dims)}")

    def canonicalize(graph: onnx.GraphProto) -> None:
        graph.name = ""
        for value in [*graph.input, *graph.value_info, *graph.output]:
            value.name = rename(value.name)
            rename_dims(value.type)
        for initializer in graph.initializer:
            initializer.name = rename(initializer.name)
        for node in graph.node:
            node.name = ""
            node.input[:] = [rename(name) for name in node.input]
            node.output[:] = [rename(name) for name in node.output]
            for attribute in node.attribute:
                if attribute.HasField("g"):
                    canonicalize(attribute.g)
                for subgraph in attribute.graphs:
                    canonicalize(subgraph)

    canonicalize(model.graph)
    return hashlib.sha256(model.SerializeToString(deterministic=True)).hexdigest()


def projection(tensors: Iterable[Tensor]) -> tuple[float, float]:
    """A fixed random projection and the norm of all values: equal up to float rounding."""
    flat = torch.cat([tensor.detach().reshape(-1).double() for tensor in tensors])
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(flat.numel(), generator=generator, dtype=torch.float64)
    return float(flat @ weights), float(flat.norm())


def module_outputs(model: ElmoBiLm) -> tuple[Tensor, ...]:
    ids = torch.from_numpy(batch_char_ids([["the", "chef", "sliced"], ["a", "mouse"]]))
    torch.manual_seed(1)
    initial_c, initial_h = (torch.randn_like(state) for state in model.zero_state(2))
    with torch.no_grad():
        return tuple(model(ids, initial_c, initial_h))


def training_sentences() -> list[str]:
    return generate_corpus(
        CorpusConfig(seed=3, train_tokens=600, heldout_sentences=1)
    ).train.sentences


def trained_weights(dropout: float) -> tuple[Tensor, ...]:
    config = dataclasses.replace(CONFIG, dropout=dropout)
    trained = fit_bilm(training_sentences(), config, show_progress=False)
    return tuple(trained.trainer.state_dict().values())


def assert_projection_close(actual: tuple[float, float], expected: tuple[float, float]) -> None:
    (value, norm), (expected_value, expected_norm) = actual, expected
    assert norm == pytest.approx(expected_norm, rel=1e-6)
    assert abs(value - expected_value) <= 1e-5 * expected_norm, (value, expected_value)


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_exported_graph_is_unchanged(name: str, tmp_path: Path) -> None:
    model = seeded_model(OPTIONS[name])
    assert state_digest(model) == STATE
    path = export_elmo_onnx(model, tmp_path / "model.onnx")
    assert canonical_graph_digest(path) == GRAPH[name]


@pytest.mark.parametrize("name", sorted(OPTIONS))
def test_module_outputs_are_unchanged(name: str) -> None:
    assert_projection_close(projection(module_outputs(seeded_model(OPTIONS[name]))), OUTPUTS[name])


@pytest.mark.parametrize("dropout", sorted(TRAINED))
def test_seeded_training_learns_the_recorded_weights(dropout: float) -> None:
    assert_projection_close(projection(trained_weights(dropout)), TRAINED[dropout])


def test_lstm_stack_drops_out_only_when_asked_in_training_mode() -> None:
    stack = seeded_model(OPTIONS["skip"]).forward_lstm
    torch.manual_seed(2)
    inputs = torch.randn(2, 5, CONFIG.projection_dim)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    initial_c = torch.zeros(CONFIG.n_layers, 2, CONFIG.lstm_dim)
    initial_h = torch.zeros(CONFIG.n_layers, 2, CONFIG.projection_dim)
    with torch.no_grad():
        expected = stack.eval()(inputs, mask, initial_c, initial_h)
        in_eval = stack(inputs, mask, initial_c, initial_h, 0.5)
        by_default = stack.train()(inputs, mask, initial_c, initial_h)
        dropped = stack(inputs, mask, initial_c, initial_h, 0.5)
    for unchanged in (in_eval, by_default):
        assert all(torch.equal(a, b) for a, b in zip(unchanged, expected, strict=True))
    assert not any(torch.equal(a, b) for a, b in zip(dropped, expected, strict=True))
    assert not dropped[0][:, ~mask].any(), "padded positions stay zero under dropout"
