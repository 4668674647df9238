"""FillMask on a BERT trained by our recipe equals transformers' fill-mask pipeline on the source
PyTorch checkpoint, for held-out generated sentences with a content word masked."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from transformers import pipeline

from export.bert.exporter import import_bert
from export.bert.train import BertTrainingConfig, train_bert
from export.corpus import Corpus, CorpusConfig, generate_corpus
from export.evaluate import masked_sentences
from service.background import BackgroundServer
from service.client import EmbeddingClient
from tests.integration.harness import running_server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return generate_corpus(CorpusConfig(train_tokens=100_000, heldout_sentences=200))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, corpus: Corpus) -> tuple[Path, Path]:
    """The default recipe, shortened: same code path, fewer steps."""
    root = tmp_path_factory.mktemp("trained")
    config = replace(BertTrainingConfig(), steps=100, batch_size=32)
    checkpoint = train_bert(
        corpus.train.sentences, config, root / "checkpoint", show_progress=False
    )
    import_bert(checkpoint, root / "models", "bert")
    return checkpoint, root / "models"


@pytest.fixture(scope="module")
def served(trained: tuple[Path, Path]) -> Iterator[BackgroundServer]:
    with running_server(trained[1]) as server:
        yield server


def test_served_top5_equals_the_transformers_pipeline(
    trained: tuple[Path, Path], served: BackgroundServer, corpus: Corpus
) -> None:
    checkpoint, _ = trained
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = pipeline("fill-mask", model=str(checkpoint), top_k=5, device="cpu")
    texts = [
        " ".join([*words[:position], "[MASK]", *words[position + 1 :]])
        for words, position, _ in masked_sentences(corpus.heldout, seed=0, limit=40)
    ]
    with EmbeddingClient(served.target) as client:
        response = client.fill_mask(texts, "bert", top_k=5)
    for text, result in zip(texts, response.results, strict=True):
        expected = reference(text)
        (mask,) = result.masks
        assert [p.token_id for p in mask.predictions] == [e["token"] for e in expected], text
        for prediction, wanted in zip(mask.predictions, expected, strict=True):
            assert abs(prediction.score - wanted["score"]) <= 1e-4
            assert prediction.token == wanted["token_str"]
            # the user's own text with the mask filled (the pipeline re-decodes the whole text)
            assert prediction.sequence == text.replace("[MASK]", prediction.token)
