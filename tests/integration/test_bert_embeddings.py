"""Embed over a real channel equals transformers on the imported checkpoint."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer, BertModel

from service.client import EmbeddingClient, vectors

TEXTS = [
    "the river bank flows past green fields",
    "the bank in town lends money to farmers who grow apples",
    "children play football",
    "musicians tune a bass guitar before the evening concert begins while the old mill turns",
]


@pytest.fixture(scope="module")
def reference(imported: dict[str, Path]) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """transformers' last hidden states and attention masks for TEXTS."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BertModel.from_pretrained(imported["tiny-mlm"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(imported["tiny-mlm"])
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state.numpy()
    return list(hidden), list(batch["attention_mask"].numpy())


Reference = tuple[list[np.ndarray], list[np.ndarray]]


def masked_mean(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    weights = mask[:, None].astype(np.float32)
    return np.asarray((hidden * weights).sum(axis=0) / weights.sum())


def test_mean_pooling_equals_transformers(client: EmbeddingClient, reference: Reference) -> None:
    hidden, masks = reference
    response = client.embed(TEXTS, "tiny-mlm", pooling="mean")
    assert response.dim == 32
    for got, states, mask in zip(vectors(response), hidden, masks, strict=True):
        assert np.abs(got - masked_mean(states, mask)).max() <= 1e-4


def test_cls_pooling_equals_transformers(client: EmbeddingClient, reference: Reference) -> None:
    hidden, _ = reference
    for got, states in zip(
        vectors(client.embed(TEXTS, "tiny-mlm", pooling="cls")), hidden, strict=True
    ):
        assert np.abs(got - states[0]).max() <= 1e-4


def test_no_pooling_returns_every_token(client: EmbeddingClient, reference: Reference) -> None:
    hidden, masks = reference
    response = client.embed(TEXTS, "tiny-mlm", pooling="none")
    for embedding, got, states, mask in zip(
        response.embeddings, vectors(response), hidden, masks, strict=True
    ):
        length = int(mask.sum())
        assert embedding.num_tokens == length == len(embedding.tokens)
        assert embedding.tokens[0] == "[CLS]" and embedding.tokens[-1] == "[SEP]"
        assert got.shape == (length, 32)
        assert np.abs(got - states[:length]).max() <= 1e-4


def test_max_pooling_and_normalize(client: EmbeddingClient, reference: Reference) -> None:
    hidden, masks = reference
    response = client.embed(TEXTS, "tiny-mlm", pooling="max", normalize=True)
    for got, states, mask in zip(vectors(response), hidden, masks, strict=True):
        expected = states[: int(mask.sum())].max(axis=0)
        assert np.abs(got - expected / np.linalg.norm(expected)).max() <= 1e-5
        assert abs(np.linalg.norm(got) - 1) < 1e-5


def test_layer_choice_and_average(client: EmbeddingClient, imported: dict[str, Path]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BertModel.from_pretrained(imported["tiny-mlm"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(imported["tiny-mlm"])
    with torch.no_grad():
        states = model(
            **tokenizer(TEXTS[:1], return_tensors="pt"), output_hidden_states=True
        ).hidden_states
    layer1 = vectors(client.embed(TEXTS[:1], "tiny-mlm", pooling="cls", layers=[1]))[0]
    assert np.abs(layer1 - states[1][0, 0].numpy()).max() <= 1e-4
    both = vectors(client.embed(TEXTS[:1], "tiny-mlm", pooling="cls", layers=[0, 2]))[0]
    expected = (states[0][0, 0] + states[2][0, 0]).numpy() / 2
    assert np.abs(both - expected).max() <= 1e-4


def test_batched_equals_single_requests(client: EmbeddingClient) -> None:
    rng = np.random.default_rng(0)
    words = " ".join(TEXTS).split()
    texts = [" ".join(rng.choice(words, size=int(rng.integers(1, 60)))) for _ in range(37)]
    batched = vectors(client.embed(texts, "tiny-mlm", pooling="mean"))
    singles = [vectors(client.embed([text], "tiny-mlm", pooling="mean"))[0] for text in texts]
    for together, alone in zip(batched, singles, strict=True):
        assert np.abs(together - alone).max() <= 1e-5


def test_encoder_only_checkpoint_is_served(
    client: EmbeddingClient, imported: dict[str, Path]
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BertModel.from_pretrained(imported["tiny-encoder"]).eval()
    tokenizer = AutoTokenizer.from_pretrained(imported["tiny-encoder"])
    batch = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state.numpy()
    got = vectors(client.embed(TEXTS, "tiny-encoder", pooling="mean"))
    for vector, states, mask in zip(got, hidden, batch["attention_mask"].numpy(), strict=True):
        assert np.abs(vector - masked_mean(states, mask)).max() <= 1e-4


def test_truncation_flags_the_item(client: EmbeddingClient) -> None:
    long_text = " ".join(["river"] * 300)
    response = client.embed([long_text, "short"], "tiny-mlm", pooling="none", truncate=True)
    first, second = response.embeddings
    assert first.truncated and first.num_tokens == 128 and first.tokens[-1] == "[SEP]"
    assert not second.truncated


def test_timing_is_reported(client: EmbeddingClient) -> None:
    timing = client.embed(TEXTS, "tiny-mlm").timing
    assert timing.total_us > 0 and timing.inference_us > 0
    assert timing.total_us >= timing.inference_us
