"""Parity with the original bilm-tf/AllenNLP fixtures, in PyTorch and in ONNX Runtime.

Both reference sets: ``allennlp`` (skip connections) and ``bilm-tf`` (none). Every check is
``numpy.allclose(actual, expected, atol=1e-6)`` on valid positions, as in the original tests.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import torch

from export.elmo.model import ElmoBiLm
from modelrepo.elmo_characters import token_char_ids
from tests.unit.export.elmo.reference import (
    ATOL,
    N_CALLS,
    N_LISTS,
    FloatArray,
    ReferenceSet,
    RunBiLm,
    describe_failures,
    replay,
)


def _torch_runner(model: ElmoBiLm) -> RunBiLm:
    def run(
        char_ids: npt.NDArray[np.int64], initial_c: FloatArray, initial_h: FloatArray
    ) -> tuple[FloatArray, npt.NDArray[np.bool_], FloatArray, FloatArray]:
        with torch.no_grad():
            outputs = model(
                torch.from_numpy(char_ids), torch.from_numpy(initial_c), torch.from_numpy(initial_h)
            )
        layers, mask, final_c, final_h = (output.numpy() for output in outputs)
        return layers, mask, final_c, final_h

    return run


def _onnx_runner(session: ort.InferenceSession) -> RunBiLm:
    def run(
        char_ids: npt.NDArray[np.int64], initial_c: FloatArray, initial_h: FloatArray
    ) -> tuple[FloatArray, npt.NDArray[np.bool_], FloatArray, FloatArray]:
        feeds = {"char_ids": char_ids, "initial_c": initial_c, "initial_h": initial_h}
        layers, mask, final_c, final_h = session.run(None, feeds)
        return layers, mask, final_c, final_h

    return run


def _zero_state(model: ElmoBiLm) -> tuple[FloatArray, FloatArray]:
    initial_c, initial_h = model.zero_state(N_LISTS)
    return initial_c.numpy(), initial_h.numpy()


def test_options_match_the_set(reference: ReferenceSet, reference_model: ElmoBiLm) -> None:
    assert reference_model.options.use_skip_connections is reference.use_skip_connections


def test_pytorch_reproduces_all_30_sentences(
    reference: ReferenceSet, reference_model: ElmoBiLm
) -> None:
    run = _torch_runner(reference_model)
    comparisons = list(replay(reference, run, _zero_state(reference_model)))
    assert len(comparisons) == N_CALLS * N_LISTS
    assert all(c.close for c in comparisons), describe_failures(comparisons)


def test_onnx_reproduces_all_30_sentences(
    reference: ReferenceSet, reference_model: ElmoBiLm, reference_onnx: ort.InferenceSession
) -> None:
    run = _onnx_runner(reference_onnx)
    comparisons = list(replay(reference, run, _zero_state(reference_model)))
    assert len(comparisons) == N_CALLS * N_LISTS
    assert all(c.close for c in comparisons), describe_failures(comparisons)


def test_fixtures_need_the_carried_state(
    reference: ReferenceSet, reference_model: ElmoBiLm
) -> None:
    """Negative control: without the state of call 0, call 1 no longer matches (README §9)."""
    run = _torch_runner(reference_model)
    comparisons = replay(reference, run, _zero_state(reference_model), carry_state=False)
    first_two_calls = [next(comparisons) for _ in range(2 * N_LISTS)]
    assert all(c.close for c in first_two_calls[:N_LISTS])
    assert not any(c.close for c in first_two_calls[N_LISTS:])


def _vocabulary_ids(reference: ReferenceSet) -> npt.NDArray[np.int64]:
    expected_rows = reference.expected_token_embeddings().shape[0]
    vocabulary = reference.vocabulary()
    assert len(vocabulary) == expected_rows
    return np.stack([token_char_ids(token) for token in vocabulary])


def test_pytorch_token_embeddings(reference: ReferenceSet, reference_model: ElmoBiLm) -> None:
    ids = torch.from_numpy(_vocabulary_ids(reference)).unsqueeze(0)
    with torch.no_grad():
        actual = reference_model.token_embeddings(ids)[0].numpy()
    np.testing.assert_allclose(actual, reference.expected_token_embeddings(), rtol=1e-5, atol=ATOL)


def test_onnx_token_layer(
    reference: ReferenceSet, reference_model: ElmoBiLm, reference_onnx: ort.InferenceSession
) -> None:
    """Layer 0 of the graph is the token embedding twice (vocabulary fed as one long row)."""
    ids = _vocabulary_ids(reference)[np.newaxis]
    initial_c, initial_h = (state.numpy() for state in reference_model.zero_state(1))
    feeds = {"char_ids": ids, "initial_c": initial_c, "initial_h": initial_h}
    layers = reference_onnx.run(["layers"], feeds)[0]
    expected = reference.expected_token_embeddings()
    np.testing.assert_allclose(
        layers[0, 0], np.concatenate([expected, expected], axis=1), rtol=1e-5, atol=ATOL
    )
