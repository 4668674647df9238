"""The ELMo runtime without the server: limits, markers and zero states."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from export.elmo.exporter import import_elmo
from modelrepo import load_checked
from modelrepo.elmo_characters import batch_char_ids
from service.domain import EmbedOptions, EmbedQuery, Pooling, resolve_embed_options
from service.errors import InvalidArgument
from service.runtime.elmo import ElmoRuntime
from service.runtime.session import SessionOptions
from tests.unit.export.elmo.reference import REFERENCE_SETS

LIMIT = 8  # positions, <S> and </S> included: 6 words


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reference = REFERENCE_SETS[1]
    models = tmp_path_factory.mktemp("elmo-runtime") / "models"
    return import_elmo(
        reference.options_path, reference.weights_path, models, "tiny", max_sequence_length=LIMIT
    )


@pytest.fixture(scope="module")
def runtime(published: Path) -> ElmoRuntime:
    return ElmoRuntime(published, load_checked(published), SessionOptions(device="cpu"))


def options(**overrides: object) -> EmbedOptions:
    values: dict[str, object] = {"pooling": Pooling.NONE, "layers": (0, 1, 2)}
    values.update(overrides)
    return EmbedOptions(**values)  # type: ignore[arg-type]


def test_items_are_char_ids_with_markers(runtime: ElmoRuntime) -> None:
    (item,) = runtime.prepare_embed(["the  cat\tsat"], options())
    assert item.tokens == ("the", "cat", "sat") and not item.truncated
    np.testing.assert_array_equal(item.ids, batch_char_ids([["the", "cat", "sat"]])[0])


def test_states_are_the_graph_at_the_words_with_zero_initial_state(
    runtime: ElmoRuntime, published: Path
) -> None:
    """A padded batch gives each text what the graph gives it alone, <S> and </S> dropped."""
    texts = ["a b c d e f", "g", "h i"]
    items = runtime.prepare_embed(texts, options())
    encoded = runtime.encode_batch(items)  # the graph step of embed_batch, per layer
    states = [
        tuple(encoded[layer][row, : len(item.tokens)] for layer in sorted(encoded))
        for row, item in enumerate(items)
    ]
    session = ort.InferenceSession(str(published / "bilm.onnx"), providers=["CPUExecutionProvider"])
    for text, item_states in zip(texts, states, strict=True):
        words = text.split()
        (layers,) = session.run(
            ["layers"],
            {
                "char_ids": batch_char_ids([words]),
                "initial_c": np.zeros((4, 1, 64), np.float32),
                "initial_h": np.zeros((4, 1, 16), np.float32),
            },
        )
        assert len(item_states) == 3
        for layer, got in enumerate(item_states):
            assert got.shape == (len(words), 32)
            assert np.abs(got - layers[layer, 0, 1 : len(words) + 1]).max() <= 1e-6


def test_word_limit_counts_the_markers(runtime: ElmoRuntime) -> None:
    six, seven = " ".join("abcdef"), " ".join("abcdefg")
    assert not runtime.prepare_embed([six], options())[0].truncated
    with pytest.raises(InvalidArgument, match="7 words, more than tiny's maximum of 6"):
        runtime.prepare_embed([seven], options())
    (item,) = runtime.prepare_embed([seven], options(truncate=True))
    assert item.truncated and item.tokens == tuple("abcdef") and len(item.ids) == LIMIT


def test_cls_is_refused(published: Path) -> None:
    """CLS is refused for ELMo where every option is checked, before the runtime is reached."""
    query = EmbedQuery(model="tiny", version="", texts=("a b",), pooling=Pooling.CLS)
    with pytest.raises(InvalidArgument, match="pooling CLS is not defined"):
        resolve_embed_options(load_checked(published), query, ElmoRuntime.embed_support)


def test_empty_texts_are_refused(runtime: ElmoRuntime) -> None:
    with pytest.raises(InvalidArgument, match=r"texts\[1\] is empty"):
        runtime.prepare_embed(["a", "\t "], options())
    with pytest.raises(InvalidArgument, match=r"texts\[0\] is empty"):
        runtime.tokenize([""])


def test_warmup(runtime: ElmoRuntime) -> None:
    runtime.warmup()
