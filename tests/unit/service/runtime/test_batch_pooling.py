"""``embed_batch``: a whole padded batch pooled as one operation gives every text what pooling
it alone gives (the text-by-text pooling of the same graph outputs, written out in numpy here),
for every pooling, layer choice and normalisation, with different options in one batch, for
BERT and ELMo."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from export.bert.exporter import import_bert
from export.elmo.exporter import import_elmo
from modelrepo import load_checked
from service.domain import EmbedOptions, Pooling
from service.runtime.base import EmbedItem, Runtime
from service.runtime.bert import BertRuntime
from service.runtime.elmo import ElmoRuntime
from service.runtime.session import CPU_FP32
from tests.checkpoints import save_mlm_checkpoint
from tests.unit.export.elmo.reference import REFERENCE_SETS

TEXTS = [
    "the cook peeled a yellow banana at the market",
    "a cat",
    "the user clicked the mouse",
    "dogs bark",
    "the hurried clerk affixed a confidential seal at the provincial registry today",
]


@pytest.fixture(scope="module")
def runtimes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Runtime]:
    root = tmp_path_factory.mktemp("batch-pooling")
    bert = import_bert(save_mlm_checkpoint(root / "checkpoint"), root / "models", "tiny")
    reference = REFERENCE_SETS[1]
    elmo = import_elmo(reference.options_path, reference.weights_path, root / "models", "elmo")
    return {
        "bert": BertRuntime(bert, load_checked(bert), CPU_FP32),
        "elmo": ElmoRuntime(elmo, load_checked(elmo), CPU_FP32),
    }


def option_sets(top: int) -> list[EmbedOptions]:
    return [
        EmbedOptions(Pooling.MEAN, layers=(top,)),
        EmbedOptions(Pooling.MEAN, layers=(top,), normalize=True),
        EmbedOptions(Pooling.CLS, layers=(top,)),
        EmbedOptions(Pooling.MAX, layers=(0, top), normalize=True),
        EmbedOptions(Pooling.MEAN, layers=(0, 1)),
        EmbedOptions(Pooling.MEAN, layer_weights=tuple(float(i) for i in range(top + 1))),
        EmbedOptions(Pooling.NONE, layers=(top,)),
        EmbedOptions(Pooling.NONE, layers=(1,), normalize=True),
        EmbedOptions(Pooling.MEAN_SQRT_LEN, layers=(top,)),
        EmbedOptions(Pooling.MEAN, layers=(top,), normalize=True, dimensions=5),
        EmbedOptions(Pooling.NONE, layers=(top,), dimensions=3),
    ]


def one_by_one(runtime: Runtime, items: list[EmbedItem]) -> list[np.ndarray]:
    """Each text pooled on its own from the batch's graph outputs (``encode_batch``, the step
    ``embed_batch`` runs first): its tokens' layers mixed (mean, or the softmax scalar mix
    times gamma), then its first token, float64 mean or max, then L2-normalised."""
    encoded = runtime.encode_batch(items)  # type: ignore[attr-defined]
    gamma = float(getattr(runtime, "gamma", 1.0))
    pooled = []
    for row, item in enumerate(items):
        options, count = item.options, len(item.tokens)
        if options.layer_weights:
            weights = np.asarray(options.layer_weights, dtype=np.float64)
            weights = np.exp(weights - weights.max())
            weights /= weights.sum()
            layers = np.stack([encoded[layer][row, :count] for layer in range(len(weights))])
            mixed = gamma * np.tensordot(weights.astype(np.float32), layers, axes=1)
        else:
            layers = np.stack([encoded[layer][row, :count] for layer in options.layers])
            mixed = layers[0] if len(layers) == 1 else np.mean(layers, axis=0, dtype=np.float32)
        mixed = np.asarray(mixed, dtype=np.float32)
        kept = mixed[item.pool_start :]  # a prompt left out of pooling
        vectors = {
            Pooling.CLS: kept[0],
            Pooling.MEAN: np.mean(kept, axis=0, dtype=np.float64).astype(np.float32),
            Pooling.MEAN_SQRT_LEN: (
                np.sum(kept, axis=0, dtype=np.float64) / np.sqrt(len(kept))
            ).astype(np.float32),
            Pooling.MAX: kept.max(axis=0),
            Pooling.NONE: mixed,
        }[options.pooling]
        if options.dimensions:
            vectors = vectors[..., : options.dimensions]
        if options.normalize:
            vectors = vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)
        pooled.append(vectors)
    return pooled


@pytest.mark.parametrize("architecture", ["bert", "elmo"])
def test_one_batch_of_mixed_options_pools_as_text_by_text(
    runtimes: dict[str, Runtime], architecture: str
) -> None:
    runtime = runtimes[architecture]
    items = [
        item
        for index, options in enumerate(option_sets(runtime.spec.num_layers))
        for item in runtime.prepare_embed(TEXTS[index % 3 :], options)
    ]
    pooled = runtime.embed_batch(items)
    expected = one_by_one(runtime, items)
    assert len(pooled) == len(items)
    seconds = {each.pooling_s for each in pooled}
    assert len(seconds) == 1 and seconds.pop() > 0  # the batch's one pooling, timed
    for item, each, reference in zip(items, pooled, expected, strict=True):
        got = each.result.vectors
        assert got.dtype == np.float32 and got.flags.c_contiguous
        assert got.shape == reference.shape
        np.testing.assert_allclose(got, reference, rtol=1e-6, atol=1e-6)
        if item.options.pooling in (Pooling.CLS, Pooling.MAX, Pooling.NONE):
            assert np.array_equal(got, reference), item.options
        assert each.result.tokens == item.tokens
        assert each.result.truncated == item.truncated


@pytest.mark.parametrize("architecture", ["bert", "elmo"])
def test_a_text_pools_the_same_alone_or_padded_in_a_batch(
    runtimes: dict[str, Runtime], architecture: str
) -> None:
    """Padding never leaks into a pooled vector: the masked mean, max and first token of a
    short text in a batch of longer ones equal those of the text alone."""
    runtime = runtimes[architecture]
    for options in option_sets(runtime.spec.num_layers):
        items = runtime.prepare_embed(TEXTS, options)
        together = runtime.embed_batch(items)
        for item, each in zip(items, together, strict=True):
            (alone,) = runtime.embed_batch([item])
            np.testing.assert_allclose(each.result.vectors, alone.result.vectors, atol=2e-5)
        if options.normalize and options.pooling is not Pooling.NONE:
            norms = np.linalg.norm(np.stack([each.result.vectors for each in together]), axis=1)
            np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


@pytest.mark.parametrize("pooling", [Pooling.CLS, Pooling.MEAN, Pooling.MAX, Pooling.MEAN_SQRT_LEN])
def test_tokens_before_the_pool_start_are_left_out(
    runtimes: dict[str, Runtime], pooling: Pooling
) -> None:
    """A prompt the model pools without: its tokens count for nothing, CLS is the first token
    after it, in a batch where other texts start pooling elsewhere."""
    runtime = runtimes["bert"]
    options = EmbedOptions(pooling, layers=(runtime.spec.num_layers,))
    items = [
        dataclasses.replace(item, pool_start=start)
        for item, start in zip(runtime.prepare_embed(TEXTS, options), [3, 0, 2, 1, 4], strict=True)
    ]
    got = [each.result.vectors for each in runtime.embed_batch(items)]
    for vector, reference in zip(got, one_by_one(runtime, items), strict=True):
        np.testing.assert_allclose(vector, reference, rtol=1e-6, atol=1e-6)
    from_zero = runtime.embed_batch([dataclasses.replace(items[0], pool_start=0)])
    assert not np.allclose(from_zero[0].result.vectors, got[0])
