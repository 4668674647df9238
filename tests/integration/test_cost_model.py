"""Batch shapes from a measured cost: the table timed at warm-up on the real engine, per-model
limits from ``config.json``, and answers unchanged by how batches are shaped."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from modelrepo.model_config import BatchingLimits, ModelConfig, write_model_config
from service.client import EmbeddingClient, vectors
from tests.integration.harness import running_server
from tests.integration.test_metrics import scrape

TEXTS = ["the river bank", "a fine day in the mill , and then the bank again"]


@pytest.fixture(scope="module")
def repository(imported: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the shared tiny models, so this module's config.json files stay its own."""
    root = tmp_path_factory.mktemp("cost") / "models"
    shutil.copytree(imported["models"], root)
    return root


def test_cost_table_is_timed_at_warm_up_reported_and_used(
    repository: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="service")
    with running_server(
        repository, models=["tiny-mlm"], batching_cost_model="on", cost_model_budget_s=1.0
    ) as server:
        embedder = server.app.embedder
        assert embedder is not None
        served = embedder.resolve("tiny-mlm", "")
        table = served.cost_table
        assert table is not None and served.embed_batcher is not None
        assert served.embed_batcher.cost_table is table
        assert table.batch_sizes[0] == 1 and table.lengths[0] >= 1
        measured = [
            (size, length)
            for size in table.batch_sizes
            for length in table.lengths
            if (size, length) not in table.estimated
        ]
        assert (1, table.lengths[0]) in measured and len(measured) >= 4
        # Real timings: a batch of the largest measured shape costs more than the smallest.
        largest = max(measured, key=lambda shape: shape[0] * shape[1])
        assert table.predict(*largest) > table.predict(1, table.lengths[0])
        samples = scrape(server)
        costs = {
            dict(labels)["batch_size"] + "x" + dict(labels)["length"]: value
            for (name, labels), value in samples.items()
            if name == "embed_batch_cost_seconds"
        }
        assert costs["1x" + str(table.lengths[0])] == pytest.approx(table.seconds[0][0])
        assert "tiny-mlm/1 embed cost table: batch ms by length" in caplog.text
        with EmbeddingClient(server.target, timeout=30) as client:
            shaped = vectors(client.embed(TEXTS, "tiny-mlm"))
    with running_server(repository, models=["tiny-mlm"]) as server:  # the harness: off
        embedder = server.app.embedder
        assert embedder is not None and embedder.resolve("tiny-mlm", "").cost_table is None
        with EmbeddingClient(server.target, timeout=30) as client:
            filled = vectors(client.embed(TEXTS, "tiny-mlm"))
    np.testing.assert_allclose(shaped, filled, atol=1e-5)


def test_model_config_sets_its_own_batching_limits(
    repository: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_model_config(
        repository / "tiny-encoder",
        ModelConfig(batching=BatchingLimits(max_batch_size=3, max_queue_delay_ms=0.5)),
    )
    caplog.set_level(logging.INFO, logger="service")
    try:
        with running_server(repository, max_batch_size=16) as server:
            embedder = server.app.embedder
            assert embedder is not None
            own = embedder.resolve("tiny-encoder", "").embed_batcher
            server_wide = embedder.resolve("tiny-mlm", "").embed_batcher
            assert own is not None and server_wide is not None
            assert (own.config.max_batch_size, own.config.max_queue_delay_ms) == (3, 0.5)
            assert own.config.max_batch_tokens == server_wide.config.max_batch_tokens
            assert server_wide.config.max_batch_size == 16
    finally:
        (repository / "tiny-encoder" / "config.json").unlink()
    assert "tiny-encoder/1 batching: max_batch_size 3," in caplog.text
    assert "tiny-mlm/1 batching: max_batch_size 16," in caplog.text
