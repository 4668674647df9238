"""The bilm-tf/AllenNLP reference fixtures and the stateful replay that reproduces them.

See ``../shared/reference/elmo/README.md`` §8: 10 calls of batch size 3, call ``i`` holds
``sentences[k][i]`` in row ``k``, and each row starts from the state its row left in the
previous call. Expected: the top layer of each sentence, <S>/</S> removed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import numpy.typing as npt

from modelrepo.elmo_characters import batch_char_ids, tokenize

FloatArray = npt.NDArray[np.float32]

REFERENCE_ROOT = Path(
    os.environ.get(
        "ELMO_REFERENCE_DIR",
        Path(__file__).resolve().parents[4].parent / "shared" / "reference" / "elmo",
    )
)
N_CALLS = 10
N_LISTS = 3
TOP_LAYER = 2
ATOL = 1e-6


@dataclass(frozen=True)
class ReferenceSet:
    """One fixture folder: ``allennlp`` (skip connections) or ``bilm-tf`` (none)."""

    name: str
    sentences_file: str
    use_skip_connections: bool

    @property
    def directory(self) -> Path:
        return REFERENCE_ROOT / self.name

    @property
    def options_path(self) -> Path:
        return self.directory / "options.json"

    @property
    def weights_path(self) -> Path:
        return self.directory / "lm_weights.hdf5"

    def sentences(self) -> list[list[str]]:
        """``N_LISTS`` lists of ``N_CALLS`` whitespace-separated sentences."""
        data = json.loads((self.directory / self.sentences_file).read_text(encoding="utf-8"))
        return [list(sentences) for sentences in data]

    def expected_top_layer(self, row: int, call: int) -> FloatArray:
        """``(T, 2 * proj)``: forward and backward halves of ``lm_embeddings_{row}[call]``."""
        with h5py.File(self.directory / f"lm_embeddings_{row}.hdf5", "r") as embeddings:
            halves = np.asarray(embeddings[str(call)][...], dtype=np.float32)
        return np.concatenate([halves[0], halves[1]], axis=-1)

    def vocabulary(self) -> list[str]:
        """Lines of ``vocab_test.txt`` (row r of ``elmo_token_embeddings.hdf5`` is line r)."""
        lines = (self.directory / "vocab_test.txt").read_text(encoding="utf-8").split("\n")
        return lines[:-1] if lines[-1] == "" else lines

    def expected_token_embeddings(self) -> FloatArray:
        with h5py.File(self.directory / "elmo_token_embeddings.hdf5", "r") as embeddings:
            return np.asarray(embeddings["embedding"][...], dtype=np.float32)


REFERENCE_SETS = (
    ReferenceSet("allennlp", "sentences.json", use_skip_connections=True),
    ReferenceSet("bilm-tf", "lm_embeddings_sentences.json", use_skip_connections=False),
)

RunBiLm = Callable[
    [npt.NDArray[np.int64], FloatArray, FloatArray],
    tuple[FloatArray, npt.NDArray[np.bool_], FloatArray, FloatArray],
]
"""``(char_ids, initial_c, initial_h) -> (layers, mask, final_c, final_h)`` as numpy arrays."""


@dataclass(frozen=True)
class Comparison:
    row: int
    call: int
    actual: FloatArray
    expected: FloatArray

    @property
    def max_abs_diff(self) -> float:
        return float(np.max(np.abs(self.actual - self.expected)))

    @property
    def close(self) -> bool:
        return bool(np.allclose(self.actual, self.expected, atol=ATOL))


def replay(
    reference: ReferenceSet,
    run: RunBiLm,
    zero_state: tuple[FloatArray, FloatArray],
    carry_state: bool = True,
) -> Iterator[Comparison]:
    """Run the 10 reference calls in order and compare every sentence's top layer."""
    sentences = reference.sentences()
    initial_c, initial_h = zero_state
    for call in range(N_CALLS):
        batch = [tokenize(sentences[row][call]) for row in range(N_LISTS)]
        layers, _, final_c, final_h = run(batch_char_ids(batch), initial_c, initial_h)
        for row, tokens in enumerate(batch):
            expected = reference.expected_top_layer(row, call)
            assert expected.shape[0] == len(tokens), (reference.name, row, call)
            actual = layers[TOP_LAYER, row, 1 : len(tokens) + 1]
            yield Comparison(row, call, actual, expected)
        if carry_state:
            initial_c, initial_h = final_c, final_h


def describe_failures(comparisons: list[Comparison]) -> str:
    failing = [c for c in comparisons if not c.close]
    worst = max(c.max_abs_diff for c in comparisons)
    details = ", ".join(f"row {c.row} call {c.call}: {c.max_abs_diff:.2e}" for c in failing)
    return f"{len(failing)}/{len(comparisons)} sentences differ (max |diff| {worst:.2e}): {details}"
